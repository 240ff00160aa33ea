"""From a CTP series in Hounsfield units to contrast concentration: checks, brain mask, pre-bolus
baseline (detected), spatial and temporal smoothing.

In CT, enhancement is proportional to the iodine concentration, so the concentration curves are the
enhancement in HU above each voxel's baseline; the proportionality constant cancels in every map,
because the AIF is measured in the same units.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from strokedata.errors import StrokedataError

MIN_FRAMES = 8
"""Fewer time points cannot hold a baseline, a bolus and its passage."""
MIN_BASELINE = 2
"""Pre-contrast time points needed before the bolus arrives."""
MIN_BOLUS_HU = 10.0
"""The least enhancement (HU) of the strongest vessels for a bolus to count as present."""


class PerfusionError(StrokedataError):
    """A CTP series cannot give perfusion maps: the reason names what is wrong with it."""


def check_series(series: np.ndarray) -> None:
    """Return when ``series`` (frames, x, y, z) can be analysed; PerfusionError saying why otherwise
    (not 4D, too few frames, values that are not finite)."""
    if series.ndim != 4:
        raise PerfusionError(f"the CTP has {series.ndim} dimensions; a series has four (space and time)")
    if series.shape[0] < MIN_FRAMES:
        raise PerfusionError(
            f"the CTP has {series.shape[0]} time points; deconvolution needs at least {MIN_FRAMES} "
            "(a baseline, the bolus and its passage)"
        )
    if np.issubdtype(series.dtype, np.floating):
        bad = [index for index, frame in enumerate(series) if not np.isfinite(frame).all()]
        if bad:
            frames = ", ".join(str(index) for index in bad[:5]) + (", ..." if len(bad) > 5 else "")
            raise PerfusionError(
                f"the CTP holds NaN or infinite values in time points {frames}; fix or remove them"
            )


def brain_mask(baseline: np.ndarray, hu_range: tuple[float, float]) -> np.ndarray:
    """Return the voxels of the largest connected region of soft tissue: the unenhanced image within
    ``hu_range`` (brain, blood; not air, bone or most CSF), opened by one voxel in-plane first so that
    the scalp does not join the brain through the skull's partial-volume rim, holes filled per slice
    (``strokedata.transforms.morphology``'s largest component, face-connected, and hole filling)."""
    from strokedata.transforms.morphology import filled_holes, largest_component  # not at import: a cycle

    tissue = (baseline >= hu_range[0]) & (baseline <= hu_range[1])
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    core = largest_component(ndimage.binary_erosion(tissue, in_plane), connectivity=6)
    if not core.any():
        raise PerfusionError(
            f"no voxel of the unenhanced CTP lies within {hu_range[0]:g}..{hu_range[1]:g} HU: no brain "
            "to analyse (is the series in Hounsfield units?)"
        )
    largest = ndimage.binary_dilation(core, in_plane) & tissue
    for z in range(largest.shape[2]):
        largest[:, :, z] = filled_holes(largest[:, :, z])
    return largest


def bolus_arrival(curves: np.ndarray) -> tuple[int, float]:
    """Return (the first frame of the bolus, the peak enhancement in HU) of the 5% of ``curves``
    (frames, voxels) that peak highest, averaged: the large vessels, arteries among them, where
    contrast arrives first (chosen by their peaks, not their rise, so that noise in the first frame
    does not choose them). The baseline is every frame before it: one frame before the first that
    rises above the first frame by a tenth of the peak (that frame's predecessor may already hold the
    bolus's first contrast). PerfusionError when nothing enhances by ``MIN_BOLUS_HU`` or fewer than
    ``MIN_BASELINE`` frames come before the bolus."""
    peaks = curves.max(axis=0)
    count = max(1, len(peaks) // 20)
    strongest = np.argsort(peaks, kind="stable")[len(peaks) - count :]  # stable: ties alike everywhere
    mean = curves[:, strongest].astype(np.float64).mean(axis=1)
    start = float(mean[0])
    peak = float(mean.max() - start)
    if peak < MIN_BOLUS_HU:
        raise PerfusionError(
            f"no contrast bolus: the strongest-enhancing voxels rise by {peak:.1f} HU at most (at least "
            f"{MIN_BOLUS_HU:g} HU expected); is this a perfusion series?"
        )
    arrival = int(np.argmax(mean - start > 0.1 * peak)) - 1  # the frame before may have begun to rise
    if arrival < MIN_BASELINE:
        raise PerfusionError(
            f"the bolus arrives by time point {arrival}: fewer than {MIN_BASELINE} pre-contrast time points "
            "to measure the baseline (the series starts too late)"
        )
    return arrival, peak


def tissue_concentration(curves: np.ndarray, arrival: int, sigma_frames: float) -> np.ndarray:
    """Return ``curves`` (frames, voxels) smoothed in time by ``sigma_frames``, less each curve's own
    baseline: the mean of its frames before the one before the first, at or after the bolus's
    ``arrival``, where the smoothed curve (less its first ``arrival`` frames' mean) reaches a fifth of
    its maximum. Tissue fills after the arteries (by its delay, and slowly), so most voxels get a few
    more baseline frames than ``arrival``: the baseline's noise, integrated over the rest of the
    series, limits CBV. Smoothing commutes with subtracting a constant, so it is done once."""
    first = curves[:arrival].mean(axis=0)
    smooth = smooth_in_time(curves - first, sigma_frames)
    risen = smooth[arrival:] >= 0.2 * smooth[arrival:].max(axis=0, keepdims=True)
    own = np.maximum(arrival + np.argmax(risen, axis=0) - 1, arrival)
    totals = np.cumsum(curves, axis=0, dtype=np.float64)
    columns = np.arange(curves.shape[1])
    smooth -= (totals[own - 1, columns] / own - first).astype(np.float32)
    return smooth


def masked_curves(
    series: np.ndarray,
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    sigma_mm: float,
    apart: np.ndarray | None = None,
) -> np.ndarray:
    """Return the curves (frames, mask voxels) of ``series`` (frames, x, y, z), float32, each frame first
    smoothed within its slices by a Gaussian of ``sigma_mm`` inside ``mask`` only (normalised
    convolution: voxels outside do not bleed in). ``apart`` (one flag per mask voxel: vessels, fluid)
    marks voxels that do not bleed into their neighbours either; such a voxel with no other voxel
    within reach keeps its own curve. Slices are left apart: CTP slices are thick."""
    curves = np.empty((len(series), int(mask.sum())), dtype=np.float32)
    if sigma_mm <= 0:
        for index, frame in enumerate(series):
            curves[index] = frame[mask]
        return curves
    sigma = (sigma_mm / spacing[0], sigma_mm / spacing[1], 0.0)
    weight = mask.astype(np.float32)
    if apart is not None:
        weight[mask] = ~apart
    norm = ndimage.gaussian_filter(weight, sigma, truncate=3.0)[mask]
    alone = norm < 1e-3  # nothing that may bleed within reach
    norm[alone] = 1.0
    for index, frame in enumerate(series):
        smoothed = ndimage.gaussian_filter(frame.astype(np.float32) * weight, sigma, truncate=3.0)
        curves[index] = smoothed[mask] / norm
        if alone.any():
            curves[index, alone] = frame[mask][alone]
    return curves


def smooth_in_time(curves: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Return ``curves`` (frames, voxels) smoothed along time by a Gaussian of ``sigma_frames``."""
    if sigma_frames <= 0:
        return curves
    return ndimage.gaussian_filter1d(curves, sigma_frames, axis=0, mode="nearest", truncate=3.0)


def bin_factor(spacing: tuple[float, float, float], analysis_mm: float) -> int:
    """Return the integer factor binning in-plane voxels of ``spacing`` to at least ``analysis_mm``
    (1: none; also for ``analysis_mm`` 0)."""
    finest = min(spacing[0], spacing[1])
    return max(1, int(np.floor(analysis_mm / finest + 1e-6))) if analysis_mm > 0 else 1


def bin_in_plane(series: np.ndarray, factor: int) -> np.ndarray:
    """Return ``series`` (frames, x, y, z) averaged over ``factor`` x ``factor`` in-plane blocks, float32;
    a remainder of columns or rows that fills no block is left out (``unbin`` gives it its neighbour's
    value). Frame by frame: memory beyond the result stays one frame."""
    frames, nx, ny, nz = series.shape
    bx, by = nx // factor, ny // factor
    result = np.empty((frames, bx, by, nz), dtype=np.float32)
    for index, frame in enumerate(series):
        total = np.zeros((bx, by, nz), dtype=np.float32, order="F")  # a NIfTI frame's order
        for i in range(factor):
            for j in range(factor):
                total += frame[i : bx * factor : factor, j : by * factor : factor]
        result[index] = total * np.float32(1 / factor**2)
    return result


def unbin(volume: np.ndarray, factor: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Return a binned ``volume`` (x, y, z) back on the grid of ``shape``: each value repeated over its
    block, a remainder filled from the last block."""
    if factor == 1:
        return volume
    full = np.repeat(np.repeat(volume, factor, axis=0), factor, axis=1)
    pad = ((0, shape[0] - full.shape[0]), (0, shape[1] - full.shape[1]), (0, 0))
    return np.pad(full, pad, mode="edge") if any(p[1] for p in pad) else full


def noise_hu(curves: np.ndarray, arrival: int) -> float:
    """Return the noise (HU, one standard deviation per time point) of ``curves`` (frames, voxels),
    from the differences between consecutive pre-bolus frames pooled over the voxels (a difference
    removes each voxel's own level), by their median absolute deviation (robust to the few voxels a
    bolus or motion reaches early); 0 when there is nothing to measure."""
    differences = np.diff(curves[:arrival], axis=0).ravel()
    if differences.size == 0:
        return 0.0
    spread = np.median(np.abs(differences - np.median(differences)))
    return float(1.4826 * spread / np.sqrt(2))


def smoothed_noise(noise: float, sigma_frames: float) -> float:
    """Return the standard deviation left of white noise ``noise`` after ``smooth_in_time``."""
    if sigma_frames <= 0:
        return noise
    impulse = np.zeros(int(8 * sigma_frames) * 2 + 1)
    impulse[len(impulse) // 2] = 1.0
    weights = ndimage.gaussian_filter1d(impulse, sigma_frames, mode="constant", truncate=3.0)
    return float(noise * np.sqrt(np.sum(weights**2)))
