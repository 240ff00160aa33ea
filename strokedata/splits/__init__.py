"""Reproducible stratified, grouped and multi-label splits (``strokedata split``)."""

from strokedata.splits.make import STRATIFY_KEYS, extend_split, make_split, split_csv, write_split
from strokedata.splits.model import (
    Fold,
    SplitError,
    SplitFile,
    SplitParameters,
    SplitReport,
    dataset_hash,
    partition_members,
    read_split,
    select_partition,
)

__all__ = [
    "STRATIFY_KEYS",
    "Fold",
    "SplitError",
    "SplitFile",
    "SplitParameters",
    "SplitReport",
    "dataset_hash",
    "extend_split",
    "make_split",
    "partition_members",
    "read_split",
    "select_partition",
    "split_csv",
    "write_split",
]
