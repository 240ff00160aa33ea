"""Phantom configuration: grids per co-registered group, time sampling, cohort mix; the two presets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strokedata.manifest import OCCLUSION_LOCATIONS, Modality, OcclusionLocation

PresetName = Literal["tiny", "realistic"]

DEFAULT_OCCLUSION_MIX: dict[OcclusionLocation, float] = {"ICA-T": 0.148, "M1": 0.588, "M2": 0.264}
"""The cohort of 000_194d37a6ad1291e8.txt: 701 patients, 14.8% ICA-T, 58.8% M1, 26.4% M2."""

_CONFIG = ConfigDict(extra="forbid", frozen=True)


class Grid(BaseModel):
    """A voxel grid: shape and voxel size in mm, centred on the scanner's origin."""

    model_config = _CONFIG

    shape: tuple[Annotated[int, Field(ge=4)], Annotated[int, Field(ge=4)], Annotated[int, Field(ge=2)]]
    spacing: tuple[
        Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]
    ]


class PhantomConfig(BaseModel):
    """Everything that shapes a phantom cohort except the seed and the patient index."""

    model_config = _CONFIG

    preset: PresetName
    angio: Grid = Field(description="CTA, MCTA1-3, SPIRAL, ATLAS, CLOT")
    perfusion: Grid = Field(description="CBF, CBV, MTT, TMAX, CORE and the CTP source")
    ncct: Grid = Field(description="NCCT, BRAIN_MASK")
    frames: Annotated[int, Field(ge=4)] = Field(description="CTP time points")
    frame_interval: Annotated[float, Field(gt=0)] = Field(description="seconds between CTP time points")
    occlusion_mix: dict[OcclusionLocation, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_OCCLUSION_MIX)
    )
    modalities: list[Modality] = Field(default_factory=lambda: list(Modality))
    sites: Annotated[int, Field(ge=1)] = Field(default=3, description="acquiring sites (scanner effects)")
    min_vessel_radius_voxels: float = Field(
        default=0.0, ge=0, description="vessels thinner than this many voxels are drawn this thick"
    )

    @model_validator(mode="after")
    def _check(self) -> PhantomConfig:
        total = sum(self.occlusion_mix.values())
        if total <= 0:
            raise ValueError("the occlusion mix must give at least one location a positive weight")
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities must list at least one modality, each once")
        return self

    def occlusion_probabilities(self) -> list[float]:
        """Return the normalised probabilities of ICA-T, M1, M2 (in that order)."""
        total = sum(self.occlusion_mix.values())
        return [self.occlusion_mix.get(site, 0.0) / total for site in OCCLUSION_LOCATIONS]


def preset(name: PresetName, **overrides: object) -> PhantomConfig:
    """Return the named preset, with any field overridden.

    ``tiny`` (tests): 64x64x16 grids of 3.6 x 3.6 x 8 mm, 16 CTP frames every 2 s, vessels drawn at least
    0.6 voxel thick. ``realistic`` (the papers' sizes): CTA 512x512x200 of 0.45 x 0.45 x 0.7 mm, NCCT
    512x512x32 of 5 mm slices, CTP maps and source 512x512x27 of 5 mm slices, 30 frames every 1.6 s.
    Generating one realistic patient with every modality takes about 3 GB of memory (3.06 GB peak
    measured) and 45 s on one core, per worker: with ``jobs`` workers, count ``jobs`` times that.
    """
    presets: dict[str, dict[str, object]] = {
        "tiny": {
            "angio": Grid(shape=(64, 64, 16), spacing=(3.6, 3.6, 8.0)),
            "perfusion": Grid(shape=(64, 64, 16), spacing=(3.6, 3.6, 8.0)),
            "ncct": Grid(shape=(64, 64, 16), spacing=(3.6, 3.6, 8.0)),
            "frames": 16,
            "frame_interval": 2.0,
            "min_vessel_radius_voxels": 0.6,
        },
        "realistic": {
            "angio": Grid(shape=(512, 512, 200), spacing=(0.45, 0.45, 0.7)),
            "perfusion": Grid(shape=(512, 512, 27), spacing=(0.45, 0.45, 5.0)),
            "ncct": Grid(shape=(512, 512, 32), spacing=(0.45, 0.45, 5.0)),
            "frames": 30,
            "frame_interval": 1.6,
        },
    }
    if name not in presets:
        raise ValueError(f"unknown preset '{name}'; choose tiny or realistic")
    return PhantomConfig.model_validate({"preset": name, **presets[name], **overrides})
