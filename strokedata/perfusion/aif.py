"""Arterial input and venous output functions, selected automatically or given as a mask.

Automatic AIF (``select_aif``), on concentration curves of the brain-mask voxels:
1. candidates: of the voxels that enhance (by 10 HU), those whose peak (before the baseline) is
   among the highest ``AIF_CANDIDATES`` (5% of the brain; at least ``MIN_VOXELS``): large vessels
   enhance most (arteries and veins: partial volume can lower the arteries below the veins, so the
   pool is wide enough to hold both);
2. early and narrow: of those, the ones whose time to peak is at most the candidates' 25th percentile
   plus one frame, and whose width at half maximum is at most the candidates' median: arterial
   curves come first and pass quickly (veins and vessels beyond a clot peak later and wider);
3. clustered: the survivors' curves (at most ``MAX_CLUSTERED``, the highest peaks), each scaled to
   its own peak, are split into 2 clusters by k-means (scikit-learn, fixed seed), separating curve
   shapes (Mouridsen et al. 2006 cluster AIF candidates in this way); the cluster whose mean curve
   peaks highest (ties: first) is the arterial one: what remains beside the arteries after steps 1-2
   (noisy tissue, vessels filled late beyond a clot) enhances less;
4. whole: of that cluster, the voxels peaking at ``WHOLE_ARTERY`` (70%) of its highest peaks (95th
   percentile) or more, averaged into the AIF: an artery's rim voxels hold tissue too (partial volume),
   and averaged in they lowered the AIF of the realistic phantoms (0.45 mm voxels analysed 2 x 2) to a
   third of its peak and doubled every CBV.
A patient fails with the reason when the AIF peaks below ``MIN_AIF_HU``, in the first or the last frame.

VOF (``select_vof``): among voxels peaking at least two frames after the AIF, the ``VOF_VOXELS``
with the highest peaks (a venous sinus); chosen by their peaks, not their areas, so that noise that
raised a voxel's area does not choose it (the area is measured on their mean curve). Arterial voxels
lose enhancement to partial volume, veins (larger) much less, and both carry the whole bolus: when
the VOF's area exceeds the AIF's, the AIF is scaled up by the ratio; otherwise it is kept as measured.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from strokedata.perfusion.signal import MIN_BOLUS_HU, PerfusionError

AIF_CANDIDATES = 0.05
"""The fraction of brain voxels, by peak enhancement, among which arteries are sought."""
MIN_VOXELS = 8
"""Voxels averaged into an AIF or a VOF at least (fewer when the brain is smaller)."""
MAX_CLUSTERED = 2000
"""Early, narrow candidates clustered at most (those peaking highest)."""
WHOLE_ARTERY = 0.7
"""Arterial voxels averaged into the AIF peak at least this fraction of the arterial cluster's highest."""
VOF_VOXELS = 32
"""Voxels averaged into a VOF."""
MIN_AIF_HU = 40.0
"""An AIF must peak at least this far above its baseline (clinical AIFs peak at 150-600 HU)."""


@dataclass(frozen=True)
class InputFunction:
    """An arterial input or venous output function: its curve (HU above baseline, one value per frame)
    and the indices (into the brain-mask voxels) of the voxels averaged into it."""

    curve: np.ndarray
    voxels: np.ndarray

    @property
    def peak_frame(self) -> int:
        """Return the frame at which the curve peaks."""
        return int(np.argmax(self.curve))

    def area(self, interval: float) -> float:
        """Return the area under the curve (HU s)."""
        return float(np.trapezoid(self.curve, dx=interval))


def _highest(values: np.ndarray, count: int) -> np.ndarray:
    """Return the indices of the ``count`` largest ``values``, ties broken by index (a stable sort: the
    same voxels on every machine, whatever its SIMD sorting does with equal values)."""
    return np.argsort(values, kind="stable")[len(values) - min(count, len(values)) :]


def _half_width(curves: np.ndarray) -> np.ndarray:
    """Return each column's number of frames at or above half its maximum."""
    return (curves >= 0.5 * curves.max(axis=0, keepdims=True)).sum(axis=0)


def _kmeans_first(curves: np.ndarray) -> np.ndarray:
    """Return the indices (columns of ``curves``) of the highest-peaking of two k-means clusters of the
    peak-scaled curves (ties: the earlier peak; all of them when there are too few to split)."""
    if curves.shape[1] < 2 * MIN_VOXELS:
        return np.arange(curves.shape[1])
    from sklearn.cluster import KMeans  # type: ignore[import-untyped]
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    shapes = (curves / np.maximum(curves.max(axis=0, keepdims=True), 1e-6)).T
    # one thread: the sums of a parallel reduction depend on the thread count, the clusters must not;
    # identical curves make one cluster, which is handled below, so k-means' warning says nothing new
    with warnings.catch_warnings(), np.errstate(all="ignore"), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        labels = KMeans(n_clusters=2, n_init=4, random_state=0).fit_predict(shapes.astype(np.float64))
    best: tuple[float, int] | None = None
    chosen = 0
    for cluster in (0, 1):
        members = curves[:, labels == cluster]
        if members.shape[1] < MIN_VOXELS:
            continue
        mean = members.mean(axis=1)
        key = (-float(mean.max()), int(np.argmax(mean)))
        if best is None or key < best:
            best, chosen = key, cluster
    if best is None:
        return np.arange(curves.shape[1])
    return np.flatnonzero(labels == chosen)


def _whole_arteries(curves: np.ndarray) -> np.ndarray:
    """Return the indices (columns of ``curves``, an arterial cluster) of the curves peaking at least
    ``WHOLE_ARTERY`` of the cluster's highest peaks (their 95th percentile); the ``MIN_VOXELS`` highest
    when fewer do: an artery's rim shares its voxels with tissue, diluting its enhancement."""
    peaks = curves.max(axis=0)
    whole = np.flatnonzero(peaks >= WHOLE_ARTERY * np.percentile(peaks, 95))
    return whole if len(whole) >= MIN_VOXELS else np.sort(_highest(peaks, MIN_VOXELS))


def select_aif(curves: np.ndarray, peaks: np.ndarray) -> InputFunction:
    """Return the automatic AIF of concentration ``curves`` (frames, brain voxels) (module docstring),
    candidates ranked by ``peaks``: each voxel's highest value in HU before its baseline is subtracted,
    among the voxels that enhance by ``MIN_BOLUS_HU``: a bright voxel that does not enhance (bone's
    partial volume at the brain's edge) is no artery, and its flat curve, peaking in its first frame,
    looked early (a tiny phantom lost its AIF to them: 6 HU). Ranked on the baseline-subtracted
    peak, the voxels whose baseline frames happen to be noisy low would be chosen, and their curves
    (too high by that offset at every frame) would inflate the AIF's area: 10% at 10 HU of noise on the
    digital phantom. PerfusionError when no plausible AIF is found."""
    enhancing = np.flatnonzero(curves.max(axis=0) >= MIN_BOLUS_HU)
    pool = enhancing if len(enhancing) >= MIN_VOXELS else np.arange(curves.shape[1])
    count = min(len(pool), max(MIN_VOXELS, round(AIF_CANDIDATES * curves.shape[1])))
    candidates = np.sort(pool[_highest(peaks[pool], count)])
    chosen = curves[:, candidates]
    ttp = np.argmax(chosen, axis=0)
    width = _half_width(chosen)
    early = (ttp <= np.percentile(ttp, 25) + 1) & (width <= np.median(width))
    if early.sum() >= MIN_VOXELS:
        candidates, chosen = candidates[early], chosen[:, early]
    if len(candidates) > MAX_CLUSTERED:  # the highest peaks among them: clustering cost stays bounded
        highest = np.sort(_highest(peaks[candidates], MAX_CLUSTERED))
        candidates, chosen = candidates[highest], chosen[:, highest]
    cluster = _kmeans_first(chosen)
    voxels = np.sort(candidates[cluster[_whole_arteries(chosen[:, cluster])]])
    aif = InputFunction(curves[:, voxels].astype(np.float64).mean(axis=1), voxels)
    check_aif(aif, len(curves))
    return aif


def check_aif(aif: InputFunction, frames: int) -> None:
    """Return when ``aif`` is plausible: it peaks by ``MIN_AIF_HU`` after the first and before the last
    frame; PerfusionError saying why otherwise."""
    peak = float(aif.curve.max())
    if peak < MIN_AIF_HU:
        raise PerfusionError(
            f"no plausible arterial input function: the arterial candidates peak at {peak:.0f} HU above "
            f"baseline (at least {MIN_AIF_HU:g} expected); check the contrast injection or give an AIF mask"
        )
    if aif.peak_frame in (0, frames - 1):
        where = "first" if aif.peak_frame == 0 else "last"
        raise PerfusionError(
            f"no plausible arterial input function: the arterial curve peaks in the {where} time point, so "
            "the series does not hold the whole bolus; give an AIF mask or a longer acquisition"
        )


def select_vof(curves: np.ndarray, aif: InputFunction, peaks: np.ndarray) -> InputFunction | None:
    """Return the VOF of ``curves`` (frames, brain voxels): of the voxels peaking two or more frames
    after the AIF, the ``VOF_VOXELS`` whose ``peaks`` (HU before the baseline is subtracted, as in
    ``select_aif``) are highest; None when fewer than ``MIN_VOXELS`` voxels peak that late."""
    late = np.flatnonzero(np.argmax(curves, axis=0) >= aif.peak_frame + 2)
    if len(late) < MIN_VOXELS:
        return None
    voxels = np.sort(late[_highest(peaks[late], VOF_VOXELS)])
    return InputFunction(curves[:, voxels].astype(np.float64).mean(axis=1), voxels)


def partial_volume_scale(aif: InputFunction, vof: InputFunction | None, interval: float) -> float:
    """Return the factor the AIF is multiplied by: the VOF's area over the AIF's when larger, else 1."""
    if vof is None:
        return 1.0
    ratio = vof.area(interval) / max(aif.area(interval), 1e-9)
    return max(1.0, ratio)
