"""Phantom configuration: grids per co-registered group, time sampling, cohort mix; the two presets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strokedata.manifest import OCCLUSION_LOCATIONS, Modality, OcclusionLocation

PresetName = Literal["tiny", "realistic", "digital"]
Residue = Literal["exponential", "box", "triangular"]

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


PHANTOM_MODALITIES: list[Modality] = [modality for modality in Modality if modality is not Modality.TTP]
"""What a phantom can hold: every modality but TTP, which ``strokedata perfusion`` computes."""
DIGITAL_MODALITIES: list[Modality] = [Modality.CTP, Modality.CBF, Modality.CBV, Modality.MTT, Modality.TMAX]


class CTPOptions(BaseModel):
    """How the CTP source is acquired and how contrast passes the tissue. The defaults are the phantom's
    original model, so datasets made before these options keep their bytes."""

    model_config = _CONFIG

    noise_hu: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        description="Gaussian noise (HU, per voxel and time point) before the site's factor; None: 8 HU "
        "(anatomical presets), 10 HU (digital: clinical, docs/perfusion.md)",
    )
    bolus_delay: Annotated[float, Field(ge=0, le=10)] = Field(
        default=0.0,
        description="extra delay (s) of every tissue curve of the CTP after the AIF; TMAX grows by it (the "
        "angiograms keep theirs)",
    )
    dispersion: Annotated[float, Field(ge=0, le=10)] = Field(
        default=0.0, description="time constant (s) of an exponential dispersion of the bolus (0: none)"
    )
    residue: Residue = Field(default="exponential", description="residue function shape (docs/phantoms.md)")
    arterial_partial_volume: Annotated[float, Field(gt=0, le=1)] = Field(
        default=1.0, description="fraction of the arterial enhancement the arteries' voxels show"
    )
    delays: Annotated[tuple[Annotated[float, Field(ge=0, le=10)], ...], Field(min_length=1)] = Field(
        default=(0.0, 1.0, 2.0, 3.0), description="digital preset: the delays (s) swept, one slice each"
    )


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
    modalities: list[Modality] = Field(default_factory=lambda: list(PHANTOM_MODALITIES))
    sites: Annotated[int, Field(ge=1)] = Field(default=3, description="acquiring sites (scanner effects)")
    min_vessel_radius_voxels: float = Field(
        default=0.0, ge=0, description="vessels thinner than this many voxels are drawn this thick"
    )
    ctp: CTPOptions = Field(default_factory=CTPOptions, description="CTP acquisition and haemodynamics")

    @model_validator(mode="after")
    def _check(self) -> PhantomConfig:
        total = sum(self.occlusion_mix.values())
        if total <= 0:
            raise ValueError("the occlusion mix must give at least one location a positive weight")
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities must list at least one modality, each once")
        if Modality.TTP in self.modalities:
            raise ValueError("phantoms do not hold TTP: `strokedata perfusion` computes it from the CTP")
        if self.preset == "digital" and not set(self.modalities) <= set(DIGITAL_MODALITIES):
            extra = ", ".join(m.value for m in self.modalities if m not in DIGITAL_MODALITIES)
            raise ValueError(f"the digital phantom holds CTP, CBF, CBV, MTT and TMAX only, not {extra}")
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
    ``digital``: the Kudo et al. 2013-style digital CTP phantom (``strokedata.phantoms.digital``), blocks
    of 10 x 10 voxels of 1 x 1 x 5 mm, one slice per delay of ``ctp.delays``, 60 frames every 1 s.
    """
    presets: dict[str, dict[str, object]] = {
        "digital": {
            "angio": Grid(shape=(90, 80, 4), spacing=(1.0, 1.0, 5.0)),
            "perfusion": Grid(shape=(90, 80, 4), spacing=(1.0, 1.0, 5.0)),
            "ncct": Grid(shape=(90, 80, 4), spacing=(1.0, 1.0, 5.0)),
            "frames": 60,
            "frame_interval": 1.0,
            "modalities": list(DIGITAL_MODALITIES),
        },
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
        raise ValueError(f"unknown preset '{name}'; choose tiny, realistic or digital")
    return PhantomConfig.model_validate({"preset": name, **presets[name], **overrides})
