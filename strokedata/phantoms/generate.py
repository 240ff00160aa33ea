"""``generate_patient(seed, index, config)`` and ``generate_dataset(...)``: phantoms as canonical datasets.

Patient ``index`` of cohort ``seed`` depends on (seed, index) only: every random draw comes from
``SeedSequence([seed, index])``, with one child stream for the patient's anatomy and labels and one
per modality for its noise, so a subset of patients, another worker count or another subset of
modalities gives the same images, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from strokedata import __version__
from strokedata.errors import StrokedataError
from strokedata.executor import Executor, executor_for, map_reporting
from strokedata.io import atomic_write_text, write_nifti
from strokedata.manifest import (
    CO_REGISTERED_GROUPS,
    DATASET_CARD,
    DEFAULT_ATLAS_REGIONS,
    PATIENT_MANIFEST,
    DatasetCard,
    Labels,
    Modality,
    PatientManifest,
    Provenance,
)
from strokedata.outputs import check_output_folder
from strokedata.phantoms.anatomy import Pose, grid_affine, head_coordinates, territories, tissue
from strokedata.phantoms.cohort import draw_clinical, draw_mtici, draw_site_and_side
from strokedata.phantoms.config import Grid, PhantomConfig
from strokedata.phantoms.digital import SPACING as DIGITAL_SPACING
from strokedata.phantoms.digital import digital_phantom
from strokedata.phantoms.imaging import MCTA_PHASE_DELAYS, angiography, ctp_series, ncct, spiral
from strokedata.phantoms.perfusion import CORE_SEVERITY, PENUMBRA_SEVERITY, Physiology, TissueCurves, severity
from strokedata.phantoms.scene import Scene, Tissues, build_scene
from strokedata.phantoms.vessels import Occlusion, Vessel, draw_occlusion, vessel_pieces, vessel_tree

PERFUSION, ANGIO, NCCT_GROUP = (frozenset(group) for group in CO_REGISTERED_GROUPS)
SITE_NOISE = (1.0, 1.3, 0.8, 1.15, 0.9)
"""Noise multiplier of each acquiring site (site k uses entry k mod 5): a scanner effect."""
NOISE_HU = {Modality.NCCT: 3.5, Modality.CTA: 8.0, Modality.CTP: 8.0}
DIGITAL_NOISE_HU = 10.0
"""The digital phantom's noise by default: clinical CTP source noise at 1 x 1 x 5 mm (docs/perfusion.md)."""
_COARSE = Grid(shape=(32, 32, 16), spacing=(7.2, 7.2, 8.0))


class PhantomOutputError(StrokedataError):
    """The output folder for a phantom dataset is not empty."""


def patient_id(index: int) -> str:
    """Return the id of phantom patient ``index``: p00000, p00001, ..."""
    return f"p{index:05d}"


@dataclass
class PatientPhantom:
    """One generated patient: its manifest, its images (data, affine, time step) and how it was made."""

    manifest: PatientManifest
    images: dict[Modality, tuple[np.ndarray, np.ndarray, float | None]]  # voxels, affine, time step
    pose: Pose | None  # None for the digital phantom (no anatomy)
    vessels: dict[str, Vessel]
    occlusion: Occlusion | None


def _streams(seed: int, index: int) -> tuple[np.random.Generator, dict[Modality, np.random.Generator]]:
    children = np.random.SeedSequence([seed, index]).spawn(1 + len(Modality))
    return np.random.default_rng(children[0]), {
        modality: np.random.default_rng(child) for modality, child in zip(Modality, children[1:], strict=True)
    }


def _hypoperfused_ml(pose: Pose, physiology: Physiology, occlusion: Occlusion) -> float:
    """Return the volume (ml) with Tmax > 6 s, on a coarse grid independent of the chosen modalities."""
    points = head_coordinates(_COARSE, pose, slice(None))
    parenchyma = tissue(points, 2.0).parenchyma
    atlas, margin = territories(points, parenchyma)
    deficit = severity(atlas, margin, points, occlusion, physiology)
    return float((deficit > PENUMBRA_SEVERITY).sum() * np.prod(_COARSE.spacing) / 1000)


Images = dict[Modality, tuple[np.ndarray, np.ndarray, float | None]]
"""Modality -> (voxels, affine, time step of a 4D series or None)."""


@dataclass(frozen=True)
class _Draws:
    """Everything drawn for one patient that the images are made from."""

    config: PhantomConfig
    pose: Pose
    tissues: Tissues
    physiology: Physiology
    occlusion: Occlusion
    pieces: list[tuple[np.ndarray, np.ndarray, int]]
    curves: TissueCurves
    noise: dict[Modality, np.random.Generator]
    noise_scale: float

    def scene(self, grid: Grid) -> Scene:
        """Return the patient's fields on ``grid``."""
        return build_scene(
            grid,
            self.pose,
            self.tissues,
            self.physiology,
            self.occlusion,
            self.pieces,
            self.config.min_vessel_radius_voxels,
        )


def _angio_images(draws: _Draws, wanted: set[Modality]) -> Images:
    """Return CTA, MCTA1-3 (at their acquisition times), SPIRAL, ATLAS and CLOT."""
    grid = draws.config.angio
    scene, affine = draws.scene(grid), grid_affine(grid)
    peak = draws.physiology.aif_peak_time
    acquired = {Modality.CTA: peak + 1.0}
    acquired.update(
        {
            modality: peak + delay
            for modality, delay in zip(
                (Modality.MCTA1, Modality.MCTA2, Modality.MCTA3), MCTA_PHASE_DELAYS, strict=True
            )
        }
    )
    images: Images = {}
    for modality, time in acquired.items():
        if modality in wanted:
            image = angiography(
                scene,
                draws.tissues,
                draws.physiology,
                draws.occlusion,
                draws.curves,
                time,
                NOISE_HU[Modality.CTA] * draws.noise_scale,
                draws.noise[modality],
            )
            images[modality] = (image, affine, None)
    if Modality.SPIRAL in wanted:
        images[Modality.SPIRAL] = (spiral(scene, grid.spacing, draws.noise[Modality.SPIRAL]), affine, None)
    images[Modality.ATLAS] = (scene.atlas, affine, None)
    images[Modality.CLOT] = (scene.clot, affine, None)
    return images


def _perfusion_images(draws: _Draws, wanted: set[Modality]) -> Images:
    """Return the ground-truth maps, CORE and (if wanted) the CTP source series."""
    grid = draws.config.perfusion
    scene, affine = draws.scene(grid), grid_affine(grid)
    core = ((scene.deficit > CORE_SEVERITY) & scene.parenchyma).astype(np.uint8)
    images: Images = {
        Modality.CBF: (scene.cbf, affine, None),
        Modality.CBV: (scene.cbv, affine, None),
        Modality.MTT: (scene.mtt, affine, None),
        Modality.TMAX: (scene.tmax, affine, None),
        Modality.CORE: (core, affine, None),
    }
    options = draws.config.ctp
    if options.bolus_delay:
        delayed = np.where(scene.parenchyma, scene.tmax + np.float32(options.bolus_delay), 0)
        scene = replace(scene, tmax=delayed.astype(np.float32))
        images[Modality.TMAX] = (scene.tmax, affine, None)
    if Modality.CTP in wanted:
        interval = draws.config.frame_interval
        times = np.arange(draws.config.frames) * interval
        noise = NOISE_HU[Modality.CTP] if options.noise_hu is None else options.noise_hu
        series = ctp_series(
            scene,
            draws.tissues,
            draws.physiology,
            draws.occlusion,
            draws.curves,
            times,
            noise * draws.noise_scale,
            draws.noise[Modality.CTP],
            options.arterial_partial_volume,
        )
        images[Modality.CTP] = (series, affine, interval)
    return images


def _ncct_images(draws: _Draws, wanted: set[Modality]) -> Images:
    """Return NCCT and BRAIN_MASK."""
    grid = draws.config.ncct
    scene, affine = draws.scene(grid), grid_affine(grid)
    image = ncct(
        scene, draws.tissues, NOISE_HU[Modality.NCCT] * draws.noise_scale, draws.noise[Modality.NCCT]
    )
    return {
        Modality.NCCT: (image, affine, None),
        Modality.BRAIN_MASK: (scene.brain.astype(np.uint8), affine, None),
    }


_GROUPS = ((ANGIO, _angio_images), (PERFUSION, _perfusion_images), (NCCT_GROUP, _ncct_images))


def generate_patient(seed: int, index: int, config: PhantomConfig) -> PatientPhantom:
    """Return phantom patient ``index`` of cohort ``seed``: every configured modality and its labels."""
    rng, noise = _streams(seed, index)
    if config.preset == "digital":
        return _digital_patient(seed, index, config, rng, noise[Modality.CTP])
    location, side = draw_site_and_side(rng, config)
    site = int(rng.integers(config.sites))
    pose = Pose.draw(rng)
    tissues = Tissues.draw(rng)
    physiology = Physiology.draw(rng)
    tree = vessel_tree(rng)
    occlusion = draw_occlusion(rng, tree, location, side)
    mtici = draw_mtici(rng, occlusion)
    clinical = draw_clinical(rng, _hypoperfused_ml(pose, physiology, occlusion))
    draws = _Draws(
        config,
        pose,
        tissues,
        physiology,
        occlusion,
        vessel_pieces(tree, occlusion),
        TissueCurves(
            physiology, config.frames * config.frame_interval, config.ctp.residue, config.ctp.dispersion
        ),
        noise,
        SITE_NOISE[site % len(SITE_NOISE)],
    )
    wanted = set(config.modalities)
    images: Images = {}
    for group, make in _GROUPS:
        if wanted & group:
            images.update(make(draws, wanted))
    images = {modality: images[modality] for modality in Modality if modality in wanted}
    manifest = PatientManifest(
        patient_id=patient_id(index),
        site=f"site{site}",
        images={modality: f"{modality.value.lower()}.nii.gz" for modality in images},
        labels=Labels(occlusion_location=location, occlusion_side=side, mtici=mtici),
        clinical=clinical,
        provenance=Provenance(
            source="strokebench phantom",
            original_ids={"seed": str(seed), "index": str(index)},
            tool_version=__version__,
        ),
    )
    return PatientPhantom(manifest, images, pose, tree, occlusion)


def _digital_patient(
    seed: int, index: int, config: PhantomConfig, layout: np.random.Generator, rng: np.random.Generator
) -> PatientPhantom:
    """Return digital phantom patient ``index``: the same blocks in an order ``layout`` draws, its own
    noise from ``rng``."""
    options = config.ctp
    phantom = digital_phantom(
        frames=config.frames,
        interval=config.frame_interval,
        delays=tuple(delay + options.bolus_delay for delay in options.delays),
        noise_hu=DIGITAL_NOISE_HU if options.noise_hu is None else options.noise_hu,
        residue=options.residue,
        dispersion=options.dispersion,
        arterial_partial_volume=options.arterial_partial_volume,
        rng=rng,
        shuffle=layout,
    )
    affine = grid_affine(Grid(shape=phantom.cbf.shape, spacing=DIGITAL_SPACING))
    maps = {
        Modality.CTP: (phantom.ctp, affine, config.frame_interval),
        Modality.CBF: (phantom.cbf, affine, None),
        Modality.CBV: (phantom.cbv, affine, None),
        Modality.MTT: (phantom.mtt, affine, None),
        Modality.TMAX: (phantom.tmax, affine, None),
    }
    images: Images = {modality: maps[modality] for modality in Modality if modality in config.modalities}
    manifest = PatientManifest(
        patient_id=patient_id(index),
        site="digital",
        images={modality: f"{modality.value.lower()}.nii.gz" for modality in images},
        provenance=Provenance(
            source="strokebench digital phantom",
            original_ids={"seed": str(seed), "index": str(index)},
            tool_version=__version__,
        ),
    )
    return PatientPhantom(manifest, images, None, {}, None)


def write_patient(root: Path, phantom: PatientPhantom) -> Path:
    """Write a phantom's images and manifest into ``root/<patient_id>/`` (each file atomically)."""
    folder = root / phantom.manifest.patient_id
    folder.mkdir(parents=True, exist_ok=True)
    for modality, (data, affine, time_step) in phantom.images.items():
        write_nifti(folder / phantom.manifest.images[modality], data, affine, time_step)
    atomic_write_text(folder / PATIENT_MANIFEST, phantom.manifest.model_dump_json(indent=2) + "\n")
    return folder


@dataclass(frozen=True)
class _Job:
    root: Path
    seed: int
    index: int
    config: PhantomConfig

    @property
    def label(self) -> str:
        """Return the patient's id: the name of this job on a cluster."""
        return patient_id(self.index)


def _generate_and_write(job: _Job) -> str:
    write_patient(job.root, generate_patient(job.seed, job.index, job.config))
    return patient_id(job.index)


def dataset_card(seed: int, n_patients: int, config: PhantomConfig) -> DatasetCard:
    """Return the dataset card of a phantom cohort."""
    mix = ", ".join(f"{site} {weight:g}" for site, weight in config.occlusion_mix.items())
    return DatasetCard(
        name="strokebench-phantoms",
        version=__version__,
        description=(
            f"{n_patients} synthetic stroke phantoms, preset {config.preset}, seed {seed}, occlusion mix "
            f"{mix}; generated by strokebench (docs/phantoms.md). No patient data."
        ),
        license="CC0-1.0",
        modalities=[modality for modality in Modality if modality in config.modalities],
        atlas_regions=list(DEFAULT_ATLAS_REGIONS),
    )


def generate_dataset(
    out: str | Path,
    n_patients: int,
    config: PhantomConfig,
    *,
    seed: int = 0,
    jobs: int | None = None,
    executor: Executor | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Write a canonical dataset of ``n_patients`` phantoms into ``out`` (new or empty) and return it."""
    root = Path(out)
    check_output_folder(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise PhantomOutputError(f"{root} exists and is not an empty folder; choose a new output folder")
    if n_patients < 1:
        raise PhantomOutputError(f"asked for {n_patients} patients; give at least 1")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        root / DATASET_CARD, dataset_card(seed, n_patients, config).model_dump_json(indent=2) + "\n"
    )
    jobs_list = [_Job(root, seed, index, config) for index in range(n_patients)]
    with executor_for(jobs, executor) as runner:
        for _ in map_reporting(runner, _generate_and_write, jobs_list, "phantoms", progress):
            pass
    return root
