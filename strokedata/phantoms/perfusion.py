"""Haemodynamics of the phantom: deficit severity, ground-truth perfusion maps and contrast curves.

Indicator-dilution model: a tissue voxel's enhancement is C(t) = CBF/kappa * (AIF conv R)(t - delay)
with an exponential residue function R(t) = exp(-t / MTT), so that CBV = CBF * MTT / 60 (CBF in
ml/100 g/min, CBV in ml/100 g, MTT in s) and, with this residue, Tmax = delay. Options (CTPOptions)
change the residue's shape or disperse the bolus first; the truth TMAX map stays the delay, although
a dispersed bolus puts the maximum of the effective residue (dispersion conv R) later. kappa = 0.705 folds in
the haematocrit difference between large and small vessels and the brain's density (docs/phantoms.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strokedata.phantoms.anatomy import SmoothField
from strokedata.phantoms.vessels import Occlusion

CORE_SEVERITY = 0.8
"""Severity above which tissue is infarct core: relative CBF = 1 - 0.9 * 0.8 = 28% < 30%."""
PENUMBRA_SEVERITY = 0.34
"""Severity above which Tmax = delay + 16 s exceeds 6 s for a typical healthy delay of 0.6 s (the exact
threshold is (6 - delay) / 16, 0.31 to 0.36 over the drawn delays): hypoperfused, penumbra or core."""
KAPPA = 0.705
"""(1 - Hct_large) / (rho * (1 - Hct_small)) with Hct 0.45 / 0.25 and rho 1.04 g/ml."""
ACA, MCA_DEEP, MCA_SUPERIOR, MCA_INFERIOR = 1, 2, 3, 4
_FINE_STEP = 0.1  # s, time step of the convolution table
_MTT_STEP = 0.05  # s, MTT resolution of the convolution table


@dataclass(frozen=True)
class Physiology:
    """A patient's healthy perfusion values and bolus (drawn once, used on every grid)."""

    cbf_grey: float  # ml/100 g/min
    cbf_white: float
    mtt_grey: float  # s
    mtt_white: float
    delay: float  # s, healthy Tmax
    aif_start: float  # s, contrast arrival
    aif_alpha: float
    aif_beta: float  # s
    aif_peak: float  # HU above baseline
    heterogeneity: SmoothField
    severity_noise: SmoothField

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Physiology:
        """Return healthy values within published ranges: grey CBF 50-65, white 20-28 ml/100 g/min."""
        return cls(
            cbf_grey=float(rng.uniform(50, 65)),
            cbf_white=float(rng.uniform(20, 28)),
            mtt_grey=float(rng.uniform(3.4, 4.2)),
            mtt_white=float(rng.uniform(4.2, 5.0)),
            delay=float(rng.uniform(0.3, 1.0)),
            aif_start=float(rng.uniform(4, 8)),
            aif_alpha=3.0,
            aif_beta=float(rng.uniform(1.2, 1.8)),
            aif_peak=float(rng.uniform(250, 400)),
            heterogeneity=SmoothField.draw(rng),
            severity_noise=SmoothField.draw(rng),
        )

    def aif(self, times: np.ndarray) -> np.ndarray:
        """Return the arterial input function (HU above baseline): a gamma variate peaking at aif_peak."""
        tau = np.maximum(np.asarray(times, dtype=np.float64) - self.aif_start, 0.0)
        scale = self.aif_alpha * self.aif_beta
        return self.aif_peak * (tau / scale) ** self.aif_alpha * np.exp(self.aif_alpha - tau / self.aif_beta)

    @property
    def aif_peak_time(self) -> float:
        """Return the time (s) of the AIF's peak."""
        return self.aif_start + self.aif_alpha * self.aif_beta


def affected_territories(occlusion: Occlusion) -> dict[int, float]:
    """Return {atlas value: base severity} of the territories downstream of the occlusion.

    ICA-T: the three MCA territories, and the ACA when it is not filled across the anterior
    communicating artery; M1: the three MCA territories; M2: the occluded division's territory. Deep
    (lenticulostriate) territories are end arteries and gain little from collaterals.
    """
    c = occlusion.collateral
    offset = 0 if occlusion.side == "L" else 7
    if occlusion.location == "M2":
        territory = MCA_SUPERIOR if occlusion.division == "superior" else MCA_INFERIOR
        return {territory + offset: 0.85 - 0.55 * c}
    cortical = (0.98 if occlusion.location == "ICA-T" else 0.93) - 0.55 * c
    bases = {MCA_DEEP: 1.0 - 0.2 * c, MCA_SUPERIOR: cortical, MCA_INFERIOR: cortical}
    if occlusion.location == "ICA-T" and occlusion.aca_affected:
        bases[ACA] = cortical - 0.1
    return {territory + offset: base for territory, base in bases.items()}


def severity(
    atlas: np.ndarray, margin: np.ndarray, points: np.ndarray, occlusion: Occlusion, physiology: Physiology
) -> np.ndarray:
    """Return the deficit severity in [0, 1] of each voxel: 0 outside the affected territories.

    Severity is the territory's base, higher towards the territory's centre (collaterals enter from
    its borders), with smooth patient-specific variation.
    """
    result = np.zeros(atlas.shape, dtype=np.float32)
    for territory, base in affected_territories(occlusion).items():
        inside = atlas == territory
        if inside.any():
            value = base + 0.35 * (margin[inside] - 0.3) + 0.08 * physiology.severity_noise(points[inside])
            result[inside] = np.clip(value, 0.0, 1.0)
    return result


@dataclass
class PerfusionMaps:
    """Ground-truth perfusion parameters of a set of voxels (0 outside the parenchyma)."""

    cbf: np.ndarray  # ml/100 g/min
    cbv: np.ndarray  # ml/100 g
    mtt: np.ndarray  # s
    tmax: np.ndarray  # s


def perfusion_maps(
    grey: np.ndarray, parenchyma: np.ndarray, points: np.ndarray, deficit: np.ndarray, physiology: Physiology
) -> PerfusionMaps:
    """Return the maps: healthy grey/white values (+-10% heterogeneity) altered by the deficit.

    rCBF = 1 - 0.9 s, MTT x (1 + 1.5 s), Tmax = healthy delay + 16 s, CBV = CBF x MTT / 60: penumbra keeps
    its CBV, core loses it (s = 1: 25% of normal).
    """
    maps = PerfusionMaps(*(np.zeros(parenchyma.shape, dtype=np.float32) for _ in range(4)))
    g, s = grey[parenchyma].astype(np.float32), deficit[parenchyma]
    heterogeneity = 1 + np.float32(0.1) * physiology.heterogeneity(points[parenchyma])
    healthy_cbf = (physiology.cbf_white + (physiology.cbf_grey - physiology.cbf_white) * g) * heterogeneity
    healthy_mtt = physiology.mtt_white + (physiology.mtt_grey - physiology.mtt_white) * g
    cbf = (healthy_cbf * (1 - 0.9 * s)).astype(np.float32)
    mtt = (healthy_mtt * (1 + 1.5 * s)).astype(np.float32)
    maps.cbf[parenchyma] = cbf
    maps.mtt[parenchyma] = mtt
    maps.cbv[parenchyma] = cbf * mtt / np.float32(60)
    maps.tmax[parenchyma] = physiology.delay + 16 * s
    return maps


RESIDUES = ("exponential", "box", "triangular")


def residue_function(shape: str, times: np.ndarray, mtt: float) -> np.ndarray:
    """Return a residue function of mean transit time ``mtt`` (its area) at ``times`` (s, from 0):
    exponential exp(-t/MTT) (a well-mixed compartment), box 1 until MTT (plug flow: every particle
    stays MTT), triangular 1 - t / (2 MTT) until 2 MTT (transit times spread evenly up to 2 MTT)."""
    if shape == "exponential":
        return np.exp(-times / mtt)
    if shape == "box":
        return (times < mtt).astype(np.float64)
    if shape == "triangular":
        return np.clip(1 - times / (2 * mtt), 0.0, 1.0)
    raise ValueError(f"unknown residue shape {shape!r}; choose one of {', '.join(RESIDUES)}")


def dispersed(curve: np.ndarray, tau: float, step: float) -> np.ndarray:
    """Return ``curve`` (sampled every ``step`` s) convolved with exp(-t/tau)/tau, its area kept: a bolus
    spread on its way through collaterals; ``curve`` itself when ``tau`` is 0."""
    if tau <= 0:
        return curve
    kernel = np.exp(-np.arange(len(curve)) * step / tau)
    return np.convolve(curve, kernel / kernel.sum())[: len(curve)]


def passage(inflow: np.ndarray, residue: str, times: np.ndarray, mtt: float, step: float) -> np.ndarray:
    """Return the enhancement per unit flow of tissue fed ``inflow`` (sampled every ``step`` s at
    ``times`` from 0): inflow conv R, R the ``residue`` of mean transit time ``mtt``."""
    return np.convolve(inflow, residue_function(residue, times, mtt))[: len(times)] * step


class TissueCurves:
    """Tissue enhancement (AIF, dispersed by ``dispersion`` s, conv the residue of shape ``residue``)
    tabulated over MTT and time, sampled per voxel."""

    def __init__(
        self, physiology: Physiology, duration: float, residue: str = "exponential", dispersion: float = 0.0
    ) -> None:
        self.times = np.arange(0, duration + 30, _FINE_STEP)
        aif = dispersed(physiology.aif(self.times), dispersion, _FINE_STEP)
        self.mtt_levels = np.arange(_MTT_STEP, 40 + _MTT_STEP, _MTT_STEP)
        table = np.empty((len(self.mtt_levels), len(self.times)), dtype=np.float32)
        for row, mtt in enumerate(self.mtt_levels):
            table[row] = passage(aif, residue, self.times, mtt, _FINE_STEP)
        self.table = table

    def enhancement(
        self, cbf: np.ndarray, mtt: np.ndarray, delay: np.ndarray, times: np.ndarray
    ) -> np.ndarray:
        """Return HU enhancement (voxels, len(times)) of voxels with these parameters at ``times``."""
        rows = np.clip(np.rint(mtt / _MTT_STEP).astype(np.intp) - 1, 0, len(self.mtt_levels) - 1)
        position = (times[None, :] - delay[:, None]) / _FINE_STEP
        position = np.clip(position, 0, len(self.times) - 1.001)
        index = position.astype(np.intp)
        fraction = (position - index).astype(np.float32)
        low = self.table[rows[:, None], index]
        high = self.table[rows[:, None], index + 1]
        curve = low + fraction * (high - low)
        return np.asarray(curve * (cbf / (6000 * KAPPA))[:, None], dtype=np.float32)
