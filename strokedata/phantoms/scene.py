"""A patient's phantom evaluated on one voxel grid: every field the images of that grid are made from."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from strokedata.phantoms.anatomy import Pose, head_coordinates, territories, tissue
from strokedata.phantoms.config import Grid
from strokedata.phantoms.perfusion import Physiology, perfusion_maps, severity
from strokedata.phantoms.vessels import DOWNSTREAM, UPSTREAM, Occlusion, clot_labels, rasterize

_SLAB_VOXELS = 2_000_000
"""Voxels evaluated at once: bounds the temporary memory on realistic grids."""


@dataclass(frozen=True)
class Tissues:
    """Per-patient tissue densities (HU) on unenhanced CT."""

    grey: float
    white: float
    csf: float
    bone: float
    soft: float
    blood: float
    clot: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Tissues:
        """Return grey 36-42, white 26-32, CSF 4-10, bone 900-1300, blood 40-45, clot 60-75 HU."""
        return cls(
            grey=float(rng.uniform(36, 42)),
            white=float(rng.uniform(26, 32)),
            csf=float(rng.uniform(4, 10)),
            bone=float(rng.uniform(900, 1300)),
            soft=40.0,
            blood=float(rng.uniform(40, 45)),
            clot=float(rng.uniform(60, 75)),
        )


@dataclass
class Scene:
    """Fields on one grid: unenhanced HU, masks, atlas, deficit, perfusion maps, vessels and clot."""

    hu: np.ndarray  # float32, unenhanced tissue without vessels
    brain: np.ndarray  # bool, brain parenchyma and ventricles
    parenchyma: np.ndarray  # bool
    atlas: np.ndarray  # uint8 0..14
    deficit: np.ndarray  # float32 severity 0..1
    cbf: np.ndarray  # float32 maps, 0 outside the parenchyma
    cbv: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray
    vessels: np.ndarray  # uint8: 0, UPSTREAM, DOWNSTREAM, CLOT
    clot: np.ndarray  # uint8: 0, 1 body, 2 border

    @cached_property
    def open_vessels(self) -> tuple[np.ndarray, ...]:
        """Return the indices of voxels in open (contrast-carrying) vessels."""
        return np.nonzero((self.vessels == UPSTREAM) | (self.vessels == DOWNSTREAM))

    @cached_property
    def tissue(self) -> tuple[np.ndarray, ...]:
        """Return the indices of perfused parenchyma voxels outside the vessels."""
        return np.nonzero(self.parenchyma & (self.vessels == 0))


def build_scene(
    grid: Grid,
    pose: Pose,
    tissues: Tissues,
    physiology: Physiology,
    occlusion: Occlusion,
    pieces: list[tuple[np.ndarray, np.ndarray, int]],
    min_radius_voxels: float,
) -> Scene:
    """Return the phantom's fields on ``grid``, evaluated slab by slab."""
    shape = grid.shape
    fields = {
        name: np.zeros(shape, dtype=np.float32) for name in ("hu", "deficit", "cbf", "cbv", "mtt", "tmax")
    }
    brain = np.zeros(shape, dtype=bool)
    parenchyma = np.zeros(shape, dtype=bool)
    atlas = np.zeros(shape, dtype=np.uint8)
    edge = 0.3 * float(min(grid.spacing))
    step = max(1, _SLAB_VOXELS // (shape[0] * shape[1]))
    for start in range(0, shape[2], step):
        z = slice(start, min(start + step, shape[2]))
        points = head_coordinates(grid, pose, z)
        fractions = tissue(points, edge)
        slab_parenchyma = fractions.parenchyma
        brain[:, :, z] = fractions.brain > 0.5
        parenchyma[:, :, z] = slab_parenchyma
        slab_atlas, margin = territories(points, slab_parenchyma)
        atlas[:, :, z] = slab_atlas
        deficit = severity(slab_atlas, margin, points, occlusion, physiology)
        maps = perfusion_maps(fractions.grey, slab_parenchyma, points, deficit, physiology)
        brain_hu = tissues.white + (tissues.grey - tissues.white) * fractions.grey
        hu = -1000 + (tissues.soft + 1000) * fractions.head
        hu = hu + (tissues.bone - hu) * fractions.skull
        hu = hu + (tissues.csf - hu) * fractions.intracranial
        hu = hu + (brain_hu - hu) * fractions.brain
        hu = hu + (tissues.csf - hu) * fractions.ventricle * fractions.brain
        for name, values in (
            ("hu", hu),
            ("deficit", deficit),
            ("cbf", maps.cbf),
            ("cbv", maps.cbv),
            ("mtt", maps.mtt),
            ("tmax", maps.tmax),
        ):
            fields[name][:, :, z] = values
    vessels = rasterize(grid, pose, pieces, min_radius_voxels)
    return Scene(
        brain=brain, parenchyma=parenchyma, atlas=atlas, vessels=vessels, clot=clot_labels(vessels), **fields
    )
