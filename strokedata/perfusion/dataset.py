"""``perfusion_dataset``: every patient's CTP -> maps, written as a new canonical dataset."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from strokedata.executor import Executor, Progress
from strokedata.preprocess import PreprocessReport, preprocess_dataset

PIPELINE = "perfusion"


def perfusion_dataset(
    root: str | Path,
    out: str | Path,
    *,
    parameters: Mapping[str, Any] | None = None,
    compress: bool = True,
    jobs: int | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> PreprocessReport:
    """Return the report of computing CBF, CBV, MTT, TMAX and TTP from the CTP of every patient of the
    dataset at ``root`` into a new dataset at ``out`` (with CORE where the patient has it).

    ``parameters`` override ``PerfusionSettings``' defaults (method, thresholds, constants, smoothing,
    AIF). It is the ``perfusion`` preprocessing pipeline: each patient folder is written atomically, a
    rerun skips patients whose inputs and parameters are unchanged, a patient without a CTP or whose
    CTP cannot give maps fails alone with the reason, and the input is only read.
    """
    return preprocess_dataset(
        root,
        PIPELINE,
        out,
        parameters=parameters,
        compress=compress,
        jobs=jobs,
        executor=executor,
        progress=progress,
    )
