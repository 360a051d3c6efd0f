"""What a worker does with one structure, with what it keeps between structures.

A worker process (the coordinating process itself, a Dask worker) keeps one calculator per
model (keyed by the model's fingerprint and device), so a model is loaded once per worker,
not once per structure; with a timeout it keeps one :class:`GuardedEvaluator` per model
instead (the model then lives in the guard's child process).
"""

from __future__ import annotations

import copy
import os
from typing import Any

from surfbench.evaluation.protocols import Outcome, Protocol
from surfbench.execution.guarded import CRASHED, TIMEOUT, GuardedEvaluator
from surfbench.models.base import LoadedModel
from surfbench.models.model_info import cap_threads, count_parameters

__all__ = ["CRASHED", "TIMEOUT", "evaluate_chunk", "evaluate_task", "model_key", "portable"]

_CALCULATORS: dict[str, tuple[Any, dict[str, Any]]] = {}
_GUARDS: dict[str, GuardedEvaluator] = {}
_THREADS: list[int | None] = []


def portable(model: LoadedModel) -> LoadedModel:
    """A copy of ``model`` that pickles small: no calculator, no isolated-worker pipe (each
    worker builds its own); the fingerprint, when computed, travels with it."""
    backend = copy.copy(model.backend)
    if hasattr(backend, "_client"):  # IsolatedBackend: a subprocess cannot be pickled
        backend._client = None
    out = LoadedModel(model.spec, backend)
    if "fingerprint" in model.__dict__:
        out.__dict__["fingerprint"] = model.__dict__["fingerprint"]
    return out


def model_key(model: LoadedModel) -> str:
    return f"{model.fingerprint.id}|{model.device}"


def set_threads(threads: int | None) -> int | None:
    """Cap torch's and every BLAS/OpenMP pool's threads (if given; see
    :func:`surfbench.models.model_info.cap_threads`); the count in use. Called once the
    calculator is built."""
    return cap_threads(threads)


def calculator_info(calculator: object) -> dict[str, Any]:
    return {"parameters": count_parameters(calculator)}


def _threads_once(threads: int | None) -> int | None:
    if not _THREADS:
        _THREADS.append(set_threads(threads))
    return _THREADS[0]


def evaluate_task(
    key: str, model: LoadedModel, protocol: Protocol, record, bulk_result: dict | None,
    threads: int | None = None, timeout_s: float | None = None, *, warmup_allowance_s: float | None = None,
) -> tuple[Outcome, dict[str, Any]]:
    """Evaluate one record in this process (or in its guard child when ``timeout_s`` is set);
    the outcome and facts about the worker (threads, parameters, pid)."""
    if timeout_s:
        guard = _GUARDS.get(key)
        if guard is None:
            allowance = {} if warmup_allowance_s is None else {"warmup_allowance_s": warmup_allowance_s}
            guard = _GUARDS[key] = GuardedEvaluator(model, threads, **allowance)
        outcome = guard.evaluate(protocol, record, bulk_result, timeout_s)
        return outcome, dict(guard.info)
    if key not in _CALCULATORS:
        # runs evaluate one model after the other: a worker keeps only the model in use, so
        # that a run of ten models does not hold ten models in every worker's memory
        _CALCULATORS.clear()
        # built on a copy: the object Dask holds (and may pickle to move or spill) stays
        # free of the calculator, its torch modules and worker pipes
        calculator = portable(model).calculator
        n_threads = _threads_once(threads)  # after the build: the model's libraries are loaded
        _CALCULATORS[key] = (calculator, {**calculator_info(calculator), "threads": n_threads, "pid": os.getpid()})
    calculator, info = _CALCULATORS[key]
    return protocol.calc_record(record, calculator, bulk_result), dict(info)


def evaluate_chunk(
    key: str, model: LoadedModel, protocol: Protocol, items: list, threads: int | None = None,
    timeout_s: float | None = None, *, warmup_allowance_s: float | None = None,
) -> list[tuple[Outcome, dict[str, Any]]]:
    """:func:`evaluate_task` for each (record, bulk result) of ``items``, in order."""
    return [evaluate_task(key, model, protocol, record, bulk, threads, timeout_s, warmup_allowance_s=warmup_allowance_s)
            for record, bulk in items]


def close_guards() -> None:
    """Kill this process's guard children (the coordinator calls it when a run ends)."""
    while _GUARDS:
        _, guard = _GUARDS.popitem()
        guard.close()
