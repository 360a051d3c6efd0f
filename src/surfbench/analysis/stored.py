"""One stored run's results as the commands and the Python API read them: marked seen/unseen
in training (:mod:`surfbench.analysis.seen`), restricted to some records or splits. Which runs
a store holds: :mod:`surfbench.store.selection`.

``surfbench run`` and ``surfbench table`` print from these, and :class:`surfbench.Results`
computes its tables and figures from them, so the numbers are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd


def run_results(store, dataset: str, fingerprint: str, protocol: str, *,
                record_ids: Collection[str] | None = None, splits: Collection[str] | None = None) -> pd.DataFrame:
    """One run's results (one row per record, :meth:`ResultStore.results`) with the columns of
    :func:`surfbench.analysis.seen.mark`; only ``record_ids`` (None: all) and only the slabs of
    ``splits`` (None: all; bulks are always kept)."""
    from surfbench.analysis.seen import mark_from_store

    results = mark_from_store(store, store.results(dataset, fingerprint, protocol))
    if record_ids is not None:
        results = results[results["record_id"].isin(set(record_ids))]
    if splits is not None:
        results = results[results["split"].isin(set(splits)) | (results["kind"] == "bulk")]
    return results
