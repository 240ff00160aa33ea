"""The parameters of ``strokedata perfusion``: method, truncation, constants, smoothing, AIF source.
Every one is recorded in each output patient's provenance."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strokedata.perfusion.deconvolution import Method


class PerfusionSettings(BaseModel):
    """How perfusion maps are computed from a CTP series (defaults: docs/perfusion.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(
        default="bcsvd",
        description="deconvolution: bcsvd (block-circulant SVD, delay-insensitive), osvd (bcSVD with the "
        "threshold chosen per voxel by the oscillation index), ssvd (standard truncated SVD)",
    )
    ssvd_threshold: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="sSVD: singular values below this fraction of the largest are dropped",
    )
    bcsvd_threshold: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="bcSVD: singular values below this fraction of the largest are dropped",
    )
    oscillation_index: float = Field(
        default=0.035, gt=0, description="oSVD: the largest oscillation index a residue function may have"
    )
    hematocrit_large: float = Field(default=0.45, gt=0, lt=1, description="haematocrit in large vessels")
    hematocrit_small: float = Field(default=0.25, gt=0, lt=1, description="haematocrit in capillaries")
    brain_density: float = Field(default=1.04, gt=0, description="brain tissue density (g/ml)")
    brain_hu: tuple[float, float] = Field(
        default=(0.0, 100.0), description="unenhanced HU range of the brain mask (brain and blood)"
    )
    csf_hu: float = Field(
        default=15.0,
        description="voxels whose pre-contrast mean is below this (HU: CSF) get 0 in every map, as outside "
        "the brain; -1000 keeps them",
    )
    analysis_mm: float = Field(
        default=0.9,
        ge=0,
        description="in-plane voxels finer than this (mm) are averaged in blocks of an integer factor "
        "before analysis (0.45 mm: 2 x 2), the maps repeated back on the CTP's grid; 0: never",
    )
    spatial_sigma_mm: float = Field(
        default=3.0, ge=0, description="in-plane Gaussian smoothing of the tissue curves (mm); 0: none"
    )
    temporal_sigma_s: float = Field(
        default=2.0, ge=0, description="Gaussian smoothing of every curve along time (s); 0: none"
    )
    vessel_cbv: float | None = Field(
        default=10.0,
        gt=0,
        description="vessels (every map 0 there, kept out of the spatial smoothing): voxels whose peak alone "
        "proves a CBV above this (ml/100 g), by 4 noise deviations, or whose CBV is above it; null keeps "
        "them, and lets arteries smooth into the tissue around them",
    )
    aif: Literal["auto"] | str = Field(
        default="auto",
        description="'auto' selects the AIF (docs/perfusion.md); else the file name, in each patient's "
        "folder, of a mask on the CTP grid whose voxels are averaged into the AIF",
    )
    tmax_correction: bool = Field(
        default=True,
        description="subtract from Tmax the shift the truncation gives an undelayed residue of the voxel's "
        "MTT (docs/perfusion.md); false: the raw time of the residue's maximum",
    )
    cbf_correction: bool = Field(
        default=True,
        description="divide CBF by the maximum the method gives an undelayed exponential residue of the "
        "voxel's MTT, whose true maximum is 1 (docs/perfusion.md): truncation lowers short MTTs' CBF most; "
        "false: the residue's maximum as measured",
    )
    vof: bool = Field(default=True, description="scale the AIF by a venous output function (partial volume)")

    @model_validator(mode="after")
    def _check(self) -> PerfusionSettings:
        low, high = self.brain_hu
        if not low < high:
            raise ValueError(f"brain_hu must be (low, high) with low < high, not {self.brain_hu}")
        if self.aif != "auto" and (
            not self.aif or "/" in self.aif or "\\" in self.aif or self.aif in (".", "..")
        ):
            raise ValueError(f"aif must be 'auto' or a file name in the patient's folder, not {self.aif!r}")
        return self

    @property
    def kappa(self) -> float:
        """Return (1 - Hct_large) / ((1 - Hct_small) * density): ml of blood per 100 g from tissue HU."""
        return (1 - self.hematocrit_large) / ((1 - self.hematocrit_small) * self.brain_density)

    @property
    def threshold(self) -> float:
        """Return the truncation of the chosen method (sSVD or bcSVD; oSVD's starting list is fixed)."""
        return self.ssvd_threshold if self.method == "ssvd" else self.bcsvd_threshold
