"""What preprocessing costs beside registration (issue 16), and loading throughput, for one or two source
trees side by side in one run.

Generates (once, cached in benchmarks/data/preprocess) realistic phantoms with every modality: CTA,
MCTA1-3, SPIRAL, ATLAS and CLOT of 512x512x200, CTP 512x512x27 x 30 frames and its maps, NCCT 512x512x32;
and (in benchmarks/data/tiny100) 100 tiny ones. For each tree, in a new process with the tree first on
the path:
  1. loads itk-elastix once (a worker pays it once; printed apart);
  2. runs every pipeline with one job into a fresh folder, timing each part as it runs (the functions
     are wrapped, not changed): ``register`` (elastix, with its image conversions), building the phantom
     template, skull stripping, resampling, the rest; and, for the same patients, reading the images the
     pipeline reads and writing the images it wrote (``write_nifti``): the I/O floor. Per patient,
     the first patient apart (its worker builds the templates) and the mean of the later ones;
  3. times ``strokedata preprocess TINY -p occlusion --jobs 2`` on the 100 tiny phantoms as a command
     (new processes, pool start and itk import included);
  4. (``--loading``) loads each preprocessed dataset through TorchIO and through nibabel + numpy.

Run (before = the tree before issue 16):
    git worktree add /tmp/before16 da2cce1
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000 \
        python benchmarks/preprocess.py --tree /tmp/before16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
PARTS = ("register", "template", "skull strip", "resample")


def _wrap(module: Any, name: str, part: str, spent: dict[str, float]) -> None:
    """Replace ``module.name`` by a function that adds its seconds to ``spent[part]``."""
    original = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[part] += time.perf_counter() - began

    setattr(module, name, timed)


def _io_seconds(root: Path, out: Path, pipeline: Any, scratch: Path) -> list[float]:
    """Return, per patient, the seconds to read the images ``pipeline`` reads (as preprocess reads them)
    and to write the images it wrote into ``out`` (``write_nifti``, .nii.gz): its I/O floor."""
    from strokedata import load_dataset
    from strokedata.io import write_nifti
    from strokedata.subjects import patient_subject

    scratch.mkdir(parents=True, exist_ok=True)
    written = {manifest.patient_id: manifest for manifest in load_dataset(out)}
    seconds = []
    for manifest in load_dataset(root):
        began = time.perf_counter()
        patient_subject(root, manifest, sorted(pipeline.reads & set(manifest.images))).load()
        reading = time.perf_counter() - began
        outputs = patient_subject(
            out, written[manifest.patient_id], sorted(written[manifest.patient_id].images)
        )
        outputs.load()
        began = time.perf_counter()
        for key, image in outputs.get_images_dict(intensity_only=False).items():
            data = image.numpy()
            array = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
            write_nifti(scratch / f"{key}.nii.gz", array, image.affine)
        seconds.append(reading + time.perf_counter() - began)
    return seconds


def child(root: Path, pipelines: list[str]) -> dict[str, Any]:
    """Return the timings of every pipeline on ``root`` for the tree on the path (see the docstring)."""
    began = time.perf_counter()
    import itk

    itk.ElastixRegistrationMethod  # noqa: B018 - itk loads lazily: this pays the one-off cost
    found: dict[str, Any] = {"itk_s": time.perf_counter() - began, "pipelines": {}}
    import strokedata.transforms.masks as masks
    import strokedata.transforms.registration as registration
    from strokedata.preprocess import PIPELINES, preprocess_dataset

    spent: dict[str, float] = defaultdict(float)
    _wrap(registration, "register", "register", spent)
    _wrap(registration, "phantom_template", "template", spent)
    _wrap(registration, "resample", "resample", spent)
    _wrap(masks, "skull_strip_mask", "skull strip", spent)
    scratch = Path(tempfile.mkdtemp(prefix="preprocess-benchmark-"))
    try:
        for name in pipelines:
            per_patient: list[dict[str, float]] = []

            def progress(phase: str, done: int, total: int, sink: list[Any] = per_patient) -> None:
                if phase == "preprocess":  # one patient done: its parts so far
                    sink.append(dict(spent))
                    spent.clear()

            spent.clear()
            report = preprocess_dataset(root, name, scratch / name, jobs=1, progress=progress)
            if not report.ok:
                raise SystemExit(f"{name} failed: {report.failed}")
            totals = [outcome.seconds for outcome in report.outcomes]  # in the patients' order
            io = _io_seconds(root, scratch / name, PIPELINES[name], scratch / "io")
            found["pipelines"][name] = {"total": totals, "parts": per_patient, "io": io}
            shutil.rmtree(scratch / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return found


def _tiny_command(tree: Path, tiny: Path) -> float:
    """Return the wall seconds of ``strokedata preprocess TINY -p occlusion --jobs 2`` from ``tree``."""
    from common import run

    out = Path(tempfile.mkdtemp(prefix="tiny-occlusion-")) / "out"
    began = time.perf_counter()
    result = run(tree, "strokedata", "preprocess", tiny, "-p", "occlusion", "--out", out, "--jobs", "2")
    seconds = time.perf_counter() - began
    shutil.rmtree(out.parent)
    if result["code"] != 0:
        raise SystemExit(f"{tree}: the tiny cohort failed: {result['err']}")
    return seconds


def _run_tree(tree: Path, root: Path, tiny: Path, pipelines: list[str]) -> dict[str, Any]:
    code = (
        f"import sys; sys.path.insert(0, {str(tree)!r}); sys.path.insert(1, {str(ROOT / 'benchmarks')!r});"
        "import json, preprocess; from pathlib import Path;"
        f"print(json.dumps(preprocess.child(Path({str(root)!r}), {pipelines!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tree)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr.strip().splitlines()[-1:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["tiny_s"] = _tiny_command(tree, tiny)
    return found


def _row(label: str, name: str, figures: dict[str, Any]) -> str:
    """Return a table row: one pipeline on one tree, per patient, first and later patients."""
    totals, parts, io = figures["total"], figures["parts"], figures["io"]
    later = slice(1, None) if len(totals) > 1 else slice(None)
    mean = statistics.fmean
    cells = [mean(totals[later])]
    cells += [mean(p.get(part, 0.0) for p in parts[later]) for part in PARTS]
    rest = cells[0] - sum(cells[1:])
    register = cells[1]
    ratio = f"{cells[0] / register:.2f}x" if register > 0.5 else ""
    io_ratio = f"{cells[0] / mean(io[later]):.2f}x"
    return (
        f"| {name} | {label} | {totals[0]:.1f} | {cells[0]:.1f} | "
        + " | ".join(f"{value:.1f}" for value in cells[1:])
        + f" | {rest:.1f} | {ratio} | {mean(io[later]):.1f} | {io_ratio} |"
    )


def main() -> None:
    """Build the datasets if needed, time each tree, print the tables."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--patients", type=int, default=3)
    parser.add_argument("--pipelines", nargs="*")
    parser.add_argument("--tree", type=Path, help="a second source tree to time beside this one (before)")
    parser.add_argument("--loading", action="store_true", help="also time loading (TorchIO vs nibabel)")
    arguments = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from common import cached_dataset

    from strokedata.phantoms import preset
    from strokedata.preprocess import PIPELINES

    root = cached_dataset(DATA / "preprocess", arguments.patients, preset("realistic"))
    tiny = cached_dataset(DATA / "tiny100", 100, preset("tiny"))
    pipelines = arguments.pipelines or sorted(PIPELINES)
    trees = [("before", arguments.tree.resolve())] if arguments.tree else []
    trees.append(("after", ROOT))
    results = {label: _run_tree(tree, root, tiny, pipelines) for label, tree in trees}
    print(f"{arguments.patients} realistic phantom patients, one job; seconds per patient (later: the mean")
    print("after the first, whose worker builds the templates); ratio: per patient over register(), and")
    print("over reading the images the pipeline reads and writing those it writes (I/O)")
    print()
    print(
        "| pipeline | tree | first patient | later patients | register | template | skull strip | "
        "resample | rest | / register | I/O | / I/O |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in pipelines:
        for label, _ in trees:
            print(_row(label, name, results[label]["pipelines"][name]))
    print()
    for label, _ in trees:
        print(
            f"- {label}: importing itk-elastix {results[label]['itk_s']:.1f} s; 100 tiny phantoms, "
            f"occlusion, --jobs 2 (the command): {results[label]['tiny_s']:.1f} s"
        )
    if arguments.loading:
        _loading(root, pipelines)


def _loading(root: Path, pipelines: list[str]) -> None:
    """Print subjects per second loading each preprocessed dataset through TorchIO and nibabel."""
    import nibabel as nib
    import numpy as np
    from common import median_seconds

    from strokedata import load_dataset
    from strokedata.preprocess import PIPELINES, preprocess_dataset
    from strokedata.subjects import subjects_dataset

    def with_torchio(out: Path, name: str) -> None:
        dataset = subjects_dataset(out, transform=PIPELINES[name].loading())
        for index in range(len(dataset)):
            for image in dataset[index].get_images(intensity_only=False):
                image.data  # noqa: B018 - touching the data is the point

    def with_nibabel(out: Path) -> None:
        for manifest in load_dataset(out):
            for relative in manifest.images.values():
                image = nib.load(out / manifest.patient_id / relative, mmap=False)
                np.asarray(image.dataobj, dtype=np.float32)

    print("\n| pipeline | loading TorchIO | nibabel + numpy | ratio |\n|---|---|---|---|")
    scratch = Path(tempfile.mkdtemp(prefix="preprocess-loading-"))
    try:
        for name in pipelines:
            out = scratch / name
            preprocess_dataset(root, name, out, jobs=os.cpu_count() or 1)
            n = len(load_dataset(out))
            torchio_s = median_seconds(lambda out=out, name=name: with_torchio(out, name), 3)
            nibabel_s = median_seconds(lambda out=out: with_nibabel(out), 3)
            print(
                f"| {name} | {n / torchio_s:.2f} subjects/s | {n / nibabel_s:.2f} subjects/s | "
                f"{nibabel_s / torchio_s:.2f}x |"
            )
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
