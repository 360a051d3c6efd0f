"""Helpers of ``surfbench run`` (kept out of cli.py): its execution options, and the run of one
model with one protocol that the command and :func:`surfbench.evaluate` share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from surfbench.execution.executors import Executor

if TYPE_CHECKING:
    from surfbench.evaluation.protocols import Protocol
    from surfbench.evaluation.runner import RunSummary
    from surfbench.evaluation.store import ResultStore
    from surfbench.models.base import LoadedModel
    from surfbench.records import Dataset


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


def run_protocol(dataset: Dataset, model: LoadedModel, store: ResultStore, protocol: str | Protocol, *,
                 on_protocol: Callable[[str], None] | None = None, **options: Any) -> list[RunSummary]:
    """Evaluate ``model`` on ``dataset`` with ``protocol`` (what ``surfbench run`` and
    :func:`surfbench.evaluate` compute): :func:`surfbench.evaluation.runner.run` with
    ``options`` (threads, retry_failed, progress, on_start, executor,
    keep_both_fingerprints). A relaxed protocol runs the static protocol first (the split of the
    error into its static and relaxation parts needs both). ``on_protocol(name)`` is called
    before each. Returns the summaries in run order, the one of ``protocol`` last."""
    from surfbench.evaluation.protocols import get_protocol
    from surfbench.evaluation.relax import RelaxedProtocol
    from surfbench.evaluation.runner import run

    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    steps: list[str | Protocol] = ["static", proto] if isinstance(proto, RelaxedProtocol) else [proto]
    summaries = []
    for step in steps:
        if on_protocol is not None:
            on_protocol(step if isinstance(step, str) else step.name)
        summaries.append(run(dataset, model, store, step, **options))
    return summaries
