"""Run a model over a data set with a protocol, writing every result to the store.

Only records missing from the store (for this model fingerprint and protocol, and with the
same structure hash) are computed; the model is loaded only if something is missing.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field

from surfbench.evaluation.protocols import UNSUPPORTED_ELEMENT, Outcome, Protocol, get_protocol
from surfbench.evaluation.store import ResultStore
from surfbench.models.base import LoadedModel, package_version
from surfbench.records import BulkRecord, Dataset, SurfaceRecord

ProgressFn = Callable[[str, Outcome | None], None]


@dataclass
class RunSummary:
    dataset: str
    model: str
    fingerprint: str
    protocol: str
    total: int = 0
    reused: int = 0
    computed: int = 0
    failed: int = 0
    failure_kinds: dict[str, int] = field(default_factory=dict)


def count_parameters(calculator: object) -> int | None:
    """Number of trainable parameters of a torch-based calculator, if it exposes its model."""
    for attr in ("model", "models", "potential"):
        obj = getattr(calculator, attr, None)
        if isinstance(obj, list | tuple) and obj:
            obj = obj[0]
        if obj is not None and hasattr(obj, "parameters"):
            try:
                return int(sum(p.numel() for p in obj.parameters()))
            except Exception:  # not a torch module after all
                return None
    return None


def model_details(model: LoadedModel, calculator: object | None = None) -> dict:
    spec = model.spec
    details = {
        "family": spec.family, "package": spec.package, "device": model.device,
        "nominal_parameters": spec.parameters, "training_set": spec.training_set,
        "python": platform.python_version(), "torch": package_version("torch"),
        "ase": package_version("ase"),
    }
    if calculator is not None:
        details["parameters"] = count_parameters(calculator)
    return details


def pending(
    dataset: Dataset, store: ResultStore, fingerprint: str, protocol: str, *, retry_failed: bool = False
) -> list[BulkRecord | SurfaceRecord]:
    """Records (bulks first) without a usable result in the store."""
    done = store.done(dataset.name, fingerprint, protocol, include_failed=not retry_failed)
    records: list[BulkRecord | SurfaceRecord] = [*dataset.bulks.values(), *dataset.surfaces]
    return [r for r in records if done.get(r.id) != r.content_hash]


def torch_threads(threads: int | None) -> int | None:
    """Set torch's intra-op thread count if given; return the count in use (None without torch)."""
    try:
        import torch
    except ImportError:
        return threads
    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def run(
    dataset: Dataset,
    model: LoadedModel,
    store: ResultStore,
    protocol: str | Protocol = "static",
    *,
    threads: int | None = None,
    retry_failed: bool = False,
    progress: ProgressFn | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Evaluate every record of ``dataset`` not yet in ``store``; return a summary."""
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    fp = model.fingerprint
    store.put_records(dataset)
    todo = pending(dataset, store, fp.id, proto.name, retry_failed=retry_failed)
    total = len(dataset.bulks) + len(dataset.surfaces)
    summary = RunSummary(dataset.name, model.name, fp.id, proto.name, total=total, reused=total - len(todo))
    if on_start is not None:
        on_start(total, len(todo))
    if not todo:
        store.put_model(fp, model_details(model))
        return summary
    n_threads = torch_threads(threads)
    calculator = model.calculator
    store.put_model(fp, model_details(model, calculator))
    supported = set(model.spec.elements) if model.spec.elements else None
    for record in todo:
        if supported is not None and record.element not in supported:
            outcome = Outcome.failed(
                UNSUPPORTED_ELEMENT, f"{model.name} has no parameters for {record.element}"
            )
        else:
            bulk_result = None
            if proto.needs_bulk and isinstance(record, SurfaceRecord) and record.bulk_id is not None:
                bulk_result = store.get_result(dataset.name, record.bulk_id, fp.id, proto.name)
            outcome = proto.calc_record(record, calculator, bulk_result)
        store.put_result(dataset.name, record.id, fp.id, proto.name, record.content_hash, outcome, model.device, n_threads)
        summary.computed += 1
        if outcome.status != "ok":
            summary.failed += 1
            summary.failure_kinds[outcome.failure_kind or "?"] = summary.failure_kinds.get(outcome.failure_kind or "?", 0) + 1
        if progress is not None:
            progress(record.id, outcome)
    return summary
