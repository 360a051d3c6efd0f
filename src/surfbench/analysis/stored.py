"""Stored runs and their results as the commands and the Python API read them: which runs a
store holds (selected by model, data set, protocol) and one run's results, marked seen/unseen
in training (:mod:`surfbench.analysis.seen`), restricted to some records or splits.

``surfbench run`` and ``surfbench table`` print from these, and :class:`surfbench.Results`
computes its tables and figures from them, so the numbers are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd


def stored_runs(store, model: str | None = None, dataset: str | None = None,
                protocol: str | None = None) -> pd.DataFrame:
    """The store's runs (:meth:`ResultStore.runs`: dataset, fingerprint, model, protocol,
    counts) of ``model`` (a name or a fingerprint), ``dataset`` (the store's name of it) and
    ``protocol``; None: any."""
    runs = store.runs()
    if model is not None:
        runs = runs[(runs["model"] == model) | (runs["fingerprint"] == model)]
    for col, val in (("dataset", dataset), ("protocol", protocol)):
        if val is not None:
            runs = runs[runs[col] == val]
    return runs.reset_index(drop=True)


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


def stale_note(store, dataset: str | None = None) -> str | None:
    """A sentence on the stale records of ``dataset`` (None: of every data set) that a reading
    command left out (:meth:`ResultStore.mark_members`), or None when there are none."""
    stale = store.stale_records(dataset)
    if stale.empty:
        return None
    per = stale.groupby("dataset", sort=True).agg(records=("record_id", "size"), results=("results", "sum"))
    parts = [f"{int(r.records)} record(s) of {name} with {int(r.results)} result(s)" for name, r in per.iterrows()]
    return (f"left out: {'; '.join(parts)}, no longer in their data set (removed or renamed since they were "
            "evaluated: stale, kept in the store)")


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """fingerprint -> the label a table or figure shows for a run: the model name, or the
    fingerprint (``name@digest``) where one name has several fingerprints in ``runs``
    (columns ``fingerprint`` and ``model``), so that two columns are never headed alike."""
    pairs = runs[["fingerprint", "model"]].drop_duplicates("fingerprint")
    counts = pairs["model"].value_counts()
    return {fp: (name if isinstance(name, str) and counts[name] == 1 else fp)
            for fp, name in zip(pairs["fingerprint"], pairs["model"])}
