"""Which stored runs a command reads, and how a table or figure labels them: one rule for every
reader (``surfbench table``, ``report``, ``map``, the console tables and the Python API).

A run is one (data set, model fingerprint, protocol) of :meth:`ResultStore.runs
<surfbench.store.results.ResultStore.runs>`. Models are named by name or fingerprint. The rule
for models trained by ``surfbench train`` (:func:`leave_out_trained`): they cover only their
elements' slabs, so a comparison of every model of a data set (the report and the map without
named models) leaves them out, unless every run is a trained one; named, they are always shown.
``surfbench table`` and :func:`surfbench.load_results` list every run (:func:`stored_runs`),
each in its own table, trained ones included.
"""

from __future__ import annotations

import pandas as pd

from surfbench.store.results import ResultStore
from surfbench.store.trainings import trainings


class SelectionError(ValueError):
    """No stored run matches, or a bad selection; the message lists what is stored."""


def of_models(runs: pd.DataFrame, names: list[str] | set[str]) -> pd.DataFrame:
    """The runs of the models ``names`` (model names or fingerprints)."""
    wanted = set(names)
    return runs[runs["model"].isin(wanted) | runs["fingerprint"].isin(wanted)]


def stored_runs(store: ResultStore, model: str | None = None, dataset: str | None = None,
                protocol: str | None = None) -> pd.DataFrame:
    """The store's runs (:meth:`ResultStore.runs`: dataset, fingerprint, model, protocol,
    counts) of ``model`` (a name or a fingerprint), ``dataset`` (the store's name of it) and
    ``protocol``; None: any. Trained models included."""
    runs = store.runs()
    if model is not None:
        runs = of_models(runs, [model])
    for col, val in (("dataset", dataset), ("protocol", protocol)):
        if val is not None:
            runs = runs[runs[col] == val]
    return runs.reset_index(drop=True)


def leave_out_trained(store: ResultStore, runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` without those of models trained by ``surfbench train`` (see the module
    docstring), unless every run is a trained one."""
    trained = runs["fingerprint"].isin(set(trainings(store)["fingerprint"].dropna()))
    if trained.any() and not trained.all():
        return runs[~trained]
    return runs


def select_runs(store: ResultStore, dataset: str | None, models: list[str] | str | None, protocol: str, *,
                reference_section: str) -> pd.DataFrame:
    """The stored runs of one DFT data set and protocol that a comparison of models shows:
    ``models`` (names or fingerprints, a list or ``a,b``; None, empty or ``all``: every model but
    the trained ones, :func:`leave_out_trained`). ``dataset=None`` is allowed when the store
    holds a single DFT data set. ``reference_section``: the report section that shows the
    reference-value data sets (named when one of them is asked for). :class:`SelectionError`
    when nothing matches."""
    runs = store.runs()
    reference = store.reference_datasets()  # no DFT records: shown in the 'reference' section of any report
    if dataset in reference:
        raise SelectionError(f"{dataset!r} holds reference values only (no DFT records): its results are in the "
                             f"section '{reference_section}' of the report of a DFT data set with the same models "
                             "(e.g. --dataset mlearn-surfaces), or printed by 'surfbench table --dataset "
                             f"{dataset}'")
    runs = runs[~runs["dataset"].isin(reference)]
    if runs.empty:
        raise SelectionError(f"the store {store.path} holds no results on a DFT data set; run 'surfbench run' first")
    if dataset is None:
        names = sorted(runs["dataset"].unique())
        if len(names) > 1:
            raise SelectionError(f"the store holds several data sets ({', '.join(names)}): choose one with --dataset")
        dataset = names[0]
    sel = runs[(runs["dataset"] == dataset)]
    if sel.empty:
        raise SelectionError(f"no stored run on data set {dataset!r}; stored: "
                             f"{', '.join(sorted(runs['dataset'].unique()))}")
    sel = sel[sel["protocol"] == protocol]
    if sel.empty:
        raise SelectionError(f"no stored run of protocol {protocol!r} on {dataset!r}; stored protocols: "
                             f"{', '.join(sorted(runs.loc[runs['dataset'] == dataset, 'protocol'].unique()))}")
    if isinstance(models, str):
        models = None if models.strip() == "all" else [m.strip() for m in models.split(",") if m.strip()]
    if models:
        missing = set(models) - set(sel["model"]) - set(sel["fingerprint"])
        if missing:
            from surfbench.names import did_you_mean

            stored = sorted(sel["model"].astype(str))
            raise SelectionError("; ".join(f"no stored run of {m!r}{did_you_mean(m, stored)}" for m in sorted(missing))
                                 + f" on {dataset!r} ({protocol}); stored: {', '.join(stored)}")
        sel = of_models(sel, models)
    else:
        sel = leave_out_trained(store, sel)
    return sel.reset_index(drop=True)


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """fingerprint -> the label a table or figure shows for a run: the model name, or the
    fingerprint (``name@digest``) where one name has several fingerprints in ``runs``
    (columns ``fingerprint`` and ``model``), so that two columns are never headed alike."""
    pairs = runs[["fingerprint", "model"]].drop_duplicates("fingerprint")
    counts = pairs["model"].value_counts()
    return {fp: (name if isinstance(name, str) and counts[name] == 1 else fp)
            for fp, name in zip(pairs["fingerprint"], pairs["model"])}


def stale_note(store: ResultStore, dataset: str | None = None) -> str | None:
    """A sentence on the stale records of ``dataset`` (None: of every data set) that a reading
    command left out (:meth:`ResultStore.mark_members`), or None when there are none."""
    stale = store.stale_records(dataset)
    if stale.empty:
        return None
    per = stale.groupby("dataset", sort=True).agg(records=("record_id", "size"), results=("results", "sum"))
    parts = [f"{int(r.records)} record(s) of {name} with {int(r.results)} result(s)" for name, r in per.iterrows()]
    return (f"left out: {'; '.join(parts)}, no longer in their data set (removed or renamed since they were "
            "evaluated: stale, kept in the store)")
