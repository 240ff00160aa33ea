"""Registration of a co-registered group to a template (000: CTP maps registered affinely to an atlas with
a centred, straight head) as a TorchIO transform, with itk-elastix (``strokedata.registration``).

The template is the phantom head (``strokedata.phantoms.phantom_template``) unless a template image is
given; its atlas can be added to the subject. ``import itk`` (10-15 s in a new process) happens at the
first registration, not at import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torchio as tio

from strokedata.phantoms.config import Grid
from strokedata.phantoms.template import phantom_template, template_image
from strokedata.registration import ParameterValue, register, resample
from strokedata.transforms.intensity import require_image

REGISTRATION = "registration"
"""Subject key set by ``RegisterToTemplate``: {driver key: 4x4 matrix as nested lists}, each matrix
mapping template world points to the driver's world points (RAS+ mm, ``strokedata.registration``)."""

TemplateSpec = Grid | tio.ScalarImage | str | Path | None
"""A template: None (the phantom's, on the driver's shape and spacing), a ``Grid`` (the phantom's on it),
or an image (a ``tio.ScalarImage`` or a NIfTI path)."""


def _load(kind: type[tio.Image], source: tio.Image | str | Path) -> tio.Image:
    """Return ``source`` if it is an image, else the NIfTI file it names read as ``kind``."""
    return source if isinstance(source, tio.Image) else kind(source)


def _label_map(data: np.ndarray, affine: np.ndarray) -> tio.Image:
    """Return a ``tio.LabelMap`` of a 3D array (copied) on ``affine``."""
    kind: type[tio.Image] = tio.LabelMap  # a class through a variable: torchio's constructors are untyped
    return kind(tensor=np.asarray(data)[None].copy(), affine=np.asarray(affine, dtype=np.float64).copy())


def _same_grid(image: tio.Image, reference: tio.Image) -> bool:
    """Return whether two images share spatial shape and affine (to 1e-4 mm)."""
    return image.spatial_shape == reference.spatial_shape and bool(
        np.allclose(image.affine, reference.affine, atol=1e-4)
    )


class RegisterToTemplate(tio.SpatialTransform):
    """Register one image (the driver) to a template and move its co-registered group with it.

    Elastix registers the driver to the template (``strokedata.registration.register``; a 4D driver such
    as the CTP source by its temporal mean). Every included image is then resampled onto the template's
    grid through the same matrix, channel by channel (a 4D CTP keeps its time axis): label maps by nearest
    neighbour, keeping their dtype and values; scalar images trilinearly, as float32. The matrix is
    stored in ``subject["registration"][driver]`` and the transform in ``subject.history`` with its
    arguments; replaying the history registers again and gives the same matrix.

    Args:
        driver: the image elastix registers ("NCCT", "CTA", "CBF", "CTP", ...), a scalar image.
        include: the images to move. None: every image (scalar or label map) on the driver's grid
            (shape and affine), less ``exclude``; the other images are left alone. A named image on
            another grid is moved too, through its own affine: right when both grids share the scanner's
            world (one session, no motion between the scans).
        transform: a preset ("translation", "rigid", "similarity", "affine") or elastix parameter maps.
        overrides: elastix parameter values set in every stage, e.g. {"MaximumNumberOfIterations": 500}.
        template: None: the phantom template on the driver's shape and spacing (rounded to 1e-5 mm),
            centred on the origin;
            a ``Grid``: the phantom template on it; a ``tio.ScalarImage`` or a NIfTI path: that image
            (its first channel). The output grid is the template's.
        atlas: the atlas of an image template (a ``tio.LabelMap`` or a NIfTI path on its grid); the
            phantom template brings its own (``DEFAULT_ATLAS_REGIONS``).
        modality: which phantom template image to use (``template_image``); None: the driver's key.
        add_atlas: add the template's atlas to the subject as a label map on the output grid.
        atlas_key: the key of the added atlas; an image already under that key is a ValueError.
        fill: the value outside the moved scalar images; None: each image's minimum (air on CT, 0 on
            perfusion maps). Label maps get 0.
        threads: elastix's threads (None: ITK's default); the matrix does not depend on it.
        **kwargs: passed to ``tio.Transform`` (``p``, ``copy``, ``exclude``).

    Example:
        >>> transform = RegisterToTemplate("CBF", add_atlas=True)
        >>> transform.driver, transform.transform
        ('CBF', 'affine')
    """

    def __init__(
        self,
        driver: str = "NCCT",
        include: Sequence[str] | None = None,
        transform: str | Sequence[Mapping[str, ParameterValue]] = "affine",
        overrides: Mapping[str, ParameterValue] | None = None,
        template: TemplateSpec = None,
        atlas: tio.LabelMap | str | Path | None = None,
        modality: str | None = None,
        add_atlas: bool = False,
        atlas_key: str = "ATLAS",
        fill: float | None = None,
        threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(include, str):
            raise ValueError(f"include must be a sequence of image names, not the string {include!r}")
        super().__init__(include=include, **kwargs)
        if atlas is not None and (template is None or isinstance(template, Grid)):
            raise ValueError("atlas= goes with an image template; the phantom template brings its own atlas")
        if add_atlas and template is not None and not isinstance(template, Grid) and atlas is None:
            raise ValueError("add_atlas=True with an image template needs its atlas (atlas=...)")
        self.driver = driver
        self.transform = transform
        self.overrides = overrides
        self.template = template
        self.atlas = atlas
        self.modality = modality
        self.add_atlas = add_atlas
        self.atlas_key = atlas_key
        self.fill = fill
        self.threads = threads
        self.args_names = [
            "driver",
            "transform",
            "overrides",
            "template",
            "atlas",
            "modality",
            "add_atlas",
            "atlas_key",
            "fill",
            "threads",
        ]

    def _template(self, driver: tio.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return the template (image, affine, atlas or None) for this driver."""
        if self.template is None or isinstance(self.template, Grid):
            x, y, z = (round(float(s), 5) for s in driver.spacing)  # NIfTI keeps float32: 3.5999999
            grid = self.template or Grid(shape=driver.spatial_shape, spacing=(x, y, z))
            phantom = phantom_template(grid)
            return template_image(grid, self.modality or self.driver), phantom.affine, phantom.atlas
        image = _load(tio.ScalarImage, self.template)
        atlas = None
        if self.atlas is not None:
            atlas_image = _load(tio.LabelMap, self.atlas)
            if not _same_grid(atlas_image, image):
                raise ValueError(f"{self.name}: the atlas is not on the template's grid (shape and affine)")
            atlas = atlas_image.numpy()[0]
        return image.numpy()[0].astype(np.float32), np.asarray(image.affine, dtype=np.float64), atlas

    def _keys(self, subject: tio.Subject, driver: tio.Image) -> list[str]:
        """Return the keys of the images to move: ``include``, or those on the driver's grid."""
        if self.include is not None:
            keys = [str(key) for key in self.include]
            for key in keys:
                require_image(subject, key, self.name, scalar=False)
            return keys if self.driver in keys else [self.driver, *keys]
        excluded = set(self.exclude or ())
        return [
            key
            for key, image in subject.get_images_dict(intensity_only=False).items()
            if key == self.driver or (key not in excluded and _same_grid(image, driver))
        ]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Return the subject with its driver's group registered and resampled onto the template grid."""
        driver = require_image(subject, self.driver, self.name)
        if self.add_atlas and self.atlas_key in subject:
            raise ValueError(
                f"{self.name}: the subject already has '{self.atlas_key}'; pass another atlas_key= to add "
                "the template's atlas"
            )
        images = {
            key: require_image(subject, key, self.name, scalar=False) for key in self._keys(subject, driver)
        }
        fixed, fixed_affine, atlas = self._template(driver)
        data = driver.numpy()
        moving = data[0] if data.shape[0] == 1 else data.mean(axis=0, dtype=np.float64)  # 4D: temporal mean
        result = register(
            fixed,
            fixed_affine,
            moving,
            driver.affine,
            transform=self.transform,
            overrides=self.overrides,
            threads=self.threads,
        )
        for image in images.values():
            label = isinstance(image, tio.LabelMap)
            values = image.numpy()
            fill = 0.0 if label else float(values.min()) if self.fill is None else self.fill
            series = np.moveaxis(values, 0, -1)  # (x, y, z, channels): resample's 4D, frames in their layout
            moved = resample(
                series, image.affine, result.matrix, fixed.shape, fixed_affine, 0 if label else 1, fill
            )
            image.set_data(np.moveaxis(moved, -1, 0))
            image.affine = fixed_affine.copy()
        if self.add_atlas and atlas is not None:
            subject.add_image(_label_map(atlas, fixed_affine), self.atlas_key)
        previous = subject.get(REGISTRATION)
        recorded: dict[str, object] = dict(previous) if isinstance(previous, dict) else {}
        recorded[self.driver] = result.matrix.tolist()
        subject[REGISTRATION] = recorded
        subject.update_attributes()
        return subject
