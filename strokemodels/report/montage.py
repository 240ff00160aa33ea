"""The report's best- and worst-predicted patients: how well each patient was predicted (per task) and
a montage of one axial slice each, with the truth and the prediction drawn on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from strokedata import load_dataset
from strokedata.io import MAX_VOXELS, read_volume
from strokedata.manifest import Modality
from strokemodels.benchmark.segmentation import dice
from strokemodels.report.figures import GREEN, RED, figure_of, png

BACKGROUND = {
    "occlusion": (Modality.TMAX, Modality.CBF, Modality.CTP),
    "recanalization": (Modality.CTA, Modality.NCCT),
    "core": (Modality.CBF, Modality.CTP, Modality.NCCT),
    "clot-regions": (Modality.MCTA1, Modality.CTA, Modality.SPIRAL),
}
"""The image each task's montage is drawn on: the first of these the patient has."""


def _mask(path: Path) -> np.ndarray:
    return np.asarray(read_volume(path, MAX_VOXELS).data) > 0.5


def quality(task: str, classes: list[str], truth: Any, found: Any, scores: tuple[float, ...] | None) -> float:
    """Return how well one patient was predicted, in [0, 1]: the probability given to the true class
    (occlusion, recanalization; 1 or 0 without probabilities), the Dice of the masks (core), the F1 of
    the regions (clot-regions; 1 when neither holds clot)."""
    if task == "core":
        return dice(_mask(Path(truth)), _mask(Path(found)))
    if task == "clot-regions":
        true, said = np.asarray(truth, dtype=bool), np.asarray(found, dtype=bool)
        return dice(true, said)
    if scores is None:
        return float(truth == found)
    if task == "occlusion":
        return float(scores[classes.index(truth)])
    return float(scores[0] if truth == 1 else 1 - scores[0])


def _slice_of(volume: np.ndarray, weight: np.ndarray | None) -> int:
    """Return the axial slice to show: the one where ``weight`` is largest, else the middle one."""
    if weight is not None and weight.any():
        return int(np.argmax(weight.reshape(-1, weight.shape[2]).sum(axis=0)))
    return int(volume.shape[2]) // 2


def _background(folder: Path, manifest: Any, task: str) -> np.ndarray | None:
    """Return the patient's background image (3D; a CTP as its maximum over time), or None."""
    for modality in BACKGROUND[task]:
        if modality in manifest.images:
            data = np.asarray(
                read_volume(folder / manifest.images[modality], MAX_VOXELS).data, dtype=np.float32
            )
            return data.max(axis=3) if data.ndim == 4 else data
    return None


_REGION_COLOURS = {(1, 1): (0, 0.62, 0.45, 0.6), (0, 1): (0.84, 0.37, 0, 0.6), (1, 0): (0, 0.45, 0.7, 0.6)}
"""Atlas regions predicted and true (green), predicted only (vermilion), true only (blue)."""


def _panel(panel: Any, task: str, folder: Path, manifest: Any, truth: Any, found: Any) -> None:
    """Draw one patient's slice on ``panel``: the background image, and the masks or regions."""
    masks = (_mask(Path(truth)), _mask(Path(found))) if task == "core" else None
    atlas = None
    if task == "clot-regions" and Modality.ATLAS in manifest.images:
        atlas = np.asarray(read_volume(folder / manifest.images[Modality.ATLAS], MAX_VOXELS).data)
    image = _background(folder, manifest, task)
    weight = masks[0] if masks else None
    if atlas is not None:
        weight = np.isin(atlas, [index for index, held in enumerate(truth) if held])  # region k: value k
    shape = image.shape if image is not None else (weight.shape if weight is not None else None)
    if shape is None:
        return
    z = _slice_of(
        np.zeros(shape, dtype=bool), weight if weight is not None and weight.shape == shape else None
    )
    if image is not None:
        low, high = np.percentile(image[:, :, z], [1, 99])
        panel.imshow(
            image[:, :, z].T, cmap="gray", vmin=low, vmax=max(float(high), float(low) + 1), origin="lower"
        )
    for mask, colour in zip(masks or (), (GREEN, RED), strict=False):
        if mask.shape == shape and mask[:, :, z].any():
            panel.contour(mask[:, :, z].T.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
    if atlas is not None and atlas.shape == shape:
        colours = np.zeros((*shape[:2], 4))
        for index in range(len(truth)):
            state = (int(truth[index]), int(found[index]))
            if state != (0, 0):
                colours[atlas[:, :, z] == index] = _REGION_COLOURS[state]
        panel.imshow(np.transpose(colours, (1, 0, 2)), origin="lower")


def montage_png(task: str, data: Path, rows: list[tuple[str, str, Any, Any]]) -> bytes:
    """Return a montage of one axial slice per patient of ``rows`` (patient id, caption, truth,
    prediction), the slice holding most of the true core or clot: core draws the true mask in green and
    the predicted one in vermilion; clot-regions colours the atlas regions predicted and true (green),
    predicted only (vermilion), true only (blue); occlusion and recanalization show the input image."""
    dataset = load_dataset(data)
    figure, axes = figure_of(2.6 * len(rows), 3.0, len(rows))
    for panel, (pid, caption, truth, found) in zip(np.atleast_1d(axes), rows, strict=True):
        _panel(panel, task, data / pid, dataset.patients[pid], truth, found)
        panel.set_title(caption, fontsize=8)
        panel.set_axis_off()
    return png(figure)
