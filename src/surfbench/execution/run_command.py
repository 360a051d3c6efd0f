"""Helpers of ``surfbench run`` for its execution options (kept out of cli.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from surfbench.execution.executors import Executor

SPLITS = {"all": None, "train": {"train"}, "test": {"test"}}


def cached_dataset(name: str, data_dir: Path | None, split: str, fail: Callable[[str], None], console):
    """The data set (from the data set cache when its inputs are unchanged), its slabs
    restricted to ``split``; bad input ends the command through ``fail``."""
    from surfbench.data.errors import DataError
    from surfbench.execution.dataset_cache import load_dataset_cached

    if split not in SPLITS:
        fail(f"--split must be one of {', '.join(SPLITS)}")
    try:
        with console.status(f"loading data set {name}"):
            ds = load_dataset_cached(name, data_dir)
    except DataError as exc:
        fail(str(exc))
    return ds.select(splits=SPLITS[split])


def executor_for(workers: int | None, scheduler: str | None, threads: int | None, timeout: float | None,
                 fail: Callable[[str], None]) -> Executor:
    """The executor of ``--workers/--scheduler/--threads/--timeout``."""
    from surfbench.execution.executors import InProcessExecutor, LazyExecutor, make_executor

    if timeout is not None and not timeout > 0:
        fail(f"--timeout must be a positive number of seconds, got {timeout}")
    if workers is not None and workers < 1:
        fail(f"--workers must be at least 1, got {workers}")
    if workers is None and scheduler is None:
        return InProcessExecutor(threads=threads, timeout_s=timeout)
    return LazyExecutor(lambda: make_executor(workers, scheduler, threads=threads, timeout_s=timeout))
