"""The hostile inputs of issue 12, each run through the command it broke, on one source tree: the exit
status, the line of output that matters, the peak memory of the command and what happened to the files.

    python benchmarks/hostile.py                      # this checkout
    git worktree add /tmp/before e1c6e11 && python benchmarks/hostile.py --tree /tmp/before

Each case runs in a new process as `strokedata` or `strokebench` with the tree first on the path, from a
small wrapper that reads the command's peak resident memory (ru_maxrss of its child). The inputs are
built by the current checkout (tests/builders.py, tests/hostile.py), in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import run  # noqa: E402

from strokedata.io import nifti_bytes, read_volume  # noqa: E402
from tests.builders import build_dataset, edit_json  # noqa: E402
from tests.corruptions import big_endian, patch_header  # noqa: E402
from tests.hostile import write_gzip_bomb  # noqa: E402

BOMB = 2 << 30  # 2 GiB of zeros after the declared data


def _bomb(path: Path) -> None:
    """Replace the NIfTI at ``path`` by a .nii.gz with its header and voxels, then 2 GiB of zeros."""
    volume = read_volume(path, 10**8)
    path.unlink()
    write_gzip_bomb(
        path.with_name(path.name.removesuffix(".gz").removesuffix(".nii") + ".nii.gz"),
        nifti_bytes(volume.data, volume.header.affine),
        BOMB,
    )


def _line(result: dict[str, object], *needles: str) -> str:
    """Return the first output line holding one of ``needles`` (else the last error line), shortened."""
    lines = [*str(result["out"]).splitlines(), *str(result["err"]).splitlines()]
    found = next((line for line in lines for needle in needles if needle in line), None)
    if found is None:
        found = next((line for line in reversed(lines) if line.strip()), "")
    return found if len(found) <= 150 else found[:147] + "..."


Case = Callable[[Path, Path], tuple[dict[str, object], str]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(function: Case) -> Case:
        CASES[name] = function
        return function

    return register


def _data(work: Path, patients: int = 4) -> Path:
    return build_dataset(work / "data", patients)


@case("1 validate --json onto a character device (copy of /dev/null)")
def _device(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    device = work / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    result = run(tree, "strokedata", "validate", _data(work), "-j", "1", "--json", device)
    kind = (
        "still a character device" if stat.S_ISCHR(os.lstat(device).st_mode) else "REPLACED by a regular file"
    )
    return result, f"{_line(result, 'error', 'VALID')} | the device: {kind}"


@case("1 validate --json into /proc")
def _proc(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    result = run(tree, "strokedata", "validate", _data(work), "-j", "1", "--json", "/proc/report.json")
    traceback = "traceback" if "Traceback" in str(result["err"]) else "no traceback"
    return result, f"{_line(result, 'error:', 'Error')} | {traceback}"


@case("1 table --out onto an existing folder")
def _table_folder(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    (work / "t.csv").mkdir()
    result = run(tree, "strokedata", "table", _data(work), "-j", "1", "--out", work / "t.csv")
    return result, _line(result, "error:", "Error")


@case("2 validate a 2 GiB gzip bomb (MCTA1 of p001, 5 MB on disk)")
def _bomb_validate(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    _bomb(data / "p001" / "mcta1.nii.gz")
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "F007", "VALID")


@case("2 preprocess (clot-regions) with the bomb")
def _bomb_preprocess(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    _bomb(data / "p001" / "mcta1.nii.gz")
    result = run(
        tree, "strokedata", "preprocess", data, "-p", "clot-regions", "--out", work / "out", "-j", "1"
    )
    return result, _line(result, "mcta1", "written")


@case("2 import table --copy with the bomb")
def _bomb_import(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work, 2)
    _bomb(data / "p001" / "mcta1.nii.gz")
    (work / "labels.csv").write_text("id\np000\np001\n")
    result = run(
        tree,
        "strokedata",
        "import",
        "table",
        work / "labels.csv",
        "--root",
        data,
        "--out",
        work / "out",
        "--copy",
        "--column",
        "MCTA1={id}/mcta1.nii.gz",
    )
    copied = work / "out" / "p001"
    size = sum(p.stat().st_size for p in copied.glob("*.nii*")) if copied.is_dir() else 0
    return result, f"{_line(result, 'F007', 'imported')} | p001 written: {size / 1e6:.1f} MB"


@case("2 score core masks, the predicted mask a bomb")
def _bomb_score(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    masks = work / "masks"
    masks.mkdir()
    rows = ["patient_id,mask"]
    for patient in ("p000", "p001", "p002", "p003"):
        shutil.copy(data / patient / "core.nii.gz", masks / f"{patient}.nii.gz")
        rows.append(f"{patient},masks/{patient}.nii.gz")
    _bomb(masks / "p001.nii.gz")
    (work / "masks.csv").write_text("\n".join(rows) + "\n")
    result = run(
        tree,
        "strokebench",
        "score",
        work / "masks.csv",
        "--task",
        "core",
        "--dataset",
        data,
        "--bootstrap",
        "0",
    )
    return result, _line(result, "p001", "Dice")


@case("3 vox_offset NaN")
def _offset(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    patch_header(data / "p001" / "cbf.nii.gz", vox_offset=float("nan"))
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "F002", "VALID", "Error")


@case("3 patient.json nested 10,000 levels deep")
def _nested(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    (data / "p001" / "patient.json").write_text('{"a": ' + "[" * 10_000 + "]" * 10_000 + "}")
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "M002", "RecursionError", "VALID")


@case("3 NUL in linked_sources")
def _nul(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    edit_json(data / "dataset.json", {"linked_sources": ["src\u0000"]})
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "M003", "ValueError", "VALID")


def _only_ctp(work: Path, ctp: Path) -> Path:
    """Return a one-patient dataset whose only image is a copy of ``ctp``."""
    data = _data(work, 1)
    for image in (data / "p000").glob("*.nii.gz"):
        image.unlink()
    shutil.copy(ctp, data / "p000" / "ctp.nii.gz")
    edit_json(data / "p000" / "patient.json", {"images": {"CTP": "ctp.nii.gz"}, "labels.regions": None})
    edit_json(data / "dataset.json", {"modalities": ["CTP"]})
    return data


@case("4 NIfTI-2 with two extensions (nibabel's example_nifti2.nii.gz) as the CTP")
def _nifti2(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    import nibabel as nib

    data = _only_ctp(work, Path(nib.__file__).parent / "tests" / "data" / "example_nifti2.nii.gz")
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "ctp.nii.gz", "VALID")


@case("4 NIfTI-1 with a 1000-byte comment extension as the CTP")
def _extension(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    import nibabel as nib
    import numpy as np

    image = nib.Nifti1Image(np.full((8, 8, 4, 3), 40, np.int16), np.eye(4))
    image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"x" * 1000))
    nib.save(image, work / "ctp.nii.gz")
    result = run(tree, "strokedata", "validate", _only_ctp(work, work / "ctp.nii.gz"), "-j", "1")
    return result, _line(result, "ctp.nii.gz", "VALID")


@case("4 big-endian CTP through preprocess (core)")
def _endian(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work, 2)
    source = work / "ctp.nii.gz"
    shutil.copy(data / "p000" / "ctp.nii.gz", source)
    big_endian(source, data / "p000" / "ctp.nii.gz")
    result = run(tree, "strokedata", "preprocess", data, "-p", "core", "--out", work / "out", "-j", "1")
    return result, _line(result, "p000", "written")


@case("4 scl_slope 0, scl_inter 5000 on NCCT")
def _slope(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    patch_header(data / "p001" / "ncct.nii.gz", scl_slope=0.0, scl_inter=5000.0)
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "G007", "VALID")


@case("4 another patient's CBF stored big-endian (leakage)")
def _leak(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    (data / "p001" / "cbf.nii.gz").unlink()
    big_endian(data / "p000" / "cbf.nii.gz", data / "p001" / "cbf.nii.gz")
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "K001", "VALID")


@case("5 table --out with formula cells")
def _formula(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    edit_json(data / "p001" / "patient.json", {"site": '=HYPERLINK("http://x")', "clinical.note": "+cmd"})
    result = run(tree, "strokedata", "table", data, "-j", "1", "--out", work / "t.csv")
    row = next(line for line in (work / "t.csv").read_text().splitlines() if line.startswith("p001"))
    return result, f"p001 row starts: {row[:40]}"


@case("5 image path with a newline, piped output")
def _newline(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    edit_json(data / "p001" / "patient.json", {"images.CBF": "cbf.nii.gz\nVALID: 4 patients, 60 images"})
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    forged = [line for line in str(result["out"]).splitlines() if line.startswith("VALID")]
    return (
        result,
        f"lines starting VALID: {len(forged)}; last line: {str(result['out']).splitlines()[-1][:60]}",
    )


@case("5 site holding ANSI escape codes, strokedata table")
def _ansi(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    edit_json(data / "p001" / "patient.json", {"site": "\x1b[31mred\x1b[0m"})
    result = run(tree, "strokedata", "table", data, "-j", "1")
    return result, "escape codes printed raw" if "\x1b" in str(
        result["out"]
    ) else "escape codes shown as text"


@case("6 hidden patient folder .p1")
def _hidden(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    shutil.copytree(data / "p001", data / ".p1")
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "M010", "VALID")


@case('6 linked_sources ["/"]')
def _root(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    edit_json(data / "dataset.json", {"linked_sources": ["/"]})
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "M003", "VALID")


@case("6 clinical age Infinity")
def _infinity(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    manifest = data / "p001" / "patient.json"
    manifest.write_text(manifest.read_text().replace('"age": 51', '"age": Infinity'))
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "M002", "VALID")


@case("6 score a 600 MB predictions CSV")
def _big_csv(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    with (work / "big.csv").open("w") as out:
        out.write("patient_id,prediction\n")
        line = "".join(f"x{i:08d},M1\n" for i in range(100_000))
        for _ in range(600 * 2**20 // len(line)):
            out.write(line)
    result = run(tree, "strokebench", "score", work / "big.csv", "--task", "occlusion", "--dataset", data)
    return result, _line(result, "error")


@case("6 a FIFO given as the CBF image")
def _fifo(tree: Path, work: Path) -> tuple[dict[str, object], str]:
    data = _data(work)
    (data / "p001" / "cbf.nii.gz").unlink()
    os.mkfifo(data / "p001" / "cbf.nii.gz")
    result = run(tree, "strokedata", "validate", data, "-j", "1")
    return result, _line(result, "cbf.nii.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="source tree to run (default: this one)")
    parser.add_argument("--only", help="run the cases whose name holds this text")
    arguments = parser.parse_args()
    print(f"tree {arguments.tree}\n")
    print("| case | exit | peak MB | what it said or did |\n| --- | --- | --- | --- |")
    for name, function in CASES.items():
        if arguments.only and arguments.only not in name:
            continue
        work = Path(tempfile.mkdtemp(prefix="hostile-"))
        try:
            result, said = function(arguments.tree.resolve(), work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        peak = int(result["peak"]) / 2**20  # type: ignore[call-overload]
        said = said.replace("|", "/").replace("\n", "\\n")
        print(f"| {name} | {result['code']} | {peak:.0f} | {said} |", flush=True)


if __name__ == "__main__":
    main()
