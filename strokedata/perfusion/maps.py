"""``perfusion_maps``: a CTP series (frames, x, y, z) in HU -> CBF, CBV, MTT, TMAX and TTP on its grid.

Steps: checks (``signal.check_series``); sub-millimetre voxels binned in-plane (``analysis_mm``);
brain mask on the mean of the first two frames; the bolus's arrival, from the large vessels' mean
curve, and the baseline (the frames before it; for a tissue voxel on to its own rise,
``signal.tissue_concentration``); the AIF (``aif``), automatic or from a mask, scaled by a VOF; each
tissue curve smoothed in-plane (vessels and fluid kept apart) and in time, its baseline subtracted,
deconvolved (``deconvolution``), in chunks of voxels.

Maps (kappa = (1 - Hct_large) / ((1 - Hct_small) x density)):
CBF = 6000 kappa max k(t) (ml/100 g/min), divided by the maximum the method gives a noiseless
exponential residue of the voxel's MTT (``reference_bias``) unless ``cbf_correction`` is off;
CBV = 100 kappa area(tissue) / area(AIF) (ml/100 g); MTT = 60 CBV / CBF (s); TMAX = the time of k's
maximum (s, refined between samples by a parabola; a maximum in the second half of a circulant
residue is a negative delay, given as 0), less the shift the method itself gives an undelayed residue
of the measured MTT with this AIF (``reference_bias``; 2 s for most MTTs on the digital phantom, 4-6 s
at MTT 24 s), unless ``tmax_correction`` is off; TTP = the time of the tissue curve's maximum from the
first frame (s). Outside the brain mask, in vessels (a peak or a CBV that only blood gives, above
``vessel_cbv``) and in fluid (a pre-contrast mean below ``csf_hu``), every map is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strokedata.perfusion.aif import (
    InputFunction,
    check_aif,
    partial_volume_scale,
    select_aif,
    select_vof,
)
from strokedata.perfusion.deconvolution import convolution_matrix, residues
from strokedata.perfusion.settings import PerfusionSettings
from strokedata.perfusion.signal import (
    PerfusionError,
    bin_factor,
    bin_in_plane,
    bolus_arrival,
    brain_mask,
    check_series,
    masked_curves,
    noise_hu,
    smooth_in_time,
    smoothed_noise,
    tissue_concentration,
    unbin,
)

MAP_NAMES = ("CBF", "CBV", "MTT", "TMAX", "TTP")
CHUNK = 65536
"""Voxels deconvolved at once: bounds the memory of the spectra (2n x CHUNK complex values)."""


@dataclass
class PerfusionResult:
    """Maps (float32, on the series' grid, keyed by ``MAP_NAMES``) and how they were made."""

    maps: dict[str, np.ndarray]
    mask: np.ndarray
    aif: InputFunction
    vof: InputFunction | None
    scale: float
    baseline_frames: int
    interval: float
    vessels: int = 0
    record: dict[str, Any] = field(default_factory=dict)


def _peak_time(curves: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (time of each column's maximum in s, refined by a parabola through it and its neighbours;
    the maximum's value)."""
    index = np.argmax(curves, axis=0)
    columns = np.arange(curves.shape[1])
    peak = curves[index, columns]
    inner = (index > 0) & (index < len(curves) - 1)
    left = curves[np.maximum(index - 1, 0), columns]
    right = curves[np.minimum(index + 1, len(curves) - 1), columns]
    bend = left - 2 * peak + right
    offset = np.where(inner & (bend < 0), 0.5 * (left - right) / np.where(bend < 0, bend, -1.0), 0.0)
    return (index + np.clip(offset, -0.5, 0.5)) * interval, peak


REFERENCE_MTT = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 24.0, 30.0])
"""MTTs (s) of the reference residues that measure the method's CBF loss and Tmax shift."""


def _circulant_peak(k: np.ndarray, frames: int, interval: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (time of each residue's maximum, the maximum) of residues ``k`` (samples, voxels); for a
    circulant residue (2 x frames samples) a maximum in its second half is a negative delay (the tissue
    before the AIF), given as 0, so that no time exceeds the acquisition."""
    if len(k) == frames:
        return _peak_time(k, interval)
    times, peak = _peak_time(np.roll(k, frames, axis=0), interval)
    return np.maximum(times - frames * interval, 0.0), peak


def reference_bias(
    arterial: np.ndarray, interval: float, settings: PerfusionSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (``REFERENCE_MTT``; the maximum the method gives the residue of an undelayed exponential
    residue of each, whose true maximum is 1; how late it puts that maximum, s), each residue
    deconvolved from its noiseless tissue curve with this AIF. Truncating the small singular values
    smooths the residue's sharp start: its maximum comes lower (CBF underestimated, the more the shorter
    the MTT) and later (Tmax lengthened, the more the longer the MTT)."""
    frames = len(arterial)
    times = np.arange(frames) * interval
    shapes = np.exp(-times[:, None] / REFERENCE_MTT[None, :])
    curves = (convolution_matrix(arterial, interval) @ shapes).astype(np.float32)
    k = residues(curves, arterial, interval, settings.method, settings.threshold, settings.oscillation_index)
    late, peak = _circulant_peak(k, frames, interval)
    return REFERENCE_MTT.copy(), np.asarray(peak, dtype=np.float64), np.asarray(late, dtype=np.float64)


def _voxel_record(function: InputFunction | None, points: np.ndarray, interval: float) -> Any:
    """Return a JSON record of an input function averaged over the voxels at ``points`` (x, y, z):
    voxel count, centroid, up to 64 voxel indices, its curve."""
    if function is None:
        return None
    return {
        "voxels": len(points),
        "centroid": [round(float(value), 2) for value in points.mean(axis=0)],
        "indices": points[:64].tolist(),
        "peak_hu": round(float(function.curve.max()), 2),
        "peak_s": round(function.peak_frame * interval, 3),
        "curve_hu": [round(float(value), 2) for value in function.curve],
    }


def _cbf_factor(mtt: np.ndarray, cbv: np.ndarray, bias: tuple[np.ndarray, ...]) -> np.ndarray:
    """Return the factor each voxel's CBF is divided by: the reference peak at its measured ``mtt``,
    looked up on the axis the method measures (a reference of MTT m measures m / peak); 1 (no
    correction) outside the references' measured range or where CBV is not positive: a measured MTT
    shorter than the 1 s reference's is noise, and the largest factor must not land on it."""
    reference, peak = bias[0], np.maximum(bias[1], 1e-3)
    axis = reference / peak
    order = np.argsort(axis, kind="stable")
    inside = (mtt >= axis.min()) & (mtt <= axis.max()) & (cbv > 0)
    return np.where(inside, np.interp(mtt, axis[order], peak[order]), 1.0)


def _mtt(cbf: np.ndarray, cbv: np.ndarray) -> np.ndarray:
    """Return MTT = 60 CBV / CBF (s), float32; 0 where CBF is not positive."""
    return np.where(cbf > 0, 60 * cbv / np.where(cbf > 0, cbf, 1), 0).astype(np.float32)


VESSEL_NOISE = 4.0
"""A vessel's peak must exceed the tissue bound by this many standard deviations of the smoothed noise."""


def _enhancing_vessels(
    concentration: np.ndarray, arterial: np.ndarray, settings: PerfusionSettings, noise: float
) -> np.ndarray:
    """Return, per voxel of ``concentration`` (frames, voxels, smoothed in time, with ``noise`` HU of
    noise left), whether its peak alone proves a CBV above ``settings.vessel_cbv``: tissue's curve is
    CBV / (100 kappa) times the ``arterial`` curve convolved with a transport function of area 1, so it
    never peaks above that fraction of the AIF's peak; a peak must pass it by ``VESSEL_NOISE`` noise
    deviations, so that noise alone does not make tissue a vessel (which would leave the tissue whose
    noise ran low to be smoothed). These voxels are kept out of the spatial smoothing (an artery's
    300 HU would spread into the tissue around it) and every map is 0 there. All False when
    ``vessel_cbv`` is None."""
    if settings.vessel_cbv is None:
        return np.zeros(concentration.shape[1], dtype=bool)
    limit = settings.vessel_cbv / (100 * settings.kappa) * float(arterial.max()) + VESSEL_NOISE * noise
    return np.asarray(concentration.max(axis=0) > limit)


def _given_curve(series: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (the mean curve in HU of the voxels of a given AIF mask, on the series' own grid; their
    indices (x, y, z)); PerfusionError when the mask is not on the CTP's grid or selects nothing."""
    if given.shape != series.shape[1:]:
        raise PerfusionError(f"the AIF mask has shape {given.shape}; the CTP's grid is {series.shape[1:]}")
    chosen = given > 0
    if not chosen.any():
        raise PerfusionError("the AIF mask selects no voxel")
    curve = np.array([frame[chosen].astype(np.float64).mean() for frame in series])
    return curve, np.argwhere(chosen)


def perfusion_maps(
    series: np.ndarray,
    interval: float,
    spacing: tuple[float, float, float],
    settings: PerfusionSettings | None = None,
    aif_mask: np.ndarray | None = None,
) -> PerfusionResult:
    """Return the maps of ``series`` (frames, x, y, z, HU) sampled every ``interval`` s on voxels of
    ``spacing`` mm, with ``settings`` (defaults when None) and, optionally, the AIF's voxels as a mask.
    In-plane voxels finer than ``settings.analysis_mm`` are analysed in binned blocks (``bin_factor``)
    and the maps given back on the series' grid. Raises PerfusionError naming what makes the series
    unusable."""
    settings = settings or PerfusionSettings()
    if not interval > 0:
        raise PerfusionError(f"the CTP's frame interval is {interval}; give the seconds between time points")
    if not all(value > 0 for value in spacing):
        raise PerfusionError(f"the CTP's voxel size is {spacing} mm; every spacing must be positive")
    check_series(series)
    given = None if aif_mask is None else _given_curve(series, np.asarray(aif_mask))  # full resolution
    factor = bin_factor(spacing, settings.analysis_mm)
    if factor == 1:
        return _analysed(series, interval, spacing, settings, given)
    binned = bin_in_plane(series, factor)
    grid = (spacing[0] * factor, spacing[1] * factor, spacing[2])
    result = _analysed(binned, interval, grid, settings, given)
    shape = (series.shape[1], series.shape[2], series.shape[3])
    result.maps = {name: unbin(volume, factor, shape) for name, volume in result.maps.items()}
    result.mask = unbin(result.mask, factor, shape)
    result.record["analysis"] = {"bin_factor": factor, "spacing_mm": [round(value, 4) for value in grid]}
    for key in ("aif", "vof") if given is None else ("vof",):
        found = result.record[key]
        if found is not None:  # voxel indices on the series' grid: each block's first voxel
            found["indices"] = [[x * factor, y * factor, z] for x, y, z in found["indices"]]
            x, y, z = found["centroid"]
            half = (factor - 1) / 2
            found["centroid"] = [round(x * factor + half, 2), round(y * factor + half, 2), z]
    return result


def _analysed(
    series: np.ndarray,
    interval: float,
    spacing: tuple[float, float, float],
    settings: PerfusionSettings,
    given: tuple[np.ndarray, np.ndarray] | None,
) -> PerfusionResult:
    """Return the maps of a checked ``series`` on its own grid (``perfusion_maps``); ``given``: the
    curve and voxels of a given AIF mask."""
    frames = len(series)
    mask = brain_mask(np.asarray(np.mean(series[:2], axis=0, dtype=np.float32)), settings.brain_hu)
    where = np.argwhere(mask)
    raw = masked_curves(series, mask, spacing, 0.0)
    arrival, _ = bolus_arrival(raw)
    fluid = raw[:arrival].mean(axis=0) < settings.csf_hu
    noise = noise_hu(raw, arrival)
    sigma_frames = settings.temporal_sigma_s / interval
    smoothed = smooth_in_time(raw, sigma_frames)
    peaks = smoothed.max(axis=0)
    concentration = smoothed - raw[:arrival].mean(axis=0, keepdims=True)
    del raw, smoothed
    if given is None:
        aif = select_aif(concentration, peaks)
        vof = select_vof(concentration, aif, peaks) if settings.vof else None
    else:
        curve = smooth_in_time((given[0] - given[0][:arrival].mean())[:, None], sigma_frames)[:, 0]
        aif = InputFunction(curve, np.empty(0, dtype=np.intp))
        check_aif(aif, frames)
        vof = None
    scale = partial_volume_scale(aif, vof, interval)
    arterial = aif.curve * scale
    vessels = _enhancing_vessels(concentration, arterial, settings, smoothed_noise(noise, sigma_frames))
    del concentration
    tissue = masked_curves(series, mask, spacing, settings.spatial_sigma_mm, apart=vessels | fluid)
    tissue = tissue_concentration(tissue, arrival, sigma_frames)
    values = {name: np.zeros(len(where), dtype=np.float32) for name in MAP_NAMES}
    aif_area = float(np.trapezoid(arterial, dx=interval))
    if not aif_area > 0:
        raise PerfusionError(
            f"the arterial input function's area is {aif_area:.0f} HU s, not positive: its curve falls below "
            "its baseline; check the AIF mask or the series' baseline"
        )
    for start in range(0, len(where), CHUNK):
        part = slice(start, start + CHUNK)
        curves = tissue[:, part]
        k = residues(
            curves, arterial, interval, settings.method, settings.threshold, settings.oscillation_index
        )
        tmax, peak = _circulant_peak(k, frames, interval)
        values["CBF"][part] = 6000 * settings.kappa * np.maximum(peak, 0)
        area = np.trapezoid(curves, dx=interval, axis=0)
        values["CBV"][part] = np.maximum(100 * settings.kappa * area / aif_area, 0)
        values["TMAX"][part] = tmax
        values["TTP"][part] = _peak_time(curves, interval)[0]
    cbf, cbv = values["CBF"], values["CBV"]
    values["MTT"] = _mtt(cbf, cbv)
    bias = reference_bias(arterial, interval, settings)
    if settings.tmax_correction:  # measured MTT, true-MTT axis: it measures best (docs/perfusion.md)
        shift = np.interp(values["MTT"], bias[0], bias[2])
        values["TMAX"] = np.maximum(values["TMAX"] - shift, 0).astype(np.float32)
    if settings.cbf_correction:
        values["CBF"] = (cbf / _cbf_factor(values["MTT"], cbv, bias)).astype(np.float32)
        values["MTT"] = _mtt(values["CBF"], cbv)
    if settings.vessel_cbv is not None:
        vessels |= cbv > settings.vessel_cbv
    excluded = vessels | fluid
    maps = {}
    for name, value in values.items():
        volume = np.zeros(mask.shape, dtype=np.float32)
        volume[mask] = np.where(excluded, 0, value)
        maps[name] = volume
    result = PerfusionResult(maps, mask, aif, vof, scale, arrival, interval, int(vessels.sum()))
    aif_points = where[aif.voxels] if given is None else given[1]
    result.record = {
        "analysis": {"bin_factor": 1, "spacing_mm": [round(value, 4) for value in spacing]},
        "brain_voxels": int(mask.sum()),
        "vessel_voxels": result.vessels,
        "fluid_voxels": int(fluid.sum()),
        "baseline_frames": arrival,
        "frame_interval_s": interval,
        "aif_source": "auto" if given is None else "mask",
        "aif": _voxel_record(aif, aif_points, interval),
        "vof": None if vof is None else _voxel_record(vof, where[vof.voxels], interval),
        "partial_volume_scale": round(scale, 4),
        "reference_residues": [
            {"mtt_s": round(float(mtt), 3), "peak": round(float(peak), 4), "late_s": round(float(late), 3)}
            for mtt, peak, late in zip(*bias, strict=True)
        ],
    }
    return result
