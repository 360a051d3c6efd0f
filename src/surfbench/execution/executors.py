"""Execution backends: where the structures of a run are evaluated.

* :class:`InProcessExecutor` (default): one structure after the other in this process, with
  the model's calculator built once; with ``timeout_s`` each structure goes to a killable
  child process instead (:mod:`surfbench.execution.guarded`).
* :class:`DaskExecutor`: one Dask task per structure on a ``distributed`` cluster: a local
  cluster of N worker processes (``surfbench run --workers N``, one torch thread per worker
  unless ``--threads`` says otherwise), an existing scheduler (``--scheduler tcp://...``), or
  SLURM/PBS jobs through dask-jobqueue (``--scheduler slurm|pbs``, configured in Dask's
  ``jobqueue`` config, e.g. ``~/.config/dask/jobqueue.yaml``). Each worker keeps the model
  loaded between its tasks. A worker that dies mid-task (killed, out of memory) is replaced
  by Dask and its task is run again elsewhere.

Executors only compute; they hand outcomes back as they finish, and the caller (the runner)
writes them to the store, so only the coordinating process ever writes.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from surfbench.evaluation.protocols import Outcome, Protocol
from surfbench.models.base import LoadedModel

#: (record, bulk result or None) to evaluate
Item = tuple[Any, dict | None]
#: (record, outcome, worker facts: threads, parameters, pid)
Done = tuple[Any, Outcome, dict[str, Any]]

SCHEDULER_KINDS = ("slurm", "pbs")


class Executor(ABC):
    """Evaluates records with a model and protocol, yielding each as it finishes."""

    #: how a result's ``device`` column names where it ran
    name: str = ""

    @abstractmethod
    def evaluate(self, model: LoadedModel, protocol: Protocol, items: Sequence[Item]) -> Iterator[Done]:
        """Outcomes of ``items`` in completion order (every item exactly once)."""

    def close(self) -> None:
        """Release workers and child processes."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessExecutor(Executor):
    """This process, one structure at a time; ``timeout_s`` moves the model to a killable child."""

    name = "local"

    def __init__(self, threads: int | None = None, timeout_s: float | None = None):
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout must be positive, got {timeout_s!r} s")
        self.threads = threads
        self.timeout_s = timeout_s
        self._guards: dict[str, Any] = {}

    def evaluate(self, model: LoadedModel, protocol: Protocol, items: Sequence[Item]) -> Iterator[Done]:
        from surfbench.execution.guarded import GuardedEvaluator
        from surfbench.execution.tasks import calculator_info, model_key, set_threads

        if self.timeout_s:
            key = model_key(model)
            guard = self._guards.get(key)
            if guard is None:
                guard = self._guards[key] = GuardedEvaluator(_portable(model), self.threads)
            for record, bulk in items:
                outcome = guard.evaluate(protocol, record, bulk, self.timeout_s)
                yield record, outcome, dict(guard.info)
            return
        n_threads = set_threads(self.threads)
        calculator = model.calculator
        info = {**calculator_info(calculator), "threads": n_threads, "pid": os.getpid()}
        for record, bulk in items:
            yield record, protocol.calc_record(record, calculator, bulk), info

    def close(self) -> None:
        while self._guards:
            self._guards.popitem()[1].close()


def _portable(model: LoadedModel) -> LoadedModel:
    from surfbench.execution.tasks import portable

    return portable(model)


class DaskExecutor(Executor):
    """Dask ``distributed``: one task per structure; the client's cluster does the work."""

    name = "dask"

    def __init__(self, client, *, threads: int | None = 1, timeout_s: float | None = None, cluster=None,
                 warmup_allowance_s: float | None = None):
        """``warmup_allowance_s``: beyond ``timeout_s`` for a fresh guard child's first structure
        (default :data:`surfbench.execution.guarded.WARMUP_ALLOWANCE_S`)."""
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout must be positive, got {timeout_s!r} s")
        self.warmup_allowance_s = warmup_allowance_s
        self.client = client
        self.cluster = cluster  # closed with the executor when this executor made it
        self.threads = threads
        self.timeout_s = timeout_s

    def evaluate(self, model: LoadedModel, protocol: Protocol, items: Sequence[Item]) -> Iterator[Done]:
        from distributed import as_completed

        from surfbench.execution.tasks import evaluate_task, model_key, portable

        if not items:
            return
        key = model_key(model)
        [shipped] = self.client.scatter([portable(model)], broadcast=True, hash=False)
        futures = {}
        for i, (record, bulk) in enumerate(items):
            fut = self.client.submit(evaluate_task, key, shipped, protocol, record, bulk, self.threads,
                                     self.timeout_s, warmup_allowance_s=self.warmup_allowance_s,
                                     pure=False, key=f"surfbench-{i}-{record.id}-{os.urandom(4).hex()}")
            futures[fut] = record
        try:
            for fut in as_completed(futures):
                outcome, info = fut.result()  # a task's own exception (model load error) is raised here
                yield futures.pop(fut), outcome, info
        finally:
            if futures:  # stopped early (an error, the caller gave up): drop what is left
                self.client.cancel(list(futures))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class LazyExecutor(Executor):
    """Starts its executor (a Dask cluster, say) only when there is something to evaluate, so
    a rerun on a complete store starts nothing."""

    def __init__(self, factory):
        self._factory = factory
        self._inner: Executor | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return "" if self._inner is None else self._inner.name

    def evaluate(self, model: LoadedModel, protocol: Protocol, items: Sequence[Item]) -> Iterator[Done]:
        if self._inner is None:
            try:
                self._inner = self._factory()
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"cannot start or reach the Dask cluster: {type(exc).__name__}: {exc}") from exc
        return self._inner.evaluate(model, protocol, items)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
            self._inner = None


def make_executor(
    workers: int | None = None, scheduler: str | None = None, *, threads: int | None = None,
    timeout_s: float | None = None,
) -> Executor:
    """The executor for ``surfbench run``'s options.

    ``scheduler``: None (a local cluster of ``workers`` processes when ``workers`` is given,
    else this process), ``slurm`` / ``pbs`` (dask-jobqueue cluster of ``workers`` jobs, as
    configured in Dask's ``jobqueue`` config), or the address of a running Dask scheduler.
    Torch threads per Dask worker: ``threads``, default 1.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if scheduler is None and workers is None:
        return InProcessExecutor(threads=threads, timeout_s=timeout_s)
    from distributed import Client, LocalCluster

    per_worker = threads or 1
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", env=_thread_env(per_worker))
        return DaskExecutor(Client(cluster), threads=per_worker, timeout_s=timeout_s, cluster=cluster)
    if scheduler.lower() in SCHEDULER_KINDS:
        cluster = jobqueue_cluster(scheduler.lower())
        cluster.scale(jobs=workers or 1)
        return DaskExecutor(Client(cluster), threads=per_worker, timeout_s=timeout_s, cluster=cluster)
    return DaskExecutor(Client(scheduler), threads=per_worker, timeout_s=timeout_s)


def _thread_env(threads: int) -> dict[str, str]:
    """Thread counts of the numerical libraries in each worker process."""
    return {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def jobqueue_cluster(kind: str, **overrides):
    """A dask-jobqueue cluster (SLURM or PBS) configured from Dask's ``jobqueue.<kind>``
    config (cores, memory, queue, account, walltime, job_script_prologue, ...);
    ``overrides`` win."""
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ValueError(f"--scheduler {kind} needs dask-jobqueue: pip install dask-jobqueue ({exc})") from exc
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    try:
        return cls(**overrides)
    except ValueError as exc:  # e.g. cores/memory missing from the config
        raise ValueError(f"--scheduler {kind}: {exc}. Set jobqueue.{kind}.cores and .memory in Dask's config "
                         "(e.g. ~/.config/dask/jobqueue.yaml); see docs/commands/run.md, 'Parallel runs, timeouts and faults'") from exc
