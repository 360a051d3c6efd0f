"""Helpers of ``surfbench run`` for its execution options (kept out of cli.py)."""

from __future__ import annotations

from collections.abc import Callable

from surfbench.execution.executors import Executor


def check_threads(threads: int | None, fail: Callable[[str], None]) -> None:
    """``--threads`` is a positive count (or not given: the packages' default)."""
    if threads is not None and threads < 1:
        fail(f"--threads must be at least 1, got {threads}")


def executor_for(workers: int | None, scheduler: str | None, threads: int | None, timeout: float | None,
                 fail: Callable[[str], None]) -> Executor:
    """The executor of ``--workers/--scheduler/--threads/--timeout``."""
    from surfbench.execution.executors import InProcessExecutor, LazyExecutor, make_executor

    if timeout is not None and not timeout > 0:
        fail(f"--timeout must be a positive number of seconds, got {timeout}")
    if workers is not None and workers < 1:
        fail(f"--workers must be at least 1, got {workers}")
    check_threads(threads, fail)
    if workers is None and scheduler is None:
        return InProcessExecutor(threads=threads, timeout_s=timeout)
    return LazyExecutor(lambda: make_executor(workers, scheduler, threads=threads, timeout_s=timeout))
