"""A digital CTP phantom after Kudo et al. 2013: uniform blocks sweeping CBV, MTT and delay, with an
arterial and a venous block, so that every method's errors can be read against known values.

Layout (x, y, z): x holds the 7 MTTs (24/k s, k = 1..7: 24 to 3.43 s), y the 5 CBVs (1..5 ml/100 g),
z the delays (0, 1, 2, 3 s by default), or every (delay, CBV, MTT) block placed in a drawn order:
CBF = 60 CBV / MTT sweeps 2.5 to 87.5 ml/100 g/min. A sixth row
of blocks along y holds the AIF block (arterial blood, its enhancement times the arterial partial
volume) and the VOF block (the AIF delayed by 4 s and dispersed by 3 s, whole: a vein large enough to
escape partial volume), then tissue at the mean values. Air surrounds the phantom.
Every block is ``block`` voxels square, voxels 1 x 1 x 5 mm; the truth maps give each block its values.
Tissue curves are CBF / (6000 kappa) x (AIF conv D conv R)(t - delay), D the dispersion kernel
(exp(-t/tau)/tau, none when tau is 0) and R the chosen residue; CTP in int16 HU over a 35 HU baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from strokedata.phantoms.perfusion import KAPPA, Physiology, dispersed, passage
from strokedata.phantoms.template import MEAN_PHYSIOLOGY

CBV_LEVELS = (1.0, 2.0, 3.0, 4.0, 5.0)
MTT_LEVELS = tuple(24.0 / k for k in range(1, 8))
TISSUE_HU = 35.0
BLOOD_HU = 40.0
VENOUS_DELAY = 4.0
VENOUS_DISPERSION = 3.0
SPACING = (1.0, 1.0, 5.0)
_FINE = 0.05  # s, time step of the convolutions


def digital_physiology() -> Physiology:
    """Return the digital phantom's bolus: the template's mean physiology with a gamma variate AIF
    starting at 5 s and peaking at 300 HU at 9.5 s, no healthy delay."""
    return replace(MEAN_PHYSIOLOGY, delay=0.0, aif_start=5.0, aif_peak=300.0)


@dataclass(frozen=True)
class DigitalPhantom:
    """The series (x, y, z, t) int16 HU, its truth maps (float32, 0 outside tissue blocks) and where
    each block lies."""

    ctp: np.ndarray
    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray
    blocks: np.ndarray  # int32: block number + 1 of each tissue voxel (0 elsewhere)
    aif_block: tuple[slice, slice]
    vof_block: tuple[slice, slice]
    interval: float


def _sample(curve: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Return the fine-grid ``curve`` at ``times`` (s), linearly interpolated, 0 before 0."""
    grid = np.arange(len(curve)) * _FINE
    return np.interp(times, grid, curve, left=0.0, right=float(curve[-1]))


def digital_phantom(
    *,
    frames: int = 60,
    interval: float = 1.0,
    block: int = 10,
    delays: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0),
    noise_hu: float = 0.0,
    residue: str = "exponential",
    dispersion: float = 0.0,
    arterial_partial_volume: float = 1.0,
    rng: np.random.Generator | None = None,
    shuffle: np.random.Generator | None = None,
) -> DigitalPhantom:
    """Return the digital phantom (module docstring) with Gaussian noise of ``noise_hu`` per voxel and
    frame (drawn from ``rng``; none when 0). With ``shuffle``, the (delay, CBV, MTT) blocks are laid out
    over the slices in an order it draws (a cohort's patients then differ: one layout would be the same
    scan repeated). Block numbers (``blocks``) follow delay, then CBV, then MTT, wherever a block lies."""
    physiology = digital_physiology()
    duration = frames * interval + 10
    fine = np.arange(0, duration + 60, _FINE)
    aif = physiology.aif(fine)
    inflow = dispersed(aif, dispersion, _FINE)
    times = np.arange(frames) * interval
    nx, ny, nz = len(MTT_LEVELS), len(CBV_LEVELS) + 1, len(delays)
    shape = (nx * block + 2 * block, ny * block + 2 * block, nz)
    baseline = np.full(shape, -1000.0, dtype=np.float32)
    enhancement = np.zeros((*shape, frames), dtype=np.float32)
    truth = {name: np.zeros(shape, dtype=np.float32) for name in ("cbf", "cbv", "mtt", "tmax")}
    blocks = np.zeros(shape, dtype=np.int32)

    def place(ix: int, iy: int) -> tuple[slice, slice]:
        return slice(block * (ix + 1), block * (ix + 2)), slice(block * (iy + 1), block * (iy + 2))

    positions = [(ix, iy, iz) for iz in range(nz) for iy in range(ny - 1) for ix in range(nx)]
    if shuffle is not None:
        positions = [positions[i] for i in shuffle.permutation(len(positions))]
    combinations = [(delay, cbv, mtt) for delay in delays for cbv in CBV_LEVELS for mtt in MTT_LEVELS]
    for number, ((delay, cbv, mtt), (ix, iy, iz)) in enumerate(zip(combinations, positions, strict=True)):
        cbf = 60.0 * cbv / mtt
        tissue = passage(inflow, residue, fine, mtt, _FINE)
        sx, sy = place(ix, iy)
        baseline[sx, sy, iz] = TISSUE_HU
        enhancement[sx, sy, iz] = _sample(tissue * cbf / (6000 * KAPPA), times - delay)
        blocks[sx, sy, iz] = number + 1
        for name, value in (("cbf", cbf), ("cbv", cbv), ("mtt", mtt), ("tmax", delay)):
            truth[name][sx, sy, iz] = value
    aif_block, vof_block = place(0, ny - 1), place(1, ny - 1)
    arterial = arterial_partial_volume * _sample(aif, times)
    venous = _sample(dispersed(aif, VENOUS_DISPERSION, _FINE), times - VENOUS_DELAY)
    filler = _sample(passage(inflow, residue, fine, 4.0, _FINE) * 45.0 / (6000 * KAPPA), times)
    for iz in range(nz):
        baseline[aif_block[0], aif_block[1], iz] = BLOOD_HU
        enhancement[aif_block[0], aif_block[1], iz] = arterial
        baseline[vof_block[0], vof_block[1], iz] = BLOOD_HU
        enhancement[vof_block[0], vof_block[1], iz] = venous
        for ix in range(2, nx):  # the rest of the last row: tissue at middle values, keeps it one body
            sx, sy = place(ix, ny - 1)
            baseline[sx, sy, iz] = TISSUE_HU
            enhancement[sx, sy, iz] = filler
    series = baseline[..., None] + enhancement
    if noise_hu > 0:
        generator = rng if rng is not None else np.random.default_rng(0)
        series += generator.standard_normal(series.shape, dtype=np.float32) * np.float32(noise_hu)
    ctp = np.asarray(np.clip(np.rint(series), -1024, 3071), dtype=np.int16)
    maps = (truth["cbf"], truth["cbv"], truth["mtt"], truth["tmax"])
    return DigitalPhantom(ctp, *maps, blocks, aif_block, vof_block, interval)
