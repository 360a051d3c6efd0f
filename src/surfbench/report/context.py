"""The numbers the report's sections share, computed once from the store: the selected runs'
results joined with DFT, the model order and colours, metrics, coverage, Table I, the error
correlation, facet orderings and Wulff shapes (:class:`surfbench.report.section.ReportContext`).
Reads only the store: no model and no data file is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from surfbench.analysis.metrics import failure_counts, metrics
from surfbench.analysis.predictions import bulk_predictions, slab_predictions
from surfbench.analysis.ranking import comparison_table, error_correlation_matrix, model_order
from surfbench.data.subset import Subset
from surfbench.report.element_figures import element_rmse_ptables
from surfbench.report.section import ReportContext
from surfbench.report.style import model_colours


class EmptySubset(ValueError):
    """No stored result of the selected runs lies in the report's subset."""


class SubsetView:
    """The store as the report's sections read it: stored results, records and reference
    results restricted to a :class:`Subset` (the rest as stored)."""

    def __init__(self, store, subset: Subset):
        self._store, self._subset = store, subset

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def results(self, *args, **kwargs) -> pd.DataFrame:
        return self._subset.frame(self._store.results(*args, **kwargs))

    def records(self, *args, **kwargs) -> pd.DataFrame:
        return self._subset.frame(self._store.records(*args, **kwargs))

    def reference_results(self, *args, **kwargs) -> pd.DataFrame:
        return self._subset.frame(self._store.reference_results(*args, **kwargs))


def model_info(store, runs: pd.DataFrame, labels: dict[str, str], results: pd.DataFrame) -> dict[str, dict]:
    models = store.models().set_index("fingerprint")
    info = {}
    for fp in runs["fingerprint"]:
        details = json.loads(models.loc[fp, "details"]) if fp in models.index else {}
        res = results[results["fingerprint"] == fp]
        params = details.get("parameters") or details.get("nominal_parameters")
        info[labels[fp]] = {
            "model": labels[fp], "fingerprint": fp, "name": models.loc[fp, "name"] if fp in models.index else None,
            "first_seen": models.loc[fp, "first_seen"] if fp in models.index else None,
            "family": details.get("family"), "training_set": details.get("training_set"), "parameters": params,
            "devices": sorted({str(d) for d in res["device"].dropna() if str(d)}),
            "threads": sorted({int(t) for t in res["threads"].dropna()}),
            "wall_s": float(res["wall_s"].fillna(0).sum()),
            "last_result": res["created_at"].max() if len(res) else None,
            "details": details,
        }
    return info


def coverage_table(overall: pd.DataFrame, fails: pd.DataFrame, order: list[str], info: dict) -> pd.DataFrame:
    rows = []
    for m in order:
        row = {"model": m}
        for q, short in (("bulk_e_per_atom", "bulk"), ("slab_e_per_atom", "slab"), ("gamma", "gamma")):
            s = overall[(overall["model"] == m) & (overall["quantity"] == q)]
            for k in ("n_ok", "n_failed", "n_total"):
                row[f"{short}_{k}"] = int(s[k].iloc[0]) if len(s) else 0
        f = fails[fails["model"] == m]
        row["failures"] = "; ".join(f"{r.quantity}: {r.failure_kind} ×{r.count}" for r in f.itertuples())
        row["wall_s"] = info[m]["wall_s"]
        row["devices"] = ", ".join(info[m]["devices"])
        rows.append(row)
    return pd.DataFrame(rows)


def ptables_in_background(bulks: pd.DataFrame, slabs: pd.DataFrame, order: list[str]):
    """The per-model periodic tables (about 2 s each with pymatviz) drawn in a child process
    while this one computes the rest, when there are several models and CPU cores; returns a
    function that gives them."""
    import os

    if len(order) < 3 or (os.cpu_count() or 1) < 2:
        figures = element_rmse_ptables(bulks, slabs, order)
        return lambda: figures
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1)
    future = pool.submit(element_rmse_ptables, bulks, slabs, order)

    def result():
        try:
            return future.result()
        finally:
            pool.shutdown()

    return result


def report_context(store, runs: pd.DataFrame, labels: dict[str, str], protocol: str, output: Path, fig_dir: Path, *,
                   n_boot: int, seed: int, ci: float, subset: Subset | None = None) -> ReportContext:
    """The context of the report of ``runs`` (one data set, one protocol; ``labels``: fingerprint
    -> model label) with every shared number computed. ``subset``: only these slabs and their
    bulks (:class:`SubsetView`); :class:`EmptySubset` when no result lies in it."""
    dataset = str(runs["dataset"].iloc[0])
    if subset is not None and not subset.everything:
        store = SubsetView(store, subset)
    results = pd.concat([store.results(dataset, fp, protocol) for fp in runs["fingerprint"]], ignore_index=True)
    if results.empty and isinstance(store, SubsetView):
        raise EmptySubset(f"no stored result of the selected runs on {dataset} matches {subset.describe()}")
    results["model"] = results["fingerprint"].map(labels)
    from surfbench.analysis.seen import mark_from_store

    results = mark_from_store(store, results)
    records = store.records(dataset)
    bulks, slabs = bulk_predictions(results), slab_predictions(results)
    order = model_order(slabs) if not slabs.empty else sorted(labels.values())
    order += [m for m in sorted(labels.values()) if m not in order]
    from surfbench.analysis.comparable import comparability

    ctx = ReportContext(store=store, dataset=dataset, protocol=protocol, runs=runs, labels=labels, results=results,
                        records=records, bulks=bulks, slabs=slabs, order=order, colours=model_colours(order),
                        info=model_info(store, runs, labels, results), comp=None, n_boot=n_boot, seed=seed, ci=ci,
                        output=output, fig_dir=fig_dir)
    ctx.overall = metrics(bulks, slabs)
    ctx.per_element = metrics(bulks, slabs, by="element")
    ctx.per_miller = metrics(bulks, slabs, by="miller")
    ctx.fails = failure_counts(bulks, slabs)
    ctx.coverage = coverage_table(ctx.overall, ctx.fails, order, ctx.info)
    ctx.ptables = ptables_in_background(bulks, slabs, order)  # the slowest figures, drawn meanwhile
    ctx.comparison, ctx.pairs = comparison_table(bulks, slabs, ctx.info, n_boot=n_boot, seed=seed, ci=ci)
    ctx.comp = comparability(slabs, order)
    ctx.corr, ctx.n_corr = error_correlation_matrix(slabs, order) if not slabs.empty else (pd.DataFrame(), 0)
    from surfbench.analysis.facets import (
        dft_facet_ordering,
        dft_wulff,
        facet_ordering,
        missing_low_index,
        wulff_analysis,
    )

    if not slabs.empty:
        ctx.facets, ctx.dft_facets = facet_ordering(slabs), dft_facet_ordering(slabs)
        ctx.wulff, ctx.shapes = wulff_analysis(slabs, records)
        ctx.dft_wulff, ctx.dft_shapes = dft_wulff(slabs, records)
    ctx.missing_facets = missing_low_index(records)
    return ctx
