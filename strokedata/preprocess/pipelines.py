"""The named preprocessing pipelines, one per task, each from its paper (docs/preprocess.md).

A pipeline says which modalities it needs and reads, which it writes, its parameters (a pydantic model
with the paper's defaults), the transforms whose output is stored (``transform``) and those best applied
when loading for training (``loading``: what the canonical layout cannot hold, such as extra channels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from strokedata.labels import MIRRORED, TMAX_SIDE, regions_from_clot
from strokedata.manifest import Labels, Modality
from strokedata.perfusion.settings import PerfusionSettings

if TYPE_CHECKING:
    import torchio as tio

M = Modality
Range = tuple[float, float]


@dataclass(frozen=True)
class Step:
    """One transform of a pipeline, named: a class of strokedata.transforms and its arguments. Naming it
    costs nothing; ``build`` imports TorchIO and makes it."""

    transform: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def build(self) -> tio.Transform:
        """Return the transform itself."""
        import strokedata.transforms as transforms

        made: tio.Transform = getattr(transforms, self.transform)(**self.arguments)
        return made


class PipelineParams(BaseModel):
    """Parameters of a pipeline; unknown names are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OcclusionParams(PipelineParams):
    """000: register, brain mask, relative CBF/CBV, clip and scale, mirror left occlusions."""

    registration: str | None = Field(
        default="affine",
        description="preset registering to the phantom template (docs/registration.md); null: none",
    )
    brain_mask: bool = Field(default=True, description="zero voxels outside the largest connected component")
    side: Literal["rule", "label"] = Field(
        default="rule",
        description="mirror by the Tmax rule of Papakyriakou et al. 2025 ('rule') or by "
        "labels.occlusion_side",
    )
    canonical_side: Literal["L", "R"] = Field(default="R", description="the side lesions are moved to")
    tmax_range: Range = Field(default=(0.0, 20.0), description="Tmax clipped to this range (s), then [0, 1]")
    relative_range: Range = Field(
        default=(0.0, 400.0), description="relative CBF and CBV clipped to this range (%), then [0, 1]"
    )


class RecanalizationParams(PipelineParams):
    """001: registration to a CT template and brain extraction, for NCCT and CTA."""

    registration: str | None = Field(
        default="affine",
        description="preset registering to the phantom template (docs/registration.md); null: none",
    )
    skull_strip: bool = Field(default=True, description="CT brain extraction; BRAIN_MASK written for NCCT")


class CoreParams(PipelineParams):
    """002: the CTP source resampled to a fixed number of frames; the mirrored channel added on loading."""

    frames: int = Field(default=32, ge=2, description="CTP time points after temporal resampling")
    registration: str | None = Field(
        default=None,
        description="preset registering the perfusion group to the symmetric phantom template (whole-head "
        "scans only; ISLES 2018 slabs are too thin); null: none",
    )


class ClotRegionsParams(PipelineParams):
    """003: the aligned multiphase CTA, SPIRAL, ATLAS and CLOT; regions derived from CLOT x ATLAS."""

    window: Literal["angiography", "brain", "stroke"] | None = Field(
        default=None, description="CT window preset scaling MCTA1-3 to [0, 1]; None keeps Hounsfield units"
    )
    derive_regions: bool = Field(
        default=True, description="set labels.regions from the atlas values under clot voxels"
    )


class PerfusionParams(PerfusionSettings, PipelineParams):
    """``strokedata perfusion``: maps from the CTP source by deconvolution (docs/perfusion.md)."""


@dataclass(frozen=True)
class Pipeline:
    """One named pipeline: what it needs, reads and writes, its parameters and its transforms."""

    name: str
    task: str
    description: str
    requires: tuple[Modality, ...]
    optional: tuple[Modality, ...]
    writes: tuple[Modality, ...]
    params: type[PipelineParams]
    stored: Callable[[PipelineParams], list[Step]]
    on_load: Callable[[PipelineParams], list[Step]]
    adds: tuple[Modality, ...] = ()
    """Modalities the pipeline creates (every output patient holds them)."""

    @property
    def reads(self) -> frozenset[Modality]:
        """Return the modalities the pipeline reads when a patient has them."""
        return frozenset(self.requires) | frozenset(self.optional)

    def step_names(self, params: PipelineParams | None = None) -> tuple[list[str], list[str]]:
        """Return the names of the stored steps and of the loading steps, without building them."""
        chosen = params or self.params()
        return [step.transform for step in self.stored(chosen)], [
            step.transform for step in self.on_load(chosen)
        ]

    def transform(self, params: PipelineParams | None = None) -> tio.Compose:
        """Return the transforms whose output ``strokedata preprocess`` stores, composed."""
        import torchio as tio

        return tio.Compose([step.build() for step in self.stored(params or self.params())])

    def loading(self, params: PipelineParams | None = None) -> tio.Compose:
        """Return the transforms to apply when loading the preprocessed dataset for training.

        They change the subject they are given in place (no deep copy): a ``SubjectsDataset`` hands them
        a fresh copy of each subject.
        """
        import torchio as tio

        return tio.Compose([step.build() for step in self.on_load(params or self.params())], copy=False)

    def output_labels(
        self, labels: Labels, subject: tio.Subject, atlas_regions: Sequence[str], params: PipelineParams
    ) -> Labels:
        """Return the labels of a preprocessed patient: the input's, the side and regions swapped when its
        images were mirrored, and regions derived from its CLOT and ATLAS when the pipeline derives them."""
        import torchio as tio

        update: dict[str, object] = {}
        regions = labels.regions
        if subject.get(MIRRORED):
            if labels.occlusion_side is not None:
                update["occlusion_side"] = "R" if labels.occlusion_side == "L" else "L"
            if regions is not None:
                regions = [regions[index] for index in mirrored_region_order(atlas_regions)]
        clot, atlas = subject.get(M.CLOT.value), subject.get(M.ATLAS.value)
        if (
            getattr(params, "derive_regions", False)
            and isinstance(clot, tio.Image)
            and isinstance(atlas, tio.Image)
        ):
            regions = [1 if value else 0 for value in regions_from_clot(clot.numpy()[0], atlas.numpy()[0])]
        update["regions"] = regions
        return labels.model_copy(update=update)


def mirrored_region_order(atlas_regions: Sequence[str]) -> list[int]:
    """Return, for each atlas value, the value of its mirror region: "L_x" <-> "R_x", others themselves.

    Raises ValueError when a region named L_... or R_... has no partner on the other side.
    """
    index = {name: value for value, name in enumerate(atlas_regions)}
    order = []
    for value, name in enumerate(atlas_regions):
        if name[:2] in ("L_", "R_"):
            partner = ("R_" if name.startswith("L_") else "L_") + name[2:]
            if partner not in index:
                raise ValueError(
                    f"atlas region '{name}' has no mirror region '{partner}'; cannot mirror labels"
                )
            order.append(index[partner])
        else:
            order.append(value)
    return order


def _occlusion(params: PipelineParams) -> list[Step]:
    assert isinstance(params, OcclusionParams)
    maps = ["CBF", "CBV", "TMAX"]
    steps: list[Step] = []
    if params.registration is not None:
        steps.append(
            Step("RegisterToTemplate", {"driver": "CBF", "include": maps, "transform": params.registration})
        )
    if params.brain_mask:
        steps.append(Step("BrainMaskFromLargestComponent", {"keys": maps}))
    side_key = "occlusion_side"
    if params.side == "rule":
        steps.append(Step("OccludedSideFromTmax"))
        side_key = TMAX_SIDE
    ranges = {"TMAX": params.tmax_range, "CBF": params.relative_range, "CBV": params.relative_range}
    steps += [
        Step("RelativeToContralateral", {"keys": ("CBF", "CBV")}),
        Step("ClipAndScale", {"ranges": ranges}),
        Step("MirrorToCanonicalSide", {"side_key": side_key, "canonical": params.canonical_side}),
    ]
    return steps


def _recanalization(params: PipelineParams) -> list[Step]:
    assert isinstance(params, RecanalizationParams)
    steps: list[Step] = []
    if params.registration is not None:
        for key in ("NCCT", "CTA"):
            steps.append(
                Step(
                    "RegisterToTemplate", {"driver": key, "include": [key], "transform": params.registration}
                )
            )
    if params.skull_strip:
        steps.append(Step("SkullStrip", {"key": "NCCT", "mask_key": "BRAIN_MASK"}))
        steps.append(Step("SkullStrip", {"key": "CTA"}))
    return steps


def _core(params: PipelineParams) -> list[Step]:
    assert isinstance(params, CoreParams)
    steps: list[Step] = []
    if params.registration is not None:
        arguments = {"driver": "CTP", "include": ["CTP", "CORE"], "transform": params.registration}
        steps.append(Step("RegisterToTemplate", arguments))
    steps.append(Step("TemporalResample", {"frames": params.frames, "key": "CTP"}))
    return steps


def _core_loading(params: PipelineParams) -> list[Step]:
    return [Step("AddMirroredChannel", {"keys": ("CTP",), "copy": False})]


def _clot_regions(params: PipelineParams) -> list[Step]:
    assert isinstance(params, ClotRegionsParams)
    steps: list[Step] = []
    if params.window is not None:
        steps.append(Step("CTWindow", {"window": params.window, "include": ["MCTA1", "MCTA2", "MCTA3"]}))
    return steps


def _perfusion(params: PipelineParams) -> list[Step]:
    assert isinstance(params, PerfusionParams)
    return [Step("PerfusionMaps", {"settings": params.model_dump(mode="json"), "key": "CTP"})]


def _nothing(params: PipelineParams) -> list[Step]:
    return []


PIPELINES: dict[str, Pipeline] = {
    pipeline.name: pipeline
    for pipeline in (
        Pipeline(
            name="occlusion",
            task="occlusion",
            description="Papakyriakou et al. 2025: affine registration to a centred, straight template; "
            "brain mask from the largest connected component; CBF and CBV as % of the contralateral mean; "
            "Tmax [0, 20] s and relative CBF/CBV [0, 400] % scaled to [0, 1]; left occlusions mirrored to "
            "the right",
            requires=(M.CBF, M.CBV, M.TMAX),
            optional=(),
            writes=(M.CBF, M.CBV, M.TMAX),
            params=OcclusionParams,
            stored=_occlusion,
            on_load=_nothing,
        ),
        Pipeline(
            name="recanalization",
            task="recanalization",
            description="Zhang, Polson et al. 2022: NCCT and CTA registered to a CT template and "
            "skull-stripped",
            requires=(M.NCCT, M.CTA),
            optional=(),
            writes=(M.NCCT, M.BRAIN_MASK, M.CTA),
            params=RecanalizationParams,
            stored=_recanalization,
            on_load=_nothing,
            adds=(M.BRAIN_MASK,),
        ),
        Pipeline(
            name="core",
            task="core",
            description="de Vries et al. 2021: the CTP source resampled to 32 frames; on loading, its "
            "mirrored copy as extra channels",
            requires=(M.CTP,),
            optional=(M.CORE,),
            writes=(M.CTP, M.CORE),
            params=CoreParams,
            stored=_core,
            on_load=_core_loading,
        ),
        Pipeline(
            name="clot-regions",
            task="clot-regions",
            description="the AMI-Net report: the aligned multiphase CTA with SPIRAL, ATLAS and CLOT; the "
            "15-region label derived from the atlas values under clot voxels",
            requires=(M.ATLAS, M.CLOT),
            optional=(M.MCTA1, M.MCTA2, M.MCTA3, M.SPIRAL),
            writes=(M.MCTA1, M.MCTA2, M.MCTA3, M.SPIRAL, M.ATLAS, M.CLOT),
            params=ClotRegionsParams,
            stored=_clot_regions,
            on_load=_nothing,
        ),
        Pipeline(
            name="perfusion",
            task="perfusion maps",
            description="CBF, CBV, MTT, TMAX and TTP from the CTP source by deconvolution (bcSVD by "
            "default; docs/perfusion.md), with CORE kept: the maps of the occlusion and core tasks, made "
            "one known way",
            requires=(M.CTP,),
            optional=(M.CORE,),
            writes=(M.CBF, M.CBV, M.MTT, M.TMAX, M.TTP, M.CORE),
            params=PerfusionParams,
            stored=_perfusion,
            on_load=_nothing,
            adds=(M.CBF, M.CBV, M.MTT, M.TMAX, M.TTP),
        ),
    )
}
"""The named pipelines, keyed by name."""


def get_pipeline(name: str) -> Pipeline:
    """Return the pipeline called ``name``; raise ValueError listing the names when there is none."""
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline '{name}'; choose one of {', '.join(PIPELINES)}")
    return PIPELINES[name]
