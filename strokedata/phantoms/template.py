"""The registration template and its atlas: the phantom head centred and straight, healthy and noiseless.

``phantom_template(grid)`` evaluates the phantom model (docs/phantoms.md) at the identity pose (scale 1,
no rotation, no shift), with the mean of each drawn tissue density and healthy value, no vessels, no
occlusion, no heterogeneity and no noise, on a grid centred on the scanner origin (``grid_affine``).
Nothing is downloaded: the template is computed, the same bytes on every call and every machine.

Left-right symmetry: the model mirrors its territory seeds and paired structures across x = 0, and a grid
centred on the origin samples x at +-(k + 1/2) spacing (even size) or at k spacing (odd size); both are
exact in floating point, so flipping the first voxel axis gives the same CT and perfusion maps, byte for
byte, and the atlas with left and right regions swapped (value v <-> v +- 7). With an odd size the middle
plane x = 0 maps onto itself; it lies in the falx (CSF), so its atlas value is 0 and nothing is swapped
there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from strokedata.manifest import Modality
from strokedata.phantoms.anatomy import Pose, SmoothField, grid_affine, head_coordinates, territories, tissue
from strokedata.phantoms.config import Grid
from strokedata.phantoms.perfusion import Physiology, perfusion_maps
from strokedata.phantoms.scene import Tissues

IDENTITY_POSE = Pose(scale=1.0, rotation=np.eye(3), shift=np.zeros(3))
"""The template's pose: head coordinates are scanner coordinates."""
MEAN_TISSUES = Tissues(grey=39.0, white=29.0, csf=7.0, bone=1100.0, soft=40.0, blood=42.5, clot=67.5)
"""The middle of each range ``Tissues.draw`` draws from (HU)."""
_FLAT = SmoothField(wave_vectors=np.zeros((1, 3)), phases=np.zeros(1))  # sin(0) = 0 everywhere
MEAN_PHYSIOLOGY = Physiology(
    cbf_grey=57.5,
    cbf_white=24.0,
    mtt_grey=3.8,
    mtt_white=4.6,
    delay=0.65,
    aif_start=6.0,
    aif_alpha=3.0,
    aif_beta=1.5,
    aif_peak=325.0,
    heterogeneity=_FLAT,
    severity_noise=_FLAT,
)
"""The middle of each range ``Physiology.draw`` draws from, without heterogeneity."""
CT_LIKE = frozenset(
    {Modality.NCCT, Modality.CTA, Modality.MCTA1, Modality.MCTA2, Modality.MCTA3, Modality.CTP}
)
"""Modalities registered to the template's CT image (a 4D CTP by one of its frames or its mean)."""
_SLAB_VOXELS = 2_000_000


@dataclass(frozen=True, eq=False)
class Template:
    """The phantom template on one grid; every array is read-only and (x, y, z) in ``affine``'s voxels.

    ``ct`` is unenhanced CT in HU (float32; air -1000, bone 1100); ``cbf``, ``cbv``, ``mtt`` and
    ``tmax`` are the healthy perfusion maps (float32, 0 outside the parenchyma; Tmax is the constant
    healthy delay 0.65 s, so it is a parenchyma mask); ``atlas`` holds the phantom's regions 0..14
    (``DEFAULT_ATLAS_REGIONS``) and ``brain`` the brain mask 0/1 (both uint8).
    """

    grid: Grid
    affine: np.ndarray
    ct: np.ndarray
    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray
    atlas: np.ndarray
    brain: np.ndarray


def _read_only(array: np.ndarray) -> np.ndarray:
    """Return ``array`` marked read-only (templates are cached and shared)."""
    array.setflags(write=False)
    return array


@lru_cache(maxsize=2)
def phantom_template(grid: Grid) -> Template:
    """Return the template (CT, healthy perfusion maps, atlas, brain mask) on ``grid``; cached per grid.

    Computed slab by slab like the phantoms: 0.03 s for 64x64x16 and 2 s for 512x512x27 voxels.
    """
    return healthy_head(grid, IDENTITY_POSE)


def healthy_head(grid: Grid, pose: Pose) -> Template:
    """Return the template's head placed at ``pose`` (scanner = scale * rotation @ head + shift) on
    ``grid``: the fields of ``phantom_template`` with that pose (a test object with a known answer)."""
    shape = grid.shape
    # in Fortran order, as NIfTI stores volumes: each slab is contiguous, and elastix takes them uncopied
    ct = np.zeros(shape, dtype=np.float32, order="F")
    maps = [np.zeros(shape, dtype=np.float32, order="F") for _ in range(4)]
    atlas = np.zeros(shape, dtype=np.uint8, order="F")
    brain = np.zeros(shape, dtype=np.uint8, order="F")
    edge = 0.3 * float(min(grid.spacing))
    step = max(1, _SLAB_VOXELS // (shape[0] * shape[1]))
    t = MEAN_TISSUES
    for start in range(0, shape[2], step):
        z = slice(start, min(start + step, shape[2]))
        points = head_coordinates(grid, pose, z)
        fractions = tissue(points, edge)
        parenchyma = fractions.parenchyma
        atlas[:, :, z] = territories(points, parenchyma)[0]
        brain[:, :, z] = fractions.brain > 0.5
        healthy = perfusion_maps(
            fractions.grey, parenchyma, points, np.zeros(parenchyma.shape, np.float32), MEAN_PHYSIOLOGY
        )
        for target, values in zip(maps, (healthy.cbf, healthy.cbv, healthy.mtt, healthy.tmax), strict=True):
            target[:, :, z] = values
        # the same layering as strokedata.phantoms.scene.build_scene: air, scalp, skull, CSF, brain, CSF
        brain_hu = t.white + (t.grey - t.white) * fractions.grey
        hu = -1000 + (t.soft + 1000) * fractions.head
        hu = hu + (t.bone - hu) * fractions.skull
        hu = hu + (t.csf - hu) * fractions.intracranial
        hu = hu + (brain_hu - hu) * fractions.brain
        ct[:, :, z] = hu + (t.csf - hu) * fractions.ventricle * fractions.brain
    cbf, cbv, mtt, tmax = (_read_only(values) for values in maps)
    return Template(
        grid=grid,
        affine=_read_only(grid_affine(grid)),
        ct=_read_only(ct),
        cbf=cbf,
        cbv=cbv,
        mtt=mtt,
        tmax=tmax,
        atlas=_read_only(atlas),
        brain=_read_only(brain),
    )


def template_image(grid: Grid, modality: Modality | str) -> np.ndarray:
    """Return the template image (read-only float32 on ``grid``) to register an image of ``modality`` to.

    NCCT, CTA, MCTA1-3 and CTP get the CT image (registration by mutual information copes with the
    contrast enhancement); CBF, CBV, MTT and TMAX get the healthy map of the same kind. Other modalities
    (SPIRAL, label maps) are a ValueError: register the image they are co-registered with instead.
    """
    try:
        kind = Modality(modality)
    except ValueError:
        kind = None
    template = phantom_template(grid)
    if kind in CT_LIKE:
        return template.ct
    maps = {
        Modality.CBF: template.cbf,
        Modality.CBV: template.cbv,
        Modality.MTT: template.mtt,
        Modality.TMAX: template.tmax,
    }
    if kind in maps:
        return maps[kind]
    usable = ", ".join(sorted(str(m) for m in (*CT_LIKE, *maps)))
    raise ValueError(
        f"the phantom template has no image for '{modality}'; drive the registration with one of {usable} "
        "and move this image with its co-registered group"
    )
