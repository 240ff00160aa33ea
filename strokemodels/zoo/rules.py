"""The rule baselines: fitted on the training partition in seconds, saved as a small JSON state, run
through the same ``train`` / ``predict`` / ``score`` as the networks. No torch here.

- ``majority-occlusion``: the most frequent training class, with the training frequencies as
  probabilities; ``majority-recanalization`` and ``majority-regions``: the training prevalence of each
  output (the majority decision at 0.5).
- ``tmax-territory`` (the atlas-based comparison point of Papakyriakou et al. 2025, Peerlings et al.
  2023): the share of each vascular territory of the occluded side with Tmax > 6 s, on the template
  atlas the occlusion pipeline registers to; ICA-T when the anterior (ACA) territory is hypoperfused,
  else M1 when the deep MCA territory is, else M2, the two thresholds fitted on the training partition.
- ``spiral-threshold`` (the AMI-Net report): SPIRAL > t, regions from the atlas under the thresholded
  voxels, slice by slice; t swept over 0.0-0.95 on the training partition by per-slice F1.
- ``rcbf-threshold`` (the classic ISLES 2018 baseline): core where CBF < 30% of the mean of the healthy
  hemisphere inside the brain, optionally with Tmax > 6 s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from strokedata.labels import left_right_axis, occluded_side_from_tmax
from strokedata.manifest import DEFAULT_ATLAS_REGIONS, N_REGIONS, Modality

OCCLUSION_CLASSES = ("ICA-T", "M1", "M2")
HYPOPERFUSED_S = 6.0
"""Tmax above which tissue counts as hypoperfused (s)."""


@dataclass(frozen=True)
class PatientImages:
    """One patient as a rule reads it: its images (float32 after scaling, stored voxel order) with their
    affines, its label in the task's form, and the parameters of the pipeline its dataset went through."""

    patient_id: str
    images: Mapping[Modality, tuple[np.ndarray, np.ndarray]]
    label: Any = None
    pipeline_parameters: Mapping[str, Any] = field(default_factory=dict)


class RuleModel(Protocol):
    """What ``train`` and ``predict`` need of a rule: fit, predict one patient, and a JSON state."""

    def fit(self, patients: Sequence[PatientImages]) -> None:
        """Fit the rule's free values on the training patients (their labels set). The patients may be
        read from disk one at a time (training.partitions.RulePatients): keep features, not patients."""

    def predict(self, patient: PatientImages) -> np.ndarray:
        """Return the task's output for one patient (strokemodels.training.outputs)."""

    def state(self) -> dict[str, Any]:
        """Return everything fitted, as JSON data."""

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state`` returned."""


class MajorityClass:
    """The most frequent class of the training partition, every patient; probabilities: the frequencies."""

    def __init__(self, classes: int) -> None:
        self.frequencies = np.full(classes, 1.0 / classes)

    def fit(self, patients: Sequence[PatientImages]) -> None:
        """Count the training labels."""
        counts = np.bincount([int(p.label) for p in patients], minlength=self.frequencies.size)
        self.frequencies = counts / counts.sum()

    def predict(self, patient: PatientImages) -> np.ndarray:
        """Return the training frequencies (the argmax is the majority class)."""
        return self.frequencies.copy()

    def state(self) -> dict[str, Any]:
        """Return the frequencies."""
        return {"frequencies": self.frequencies.tolist()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore the frequencies."""
        self.frequencies = np.asarray(state["frequencies"], dtype=np.float64)


class Prevalence:
    """The training prevalence of each output, for every patient: the majority-class floor of the binary
    and multi-label tasks. Recanalization: (1,) the share of favourable outcomes (a decision of the
    majority at 0.5); clot-regions: (slices, 15) each region's share of training slices holding clot,
    on every slice of the patient (the first input image gives the slices)."""

    def __init__(self, outputs: int) -> None:
        self.shares = np.zeros(outputs)

    def fit(self, patients: Sequence[PatientImages]) -> None:
        """Average the training labels (per-slice labels pooled over all slices)."""
        total, count = np.zeros_like(self.shares), 0
        for patient in patients:
            rows = np.asarray(patient.label, dtype=np.float64).reshape(-1, self.shares.size)
            total += rows.sum(axis=0)
            count += rows.shape[0]
        self.shares = total / max(count, 1)

    def predict(self, patient: PatientImages) -> np.ndarray:
        """Return the shares, per slice of the patient for several outputs."""
        if self.shares.size == 1:
            return self.shares.copy()
        first = next(iter(patient.images))
        slices = patient.images[first][0].shape[2]
        return np.tile(self.shares, (slices, 1))

    def state(self) -> dict[str, Any]:
        """Return the shares."""
        return {"shares": self.shares.tolist()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore the shares."""
        self.shares = np.asarray(state["shares"], dtype=np.float64)


def _grid(shape: tuple[int, ...], affine: np.ndarray) -> Any:
    """Return the phantom Grid of an image (its shape and voxel sizes)."""
    from strokedata.phantoms.config import Grid

    spacing = [round(float(s), 5) for s in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))]
    return Grid(
        shape=(int(shape[0]), int(shape[1]), int(shape[2])), spacing=(spacing[0], spacing[1], spacing[2])
    )


def territory_shares(seconds: np.ndarray, affine: np.ndarray, side: str) -> dict[str, float]:
    """Return, per territory of ``side`` ('L' or 'R'), the share of its voxels whose Tmax (in seconds)
    exceeds 6 s, on the template atlas of the image's grid."""
    from strokedata.phantoms.template import phantom_template

    atlas = phantom_template(_grid(seconds.shape, affine)).atlas
    hypoperfused = seconds > HYPOPERFUSED_S
    shares = {}
    for value, name in enumerate(DEFAULT_ATLAS_REGIONS):
        if name.startswith(f"{side}_"):
            region = atlas == value
            shares[name[2:]] = float(hypoperfused[region].mean()) if region.any() else 0.0
    return shares


class TmaxTerritory:
    """ICA-T / M1 / M2 from the hypoperfused share of the ACA and deep MCA territories (thresholds fitted)."""

    def __init__(self) -> None:
        self.aca, self.deep = 0.5, 0.5

    @staticmethod
    def features(patient: PatientImages) -> tuple[float, float]:
        """Return (ACA share, deep MCA share) of the occluded side, found by the Tmax rule."""
        tmax, affine = patient.images[Modality.TMAX]
        low, high = (float(v) for v in patient.pipeline_parameters.get("tmax_range", (0.0, 1.0)))
        seconds = low + np.asarray(tmax, dtype=np.float64) * (high - low)  # the pipeline scaled [low, high]
        side = occluded_side_from_tmax(seconds, affine)
        shares = territory_shares(seconds, affine, side)
        return shares["ACA"], shares["MCA_deep"]

    def _classify(self, aca: float, deep: float) -> int:
        return 0 if aca > self.aca else 1 if deep > self.deep else 2

    def fit(self, patients: Sequence[PatientImages]) -> None:
        """Choose the two thresholds that maximise the macro F1 on the training patients."""
        from strokemodels.benchmark.metrics import confusion_metrics

        features = [self.features(p) for p in patients]
        labels = [int(p.label) for p in patients]
        aca_values = sorted({0.0, *(round(f[0], 6) for f in features)})
        deep_values = sorted({0.0, *(round(f[1], 6) for f in features)})
        best = (-1.0, 0.5, 0.5)
        for aca in aca_values:
            for deep in deep_values:
                self.aca, self.deep = aca, deep
                confusion = np.zeros((len(OCCLUSION_CLASSES),) * 2)
                np.add.at(confusion, (labels, [self._classify(*f) for f in features]), 1)
                score = float(confusion_metrics(confusion, list(OCCLUSION_CLASSES))["macro_f1"])
                if score > best[0]:
                    best = (score, aca, deep)
        _, self.aca, self.deep = best

    def predict(self, patient: PatientImages) -> np.ndarray:
        """Return one-hot probabilities of the class the thresholds give."""
        output = np.zeros(len(OCCLUSION_CLASSES))
        output[self._classify(*self.features(patient))] = 1.0
        return output

    def state(self) -> dict[str, Any]:
        """Return the two thresholds."""
        return {"aca_share": self.aca, "deep_mca_share": self.deep}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore the two thresholds."""
        self.aca, self.deep = float(state["aca_share"]), float(state["deep_mca_share"])


def slice_regions(mask: np.ndarray, atlas: np.ndarray) -> np.ndarray:
    """Return (slices, 15) of 0/1: the atlas regions under ``mask``'s voxels, slice by slice (third axis)."""
    rows = np.zeros((mask.shape[2], N_REGIONS), dtype=np.uint8)
    for z in range(mask.shape[2]):
        values = atlas[:, :, z][mask[:, :, z] > 0]
        rows[z, np.unique(values[(values >= 0) & (values < N_REGIONS)]).astype(int)] = 1
    return rows


class SpiralThreshold:
    """Regions from the atlas under SPIRAL > t, slice by slice; t swept on the training partition."""

    SWEEP = tuple(round(0.05 * k, 2) for k in range(20))

    def __init__(self) -> None:
        self.threshold = 0.9

    def fit(self, patients: Sequence[PatientImages]) -> None:
        """Choose the threshold of 0.0-0.95 (steps of 0.05) with the best per-slice F1 (micro) on the
        training patients, as the AMI-Net report's sweep (one pass: each patient read once)."""
        counts = np.zeros((len(self.SWEEP), 3))  # per threshold: true positives, false positives, negatives
        for patient in patients:
            spiral = patient.images[Modality.SPIRAL][0]
            atlas = np.rint(patient.images[Modality.ATLAS][0]).astype(np.int64)
            truth = np.asarray(patient.label, dtype=bool)
            for row, threshold in zip(counts, self.SWEEP, strict=True):
                predicted = slice_regions(spiral > threshold, atlas).astype(bool)
                row += [(predicted & truth).sum(), (predicted & ~truth).sum(), (~predicted & truth).sum()]
        f1 = 2 * counts[:, 0] / np.maximum(2 * counts[:, 0] + counts[:, 1] + counts[:, 2], 1)
        self.threshold = self.SWEEP[int(np.argmax(f1))]  # the first (lowest) of equal bests

    def predict(self, patient: PatientImages) -> np.ndarray:
        """Return (slices, 15) of 0/1 region decisions."""
        spiral = patient.images[Modality.SPIRAL][0]
        atlas = np.rint(patient.images[Modality.ATLAS][0]).astype(np.int64)
        return slice_regions(spiral > self.threshold, atlas).astype(np.float32)

    def state(self) -> dict[str, Any]:
        """Return the threshold."""
        return {"threshold": self.threshold}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore the threshold."""
        self.threshold = float(state["threshold"])


class RcbfThreshold:
    """Core where CBF < ``fraction`` of the healthy hemisphere's mean inside the brain (and Tmax > 6 s)."""

    def __init__(self, fraction: float = 0.3, with_tmax: bool = False) -> None:
        self.fraction, self.with_tmax = fraction, with_tmax

    def fit(self, patients: Sequence[PatientImages]) -> None:
        """Nothing to fit: the threshold is the literature's (30%); checks that the inputs are there."""
        for patient in patients:
            if Modality.CBF not in patient.images:
                raise ValueError(f"patient {patient.patient_id} has no CBF map")

    def predict(self, patient: PatientImages) -> np.ndarray:
        """Return the core mask (0/1, float32) on the CBF grid."""
        cbf, affine = patient.images[Modality.CBF]
        brain = cbf > 0
        axis = left_right_axis(affine)
        first = np.zeros(cbf.shape, dtype=bool)
        index: list[slice] = [slice(None)] * 3
        index[axis] = slice(0, cbf.shape[axis] // 2)
        first[tuple(index)] = True
        means = [float(cbf[brain & half].mean()) if (brain & half).any() else 0.0 for half in (first, ~first)]
        healthy = max(means)  # the hemisphere with the higher mean flow is the healthy one
        core = brain & (cbf < self.fraction * healthy)
        if self.with_tmax and Modality.TMAX in patient.images:
            core &= patient.images[Modality.TMAX][0] > HYPOPERFUSED_S
        return core.astype(np.float32)

    def state(self) -> dict[str, Any]:
        """Return the fraction and whether Tmax is used."""
        return {"fraction": self.fraction, "with_tmax": self.with_tmax}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore the fraction and the Tmax switch."""
        self.fraction, self.with_tmax = float(state["fraction"]), bool(state["with_tmax"])
