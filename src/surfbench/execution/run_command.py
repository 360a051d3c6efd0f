"""Helpers of ``surfbench run`` (kept out of cli.py): its execution options, and the run of one
model with one protocol that the command and :func:`surfbench.evaluate` share."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from surfbench.execution.executors import Executor

if TYPE_CHECKING:
    from surfbench.evaluation.protocols import Protocol
    from surfbench.execution.runner import RunSummary
    from surfbench.models.base import LoadedModel
    from surfbench.records import Dataset
    from surfbench.store.results import ResultStore


#: most torch threads per structure on workers of a Dask scheduler (``--scheduler``) on other
#: machines, whose cores this process cannot count; here the limit is this machine's CPU count
MAX_REMOTE_THREADS = 1024
#: longest ``--timeout`` (seconds, 11.6 days): waiting on a child process takes the timeout in
#: milliseconds as a C int (at most 24.8 days); anything longer is "no timeout"
MAX_TIMEOUT_S = 1e6


def thread_limit(remote: bool = False) -> int:
    """The most threads a structure may use: this machine's CPU count, or
    :data:`MAX_REMOTE_THREADS` on a remote scheduler's workers."""
    return MAX_REMOTE_THREADS if remote else max(1, os.cpu_count() or 1)


def threads_problem(threads: object, option: str = "--threads", remote: bool = False) -> str | None:
    """Why a thread count cannot be used (None: it can; None given: the packages' default).
    More threads than CPU cores only slow torch down, and a count in the thousands makes the
    thread pools fail for lack of memory."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int):
        return f"{option} must be a whole number of threads, got {threads!r}"
    if threads < 1:
        return f"{option} must be at least 1, got {threads}"
    limit = thread_limit(remote)
    if threads > limit:
        where = "the workers of a remote scheduler" if remote else f"this machine's {limit} CPU core(s)"
        return f"{option} {threads} is more than {where}: use at most {limit}"
    return None


def timeout_problem(timeout: float | None, option: str = "--timeout") -> str | None:
    """Why a per-structure timeout cannot be used (None: it can, or none was given)."""
    if timeout is None:
        return None
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        return f"{option} must be a positive, finite number of seconds, got {timeout}"
    if timeout > MAX_TIMEOUT_S:
        return (f"{option} {timeout:g} s is longer than the longest timeout, {MAX_TIMEOUT_S:g} s; leave {option} out "
                "for no limit")
    return None


def check_threads(threads: int | None, fail: Callable[[str], None], remote: bool = False) -> None:
    """``--threads`` is a count from 1 to :func:`thread_limit` (or not given: the packages' default)."""
    problem = threads_problem(threads, remote=remote)
    if problem:
        fail(problem)


def executor_for(workers: int | None, scheduler: str | None, threads: int | None, timeout: float | None,
                 fail: Callable[[str], None]) -> Executor:
    """The executor of ``--workers/--scheduler/--threads/--timeout``."""
    from surfbench.execution.executors import InProcessExecutor, LazyExecutor, make_executor

    problem = timeout_problem(timeout)
    if problem:
        fail(problem)
    if workers is not None and workers < 1:
        fail(f"--workers must be at least 1, got {workers}")
    check_threads(threads, fail, remote=scheduler is not None)
    if workers is None and scheduler is None:
        return InProcessExecutor(threads=threads, timeout_s=timeout)
    return LazyExecutor(lambda: make_executor(workers, scheduler, threads=threads, timeout_s=timeout))


def run_protocol(dataset: Dataset, model: LoadedModel, store: ResultStore, protocol: str | Protocol, *,
                 on_protocol: Callable[[str], None] | None = None, **options: Any) -> list[RunSummary]:
    """Evaluate ``model`` on ``dataset`` with ``protocol`` (what ``surfbench run`` and
    :func:`surfbench.evaluate` compute): :func:`surfbench.execution.runner.run` with
    ``options`` (threads, retry_failed, progress, on_start, executor,
    keep_both_fingerprints). The protocols ``protocol`` needs first (``Protocol.needs_first``:
    a relaxed protocol, the static one, for the split of the error into its static and
    relaxation parts) run before it. ``on_protocol(name)`` is called before each. Returns the
    summaries in run order, the one of ``protocol`` last."""
    from surfbench.evaluation.registry import get_protocol
    from surfbench.execution.runner import run

    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    proto.check_dataset(dataset)  # settings that cannot apply to these records: refused before anything runs
    steps: list[str | Protocol] = [*proto.needs_first, proto]
    summaries = []
    for step in steps:
        if on_protocol is not None:
            on_protocol(step if isinstance(step, str) else step.name)
        summaries.append(run(dataset, model, store, step, **options))
    return summaries
