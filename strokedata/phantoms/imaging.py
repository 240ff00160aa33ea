"""Images made from a scene: NCCT, CTA and multiphase CTA, the CTP source series and SPIRAL."""

from __future__ import annotations

import numpy as np

from strokedata.phantoms.perfusion import CORE_SEVERITY, Physiology, TissueCurves
from strokedata.phantoms.scene import Scene, Tissues
from strokedata.phantoms.vessels import CLOT, DOWNSTREAM, Occlusion

CTA_BOLUS = 1.3
"""CTA's arterial enhancement relative to the CTP bolus (a larger, faster injection)."""
MCTA_PHASE_DELAYS = (0.0, 8.0, 16.0)
"""Multiphase CTA: peak arterial, peak venous and late venous phase, in s after the AIF peak."""


def _noise(rng: np.random.Generator, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    """Return float32 Gaussian noise of standard deviation ``sigma``."""
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def _int16(values: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(np.rint(values), -1024, 3071), dtype=np.int16)


def downstream_delay(occlusion: Occlusion) -> float:
    """Return the extra delay (s) of contrast reaching vessels beyond the clot: 3 s (good) to 12 s (none)."""
    return 3.0 + 9.0 * (1.0 - occlusion.collateral)


def downstream_fill(occlusion: Occlusion) -> float:
    """Return the fraction of the arterial enhancement that reaches vessels beyond the clot."""
    return 0.2 + 0.7 * occlusion.collateral


def _vessel_enhancement(
    scene: Scene, physiology: Physiology, occlusion: Occlusion, times: np.ndarray, scale: float
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Return (voxel indices of open vessels, their enhancement (voxels, len(times)) in HU)."""
    index = scene.open_vessels
    beyond = (scene.vessels[index] == DOWNSTREAM)[:, None]
    upstream = physiology.aif(times)[None, :]
    late = downstream_fill(occlusion) * physiology.aif(times - downstream_delay(occlusion))[None, :]
    return index, (scale * np.where(beyond, late, upstream)).astype(np.float32)


def _unenhanced(scene: Scene, tissues: Tissues) -> np.ndarray:
    """Return HU of tissue with blood in the vessels and the clot (no contrast)."""
    hu = scene.hu.copy()
    hu[scene.vessels > 0] = tissues.blood
    hu[scene.vessels == CLOT] = tissues.clot
    return hu


def ncct(scene: Scene, tissues: Tissues, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Return NCCT (int16 HU): the clot hyperdense, the core 0-5 HU hypodense, Gaussian noise."""
    hu = _unenhanced(scene, tissues)
    hypodensity = np.clip((scene.deficit - CORE_SEVERITY + 0.2) / 0.4, 0, 1) * 5.0 * scene.parenchyma
    hu -= hypodensity
    return _int16(hu + _noise(rng, noise, hu.shape))


def angiography(
    scene: Scene,
    tissues: Tissues,
    physiology: Physiology,
    occlusion: Occlusion,
    curves: TissueCurves,
    time: float,
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return a CTA acquired at ``time`` s (int16 HU): vessels and parenchyma enhanced, the clot not."""
    hu = _unenhanced(scene, tissues)
    times = np.array([time])
    index, vessels = _vessel_enhancement(scene, physiology, occlusion, times, CTA_BOLUS)
    hu[index] += vessels[:, 0]
    tissue_index = scene.tissue
    hu[tissue_index] += (
        CTA_BOLUS
        * curves.enhancement(
            scene.cbf[tissue_index], scene.mtt[tissue_index], scene.tmax[tissue_index], times
        )[:, 0]
    )
    return _int16(hu + _noise(rng, noise, hu.shape))


def ctp_series(
    scene: Scene,
    tissues: Tissues,
    physiology: Physiology,
    occlusion: Occlusion,
    curves: TissueCurves,
    times: np.ndarray,
    noise: float,
    rng: np.random.Generator,
    arterial_fraction: float = 1.0,
) -> np.ndarray:
    """Return the CTP source (x, y, z, t) int16 HU: baseline plus enhancement plus noise, slice by slice;
    the vessels show ``arterial_fraction`` of their enhancement (partial volume)."""
    hu = _unenhanced(scene, tissues)
    series = np.empty((*scene.hu.shape, len(times)), dtype=np.int16)
    for z in range(scene.hu.shape[2]):
        frames = np.repeat(hu[:, :, z, None], len(times), axis=2)
        sub = Scene(**{name: getattr(scene, name)[:, :, z] for name in Scene.__dataclass_fields__})
        index, vessels = _vessel_enhancement(sub, physiology, occlusion, times, arterial_fraction)
        frames[index] += vessels
        tissue_index = sub.tissue
        frames[tissue_index] += curves.enhancement(
            sub.cbf[tissue_index], sub.mtt[tissue_index], sub.tmax[tissue_index], times
        )
        series[:, :, z, :] = _int16(frames + _noise(rng, noise, frames.shape))
    return series


def _box_blur(values: np.ndarray, radii: tuple[int, ...]) -> np.ndarray:
    """Return the float32 separable moving average of ``values`` with the given half-widths per axis."""
    result = values.astype(np.float32)
    for axis, radius in enumerate(radii):
        if radius < 1:
            continue
        pad = [(radius + 1, radius) if a == axis else (0, 0) for a in range(result.ndim)]
        cumulative = np.cumsum(np.pad(result, pad, mode="edge"), axis=axis, dtype=np.float32)
        n = result.shape[axis]
        upper = [slice(None)] * result.ndim
        lower = [slice(None)] * result.ndim
        upper[axis], lower[axis] = slice(2 * radius + 1, 2 * radius + 1 + n), slice(0, n)
        result = (cumulative[tuple(upper)] - cumulative[tuple(lower)]) / np.float32(2 * radius + 1)
    return result


def spiral(scene: Scene, spacing: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Return a SPIRAL-like probability map in [0, 1]: the deficit blurred over ~8 mm, noisy, in the brain."""
    radii = tuple(max(1, round(8.0 / s)) if s < 8.0 else 0 for s in spacing)
    blurred = _box_blur(scene.deficit, radii)
    noisy = 1.15 * blurred + _noise(rng, 0.08, blurred.shape)
    return np.where(scene.brain, np.clip(noisy, 0, 1), 0).astype(np.float32)
