"""Run a model over a data set with a protocol, writing every result to the store.

Only records missing from the store (for this model fingerprint and protocol, and with the
same structure hash) are computed; the model is loaded only if something is missing. A result
depends on the structure only, except a slab's under a protocol that uses its bulk's result
(``needs_bulk``: relaxed), which also depends on the bulk id and the bulk's structure
(:func:`result_hash`). Records whose labels changed (DFT energy, bulk id, Miller index, ...)
are updated in the store and listed in :attr:`RunSummary.updated`; their model results are
reused and gamma, derived at analysis time, follows. Stored records no longer in the data set
(a slab removed or renamed in a data file) are marked stale (:meth:`ResultStore.mark_members`):
kept, left out of what is reported, and listed in :attr:`RunSummary.updated` too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from surfbench.evaluation.protocols import UNSUPPORTED_ELEMENT, Outcome, Protocol
from surfbench.evaluation.registry import get_protocol
from surfbench.models.base import LoadedModel
from surfbench.models.model_info import model_details
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.results import ResultStore

if TYPE_CHECKING:
    from surfbench.execution.executors import Executor

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
    #: one line per stored record whose labels changed, e.g. "record Cu/111: dft energy changed -> updated"
    updated: list[str] = field(default_factory=list)


def result_hash(record: BulkRecord | SurfaceRecord, dataset: Dataset, needs_bulk: bool = False) -> str:
    """What a stored result must match to be reused: the structure hash, and for a slab under
    a ``needs_bulk`` protocol also its bulk id and the bulk's structure hash."""
    if not (needs_bulk and isinstance(record, SurfaceRecord) and record.bulk_id is not None):
        return record.content_hash
    bulk = dataset.bulks.get(record.bulk_id)
    key = f"{record.content_hash}|bulk {record.bulk_id}|{bulk.content_hash if bulk else '-'}"
    return hashlib.sha256(key.encode()).hexdigest()


def pending(
    dataset: Dataset, store: ResultStore, fingerprint: str, protocol: str, *, retry_failed: bool = False,
    needs_bulk: bool = False,
) -> list[BulkRecord | SurfaceRecord]:
    """Records (bulks first) without a usable result in the store."""
    done = store.done(dataset.name, fingerprint, protocol, include_failed=not retry_failed)
    records: list[BulkRecord | SurfaceRecord] = [*dataset.bulks.values(), *dataset.surfaces]
    return [r for r in records if done.get(r.id) != result_hash(r, dataset, needs_bulk)]


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
    executor: Executor | None = None,
    timeout_s: float | None = None,
    keep_both_fingerprints: bool = False,
) -> RunSummary:
    """Evaluate every record of ``dataset`` not yet in ``store``; return a summary.

    ``executor`` says where structures are evaluated (default: this process; see
    :mod:`surfbench.execution`); only this process writes the store, each outcome as it
    arrives. ``timeout_s`` (for the default executor) limits each structure: the model then
    runs in a child process that is killed on overrun (failure kind ``timeout``). For
    protocols whose slabs need their bulk's result (``needs_bulk``), the bulks are computed
    and written before any slab is submitted. The store refuses a model whose fingerprint
    differs from the one stored under the same name unless ``keep_both_fingerprints``."""
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    proto.check_dataset(dataset)  # e.g. a data set of reference values only under a protocol that needs structures
    fp = model.fingerprint
    store.check_model(fp, keep_both=keep_both_fingerprints)
    updated = [f"record {rid}: {', '.join(labels)} changed -> updated" for rid, labels in store.put_records(dataset)]
    stale, revived = store.mark_members(dataset)
    if stale:
        shown = ", ".join(stale[:10]) + (f" and {len(stale) - 10} more" if len(stale) > 10 else "")
        updated.append(f"{len(stale)} stored record(s) no longer in {dataset.name} -> stale (kept in the store, left "
                       f"out of tables, reports and exports): {shown}")
    if revived:
        updated.append(f"{len(revived)} stale record(s) back in {dataset.name} -> current again: "
                       + ", ".join(revived[:10]) + (f" and {len(revived) - 10} more" if len(revived) > 10 else ""))
    todo = pending(dataset, store, fp.id, proto.name, retry_failed=retry_failed, needs_bulk=proto.needs_bulk)
    total = len(dataset.bulks) + len(dataset.surfaces)
    summary = RunSummary(dataset.name, model.name, fp.id, proto.name, total=total, reused=total - len(todo),
                         updated=updated)
    if on_start is not None:
        on_start(total, len(todo))
    if not todo:
        store.put_model(fp, model_details(model), keep_both=keep_both_fingerprints)
        return summary
    own = executor is None
    if own:
        from surfbench.execution.executors import InProcessExecutor

        executor = InProcessExecutor(threads=threads, timeout_s=timeout_s)
    supported = set(model.spec.elements) if model.spec.elements else None
    model_written = False

    def write(record: BulkRecord | SurfaceRecord, outcome: Outcome, info: dict | None) -> None:
        nonlocal model_written
        if not model_written:
            details = model_details(model)
            if info is not None:
                details["parameters"] = info.get("parameters")
            store.put_model(fp, details, keep_both=keep_both_fingerprints)
            model_written = True
        n_threads = None if info is None else info.get("threads")
        store.put_result(dataset.name, record.id, fp.id, proto.name, result_hash(record, dataset, proto.needs_bulk),
                         outcome, model.device, n_threads)
        summary.computed += 1
        if outcome.status != "ok":
            summary.failed += 1
            kind = outcome.failure_kind or "?"
            summary.failure_kinds[kind] = summary.failure_kinds.get(kind, 0) + 1
        if progress is not None:
            progress(record.id, outcome)

    def batch(records: list[BulkRecord | SurfaceRecord]) -> None:
        items = []
        for record in records:
            if supported is not None and record.element not in supported:
                write(record, Outcome.failed(
                    UNSUPPORTED_ELEMENT, f"{model.name} has no parameters for {record.element}"), None)
                continue
            bulk_result = None
            if proto.needs_bulk and isinstance(record, SurfaceRecord) and record.bulk_id is not None:
                bulk_result = store.get_result(dataset.name, record.bulk_id, fp.id, proto.name)
            items.append((record, bulk_result))
        if not items:
            return
        for record, outcome, info in executor.evaluate(model, proto, items):
            write(record, outcome, info)

    try:
        if proto.needs_bulk:  # the slabs read their bulk's stored result
            batch([r for r in todo if isinstance(r, BulkRecord)])
            batch([r for r in todo if not isinstance(r, BulkRecord)])
        else:
            batch(todo)
    finally:
        if own:
            executor.close()
    return summary
