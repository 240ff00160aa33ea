"""The phantom head: pose, tissue fractions and vascular territories, all analytic in head coordinates.

Head coordinates are millimetres, RAS: +x the patient's right, +y anterior, +z superior, origin near
the centre of the brain. A patient's pose (scale, small rotation, shift) maps them to scanner
coordinates; every image grid is axis-aligned and centred on the scanner origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strokedata.phantoms.config import Grid

BRAIN_CENTRE = np.array([0.0, -5.0, 5.0])
BRAIN_AXES = np.array([68.0, 86.0, 62.0])
"""Semi-axes (mm) of the brain ellipsoid: an adult brain about 136 x 172 x 124 mm."""
CSF_GAP, SKULL, SCALP = 3.0, 7.0, 5.0
"""Thickness (mm) of the subarachnoid CSF layer, the skull and the scalp."""
VENTRICLES = (
    (np.array([12.0, 0.0, 15.0]), np.array([6.0, 24.0, 9.0])),
    (np.array([-12.0, 0.0, 15.0]), np.array([6.0, 24.0, 9.0])),
)
DEEP_GREY = (
    (np.array([18.0, 2.0, 2.0]), np.array([9.0, 17.0, 10.0])),
    (np.array([-18.0, 2.0, 2.0]), np.array([9.0, 17.0, 10.0])),
)
"""Basal ganglia and thalamus, one ellipsoid per side (centre, semi-axes)."""
CORTEX_DEPTH = 0.12
"""Outer fraction of the brain's ellipsoidal radius that is cortex (about 8 mm)."""

TERRITORY_NAMES = ("ACA", "MCA_deep", "MCA_superior", "MCA_inferior", "AChA_ICA", "PCA", "posterior_fossa")
TERRITORY_SEEDS: dict[int, tuple[tuple[float, float, float], ...]] = {
    1: ((8, 50, 20), (8, 25, 50), (8, -15, 58)),  # ACA: medial frontal and parietal strip
    2: ((22, 6, -4),),  # MCA deep: lenticulostriate, basal ganglia
    3: ((45, 30, 30), (40, 0, 48), (48, 35, 8)),  # MCA superior division: frontal, upper parietal
    4: ((58, -5, -10), (50, -35, 15), (55, 15, -22)),  # MCA inferior division: temporal, lower parietal
    5: ((20, -14, -16),),  # anterior choroidal / ICA: medial temporal, internal capsule
    6: ((20, -70, 10), (15, -55, -8), (30, -45, -12)),  # PCA: occipital, inferior temporal
    7: ((18, -50, -42), (6, -32, -40)),  # posterior fossa: cerebellum, brainstem
}
"""Voronoi seeds (mm, right hemisphere; the left mirrors x) of the 7 territories per hemisphere."""


def linear(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Return ``points @ matrix`` for (..., 3) points, as three multiply-adds.

    Written out so that it never starts BLAS threads: in a pool of worker processes on a small machine
    those oversubscribe the cores (two jobs ran no faster than one).
    """
    m = matrix.astype(points.dtype, copy=False)
    return np.asarray(points[..., 0:1] * m[0] + points[..., 1:2] * m[1] + points[..., 2:3] * m[2])


@dataclass(frozen=True)
class Pose:
    """Where a patient's head lies in the scanner: isotropic scale, rotation, then shift (mm)."""

    scale: float
    rotation: np.ndarray
    shift: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Pose:
        """Return a pose with scale 0.92-1.08, yaw +-5, pitch and roll +-3 degrees, shift +-3 mm."""
        yaw, pitch, roll = (
            np.deg2rad(rng.uniform(-5, 5)),
            np.deg2rad(rng.uniform(-3, 3)),
            np.deg2rad(rng.uniform(-3, 3)),
        )
        rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
        ry = np.array([[np.cos(roll), 0, np.sin(roll)], [0, 1, 0], [-np.sin(roll), 0, np.cos(roll)]])
        return cls(float(rng.uniform(0.92, 1.08)), rz @ rx @ ry, rng.uniform(-3, 3, 3))

    def to_world(self, head: np.ndarray) -> np.ndarray:
        """Return scanner coordinates of head coordinates (..., 3)."""
        return np.asarray(linear(head * self.scale, self.rotation.T) + self.shift)

    def to_head(self, world: np.ndarray) -> np.ndarray:
        """Return head coordinates of scanner coordinates (..., 3)."""
        return linear(world - self.shift, self.rotation) / self.scale


def grid_affine(grid: Grid) -> np.ndarray:
    """Return the voxel-to-scanner affine of a grid: axis-aligned, centred on the origin."""
    affine = np.diag([*grid.spacing, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(grid.shape, grid.spacing, strict=True)]
    return affine


def head_coordinates(grid: Grid, pose: Pose, z: slice) -> np.ndarray:
    """Return float32 head coordinates (nx, ny, nz_slab, 3) of the grid's voxel centres in slab ``z``."""
    axes = [
        ((np.arange(n) - (n - 1) / 2) * s).astype(np.float32)
        for n, s in zip(grid.shape, grid.spacing, strict=True)
    ]
    # head = R^T (world - shift) / scale, written per world axis to stay in float32 without a big matmul
    inverse = (pose.rotation / pose.scale).astype(np.float32)  # row k of R^T / scale is column k of R / scale
    shift = pose.shift.astype(np.float32)
    x = (axes[0] - shift[0])[:, None, None, None] * inverse[0]
    y = (axes[1] - shift[1])[None, :, None, None] * inverse[1]
    zz = (axes[2][z] - shift[2])[None, None, :, None] * inverse[2]
    return np.asarray(x + y + zz)


def _radius(points: np.ndarray, centre: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Return the float32 ellipsoidal radius (1 on the surface) of each point."""
    c, a = centre.astype(np.float32), axes.astype(np.float32)
    x = (points[..., 0] - c[0]) / a[0]
    y = (points[..., 1] - c[1]) / a[1]
    z = (points[..., 2] - c[2]) / a[2]
    return np.asarray(np.sqrt(x * x + y * y + z * z))


def _inside(points: np.ndarray, centre: np.ndarray, axes: np.ndarray, edge: float) -> np.ndarray:
    """Return the soft (partial-volume) float32 fraction of each point inside an ellipsoid; ``edge`` in mm.

    Points farther than 30 edge widths from the ellipsoid's z extent are 0 without being evaluated.
    """
    z = points[..., 2]
    reach = float(axes[2]) + 30 * edge
    if float(z.min()) > centre[2] + reach or float(z.max()) < centre[2] - reach:
        return np.zeros(points.shape[:-1], dtype=np.float32)
    distance = (1 - _radius(points, centre, axes)) * np.float32(np.mean(axes) / edge)
    return np.asarray(1 / (1 + np.exp(-np.clip(distance, -30, 30))), dtype=np.float32)


@dataclass
class Tissue:
    """Tissue fractions of a slab of voxels, each in [0, 1]."""

    head: np.ndarray  # inside the scalp
    skull: np.ndarray  # inside the outer table of the skull
    intracranial: np.ndarray  # inside the inner table
    brain: np.ndarray  # brain parenchyma and ventricles
    ventricle: np.ndarray
    grey: np.ndarray  # grey fraction of the brain tissue

    @property
    def parenchyma(self) -> np.ndarray:
        """Return the boolean mask of voxels mostly brain tissue (not CSF)."""
        return (self.brain > 0.5) & (self.ventricle < 0.5)


def tissue(points: np.ndarray, edge: float) -> Tissue:
    """Return the tissue fractions at head coordinates ``points`` (..., 3)."""
    brain = _inside(points, BRAIN_CENTRE, BRAIN_AXES, edge)
    ventricle = np.maximum.reduce([_inside(points, c, a, edge) for c, a in VENTRICLES])
    midline = np.exp(-((points[..., 0] / 1.2) ** 2)) * (brain > 0.5)  # the falx: a thin CSF sheet
    ventricle = np.maximum(ventricle, 0.8 * midline)
    radius = _radius(points, BRAIN_CENTRE, BRAIN_AXES)
    cortex = 1 / (1 + np.exp(-np.clip((radius - (1 - CORTEX_DEPTH)) * 60, -30, 30)))
    posterior_fossa = (points[..., 2] < -30) & (points[..., 1] < -25)
    deep = np.maximum.reduce([_inside(points, c, a, edge) for c, a in DEEP_GREY])
    grey = np.maximum.reduce([cortex, deep, posterior_fossa * 0.7])
    return Tissue(
        head=_inside(points, BRAIN_CENTRE, BRAIN_AXES + CSF_GAP + SKULL + SCALP, edge),
        skull=_inside(points, BRAIN_CENTRE, BRAIN_AXES + CSF_GAP + SKULL, edge),
        intracranial=_inside(points, BRAIN_CENTRE, BRAIN_AXES + CSF_GAP, edge),
        brain=brain,
        ventricle=ventricle,
        grey=grey,
    )


def _seed_table() -> tuple[np.ndarray, np.ndarray]:
    """Return (seeds (k, 3) for the right hemisphere, their territory numbers 1..7)."""
    seeds, labels = [], []
    for territory, points in TERRITORY_SEEDS.items():
        for point in points:
            seeds.append(point)
            labels.append(territory)
    return np.array(seeds, dtype=np.float32), np.array(labels)


_SEEDS, _SEED_TERRITORY = _seed_table()


def territories(points: np.ndarray, parenchyma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (atlas values 0..14, margin in [0, 1]) of each point; 0 outside the parenchyma.

    Left territories are 1..7 and right 8..14 in the order of TERRITORY_NAMES. The margin,
    (d2 - d1) / (d2 + d1) from the nearest seed of the own and of another territory, is 0 on a
    territory's border and grows towards its centre.
    """
    atlas = np.zeros(points.shape[:-1], dtype=np.uint8)
    margin = np.zeros(points.shape[:-1], dtype=np.float32)
    inside = points[parenchyma]
    if inside.size == 0:
        return atlas, margin
    mirrored = inside.copy()
    mirrored[:, 0] = np.abs(mirrored[:, 0])
    squared = (
        (mirrored * mirrored).sum(axis=1, keepdims=True)
        - 2 * linear(mirrored, _SEEDS.T)
        + (_SEEDS * _SEEDS).sum(axis=1)
    )
    distance = np.sqrt(np.maximum(squared, 0))
    per_territory = np.stack([distance[:, t == _SEED_TERRITORY].min(axis=1) for t in TERRITORY_SEEDS], axis=1)
    order = np.argsort(per_territory, axis=1)
    rows = np.arange(len(inside))
    nearest, second = per_territory[rows, order[:, 0]], per_territory[rows, order[:, 1]]
    right = inside[:, 0] >= 0
    atlas[parenchyma] = (order[:, 0] + 1 + 7 * right).astype(np.uint8)
    margin[parenchyma] = (second - nearest) / (second + nearest)
    return atlas, margin


@dataclass(frozen=True)
class SmoothField:
    """A smooth random field of about unit amplitude: a sum of low-frequency plane waves (40-120 mm)."""

    wave_vectors: np.ndarray  # (terms, 3), radians per mm
    phases: np.ndarray  # (terms,)

    @classmethod
    def draw(cls, rng: np.random.Generator, terms: int = 6) -> SmoothField:
        """Return a field with ``terms`` random plane waves."""
        directions = rng.normal(size=(terms, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(40, 120, terms)
        return cls(directions * (2 * np.pi / wavelengths)[:, None], rng.uniform(0, 2 * np.pi, terms))

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Return the field's float32 values at head coordinates ``points`` (..., 3)."""
        waves = np.sin(linear(points, self.wave_vectors.T) + self.phases.astype(points.dtype))
        return np.asarray(waves.sum(axis=-1) * np.sqrt(2 / len(self.phases)), dtype=np.float32)
