"""The four benchmark tasks as pydantic task cards, with the published baselines stored as data.

Every figure comes from ../shared/design/tasks.md, which quotes the four papers in shared/seeds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from strokedata.manifest import N_REGIONS

TaskName = Literal["occlusion", "recanalization", "core", "clot-regions"]
_STRICT = ConfigDict(extra="forbid", frozen=True)


class PublishedResult(BaseModel):
    """A published result: who, on which cohort, how, and the figures (mean, or mean and std)."""

    model_config = _STRICT

    model: str
    citation: str
    cohort: str
    n: int | None = Field(description="patients (or scans) the figures were computed on")
    protocol: str
    metrics: dict[str, float]
    std: dict[str, float] = Field(default_factory=dict, description="std over folds, where reported")


class TaskCard(BaseModel):
    """One task: inputs, label and its derivation, the prediction file, metrics (primary first), policies."""

    model_config = _STRICT

    name: TaskName
    title: str
    source: str
    inputs: list[str]
    label: str
    truth: str = Field(description="how the truth is derived from a dataset")
    prediction_format: str
    classes: list[str] = Field(description="label vocabulary, in the order of confusion matrices")
    metrics: list[str] = Field(description="headline metrics; the first is the primary")
    lower_is_better: list[str] = Field(default_factory=list, description="metrics where smaller is better")
    policies: dict[str, str] = Field(
        description="empty truth, empty prediction, missing patient, undefined metric"
    )
    published: list[PublishedResult]

    @property
    def primary(self) -> str:
        """Return the task's primary metric."""
        return self.metrics[0]


_MISSING = "error by default, listing the patients; --allow-missing scores each as wrong (the worst value)"
_000 = (
    "Papakyriakou O, Emmer BJ, Majoie CBLM, Coutinho J, Arrarte Terreros N, Marquering HA. Deep learning for "
    "vessel occlusion classification using CT perfusion maps in acute ischemic stroke. Medical Imaging with "
    "Deep Learning (MIDL), short paper, 2025"
)
_000_COHORT = "701 patients (14.8% ICA-T, 58.8% M1, 26.4% M2)"
_000_TEST = "15% held-out test set (n = 106: 16 ICA-T, 62 M1, 28 M2), 5-fold CV, voting ensemble"
_001 = (
    "Zhang H, Polson JS, Yang EJ, Nael K, Speier W, Arnold CW. Predicting thrombectomy recanalization from "
    "CT imaging using deep learning models. Medical Imaging with Deep Learning (MIDL), 2022"
)
_002 = (
    "de Vries L, Emmer BJ, Majoie CBLM, Marquering H, Gavves E. Transformers for ischemic stroke infarct "
    "core segmentation from spatio-temporal CT perfusion scans. Medical Imaging with Deep Learning (MIDL), "
    "2021"
)
_003 = (
    "AMI-Net: detecting the brain regions affected by a stroke from multiphase CTA. Technical report for "
    "Andromeda Medical Imaging Inc., about 2024 (unpublished; the authors are not named in it)"
)

TASKS: dict[str, TaskCard] = {
    "occlusion": TaskCard(
        name="occlusion",
        title="Occlusion location from CT perfusion maps",
        source=_000,
        inputs=["CBF", "CBV", "TMAX"],
        label="occlusion location: ICA-T, M1 or M2 (one per patient)",
        truth="labels.occlusion_location of each manifest",
        prediction_format="patient_id,prediction with prediction in {ICA-T, M1, M2}; optional "
        "p_ICA-T,p_M1,p_M2 (class probabilities summing to 1) for one-vs-rest ROC-AUC",
        classes=["ICA-T", "M1", "M2"],
        metrics=["accuracy", "balanced_accuracy", "macro_f1"],
        policies={
            "missing patient": _MISSING,
            "empty truth": "a class absent from the truth has recall 0, counts in macro F1, and is left out "
            "of balanced accuracy and of the one-vs-rest ROC-AUC mean (roc_auc_ovr)",
            "empty prediction": "a class never predicted has precision 0",
            "undefined metric": "a 0/0 is 0 (scikit-learn zero_division=0); the ROC-AUC of a class absent "
            "from the truth is undefined (null)",
            "unit": "one row per patient",
        },
        published=[
            PublishedResult(
                model="CBAM 3D CNN + self-attention",
                citation=_000,
                cohort=_000_COHORT,
                n=106,
                protocol=_000_TEST,
                metrics={
                    "accuracy": 0.792,
                    "precision[ICA-T]": 0.52,
                    "recall[ICA-T]": 0.69,
                    "f1[ICA-T]": 0.59,
                    "precision[M1]": 0.86,
                    "recall[M1]": 0.79,
                    "f1[M1]": 0.82,
                    "precision[M2]": 0.86,
                    "recall[M2]": 0.86,
                    "f1[M2]": 0.86,
                },
            ),
            PublishedResult(
                model="ResNet18-CBAM 3D (Tahyudin et al. 2024, re-implemented)",
                citation=_000,
                cohort=_000_COHORT,
                n=106,
                protocol=_000_TEST,
                metrics={
                    "accuracy": 0.689,
                    "precision[ICA-T]": 0.41,
                    "recall[ICA-T]": 0.56,
                    "f1[ICA-T]": 0.47,
                    "precision[M1]": 0.76,
                    "recall[M1]": 0.71,
                    "f1[M1]": 0.73,
                    "precision[M2]": 0.77,
                    "recall[M2]": 0.71,
                    "f1[M2]": 0.74,
                },
            ),
            PublishedResult(
                model="atlas-based (Peerlings et al. 2023), M2 only",
                citation=_000 + ", quoting Peerlings et al.",
                cohort="other cohort (as quoted in Papakyriakou et al. 2025)",
                n=None,
                protocol="as quoted in Papakyriakou et al. 2025",
                metrics={"precision[M2]": 0.57, "recall[M2]": 0.47},
            ),
        ],
    ),
    "recanalization": TaskCard(
        name="recanalization",
        title="Favourable recanalization after thrombectomy from CT + CTA",
        source=_001,
        inputs=["NCCT", "CTA"],
        label="favourable recanalization: mTICI >= 2c (1) or not (0)",
        truth="labels.mtici of each manifest, favourable when >= 2c",
        prediction_format="patient_id,probability of favourable recanalization; optional prediction (0/1), "
        "otherwise --threshold (default 0.5)",
        classes=["0", "1"],
        metrics=["roc_auc", "accuracy", "precision", "sensitivity", "specificity"],
        policies={
            "missing patient": _MISSING,
            "empty truth": "with a single class in the truth, ROC-AUC is undefined (null) and the "
            "sensitivity or specificity of the absent class is 0",
            "empty prediction": "precision with no positive prediction is 0",
            "undefined metric": "a 0/0 is 0 (scikit-learn zero_division=0); ROC-AUC of one class is null, "
            "and bootstrap resamples holding one class are left out of its interval",
            "unit": "one row per patient",
        },
        published=[
            PublishedResult(
                model=model,
                citation=_001
                if "reported" not in model
                else f"{model} (as reported in Zhang, Polson et al. 2022)",
                cohort="177 patients (254 eligible; 69 without CT or CTA, 8 unclear location excluded)"
                if "reported" not in model
                else "other cohort (as reported in Zhang, Polson et al. 2022)",
                n=177 if "reported" not in model else None,
                protocol="cross-validation, mean +- std over folds",
                metrics=values,
                std=std,
            )
            for model, values, std in (
                (
                    "SCANet",
                    {
                        "roc_auc": 0.7732,
                        "accuracy": 0.7523,
                        "precision": 0.7424,
                        "sensitivity": 0.8250,
                        "specificity": 0.6905,
                    },
                    {
                        "roc_auc": 0.039,
                        "accuracy": 0.042,
                        "precision": 0.145,
                        "sensitivity": 0.174,
                        "specificity": 0.215,
                    },
                ),
                (
                    "Radiomics",
                    {
                        "roc_auc": 0.6859,
                        "accuracy": 0.6877,
                        "precision": 0.6417,
                        "sensitivity": 0.7425,
                        "specificity": 0.6421,
                    },
                    {
                        "roc_auc": 0.043,
                        "accuracy": 0.039,
                        "precision": 0.068,
                        "sensitivity": 0.123,
                        "specificity": 0.126,
                    },
                ),
                (
                    "ResNet34",
                    {
                        "roc_auc": 0.5840,
                        "accuracy": 0.5656,
                        "precision": 0.5410,
                        "sensitivity": 0.8500,
                        "specificity": 0.3253,
                    },
                    {
                        "roc_auc": 0.036,
                        "accuracy": 0.046,
                        "precision": 0.067,
                        "sensitivity": 0.300,
                        "specificity": 0.296,
                    },
                ),
                ("Siddiqui et al. 2021, reported", {"roc_auc": 0.717}, {}),
                (
                    "Hilbert et al. 2019, reported (needs manual clot segmentation)",
                    {"roc_auc": 0.65},
                    {"roc_auc": 0.10},
                ),
            )
        ],
    ),
    "core": TaskCard(
        name="core",
        title="Infarct core segmentation from 4D CT perfusion",
        source=_002,
        inputs=["CTP"],
        label="binary infarct core mask (CORE)",
        truth="the CORE image of each patient",
        prediction_format="patient_id,mask with mask a NIfTI path relative to the CSV, on the truth's grid",
        classes=["0", "1"],
        metrics=[
            "dice",
            "precision",
            "recall",
            "volume_difference_ml",
            "lesion_f1",
            "lesion_count_difference",
            "hd95_mm",
        ],
        lower_is_better=["volume_difference_ml", "lesion_count_difference", "hd95_mm"],
        policies={
            "missing patient": _MISSING.replace(
                "wrong (the worst value)",
                "the worst mask: empty where the truth holds a lesion, full where it holds none",
            ),
            "empty truth": "with an empty prediction too, Dice, precision, recall and lesion F1 are 1 and "
            "HD95 is 0 (ISLES'22/'24, Metrics Reloaded; MONAI's NaN-and-drop is not followed); with a "
            "non-empty prediction they are 0 and HD95 is the volume's diagonal in mm",
            "empty prediction": "against a non-empty truth, Dice, precision, recall and lesion F1 are 0 and "
            "HD95 is the volume's diagonal in mm, the worst value (MONAI's NaN would reward a miss)",
            "undefined metric": "none: every 0/0 above has a stated value, so no patient is dropped",
            "lesions": "26-connected components; a truth lesion is detected when any predicted voxel "
            "overlaps it; lesion F1 = TP / (TP + (FP + FN) / 2) (ISLES'22/'24)",
            "hd95": "max of the two directed 95th percentiles of surface distances in mm; surfaces are "
            "mask minus its 6-connected erosion, the volume border counting as background (MONAI)",
            "grid": "a predicted mask must have the truth's shape and affine (within 0.001 mm), and hold "
            "only 0 and 1",
            "unit": "per patient, then mean over patients",
        },
        published=[
            PublishedResult(
                model=model,
                citation=_002 if "Bertels" not in model else f"{model} (as reported in de Vries et al. 2021)",
                cohort="ISLES 2018 (94 training scans)" if where == "CV" else "ISLES 2018 test set",
                n=94 if where == "CV" else None,
                protocol="4-fold CV grouped by scan" if where == "CV" else "ISLES 2018 challenge test",
                metrics={"dice": dice, "precision": precision, "recall": recall},
            )
            for model, dice, precision, recall, where in (
                ("transformer + U-Net (de Vries et al.)", 0.49, 0.48, 0.66, "CV"),
                ("Bertels et al. 2019 CE 0.11", 0.50, 0.43, 0.58, "CV"),
                ("Bertels et al. 2019 D 0.50", 0.46, 0.51, 0.40, "CV"),
                ("thresholded transformer attention map", 0.43, 0.39, 0.62, "CV"),
                ("transformer + U-Net (de Vries et al.), test", 0.42, 0.44, 0.53, "test"),
                ("Bertels et al. 2019 D 0.50, test", 0.38, 0.47, 0.44, "test"),
            )
        ],
    ),
    "clot-regions": TaskCard(
        name="clot-regions",
        title="Atlas regions holding clot from multiphase CTA or SPIRAL",
        source=_003,
        inputs=["MCTA1", "SPIRAL"],
        label="15-element 0/1 vector: region k holds clot when any CLOT voxel (1 or 2) lies where ATLAS = k",
        truth="labels.regions, or derived from CLOT x ATLAS",
        prediction_format="patient_id,region_00,...,region_14 (0/1, or probabilities with --threshold); "
        "optional slice (index along the third voxel axis) for slice-level scoring",
        classes=[f"region_{k:02d}" for k in range(N_REGIONS)],
        metrics=["micro_f1", "micro_precision", "micro_recall", "label_accuracy", "exact_match", "macro_f1"],
        policies={
            "missing patient": _MISSING,
            "empty truth": "a patient or slice without clot counts in label accuracy and exact match; a "
            "region never in the truth has F1 0 when predicted",
            "empty prediction": "micro precision with no region predicted is 0",
            "undefined metric": "F1 of a region with no truth and no prediction is left out of macro F1; "
            "other 0/0 are 0 (scikit-learn zero_division=0)",
            "unit": "patient-level; with a slice column, slice-level (slices along the third voxel axis, "
            "as the AMI-Net report reported per slice), resampling patients with all their slices",
        },
        published=[
            PublishedResult(
                model=model,
                citation=_003,
                cohort="127 patients",
                n=None,
                protocol="64/16/20 train/val/test, per slice ('frame')",
                metrics={"micro_f1": f1, "micro_precision": precision, "micro_recall": recall},
            )
            for model, f1, precision, recall in (
                ("MobileNetV2, fine-tuned", 0.87, 0.82, 0.93),
                ("EfficientFormerV2, fine-tuned", 0.84, 0.77, 0.92),
                ("simple CNN", 0.79, 0.73, 0.86),
                ("SPIRAL threshold 0.9", 0.34, 0.33, 0.35),
            )
        ],
    ),
}
"""Every task card, by name."""
