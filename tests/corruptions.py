"""One corruption per finding code: each turns the clean test dataset into one with exactly that problem."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from tests.builders import edit_json, save

P = "p001"  # the patient most corruptions touch: an M1 occlusion on the right, mTICI "1"


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (data, affine) of a NIfTI image, data in its stored type."""
    image = nib.load(path)
    return np.asarray(image.dataobj), image.affine


def rewrite(root: Path, modality_file: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replace ``p001/<modality_file>`` by ``change(data)`` with the same affine."""
    path = root / P / modality_file
    data, affine = load(path)
    save(path, change(data.copy()), affine)


def patch_header(path: Path, **fields: Any) -> None:
    """Set raw NIfTI header fields in place, bypassing nibabel's consistency fixes on save."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw), check=False)
    for name, value in fields.items():
        header[name] = value
    patched = header.binaryblock + raw[len(header.binaryblock) :]
    path.write_bytes(gzip.compress(patched) if path.suffix == ".gz" else patched)


def _set(index: tuple[int, ...], value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(data: np.ndarray) -> np.ndarray:
        data[index] = value
        return data

    return change


def _first_clot_voxel(root: Path) -> tuple[int, ...]:
    clot, _ = load(root / P / "clot.nii.gz")
    return tuple(int(i) for i in np.argwhere(clot == 1)[0])


def _manifest(root: Path) -> Path:
    return root / P / "patient.json"


def _remove_modality(root: Path, modality: str) -> None:
    manifest = json.loads(_manifest(root).read_text())
    (root / P / manifest["images"].pop(modality)).unlink()
    _manifest(root).write_text(json.dumps(manifest))


def _duplicate_id(root: Path) -> None:
    (root / "p002").rename(root / "P001")
    edit_json(root / "P001" / "patient.json", {"patient_id": "P001"})


def _empty(root: Path) -> None:
    for folder in root.iterdir():
        if folder.is_dir():
            shutil.rmtree(folder)


def _link_outside(root: Path) -> None:
    outside = root.parent / "outside.nii.gz"
    shutil.copy(root / P / "cbf.nii.gz", outside)
    (root / P / "cbf.nii.gz").unlink()
    (root / P / "cbf.nii.gz").symlink_to(outside)


def _truncate(root: Path) -> None:
    path = root / P / "cbf.nii.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncate_uncompressed(root: Path) -> None:
    raw = gzip.decompress((root / P / "ctp.nii.gz").read_bytes())
    (root / P / "ctp.nii.gz").unlink()
    (root / P / "ctp.nii").write_bytes(raw[: len(raw) - 100])
    edit_json(_manifest(root), {"images.CTP": "ctp.nii"})


def _shift_cbv(root: Path) -> None:
    data, affine = load(root / P / "cbv.nii.gz")
    affine[0, 3] += 1.5
    save(root / P / "cbv.nii.gz", data, affine)


def _ambiguous_pair(root: Path) -> None:
    (root / P / "cbf.nii").write_bytes(gzip.decompress((root / P / "cbf.nii.gz").read_bytes()))


def _empty_clot(root: Path) -> None:
    rewrite(root, "clot.nii.gz", lambda data: np.zeros_like(data))
    edit_json(_manifest(root), {"labels.regions": None})


def _flip_region(root: Path) -> None:
    regions = json.loads(_manifest(root).read_text())["labels"]["regions"]
    regions[14] = 1 - regions[14]
    edit_json(_manifest(root), {"labels.regions": regions})


def _restrict_card(root: Path, field: str, remove: str) -> None:
    card = json.loads((root / "dataset.json").read_text())
    card["labels"][field].remove(remove)
    (root / "dataset.json").write_text(json.dumps(card))


def _drop_card_modality(root: Path) -> None:
    card = json.loads((root / "dataset.json").read_text())
    card["modalities"].remove("TMAX")
    (root / "dataset.json").write_text(json.dumps(card))


def _split(root: Path) -> Path:
    """Write a valid split of the test dataset next to it and return its path (validate picks it up)."""
    from strokedata.splits import make_split, write_split

    split, _ = make_split(root, ["mtici"], test_size=0.25, folds=3, seed=0, jobs=1)
    path = root.parent / "split.json"
    write_split(split, path)
    return path


def _edit_split(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Write a split, change its JSON, and re-sign its membership hash (as a hand edit would)."""
    from strokedata.splits.model import membership_hash

    path = _split(root)
    content = json.loads(path.read_text())
    change(content)
    partitions = {"test": content["test"], "excluded": content["excluded"]}
    partitions.update({f"fold{i}": fold["val"] for i, fold in enumerate(content["folds"])})
    content["membership_hash"] = membership_hash(partitions)
    path.write_text(json.dumps(content))


def _drop_everywhere(content: dict[str, Any]) -> None:
    victim = content["folds"][0]["val"].pop()
    for fold in content["folds"][1:]:
        fold["train"].remove(victim)


def _append_data(root: Path, size: int = 2 * 2**20) -> None:
    """Append ``size`` zero bytes after the voxel data of p001's CBF (inside its gzip stream)."""
    path = root / P / "cbf.nii.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + bytes(size), compresslevel=1))


def _not_a_file(make: Callable[[Path], None]) -> Callable[[Path], None]:
    """Return a corruption replacing p001's CBF by what ``make`` creates at its path."""

    def corrupt(root: Path) -> None:
        path = root / P / "cbf.nii.gz"
        path.unlink()
        make(path)

    return corrupt


def _character_device(path: Path) -> None:
    """Create a copy of /dev/null at ``path`` (root only), or a FIFO where devices cannot be made."""
    import stat

    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        os.mkfifo(path)


def _restore_stored(root: Path, source: str, target: str, change: Callable[[Path, Path], None]) -> None:
    """Replace ``target`` (in p001) by ``change(source image of p000, target path)``."""
    (root / P / target).unlink()
    change(root / "p000" / source, root / P / target)


def big_endian(source: Path, target: Path) -> None:
    """Write the image at ``source`` to ``target`` stored big-endian, values unchanged."""
    data, affine = load(source)
    header = nib.Nifti1Header(endianness=">")
    image = nib.Nifti1Image(data.astype(data.dtype.newbyteorder(">")), affine, header)
    image.header.set_sform(affine, code=1)
    image.header.set_qform(affine, code=1)
    nib.save(image, target)
    assert nib.load(target).header.endianness == ">"


def _as_float64(source: Path, target: Path) -> None:
    data, affine = load(source)
    save(target, data.astype(np.float64), affine)


def _scaled_by_half(source: Path, target: Path) -> None:
    data, affine = load(source)
    image = nib.Nifti1Image((data.astype(np.float32) * 2).astype(np.float32), affine)
    image.header.set_sform(affine, code=1)
    image.header.set_qform(affine, code=1)
    image.header.set_slope_inter(0.5, 0.0)
    nib.save(image, target)


def _nested_json(path: Path) -> None:
    path.write_text('{"name": ' + "[" * 10_000 + "]" * 10_000 + "}")


def _clinical_text(root: Path, value: str) -> None:
    manifest = _manifest(root)
    manifest.write_text(manifest.read_text().replace('"age": 51', f'"age": {value}'))
    assert value in manifest.read_text()


def _shift_qform(root: Path) -> None:
    for name in ("ncct.nii.gz", "brain_mask.nii.gz"):
        patch_header(root / P / name, qoffset_x=1.0)


def _shear_sform(root: Path) -> None:
    for name in ("ncct.nii.gz", "brain_mask.nii.gz"):
        patch_header(root / P / name, srow_x=[0.5, 0.2, 0.0, -4.0])


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "M001": lambda root: (root / "dataset.json").unlink(),
    "M002": lambda root: _manifest(root).write_text('{"patient_id": "p001",\n  "images": {,}\n}'),
    "M003": lambda root: edit_json(_manifest(root), {"colour": "blue"}),
    "M004": lambda root: edit_json(_manifest(root), {"patient_id": "p999"}),
    "M005": _duplicate_id,
    "M006": lambda root: _manifest(root).unlink(),
    "M007": lambda root: _remove_modality(root, "CTP"),
    "M008": _drop_card_modality,
    "M009": _empty,
    "M010": lambda root: shutil.copytree(root / P, root / ".p001-backup"),
    "F001": lambda root: (root / P / "cbf.nii.gz").unlink(),
    "F002": lambda root: (root / P / "cbf.nii.gz").write_bytes(b"this is not an image" * 30),
    "F003": _truncate,
    "F004": lambda root: shutil.copy(root / P / "cbf.nii.gz", root / P / "old_cbf.nii.gz"),
    "F005": _link_outside,
    "F006": _ambiguous_pair,
    "F007": _append_data,
    "F008": _not_a_file(lambda path: path.mkdir()),
    "F009": lambda root: (root / P).chmod(0),  # run by tests that drop root's privileges
    "G001": lambda root: rewrite(root, "cbf.nii.gz", lambda data: np.stack([data, data], axis=-1)),
    "G002": lambda root: rewrite(root, "cbv.nii.gz", lambda data: data[:, :, :-1]),
    "G003": _shift_cbv,
    "G004": lambda root: patch_header(root / P / "cbf.nii.gz", pixdim=[1.0, 1.0, 0.0, 2.0, 1, 1, 1, 1]),
    "G005": lambda root: patch_header(root / P / "cbf.nii.gz", srow_x=[0.0, 0.0, 0.0, -6.0]),
    "G006": lambda root: patch_header(root / P / "cbf.nii.gz", dim=[3, 30000, 30000, 30000, 1, 1, 1, 1]),
    "G007": lambda root: patch_header(root / P / "ncct.nii.gz", scl_slope=0.0, scl_inter=5000.0),
    "V001": lambda root: rewrite(root, "cbf.nii.gz", _set((1, 1, 1), np.nan)),
    "V002": lambda root: rewrite(root, "cta.nii.gz", _set((5, 5, 5), 5000)),
    "V003": lambda root: rewrite(root, "spiral.nii.gz", _set((5, 5, 5), 1.5)),
    "V004": lambda root: rewrite(root, "atlas.nii.gz", _set((0, 0, 0), 15)),
    "V005": lambda root: rewrite(root, "clot.nii.gz", _set(_first_clot_voxel(root), 3)),
    "V006": lambda root: rewrite(root, "core.nii.gz", _set((2, 2, 2), 2)),
    "V007": lambda root: rewrite(root, "cbf.nii.gz", _set((2, 2, 2), -5.0)),
    "V008": lambda root: rewrite(root, "cbf.nii.gz", _set((2, 2, 2), 5000.0)),
    "V009": lambda root: rewrite(root, "ncct.nii.gz", np.zeros_like),
    "L001": lambda root: edit_json(_manifest(root), {"labels.occlusion_side": None}),
    "L002": lambda root: edit_json(_manifest(root), {"labels.mtici": "2d"}),
    "L003": _empty_clot,
    "L004": _flip_region,
    "K001": lambda root: shutil.copy(root / "p000" / "cbf.nii.gz", root / P / "cbf.nii.gz"),
    "S001": lambda root: _edit_split(root, lambda c: c["test"].append("p999")),
    "S002": lambda root: _edit_split(root, lambda c: c["test"].append(c["folds"][0]["val"][0])),
    "S003": lambda root: _edit_split(root, _drop_everywhere),
    "S004": lambda root: (_split(root), edit_json(root / P / "patient.json", {"clinical.nihss": 7})),
    "S005": lambda root: (root.parent / "split.json").write_text('{"schema_version": 1'),
    "S006": lambda root: _edit_split(root, lambda c: c["folds"][0]["train"].pop()),
}
"""Finding code -> a function that injects exactly that problem into the clean dataset."""

VARIANTS: dict[str, list[Callable[[Path], None]]] = {
    "M002": [
        lambda root: (root / "dataset.json").write_text('{"name": "x"'),
        lambda root: _manifest(root).write_text('{"patient_id": "p001", "patient_id": "p001"}'),
        lambda root: _nested_json(_manifest(root)),
        lambda root: _nested_json(root / "dataset.json"),
        lambda root: _clinical_text(root, "Infinity"),
        lambda root: _clinical_text(root, "1e400"),
    ],
    "M003": [
        lambda root: edit_json(root / "dataset.json", {"atlas_regions": ["a"] * 15}),
        lambda root: edit_json(_manifest(root), {"clinical.age": 400}),
        lambda root: edit_json(_manifest(root), {"images.CBF": "cbf\u0000.nii.gz"}),
        lambda root: edit_json(_manifest(root), {"images.CBF": "cbf\n.nii.gz"}),
        lambda root: edit_json(root / "dataset.json", {"linked_sources": ["source\u0000"]}),
        lambda root: edit_json(root / "dataset.json", {"linked_sources": ["/"]}),
        lambda root: edit_json(root / "dataset.json", {"linked_sources": [".."]}),
    ],
    "F002": [
        lambda root: (root / P / "cbf.nii.gz").write_bytes(
            (root / P / "cbf.nii.gz").read_bytes()[:-8] + b"\x00" * 8
        ),
        *(
            (lambda root, offset=offset: patch_header(root / P / "cbf.nii.gz", vox_offset=offset))
            for offset in (float("nan"), float("inf"), -352.0, 100.0, 352.5, 2.0**40)
        ),
    ],
    "F008": [_not_a_file(os.mkfifo), _not_a_file(_character_device)],
    "G007": [_shift_qform, _shear_sform],
    "K001": [
        lambda root: _restore_stored(root, "cbf.nii.gz", "cbf.nii.gz", big_endian),
        lambda root: _restore_stored(root, "cbf.nii.gz", "cbf.nii.gz", _as_float64),
        lambda root: _restore_stored(root, "ncct.nii.gz", "ncct.nii.gz", _scaled_by_half),
    ],
    "F003": [_truncate_uncompressed],
    "F005": [
        lambda root: edit_json(_manifest(root), {"images.CBF": "../p000/cbf.nii.gz"}),
        lambda root: edit_json(_manifest(root), {"images.CBF": "/etc/cbf.nii.gz"}),
    ],
    "L002": [
        lambda root: edit_json(_manifest(root), {"labels.mtici": 3}),
        lambda root: _restrict_card(root, "mtici", "1"),
    ],
}
"""Further ways to cause the same code: each must also yield exactly that code."""
