"""Execution backends: where the structures of a run are evaluated.

* :class:`InProcessExecutor` (default): one structure after the other in this process, with
  the model's calculator built once; with ``timeout_s`` each structure goes to a killable
  child process instead (:mod:`surfbench.execution.guarded`).
* :class:`DaskExecutor`: one Dask task per chunk of up to 8 structures on a ``distributed`` cluster: a local
  cluster of N worker processes (``surfbench run --workers N``, one torch thread per worker
  unless ``--threads`` says otherwise), an existing scheduler (``--scheduler tcp://...``), or
  SLURM/PBS jobs through dask-jobqueue (``--scheduler slurm|pbs``, configured in Dask's
  ``jobqueue`` config, e.g. ``~/.config/dask/jobqueue.yaml``). Each worker keeps the model
  loaded between its tasks. A worker that dies mid-task (killed, out of memory) is replaced
  by Dask and its task is run again; a structure that kills its worker at every attempt (two on
  a local cluster, Dask's allowed-failures + 1 elsewhere) is
  stored with failure kind ``crashed`` (its chunk is split to find it) and the run goes on.

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


def _check_timeout(timeout_s: float | None) -> None:
    """ValueError for a timeout that is not a positive, finite number of seconds up to
    :data:`surfbench.execution.run_command.MAX_TIMEOUT_S`."""
    from surfbench.execution.run_command import timeout_problem

    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout must be positive, got {timeout_s!r} s")
    problem = timeout_problem(timeout_s, "timeout")
    if problem:
        raise ValueError(problem)


class Executor(ABC):
    """Evaluates records with a model and protocol, yielding each as it finishes."""

    #: how a result's ``device`` column names where it ran
    name: str = ""

    @abstractmethod
    def evaluate(self, model: LoadedModel, protocol: Protocol, items: Sequence[Item]) -> Iterator[Done]:
        """Outcomes of ``items`` in completion order (every item exactly once)."""

    def close(self) -> None:  # noqa: B027 (optional hook: most executors hold nothing to release)
        """Release workers and child processes."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessExecutor(Executor):
    """This process, one structure at a time; ``timeout_s`` moves the model to a killable child."""

    name = "local"

    def __init__(self, threads: int | None = None, timeout_s: float | None = None):
        _check_timeout(timeout_s)
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
        calculator = model.calculator
        n_threads = set_threads(self.threads)  # after the build: the model's libraries are loaded
        info = {**calculator_info(calculator), "threads": n_threads, "pid": os.getpid()}
        for record, bulk in items:
            yield record, protocol.calc_record(record, calculator, bulk), info

    def close(self) -> None:
        while self._guards:
            self._guards.popitem()[1].close()


def _portable(model: LoadedModel) -> LoadedModel:
    from surfbench.execution.tasks import portable

    return portable(model)


#: most structures in one Dask task (see :func:`auto_chunk_size`)
MAX_CHUNK = 8
#: fewest tasks per worker, for the load balance at the end of a run
MIN_TASKS_PER_WORKER = 8


def auto_chunk_size(n_items: int, n_workers: int) -> int:
    """Structures per Dask task: up to :data:`MAX_CHUNK`, while every worker still gets at
    least :data:`MIN_TASKS_PER_WORKER` tasks. A task costs the coordinator and the scheduler
    milliseconds of CPU, as much as a fast model's structure (on 1538 synthetic slabs with
    M3GNet the chunks alone did not change the 2-worker speed-up; the workers' settings did,
    see :data:`NO_MALLOC_TRIM` and :data:`QUIET_WORKERS`). A chunk's results come back (and
    are stored) together: a killed run loses at most the chunks in flight, up to MAX_CHUNK
    structures per worker."""
    return max(1, min(MAX_CHUNK, n_items // max(1, n_workers * MIN_TASKS_PER_WORKER)))


class DaskExecutor(Executor):
    """Dask ``distributed``: one task per chunk of structures (:func:`auto_chunk_size`); the
    client's cluster does the work."""

    name = "dask"

    def __init__(self, client, *, threads: int | None = 1, timeout_s: float | None = None, cluster=None,
                 warmup_allowance_s: float | None = None, chunk_size: int | None = None):
        """``warmup_allowance_s``: beyond ``timeout_s`` for a fresh guard child's first structure
        (default :data:`surfbench.execution.guarded.WARMUP_ALLOWANCE_S`); ``chunk_size``:
        structures per Dask task (default :func:`auto_chunk_size`)."""
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk size must be at least 1, got {chunk_size}")
        self.chunk_size = chunk_size
        _check_timeout(timeout_s)
        self.warmup_allowance_s = warmup_allowance_s
        self.client = client
        self.cluster = cluster  # closed with the executor when this executor made it
        self.threads = threads
        self.timeout_s = timeout_s

    def evaluate(self, model: LoadedModel, protocol: Protocol, items: Sequence[Item]) -> Iterator[Done]:
        from distributed import KilledWorker, as_completed

        from surfbench.execution.tasks import CRASHED, model_key, portable

        if not items:
            return
        key = model_key(model)
        # the model travels with each task (small: no calculator); a scattered copy would be
        # lost for good when the workers holding it die, and every task after it cancelled
        shipped = portable(model)
        size = self.chunk_size or auto_chunk_size(len(items), self._n_workers())
        futures = {}

        def submit(chunk: list) -> None:
            futures[self._submit(key, shipped, protocol, chunk)] = chunk

        for start in range(0, len(items), size):
            submit(list(items[start:start + size]))
        queue = as_completed(list(futures))
        try:
            for fut in queue:
                chunk = futures.pop(fut)
                try:
                    done = fut.result()  # a task's own exception (model load error) is raised here
                except KilledWorker as exc:
                    if len(chunk) > 1:  # which structure killed the worker: one task each
                        for item in chunk:
                            submit([item])
                            queue.add(list(futures)[-1])
                        continue
                    record = chunk[0][0]
                    yield record, Outcome.failed(CRASHED, (
                        f"the Dask worker died at each attempt on this structure ({exc.__class__.__name__}): "
                        "out of memory (a local worker may use the machine's memory divided by the workers) "
                        "or a crash in the model's code")), {}
                    continue
                for (record, _), (outcome, info) in zip(chunk, done):
                    yield record, outcome, info
        finally:
            if futures:  # stopped early (an error, the caller gave up): drop what is left
                self.client.cancel(list(futures))

    def _submit(self, key: str, model: LoadedModel, protocol: Protocol, chunk: list):
        from surfbench.execution.tasks import evaluate_chunk

        return self.client.submit(evaluate_chunk, key, model, protocol, chunk, self.threads, self.timeout_s,
                                  warmup_allowance_s=self.warmup_allowance_s, pure=False,
                                  key=f"surfbench-{chunk[0][0].id}-{os.urandom(4).hex()}")

    def _n_workers(self) -> int:
        try:
            return max(1, len(self.client.scheduler_info().get("workers", {})))
        except Exception:  # an unreachable scheduler fails at submit, with its own error
            return 1

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
        import dask

        with dask.config.set(LOCAL_WORKER_CONFIG):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", env=_thread_env(per_worker))
        return DaskExecutor(Client(cluster), threads=per_worker, timeout_s=timeout_s, cluster=cluster)
    if scheduler.lower() in SCHEDULER_KINDS:
        cluster = jobqueue_cluster(scheduler.lower())
        cluster.scale(jobs=workers or 1)
        return DaskExecutor(Client(cluster), threads=per_worker, timeout_s=timeout_s, cluster=cluster)
    return DaskExecutor(Client(scheduler), threads=per_worker, timeout_s=timeout_s)


#: Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to return freed memory to
#: the OS sooner). With PyTorch models that allocate and free tensors at every call, glibc then
#: trims and re-maps memory all the time: measured here, M3GNet ran 1.9x slower per structure
#: (10.4 s vs 5.5 s for 150 synthetic slabs, one thread) and a 1-worker run took 130 s where
#: the bare loop takes 60 s. surfbench's local clusters start their workers without it.
NO_MALLOC_TRIM = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
#: Dask workers sample their threads' stacks every 10 ms for the dashboard's profile; with a
#: PyTorch model's deep Python call stacks this took 20-25 % of the worker's time (measured:
#: 700 synthetic slabs, M3GNet, one worker: 44.3 s with it, 33.9 s without), and the event
#: loop's 20 ms tick competes for the GIL too. surfbench's workers run without the profiler.
QUIET_WORKERS = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s"}
#: a structure whose evaluation kills its worker (out of memory, a crash) is tried twice, not
#: four times, before it is recorded as ``crashed`` (each attempt restarts a worker and reloads
#: the model); with one thread per worker and one task handed to a worker at a time (worker
#: saturation 1.0: Dask otherwise queues a second task there, and blames it for the death too)
#: a worker's death is its current task's
ONE_RETRY = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}
LOCAL_WORKER_CONFIG = {**NO_MALLOC_TRIM, **QUIET_WORKERS, **ONE_RETRY}
#: what dask-jobqueue workers get instead, in the job script (the nanny keeps an exported
#: variable): a 64 MiB trim threshold (the ceiling of glibc's own dynamic one on 64-bit
#: Linux) and the same quiet worker settings through Dask's environment-variable config
JOB_MALLOC_TRIM = "export MALLOC_TRIM_THRESHOLD_=67108864"
JOB_QUIET_WORKERS = ("export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False "
                     "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=1s")


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
    import dask

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    prologue = list(overrides.get("job_script_prologue")
                    or dask.config.get(f"jobqueue.{kind}.job-script-prologue", None) or [])
    if not any("MALLOC_TRIM_THRESHOLD_" in line for line in prologue):  # see NO_MALLOC_TRIM; a user's own wins
        prologue.append(JOB_MALLOC_TRIM)
    if not any("DASK_DISTRIBUTED__WORKER__PROFILE" in line for line in prologue):
        prologue.append(JOB_QUIET_WORKERS)
    overrides["job_script_prologue"] = prologue
    try:
        return cls(**overrides)
    except ValueError as exc:  # e.g. cores/memory missing from the config
        raise ValueError(f"--scheduler {kind}: {exc}. Set jobqueue.{kind}.cores and .memory in Dask's config "
                         "(e.g. ~/.config/dask/jobqueue.yaml); see docs/commands/run.md, 'Parallel runs, timeouts and faults'") from exc
