"""``surfbench table | report | export``: the stored results, reprinted, reported and exported (read-only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from surfbench.cli.common import (
    SPLIT_CHOICES,
    ElementsOpt,
    MillerOpt,
    RequirePngOpt,
    WorkdirOpt,
    app,
    check_png,
    console,
    dataset_key,
    err,
    fail,
    split_names,
    subset_option,
)


def _no_such_runs(store, names: list[str], dataset: str | None, protocol: str | None) -> str:
    """Why ``table`` has nothing to show: the names (with did-you-mean) or the filters that
    match no stored run, and the runs the store holds (model, fingerprint, data set, protocol,
    results)."""
    from surfbench.names import did_you_mean

    runs = store.runs()
    if names:
        head = "; ".join(f"no stored run of {n!r}"
                         f"{did_you_mean(n, runs['fingerprint'] if '@' in n else runs['model'].dropna())}" for n in names)
    else:
        where = ", ".join(f"{k} {v!r}" for k, v in (("data set", dataset), ("protocol", protocol)) if v is not None)
        head = f"no stored run matches {where or 'these options'}"
    if runs.empty:
        return f"{escape(head)}; the store {store.path} holds no results (run 'surfbench run' first)"
    lines = [f"  {r['model']} ({r['fingerprint']}) on {r['dataset']}, {r['protocol']}: {int(r['n'])} results"
             for _, r in runs.iterrows()]
    return escape(f"{head}. The store {store.path} holds:\n" + "\n".join(lines))


@app.command()
def table(
    workdir: WorkdirOpt = Path("."),
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (names or fingerprints), each in its own tables: repeat it (-m a -m b) or separate them with commas (-m a,b), as for 'run'.")] = None,
    models: Annotated[str | None, typer.Option("--models", help="Compare models in one table: 'all' or names separated by commas (a,b), as for 'run --models'.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    protocol: Annotated[str | None, typer.Option()] = None,
    split: Annotated[str, typer.Option(help="all, train or test.")] = "all",
    elements: ElementsOpt = None,
    miller: MillerOpt = None,
    trained: Annotated[bool, typer.Option("--trained", help="Trained models per evaluation protocol (surfbench train), beside the zero-shot models on the same judged slabs, per element.")] = False,
) -> None:
    """Reprint the metrics of stored runs (no model or data is loaded)."""
    import pandas as pd

    if trained:
        _trained_table(workdir, dataset)
        return

    from surfbench.report.console import render_comparison, render_run
    from surfbench.store.results import STORE_NAME, ResultStore

    if not (workdir / STORE_NAME).is_file():
        fail(f"no result store at {workdir / STORE_NAME}; run 'surfbench run' first")
    if split not in SPLIT_CHOICES:
        fail(f"--split must be one of {', '.join(SPLIT_CHOICES)}")
    subset = subset_option(elements, miller)
    with ResultStore(workdir, read_only=True) as store:
        from surfbench.store.selection import of_models, stored_runs

        runs = stored_runs(store, None, dataset_key(dataset), protocol)
        wanted = split_names(model) + ([] if models is None or models == "all" else split_names(models))
        if wanted:
            unknown = [n for n in wanted if not ((runs["model"] == n) | (runs["fingerprint"] == n)).any()]
            if unknown:
                fail(_no_such_runs(store, unknown, dataset, protocol))
            runs = of_models(runs, wanted)
        if runs.empty:
            fail(_no_such_runs(store, [], dataset, protocol))
        reference = runs["dataset"].isin(store.reference_datasets())  # reference values only (mse21)
        if reference.any():
            from surfbench.analysis.reference_gamma import reference_predictions
            from surfbench.report.reference_tables import render_reference

            for ds_name, grp in runs[reference].groupby("dataset", sort=False):
                console.print(f"[bold]{ds_name}[/] (reference values)")
                render_reference(console, reference_predictions(subset.frame(pd.concat(
                    [store.reference_results(ds_name, r["fingerprint"], r["protocol"]) for _, r in grp.iterrows()],
                    ignore_index=True))))
            runs = runs[~reference]

        from surfbench.analysis.stored import run_results

        def load(r) -> pd.DataFrame:
            return subset.frame(run_results(store, r["dataset"], r["fingerprint"], r["protocol"], splits=SPLIT_CHOICES[split]))

        loaded = [(r, res) for r, res in ((r, load(r)) for _, r in runs.iterrows()) if not res.empty]
        if not loaded and not reference.any():
            fail(f"no stored result matches {subset.describe()}")
        where = f" ({subset.describe()})" if not subset.everything else ""
        if models is None:
            for r, res in loaded:
                render_run(console, res, f"{r['fingerprint']} on {r['dataset']}, {r['protocol']}{where}")
        else:
            groups: dict[tuple[str, str], list[pd.DataFrame]] = {}
            for r, res in loaded:
                groups.setdefault((r["dataset"], r["protocol"]), []).append(res)
            for (ds_name, proto), parts in groups.items():
                render_comparison(console, pd.concat(parts, ignore_index=True),
                                  f"models on {ds_name}, {proto}, split {split}{where}")
        from surfbench.store.selection import stale_note

        for ds_name in dict.fromkeys(runs["dataset"]):
            note = stale_note(store, ds_name)
            if note:
                console.print(f"note: {escape(note)}")


@app.command()
def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write; JSON, CSV and a figures folder go beside it.")] = Path("report.html"),
    workdir: WorkdirOpt = Path("."),
    models: Annotated[str, typer.Option("--models", help="'all' or model names (or fingerprints) separated by commas (a,b), as for 'run' and 'table'.")] = "all",
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models: repeat it (-m a -m b) or separate them with commas, as for 'run'; the same as --models a,b.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Data set (default: the only one in the store).")] = None,
    protocol: Annotated[str, typer.Option(help="Evaluation protocol of the runs.")] = "static",
    png: Annotated[bool, typer.Option(help="Also write every figure as PNG (needs Chrome/Chromium for kaleido; without it: HTML only and a warning).")] = True,
    require_png: RequirePngOpt = False,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the confidence intervals.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    elements: ElementsOpt = None,
    miller: MillerOpt = None,
) -> None:
    """Write a self-contained HTML report comparing stored runs on one data set (reads only the
    store: no model or data file is loaded), with its numbers as JSON/CSV and the figures as
    HTML/PNG beside it."""
    from surfbench.report.figures import FigureExportError
    from surfbench.report.html import ReportError, build_report
    from surfbench.store.results import STORE_NAME, ResultStore

    if not (workdir / STORE_NAME).is_file():
        fail(f"no result store at {workdir / STORE_NAME}; run 'surfbench run' first or pass --workdir")
    if n_boot < 1:
        fail("--n-boot must be at least 1")
    check_png(png, require_png)
    subset = subset_option(elements, miller)
    with ResultStore(workdir, read_only=True) as store:
        try:
            with console.status("building the report"):
                chosen = ",".join(split_names(model) + ([] if models.strip() == "all" else split_names(models))) or "all"
                path = build_report(store, dataset_key(dataset), chosen, protocol, output, png=png, n_boot=n_boot, seed=seed,
                                    subset=subset, require_png=require_png)
        except (ReportError, FigureExportError) as exc:
            fail(str(exc))
    meta = json.loads(path.with_name(path.stem + "-metrics.json").read_text(encoding="utf-8"))
    for warning in meta.get("warnings", []):
        err.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    n = len(meta["model_order"])
    console.print(f"wrote {path} ({n} model{'' if n == 1 else 's'} on {meta['dataset']}, {meta['protocol']})")
    console.print(f"  numbers: {path.with_name(path.stem + '-metrics.json')} and {path.stem}-*.csv")
    console.print(f"  figures: {meta['figures']['folder']}")




@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.csv or .parquet).")],
    workdir: WorkdirOpt = Path("."),
    elements: ElementsOpt = None,
    miller: MillerOpt = None,
) -> None:
    """Export every stored result (or those of --elements/--miller) joined with its record to CSV or
    Parquet: every protocol, DFT data sets and reference-value ones (mSE21); records no longer in
    their data set (stale) left out. Nothing matching: an error, no file."""
    from surfbench.store.results import STORE_NAME, ResultStore

    if not (workdir / STORE_NAME).is_file():
        fail(f"no result store at {workdir / STORE_NAME}")
    if not output.parent.is_dir():
        fail(f"cannot write {output}: the folder {output.parent} does not exist")
    from surfbench.analysis.export import export_results
    from surfbench.store.selection import stale_note

    subset = subset_option(elements, miller)
    with ResultStore(workdir, read_only=True) as store:
        try:
            path = export_results(store, output, subset=subset)
        except ValueError as exc:
            fail(str(exc))
        note = stale_note(store)
    console.print(f"wrote {path}")
    if note:
        console.print(f"note: {escape(note)}")


def _trained_table(workdir: Path, dataset: str | None) -> None:
    """``table --trained``: every training protocol's models beside the zero-shot models."""
    from surfbench.report.protocol_console import protocol_rich_table
    from surfbench.store.results import STORE_NAME, ResultStore
    from surfbench.store.trainings import trainings
    from surfbench.training.curves import protocol_table

    unfinished = _unfinished_runs(workdir)
    if not (workdir / STORE_NAME).is_file():
        if unfinished:
            return
        fail(f"no result store at {workdir / STORE_NAME}; run 'surfbench train' first")
    with ResultStore(workdir, read_only=True) as store:
        tr = trainings(store)
        names = sorted(set(tr["dataset"])) if dataset is None else [dataset_key(dataset)]
        if tr.empty or not set(names) & set(tr["dataset"]):
            if unfinished:
                return
            fail(f"no training recorded in {workdir / STORE_NAME}; run 'surfbench train' first")
        for name in names:
            table = protocol_table(store, name)
            console.print(protocol_rich_table(table, f"trained models on {name} by evaluation protocol "
                                                     "(gamma on the judged slabs; 95 % bootstrap intervals)", elements=True))


def _unfinished_runs(workdir: Path) -> int:
    """Deep trainings whose checkpoint is ahead of what the store records: killed, still
    running, or stopped before any model was recorded (:func:`surfbench.training.epochs.run_states`)."""
    from surfbench.training.epochs import unfinished_runs
    from surfbench.training.pipeline import TRAINED_DIR

    rows = unfinished_runs(workdir / TRAINED_DIR)
    if rows:
        console.print(f"[bold]trainings not finished[/] ({len(rows)}; no model of theirs is in the tables above "
                      "unless recorded earlier; 'surfbench train ... --resume' continues each):")
        for r in rows:
            console.print(f"  {r['name']}: {r['state']} after {r['epochs_done']} epochs (best validation loss "
                          f"{r['best_loss']:.6g} at epoch {r['best_epoch']}; last checkpoint {r['updated_at']})",
                          markup=False)
    return len(rows)
