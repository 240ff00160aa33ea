"""The arterial tree of the phantom (anterior circulation), the clot that occludes it, and rasterisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strokedata.manifest import OcclusionLocation, OcclusionSide
from strokedata.phantoms.anatomy import Pose, linear
from strokedata.phantoms.config import Grid

UPSTREAM, DOWNSTREAM, CLOT = 1, 2, 3
"""Labels of rasterised vessels: open and fed, beyond the clot, the clot itself."""

# Centre lines (mm, head coordinates, right hemisphere; the left mirrors x) and radii (mm) at their
# points, from the cervical ICA below the skull base to the cortical branches of both M2 trunks.
_TREE: dict[str, tuple[str | None, tuple[tuple[float, float, float], ...], tuple[float, ...]]] = {
    "ICA": (None, ((18, 2, -80), (17, 0, -55), (15, 3, -32), (14, 5, -22)), (2.4, 2.3, 2.1, 2.0)),
    "ACA": (
        "ICA",
        ((14, 5, -22), (4, 18, -18), (3, 38, 2), (4, 45, 28), (5, 15, 55)),
        (1.3, 1.2, 1.1, 1.0, 0.8),
    ),
    "M1": ("ICA", ((14, 5, -22), (26, 6, -19), (36, 5, -15), (42, 4, -12)), (1.7, 1.6, 1.5, 1.4)),
    "M2_superior": ("M1", ((42, 4, -12), (48, 12, 2), (52, 12, 22)), (1.2, 1.1, 1.0)),
    "M2_inferior": ("M1", ((42, 4, -12), (50, -6, -8), (56, -24, 2)), (1.2, 1.1, 1.0)),
    "cortical_superior_1": ("M2_superior", ((52, 12, 22), (50, 30, 34), (44, 42, 40)), (0.8, 0.7, 0.5)),
    "cortical_superior_2": ("M2_superior", ((52, 12, 22), (50, -4, 42), (44, -16, 52)), (0.8, 0.7, 0.5)),
    "cortical_inferior_1": ("M2_inferior", ((56, -24, 2), (56, -40, 16), (50, -55, 24)), (0.8, 0.7, 0.5)),
    "cortical_inferior_2": ("M2_inferior", ((56, -24, 2), (60, -10, -18), (58, 8, -26)), (0.8, 0.7, 0.5)),
}


@dataclass(frozen=True)
class Vessel:
    """One named artery of one hemisphere: its parent and its centre line with radii."""

    name: str  # e.g. "L_M1"
    parent: str | None
    points: np.ndarray  # (n, 3) head coordinates, mm
    radii: np.ndarray  # (n,) mm

    def length(self) -> float:
        """Return the arc length of the centre line in mm."""
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())

    def section(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Return (points, radii) of the centre line between arc lengths ``start`` and ``end``."""
        cumulative = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(self.points, axis=0), axis=1))])
        start, end = max(0.0, start), min(float(cumulative[-1]), end)
        inner = (cumulative > start) & (cumulative < end)
        stations = np.concatenate([[start], cumulative[inner], [end]])
        points = np.stack([np.interp(stations, cumulative, self.points[:, k]) for k in range(3)], axis=1)
        return points, np.interp(stations, cumulative, self.radii)


def vessel_tree(rng: np.random.Generator) -> dict[str, Vessel]:
    """Return both hemispheres' arteries, each centre point jittered by up to 2 mm (not the shared ones)."""
    tree: dict[str, Vessel] = {}
    for side, sign in (("L", -1.0), ("R", 1.0)):
        jitter = {name: rng.uniform(-2, 2, (len(points), 3)) for name, (_, points, _) in _TREE.items()}
        for name, (parent, points, radii) in _TREE.items():
            centre = np.array(points, dtype=np.float64)
            centre[1:] += jitter[name][1:]  # the first point is shared with the parent
            centre[:, 0] *= sign
            if parent is not None:
                centre[0] = tree[f"{side}_{parent}"].points[-1]
            tree[f"{side}_{name}"] = Vessel(
                f"{side}_{name}", f"{side}_{parent}" if parent else None, centre, np.array(radii)
            )
    return tree


@dataclass(frozen=True)
class Occlusion:
    """The occlusion: its site and side, the clot's place on the occluded vessel, the collaterals."""

    location: OcclusionLocation
    side: OcclusionSide
    vessel: str  # the occluded vessel, e.g. "R_M2_inferior"
    start: float  # clot extent, arc length along the vessel (mm)
    end: float
    aca_affected: bool  # ICA-T only: no cross-filling of the ACA through the anterior communicating artery
    collateral: float  # 0 (none) .. 1 (excellent)

    @property
    def clot_length(self) -> float:
        """Return the clot's length in mm."""
        return self.end - self.start

    @property
    def division(self) -> str | None:
        """Return 'superior' or 'inferior' for an M2 occlusion, else None."""
        return self.vessel.rsplit("_", 1)[1] if self.location == "M2" else None


def draw_occlusion(
    rng: np.random.Generator, tree: dict[str, Vessel], location: OcclusionLocation, side: OcclusionSide
) -> Occlusion:
    """Return a clot at ``location``: ICA-T 8-16 mm at the terminus, M1 5-14 mm, M2 4-10 mm."""
    if location == "ICA-T":
        vessel = tree[f"{side}_ICA"]
        length = rng.uniform(8, 16)
        end = vessel.length()
        start = end - length
    else:
        name = f"{side}_M1" if location == "M1" else f"{side}_M2_{rng.choice(['superior', 'inferior'])}"
        vessel = tree[name]
        length = min(rng.uniform(5, 14) if location == "M1" else rng.uniform(4, 10), vessel.length() - 4)
        start = rng.uniform(2, vessel.length() - length - 2)
        end = start + length
    return Occlusion(
        location,
        side,
        vessel.name,
        float(start),
        float(end),
        aca_affected=bool(location == "ICA-T" and rng.uniform() < 0.35),
        collateral=float(rng.beta(2.5, 2.0)),
    )


def downstream_vessels(tree: dict[str, Vessel], occlusion: Occlusion) -> set[str]:
    """Return the vessels wholly beyond the clot (descendants of the occluded vessel, not itself)."""
    beyond: set[str] = set()
    frontier = [occlusion.vessel]
    while frontier:
        parent = frontier.pop()
        for vessel in tree.values():
            if vessel.parent == parent:
                if vessel.name.endswith("_ACA") and not occlusion.aca_affected:
                    continue  # fed across the anterior communicating artery
                beyond.add(vessel.name)
                frontier.append(vessel.name)
    return beyond


def vessel_pieces(tree: dict[str, Vessel], occlusion: Occlusion) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Return (points, radii, label) pieces: every vessel, the occluded one cut into open, clot, beyond."""
    beyond = downstream_vessels(tree, occlusion)
    pieces = []
    for name, vessel in tree.items():
        if name == occlusion.vessel:
            pieces.append((*vessel.section(0, occlusion.start), UPSTREAM))
            pieces.append((*vessel.section(occlusion.end, vessel.length()), DOWNSTREAM))
        else:
            pieces.append((vessel.points, vessel.radii, DOWNSTREAM if name in beyond else UPSTREAM))
    pieces.append((*tree[occlusion.vessel].section(occlusion.start, occlusion.end), CLOT))
    return pieces


def rasterize(
    grid: Grid, pose: Pose, pieces: list[tuple[np.ndarray, np.ndarray, int]], min_radius_voxels: float
) -> np.ndarray:
    """Return a uint8 volume with each piece's label where its tube covers a voxel centre (highest wins).

    Tubes thinner than ``min_radius_voxels`` voxels are drawn that thick, and the voxel nearest each
    centre-line sample is always drawn, so that thin vessels and short clots never vanish on coarse grids.
    """
    shape = np.array(grid.shape)
    spacing = np.array(grid.spacing)
    origin = -(shape - 1) / 2 * spacing
    labels = np.zeros(grid.shape, dtype=np.uint8)
    floor_radius = min_radius_voxels * float(spacing.min())
    for points, radii, label in pieces:
        world = pose.to_world(points)
        radius = np.maximum(radii * pose.scale, floor_radius)
        for k in range(len(world) - 1):
            a, b = world[k], world[k + 1]
            reach = max(radius[k], radius[k + 1])
            low = np.maximum(np.floor((np.minimum(a, b) - reach - origin) / spacing).astype(int), 0)
            high = np.minimum(np.ceil((np.maximum(a, b) + reach - origin) / spacing).astype(int) + 1, shape)
            if np.any(high <= low):
                continue
            axes = [origin[d] + spacing[d] * np.arange(low[d], high[d]) for d in range(3)]
            centres = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
            direction = b - a
            along = linear(centres - a, direction[:, None])[..., 0]
            t = np.clip(along / max(float(direction @ direction), 1e-9), 0, 1)
            distance = np.linalg.norm(centres - (a + t[..., None] * direction), axis=-1)
            covered = distance <= radius[k] + t * (radius[k + 1] - radius[k])
            box = labels[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
            np.maximum(box, np.where(covered, label, 0).astype(np.uint8), out=box)
            samples = (
                a
                + np.linspace(0, 1, max(2, int(np.linalg.norm(direction) / spacing.min() * 2)))[:, None]
                * direction
            )
            nearest = np.round((samples - origin) / spacing).astype(int)
            nearest = nearest[np.all((nearest >= 0) & (nearest < shape), axis=1)]
            if len(nearest):
                index = tuple(nearest.T)
                labels[index] = np.maximum(labels[index], label)
    return labels


def clot_labels(vessels: np.ndarray) -> np.ndarray:
    """Return CLOT values from rasterised vessels: 1 clot body, 2 clot border (a 6-neighbour not clot)."""
    result = np.zeros(vessels.shape, dtype=np.uint8)
    where = np.argwhere(vessels == CLOT)
    if len(where) == 0:
        return result
    low, high = where.min(axis=0), where.max(axis=0) + 1
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
    clot = vessels[box] == CLOT
    padded = np.pad(clot, 1)
    interior = clot.copy()
    for axis in range(3):
        for step in (-1, 1):
            interior &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    result[box] = np.where(clot, np.where(interior, 1, 2), 0).astype(np.uint8)
    return result
