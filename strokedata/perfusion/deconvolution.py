"""Deconvolution of tissue concentration curves by an arterial input function (AIF): sSVD, bcSVD, oSVD.

A tissue curve is C(t) = F * (Ca conv R)(t), F the flow (per second, before the haematocrit and
density constants) and R the residue function (R(0) = 1). Each method returns k(t) = F * R(t) sampled
every frame, one column per voxel:

- ``ssvd``: the lower-triangular convolution matrix of the AIF, inverted by SVD with singular values
  below ``threshold`` x the largest set to zero (Ostergaard et al. 1996). A tissue curve that arrives
  before the AIF, or much later, breaks its causal model.
- ``bcsvd``: the AIF and the curves zero-padded to twice their length, the convolution matrix
  block-circulant (Wu et al. 2003), so that a delay only shifts k(t) in a circle: CBF does not depend
  on the delay. A circulant matrix's singular values are the magnitudes of the FFT of its first column,
  so the truncated pseudo-inverse is a division in the Fourier domain with the frequencies whose
  magnitude lies below the threshold set to zero; ``circulant_matrix`` gives the matrix for tests.
- ``osvd``: bcSVD with the threshold chosen per voxel, the smallest of ``OSVD_THRESHOLDS`` whose
  residue function oscillates less than ``oscillation`` (Wu et al. 2003's oscillation index).

Both matrices use Wu et al.'s weights (Ca[k-1] + 4 Ca[k] + Ca[k+1]) / 6 for a curve varying linearly
between frames.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Method = Literal["ssvd", "bcsvd", "osvd"]
METHODS: tuple[Method, ...] = ("bcsvd", "osvd", "ssvd")
OSVD_THRESHOLDS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8)
"""The truncation thresholds oSVD tries per voxel, smallest first."""


def _weighted(aif: np.ndarray, length: int) -> np.ndarray:
    """Return the AIF's first column for a matrix of ``length`` rows: Wu et al.'s (a[k-1] + 4 a[k] +
    a[k+1]) / 6 (a[-1] = 0; the last sample (a[n-2] + 4 a[n-1]) / 6 and a[n-1] / 6 after it), zeros
    beyond."""
    a = np.asarray(aif, dtype=np.float64)
    n = len(a)
    column = np.zeros(length, dtype=np.float64)
    padded = np.concatenate([[0.0], a, [0.0]])
    column[:n] = (padded[:-2] + 4 * padded[1:-1] + padded[2:]) / 6
    if length > n:
        column[n] = a[-1] / 6
    return column


def convolution_matrix(aif: np.ndarray, interval: float) -> np.ndarray:
    """Return the (n, n) lower-triangular matrix A with A @ r = the curve of residue r (sSVD)."""
    column = _weighted(aif, len(aif)) * interval
    n = len(column)
    rows, cols = np.indices((n, n))
    return np.where(rows >= cols, column[np.clip(rows - cols, 0, n - 1)], 0.0)


def circulant_matrix(aif: np.ndarray, interval: float) -> np.ndarray:
    """Return the (2n, 2n) block-circulant convolution matrix of bcSVD (for tests and reference)."""
    column = _weighted(aif, 2 * len(aif)) * interval
    size = len(column)
    rows, cols = np.indices((size, size))
    return column[(rows - cols) % size]


def ssvd(curves: np.ndarray, aif: np.ndarray, interval: float, threshold: float) -> np.ndarray:
    """Return k (n, voxels) of ``curves`` (n, voxels) by truncated SVD of the causal matrix."""
    u, s, vt = np.linalg.svd(convolution_matrix(aif, interval))
    inverse = np.where(s >= threshold * s.max(), 1.0 / np.where(s > 0, s, 1.0), 0.0)
    pseudo = (vt.T * inverse) @ u.T
    return (pseudo.astype(np.float32) @ curves).astype(np.float32, copy=False)


def _spectra(aif: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the circulant matrix's eigenvalues (rfft of its first column) and their magnitudes."""
    eigen = np.fft.rfft(_weighted(aif, 2 * len(aif)) * interval)
    return eigen, np.abs(eigen)


def _circular(spectrum: np.ndarray, eigen: np.ndarray, keep: np.ndarray, size: int) -> np.ndarray:
    """Return the residues whose curves have rfft ``spectrum``, frequencies outside ``keep`` dropped."""
    inverse = np.where(keep, 1.0 / np.where(keep, eigen, 1.0), 0.0)
    return np.fft.irfft(spectrum * inverse[:, None], n=size, axis=0).astype(np.float32)


def bcsvd(curves: np.ndarray, aif: np.ndarray, interval: float, threshold: float) -> np.ndarray:
    """Return k (2n, voxels) of ``curves`` (n, voxels) by block-circulant truncated SVD."""
    size = 2 * len(aif)
    eigen, magnitude = _spectra(aif, interval)
    spectrum = np.fft.rfft(curves, n=size, axis=0)
    return _circular(spectrum, eigen, magnitude >= threshold * magnitude.max(), size)


def oscillation_index(residues: np.ndarray) -> np.ndarray:
    """Return Wu et al.'s oscillation index of each column: the summed |second difference| over the
    length times the maximum (0 where the maximum is not positive)."""
    second = np.abs(np.diff(residues, n=2, axis=0)).sum(axis=0)
    peak = residues.max(axis=0)
    scale = len(residues) * peak
    return np.where(peak > 0, second / np.where(peak > 0, scale, 1.0), 0.0).astype(np.float32)


def osvd(curves: np.ndarray, aif: np.ndarray, interval: float, oscillation: float) -> np.ndarray:
    """Return k (2n, voxels) by bcSVD with each voxel's threshold the smallest of ``OSVD_THRESHOLDS``
    whose residue's oscillation index is at most ``oscillation`` (the largest when none is)."""
    size = 2 * len(aif)
    eigen, magnitude = _spectra(aif, interval)
    spectrum = np.fft.rfft(curves, n=size, axis=0)
    result = np.empty((size, curves.shape[1]), dtype=np.float32)
    pending = np.arange(curves.shape[1])
    for level, threshold in enumerate(OSVD_THRESHOLDS):
        residues = _circular(spectrum[:, pending], eigen, magnitude >= threshold * magnitude.max(), size)
        last = level == len(OSVD_THRESHOLDS) - 1
        calm = np.ones(len(pending), dtype=bool) if last else oscillation_index(residues) <= oscillation
        result[:, pending[calm]] = residues[:, calm]
        pending = pending[~calm]
        if not len(pending):
            break
    return result


def residues(
    curves: np.ndarray, aif: np.ndarray, interval: float, method: Method, threshold: float, oscillation: float
) -> np.ndarray:
    """Return k(t) = F R(t) of each column of ``curves`` (frames, voxels): ``threshold`` is the truncation
    of sSVD and bcSVD, ``oscillation`` oSVD's largest oscillation index. sSVD gives as many samples as
    frames, the circulant methods twice as many (the second half holds what a delay wrapped around)."""
    if method == "ssvd":
        return ssvd(curves, aif, interval, threshold)
    if method == "bcsvd":
        return bcsvd(curves, aif, interval, threshold)
    if method == "osvd":
        return osvd(curves, aif, interval, oscillation)
    raise ValueError(f"unknown deconvolution method {method!r}; choose one of {', '.join(METHODS)}")
