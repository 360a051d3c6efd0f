"""Command-line interface: ``surfbench run | table | report | datasets | models | export``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup


class _UserErrors(TyperGroup):
    """Runs a command; a damaged or unusable input (result store, data file, model, device, a
    file the command cannot read or write) ends it with its message and exit code 2, never a
    Python traceback (these errors name the file and what to do)."""

    def invoke(self, ctx):
        from rich.markup import escape

        from surfbench.data.errors import DataError
        from surfbench.evaluation.store_file import StoreError
        from surfbench.models.base import ModelLoadError

        try:
            return super().invoke(ctx)
        except (StoreError, DataError, ModelLoadError) as exc:
            _fail(escape(str(exc)))
        except OSError as exc:  # a folder that does not exist, a read-only file, a full disk
            if exc.filename is None:
                raise
            _fail(escape(f"{exc.strerror or exc}: {exc.filename}"))


app = typer.Typer(
    help="surfbench: benchmark interatomic potentials on DFT surface energies.",
    no_args_is_help=True,
    add_completion=False,
    cls=_UserErrors,
)
console = Console()
err = Console(stderr=True)


def _make_console(stderr: bool = False) -> Console:
    """A console as wide as the terminal, or 160 columns when output is not a terminal
    (logs, pipes) so that tables do not wrap; $COLUMNS wins."""
    stream = sys.stderr if stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else (None if stream.isatty() else 160)
    return Console(width=width, stderr=stderr)


@app.callback()
def _main() -> None:
    """surfbench: benchmark interatomic potentials on DFT surface energies."""
    global console, err
    console, err = _make_console(), _make_console(stderr=True)

SPLIT_CHOICES = {"all": None, "train": {"train"}, "test": {"test"}}

WorkdirOpt = Annotated[Path, typer.Option("--workdir", "-w", help="Project folder holding the result store (surfbench.sqlite).")]
DataDirOpt = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Folder with local data files (searched before $SURFBENCH_DATA_DIR and the cache)."),
]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def _dataset_key(name: str | None) -> str | None:
    """The store's name of a data set given on the command line: a user's data file is stored
    under its resolved path (see :func:`surfbench.data.userdata.dataset_name`)."""
    from surfbench.data.registry import DATASETS
    from surfbench.data.userdata import dataset_name

    if name is None or name in DATASETS or name.endswith(".manifest.json") or not Path(name).is_file():
        return name
    return dataset_name(name)


def _load_dataset(name: str, data_dir: Path | None, split: str, *, cached: bool = False):
    """The data set with its slabs restricted to ``split``; ``cached``: from the built-data-set
    cache when its inputs are unchanged. Bad input ends the command with a clear error."""
    from surfbench.data.errors import DataError
    from surfbench.data.registry import load_dataset
    from surfbench.execution.dataset_cache import load_dataset_cached

    if split not in SPLIT_CHOICES:
        _fail(f"--split must be one of {', '.join(SPLIT_CHOICES)}")
    try:
        with console.status(f"loading data set {name}"):
            ds = (load_dataset_cached if cached else load_dataset)(name, data_dir)
    except DataError as exc:
        _fail(str(exc))
    return ds.select(splits=SPLIT_CHOICES[split])


@app.command()
def run(
    model: Annotated[str, typer.Option("--model", "-m", help="Registry name (see 'surfbench models') or 'package.module:factory'.")] = "chgnet-0.3.0",
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Data set name (see 'surfbench datasets').")] = "mlearn-surfaces",
    workdir: WorkdirOpt = Path("."),
    data_dir: DataDirOpt = None,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:N or mps.")] = "cpu",
    dtype: Annotated[Optional[str], typer.Option(help="float32 or float64 where the model supports both (default: the model's).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Torch CPU threads (default: torch's).")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Local weights file/folder, instead of the registry's source.")] = None,
    protocol: Annotated[str, typer.Option(help="Evaluation protocol: static (DFT geometries), relaxed (the model's own minimum) or model-built (the model builds and relaxes its own bulk and slab; needed for reference-value data sets such as mse21).")] = "static",
    split: Annotated[str, typer.Option(help="Which slabs: all, train or test.")] = "all",
    model_kwargs: Annotated[Optional[str], typer.Option(help="JSON keyword arguments for a 'module:factory' model.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Recompute structures whose stored result is a failure.")] = False,
    fmax: Annotated[float, typer.Option(help="relaxed: convergence, max force in eV/Angstrom.")] = 0.05,
    steps: Annotated[int, typer.Option(help="relaxed: optimizer steps per structure.")] = 500,
    optimizer: Annotated[str, typer.Option(help="relaxed: FIRE, BFGS or LBFGS.")] = "FIRE",
    fix_bottom_layers: Annotated[int, typer.Option(help="relaxed: slab layers held fixed, from the bottom.")] = 0,
    layers: Annotated[Optional[int], typer.Option(help="model-built: slab thickness in atomic layers (default: the protocol's).")] = None,
    vacuum: Annotated[Optional[float], typer.Option(help="model-built: vacuum gap between slab images in Angstrom (default: the protocol's).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Evaluate on a local Dask cluster of N worker processes (one torch thread each unless --threads); with --scheduler slurm|pbs: N jobs.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of a running Dask scheduler (tcp://host:8786), or slurm / pbs for a dask-jobqueue cluster configured in Dask's jobqueue config.")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Seconds allowed per structure; an overrun is killed and recorded as failure kind 'timeout' (the model then runs in a killable child process).")] = None,
    keep_both_fingerprints: Annotated[bool, typer.Option(help="Store results even if the model's fingerprint differs from the one stored under the same name.")] = False,
) -> None:
    """Evaluate a model on a data set (only what the store lacks), then print the metrics.

    With --protocol relaxed the static run is done too (or reused) and the gamma error is split
    into its static part (DFT geometry) and its relaxation part."""
    from surfbench.evaluation.runner import run as run_eval
    from surfbench.evaluation.store import ResultStore
    from surfbench.execution.run_command import executor_for
    from surfbench.models import ModelLoadError, load_model
    from surfbench.models.registry import use_project

    from surfbench.models.device import check_device

    check_device(device)  # up front: a missing GPU is known before any data is loaded
    executor = executor_for(workers, scheduler, threads, timeout, _fail)
    kwargs = None
    if model_kwargs:
        try:
            kwargs = json.loads(model_kwargs)
        except json.JSONDecodeError as exc:
            _fail(f"--model-kwargs is not valid JSON: {exc}")
    ds = _load_dataset(dataset, data_dir, split, cached=True)
    if not ds.surfaces:
        _fail(f"data set {ds.name} has no slabs" + (f" in split {split!r}" if split != "all" else ""))
    for note in ds.notes:
        console.print(f"[dim]note: {note}[/]")
    store = ResultStore(workdir)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    use_project(workdir)  # models trained in this folder (surfbench train) are known by name
    updated: list[str] = []  # records whose labels changed since the store saw them
    try:
        lm = load_model(model, device=device, kwargs=kwargs, dtype=dtype, weights=str(weights) if weights else None)
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"{model} on {ds.name} ({protocol})", total=None)

            def on_start(total: int, todo: int) -> None:
                bar.update(task, total=todo)
                if todo < total:
                    console.print(f"reusing {total - todo} of {total} results from {store.path}")

            def progress(record_id: str, outcome) -> None:
                bar.advance(task)
                if outcome is not None and outcome.status != "ok":
                    bar.console.print(f"[yellow]{record_id}: {outcome.failure_kind}: {outcome.message}[/]")

            if protocol == "relaxed":
                from surfbench.evaluation.relax import RelaxedProtocol

                proto = RelaxedProtocol(fmax_ev_per_a=fmax, steps=steps, optimizer=optimizer, fix_bottom_layers=fix_bottom_layers)
                bar.update(task, description=f"{model} on {ds.name} (static)")
                updated += run_eval(ds, lm, store, "static", threads=threads, retry_failed=retry_failed, progress=progress, on_start=on_start,
                         executor=executor, keep_both_fingerprints=keep_both_fingerprints).updated
                bar.update(task, description=f"{model} on {ds.name} ({proto.name})", completed=0)
            elif protocol == "model-built":
                from surfbench.evaluation.model_built import ModelBuiltProtocol

                sizes = {k: v for k, v in (("layers", layers), ("vacuum_a", vacuum)) if v is not None}
                proto = ModelBuiltProtocol(fmax_ev_per_a=fmax, steps=steps, optimizer=optimizer, **sizes)
            else:
                proto = protocol
            summary = run_eval(ds, lm, store, proto, threads=threads, retry_failed=retry_failed, progress=progress, on_start=on_start,
                               executor=executor, keep_both_fingerprints=keep_both_fingerprints)
    except ModelLoadError as exc:
        store.close()
        _fail(str(exc))
    except ValueError as exc:
        store.close()
        _fail(str(exc))
    finally:
        executor.close()
    from rich.markup import escape

    for line in [*updated, *summary.updated]:
        console.print(f"[yellow]{escape(line)}[/]")
    console.print(
        f"{summary.computed} computed, {summary.reused} reused, {summary.failed} failed "
        f"(model fingerprint {summary.fingerprint})"
    )
    ids = {r.id for r in [*ds.bulks.values(), *ds.surfaces]}
    reference = store.reference_results(ds.name, summary.fingerprint, summary.protocol)
    if not reference.empty:  # a reference-value data set (mse21): no DFT energies to render
        from surfbench.analysis.reference_gamma import reference_predictions
        from surfbench.report.reference_tables import render_reference

        render_reference(console, reference_predictions(reference[reference["record_id"].isin(ids)]))
    else:
        _render(store, ds.name, summary.fingerprint, summary.protocol, ids)
    if summary.protocol != "static" and protocol == "relaxed":
        from surfbench.analysis.relaxation import relaxation_split
        from surfbench.report.console import render_relaxation_split

        def part(proto: str):
            res = store.results(ds.name, summary.fingerprint, proto)
            return res[res["record_id"].isin(ids)]

        render_relaxation_split(console, relaxation_split(part("static"), part(summary.protocol)))
    store.close()


def _render(store, dataset: str, fingerprint: str, protocol: str, ids: set[str] | None = None) -> None:
    from surfbench.report.console import render_run

    from surfbench.analysis.seen import mark_from_store

    results = mark_from_store(store, store.results(dataset, fingerprint, protocol))
    if ids is not None:
        results = results[results["record_id"].isin(ids)]
    render_run(console, results, f"{fingerprint} on {dataset}, {protocol}")


@app.command()
def softening(
    model: Annotated[list[str], typer.Option("--model", "-m", help="Model(s) to study; repeat the option for several.")] = ["chgnet-0.3.0"],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Surface data set judged before/after the correction (an mlearn one: the frames are the mlearn frames).")] = "mlearn-surfaces",
    workdir: WorkdirOpt = Path("."),
    data_dir: DataDirOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for the tables (CSV/JSON), the fitted corrections and the figures.")] = Path("softening"),
    frames_split: Annotated[str, typer.Option(help="mlearn frames to evaluate: all, train or test (fitting needs train).")] = "all",
    max_frames_per_group: Annotated[Optional[int], typer.Option(help="At most this many frames per (element, split, group), seeded (default: every frame).")] = None,
    fit_frames: Annotated[int, typer.Option(help="Training frames the correction is fitted on (per element with --per-element).")] = 10,
    per_element: Annotated[bool, typer.Option(help="Fit one scale per element instead of one per model.")] = False,
    energy_weight: Annotated[float, typer.Option(help="Weight of the energy MSE ((eV/atom)^2) in the fit.")] = 1.0,
    force_weight: Annotated[float, typer.Option(help="Weight of the force MSE ((eV/Angstrom)^2) in the fit.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of frame sampling and bootstrap intervals.")] = 0,
    device: Annotated[str, typer.Option(help="Torch device: cpu or cuda.")] = "cpu",
    threads: Annotated[Optional[int], typer.Option(help="Torch CPU threads (default: torch's).")] = None,
    png: Annotated[bool, typer.Option(help="Also write the figures as PNG (needs Chromium).")] = True,
) -> None:
    """Systematic softening (Deng et al. 2025): slopes of predicted vs DFT forces, energies and
    surface energies per model, element and frame group, and a cheap correction (one energy/force
    scale about the bulk reference) fitted on a few training frames, judged on the slabs."""
    import pandas as pd

    from surfbench.data.errors import DataError
    from surfbench.data.mlearn import load_mlearn_frames
    from surfbench.evaluation.frames import frame_id
    from surfbench.evaluation.softening import softening_study, subsample_frames
    from surfbench.evaluation.store import ResultStore
    from surfbench.models import ModelLoadError, load_model
    from surfbench.report import softening_figures as sf
    from surfbench.report.console import render_softening
    from surfbench.report.figures import FigureExportError, save_figure

    splits = {"all": ("training", "test"), "train": ("training",), "test": ("test",)}
    if frames_split not in splits:
        _fail("--frames-split must be all, train or test")
    if not dataset.startswith("mlearn"):
        _fail(f"softening uses the mlearn frames; --dataset must be an mlearn data set, not {dataset!r}")
    from surfbench.execution.run_command import check_threads

    check_threads(threads, _fail)
    ResultStore(workdir).close()  # a damaged or read-only store ends the command here, before any loading
    ds = _load_dataset(dataset, data_dir, "all")
    elements = sorted({s.element for s in ds.surfaces})
    try:
        frames = load_mlearn_frames(elements, splits[frames_split], data_dir)
    except DataError as exc:
        _fail(str(exc))
    frames = subsample_frames(frames, max_frames_per_group, seed)
    try:
        models = [load_model(m, device=device) for m in model]
    except ModelLoadError as exc:
        _fail(str(exc))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ResultStore(workdir) as store, Progress(*columns, console=console) as bar:
        tasks = {m.name: bar.add_task(f"{m.name}: frames", total=len(frames) + len(ds.bulks)) for m in models}
        try:
            res = softening_study(ds, frames, models, store, n_fit_frames=fit_frames, seed=seed, per_element=per_element,
                                  energy_weight=energy_weight, force_weight=force_weight, threads=threads,
                                  progress=lambda m, fid: bar.advance(tasks[m]))
        except ValueError as exc:  # e.g. a model whose fingerprint changed under the same name
            bar.stop()
            _fail(str(exc))
        preds = pd.concat([store.frame_results("mlearn-frames", m.fingerprint.id).assign(model=m.name) for m in models],
                          ignore_index=True)
    render_softening(console, res)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in res.slopes.items():
        df.to_csv(out / f"slopes_{name}.csv", index=False)
    res.gamma_slopes.to_csv(out / "slopes_gamma.csv", index=False)
    res.correction_effect.to_csv(out / "correction_effect.csv", index=False)
    res.table.to_csv(out / "frames.csv", index=False)
    for name, corr in res.corrections.items():
        corr.save(out / f"correction_{name}.json")
    figs = {
        "force_parity": sf.force_parity(sf.force_components(frames, [frame_id(f) for f in frames], preds, seed=seed),
                                        res.slopes.get("overall", pd.DataFrame())),
        "energy_parity": sf.energy_parity(res.table, res.slopes.get("overall", pd.DataFrame())),
        "slopes": sf.slope_bars(res.slopes.get("element", pd.DataFrame()), res.gamma_slopes),
    }
    for name, fig in figs.items():
        try:
            save_figure(fig, out / name, png=png, include_plotlyjs="directory")
        except FigureExportError as exc:
            err.print(f"[yellow]warning:[/] {exc}")
    console.print(f"wrote tables, corrections and figures to {out}")


@app.command()
def table(
    workdir: WorkdirOpt = Path("."),
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Only this model name.")] = None,
    models: Annotated[Optional[str], typer.Option("--models", help="Compare models in one table: 'all' or names separated by commas.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d")] = None,
    protocol: Annotated[Optional[str], typer.Option()] = None,
    split: Annotated[str, typer.Option(help="all, train or test.")] = "all",
) -> None:
    """Reprint the metrics of stored runs (no model or data is loaded)."""
    import pandas as pd

    from surfbench.report.console import render_comparison, render_run

    from surfbench.evaluation.store import STORE_NAME, ResultStore

    if not (workdir / STORE_NAME).is_file():
        _fail(f"no result store at {workdir / STORE_NAME}; run 'surfbench run' first")
    if split not in SPLIT_CHOICES:
        _fail(f"--split must be one of {', '.join(SPLIT_CHOICES)}")
    with ResultStore(workdir, read_only=True) as store:
        runs = store.runs()
        for col, val in (("model", model), ("dataset", _dataset_key(dataset)), ("protocol", protocol)):
            if val is not None:
                runs = runs[runs[col] == val]
        if models is not None and models != "all":
            runs = runs[runs["model"].isin([m.strip() for m in models.split(",")])]
        if runs.empty:
            _fail("no stored run matches")
        reference = runs["dataset"].isin(store.reference_datasets())  # reference values only (mse21)
        if reference.any():
            from surfbench.analysis.reference_gamma import reference_predictions
            from surfbench.report.reference_tables import render_reference

            for ds_name, grp in runs[reference].groupby("dataset", sort=False):
                console.print(f"[bold]{ds_name}[/] (reference values)")
                render_reference(console, reference_predictions(pd.concat(
                    [store.reference_results(ds_name, r["fingerprint"], r["protocol"]) for _, r in grp.iterrows()],
                    ignore_index=True)))
            runs = runs[~reference]

        from surfbench.analysis.seen import mark_from_store

        def load(r) -> pd.DataFrame:
            results = mark_from_store(store, store.results(r["dataset"], r["fingerprint"], r["protocol"]))
            if SPLIT_CHOICES[split] is not None:
                results = results[results["split"].isin(SPLIT_CHOICES[split]) | (results["kind"] == "bulk")]
            return results

        if models is None:
            for _, r in runs.iterrows():
                render_run(console, load(r), f"{r['fingerprint']} on {r['dataset']}, {r['protocol']}")
            return
        for (ds_name, proto), grp in runs.groupby(["dataset", "protocol"], sort=False):
            combined = pd.concat([load(r) for _, r in grp.iterrows()], ignore_index=True)
            render_comparison(console, combined, f"models on {ds_name}, {proto}, split {split}")


@app.command()
def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write; JSON, CSV and a figures folder go beside it.")] = Path("report.html"),
    workdir: WorkdirOpt = Path("."),
    models: Annotated[str, typer.Option("--models", help="'all' or model names (or fingerprints) separated by commas.")] = "all",
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Data set (default: the only one in the store).")] = None,
    protocol: Annotated[str, typer.Option(help="Evaluation protocol of the runs.")] = "static",
    png: Annotated[bool, typer.Option(help="Also write every figure as PNG (needs Chrome/Chromium for kaleido).")] = True,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the confidence intervals.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """Write a self-contained HTML report comparing stored runs on one data set (reads only the
    store: no model or data file is loaded), with its numbers as JSON/CSV and the figures as
    HTML/PNG beside it."""
    from surfbench.evaluation.store import STORE_NAME, ResultStore
    from surfbench.report.html import ReportError, build_report

    if not (workdir / STORE_NAME).is_file():
        _fail(f"no result store at {workdir / STORE_NAME}; run 'surfbench run' first or pass --workdir")
    if n_boot < 1:
        _fail("--n-boot must be at least 1")
    with ResultStore(workdir, read_only=True) as store:
        try:
            with console.status("building the report"):
                path = build_report(store, _dataset_key(dataset), models, protocol, output, png=png, n_boot=n_boot, seed=seed)
        except ReportError as exc:
            _fail(str(exc))
    meta = json.loads(path.with_name(path.stem + "-metrics.json").read_text(encoding="utf-8"))
    for warning in meta.get("warnings", []):
        err.print(f"[yellow]warning:[/] {warning}")
    console.print(f"wrote {path} ({len(meta['model_order'])} models on {meta['dataset']}, {meta['protocol']})")
    console.print(f"  numbers: {path.with_name(path.stem + '-metrics.json')} and {path.stem}-*.csv")
    console.print(f"  figures: {meta['figures']['folder']}")


# `surfbench map`: descriptor map and distance-vs-error correlation (body in report/map_command.py)
from surfbench.report.map_command import map_command as _map_command  # noqa: E402

app.command("map")(_map_command)


@app.command()
def datasets(
    details: Annotated[bool, typer.Option(help="Load each data set and print its summary and notes.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """List the named data sets."""
    from surfbench.data.registry import DATASETS

    t = Table(title="data sets")
    for col in ("name", "description", "reference", "licence"):
        t.add_column(col)
    for info in DATASETS.values():
        t.add_row(info.name, info.description, info.reference, info.licence)
    console.print(t)
    if details:
        for name in DATASETS:
            ds = _load_dataset(name, data_dir, "all")
            console.print(ds.summary())
            for note in ds.notes:
                console.print(f"  note: {note}")


@app.command()
def models(
    details: Annotated[bool, typer.Option(help="Also print licence, citation and notes.")] = False,
    workdir: WorkdirOpt = Path("."),
) -> None:
    """List the model registry (with the models trained in the work folder) and whether each
    model can run here."""
    from surfbench.models import list_specs
    from surfbench.models.registry import use_project

    use_project(workdir)
    from surfbench.models.base import package_version
    from surfbench.models.weights import resolve_weights

    t = Table(title="model registry (the paper's Table II as a superset)")
    for col in ("name", "family", "package", "parameters", "training set", "level of theory", "weights", "here"):
        t.add_column(col)
    for s in list_specs():
        if s.python:
            here = f"worker in {s.python}"
        elif s.package and package_version(s.package) == "not-installed":
            here = "[red]package missing[/]"
        elif s.weights.get("source") == "download":
            try:
                resolve_weights(s, download=False)
                here = "[green]ready[/]"
            except Exception:
                here = "[yellow]weights to download[/]"
        elif s.weights.get("source") == "local":
            here = ("[green]ready[/]" if Path(s.weights["path"]).exists() else "[red]weights missing[/]") \
                if s.weights.get("path") else "needs --weights"
        else:
            here = "[green]ready[/]"
        t.add_row(
            s.name, s.family, f"{s.package}{s.version}", f"{s.parameters:,}" if s.parameters else "-",
            f"{s.training_set} ({s.training_set_size})" if s.training_set_size else s.training_set,
            s.level_of_theory, str(s.weights.get("source", "")), here,
        )
    console.print(t)
    if details:
        for s in list_specs():
            console.print(f"[bold]{s.name}[/]: licence {s.licence}; {s.citation}")
            if s.note:
                console.print(f"  {s.note}")


data_app = typer.Typer(help="Data sets: validate users' files, explore a data set.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("build")
def data_build(
    name: Annotated[str, typer.Argument(help="Data set to build: mp-surfaces.")],
    api_key: Annotated[Optional[str], typer.Option(help="Materials Project API key (default: $MP_API_KEY).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder (default: <cache>/mp_surfaces).")] = None,
    elements: Annotated[Optional[str], typer.Option(help="Only these elements, comma-separated.")] = None,
) -> None:
    """Build a data set from its source (mp-surfaces: the MP API)."""
    from surfbench.data import mp_surfaces
    from surfbench.data.errors import DataError
    from surfbench.data.sources import cache_dir

    if name != "mp-surfaces":
        _fail(f"cannot build {name!r}; buildable: mp-surfaces")
    try:
        source = mp_surfaces.MPApiSource(api_key)
        with console.status("fetching surface and thermo documents from the Materials Project"):
            built = mp_surfaces.build(source, output or cache_dir() / "mp_surfaces",
                                      elements.split(",") if elements else None)
    except DataError as exc:
        _fail(str(exc))
    manifest = mp_surfaces.read_manifest(built.manifest)
    console.print(f"wrote {built.data} and {built.manifest}: {manifest['counts']} (MP database {manifest['db_version']})")


@data_app.command("validate")
def data_validate(
    path: Annotated[Path, typer.Argument(help="extxyz or ASE database (.db) file of slabs and bulks, or a data set name.")],
    min_vacuum: Annotated[float, typer.Option(help="Smallest vacuum gap (Angstrom) that makes a slab.")] = 5.0,
    data_dir: DataDirOpt = None,
) -> None:
    """Check a user data file; list every problem per record (exit code 1 if any). A named data
    set (or an mp-surfaces manifest) is loaded and its structures checked for overlapping atoms."""
    from surfbench.data.errors import DataError
    from surfbench.data.registry import DATASETS
    from surfbench.data.userdata import load_user_dataset, validate

    if str(path) in DATASETS or str(path).endswith(".manifest.json"):
        from rich.markup import escape

        ds = _load_dataset(str(path), data_dir, "all")  # a DataError (e.g. overlapping atoms) ends here
        for note in ds.notes:
            console.print(f"note: {escape(note)}")
        console.print(f"{ds.name}: OK, {len(ds.surfaces)} slabs, {len(ds.bulks)} bulks, elements {', '.join(ds.elements)}")
        return
    try:
        problems = validate(path, min_vacuum)
    except DataError as exc:
        _fail(str(exc))
    n_errors = sum(p.severity == "error" for p in problems)
    if problems:
        t = Table(title=f"{path}: {n_errors} problem(s), {len(problems) - n_errors} warning(s)")
        t.add_column("record")
        t.add_column("severity")
        t.add_column("problem")
        for p in problems:
            t.add_row(p.record, p.severity, p.message)
        console.print(t)
    if n_errors:
        raise typer.Exit(1)
    ds = load_user_dataset(path, min_vacuum=min_vacuum)
    console.print(f"{path}: OK, {len(ds.surfaces)} slabs, {len(ds.bulks)} bulks, elements {', '.join(ds.elements)}")


@data_app.command("explore")
def data_explore(
    dataset: Annotated[str, typer.Argument(help="Data set name or the path of a data file.")] = "mlearn-surfaces",
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the figures.")] = Path("explore"),
    data_dir: DataDirOpt = None,
    png: Annotated[bool, typer.Option(help="Also write PNG (needs Chrome/Chromium for kaleido).")] = True,
) -> None:
    """Fig. 1 of the paper for a data set: surfaces per element on a periodic table and the DFT
    surface energy per element (box + violin), as HTML and PNG, plus a text summary."""
    from surfbench.report.dataset_figures import gamma_by_element, summary, surfaces_per_element_ptable
    from surfbench.report.figures import FigureExportError, save_figure

    output.mkdir(parents=True, exist_ok=True)  # an unwritable folder is an error before any drawing
    ds = _load_dataset(dataset, data_dir, "all")
    stem = output / ds.name.replace("/", "_")
    written = []
    try:
        written += save_figure(surfaces_per_element_ptable(ds), f"{stem}-surfaces-per-element", png=png)
        written += save_figure(gamma_by_element(ds), f"{stem}-gamma-per-element", png=png)
    except FigureExportError as exc:
        _fail(str(exc))
    s = summary(ds)
    console.print(
        f"{ds.name}: {s['slabs']} slabs, {s['bulks']} bulks, {s['elements']} elements ({s['element_list']}), "
        f"{s['miller_families']} Miller indices (max index {s['max_miller_index']}"
        f"{', ' + str(s['slabs_with_unknown_miller']) + ' unknown' if s['slabs_with_unknown_miller'] else ''}), "
        f"{s['reconstructed']} reconstructed ({100 * s['reconstructed_share']:.1f} %); DFT gamma "
        f"{s['gamma_min_j_per_m2']:.2f} to {s['gamma_max_j_per_m2']:.2f} J/m^2 (median {s['gamma_median_j_per_m2']:.2f})"
    )
    for path in written:
        console.print(f"wrote {path}")


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.csv or .parquet).")],
    workdir: WorkdirOpt = Path("."),
) -> None:
    """Export every stored result joined with its record to CSV or Parquet."""
    from surfbench.evaluation.store import STORE_NAME, ResultStore

    if not (workdir / STORE_NAME).is_file():
        _fail(f"no result store at {workdir / STORE_NAME}")
    if not output.parent.is_dir():
        _fail(f"cannot write {output}: the folder {output.parent} does not exist")
    with ResultStore(workdir, read_only=True) as store:
        try:
            path = store.export(output)
        except ValueError as exc:
            _fail(str(exc))
    console.print(f"wrote {path}")


from surfbench.dynamics.cli import md_command  # noqa: E402 - typer only; the command imports the rest lazily

app.command("md")(md_command)


env_app = typer.Typer(help="Python environments for potential packages with conflicting pins.", no_args_is_help=True)
app.add_typer(env_app, name="env")


@env_app.command("list")
def env_list() -> None:
    """The recommended environments and what each installs."""
    from surfbench.models.environments import PRESETS
    from surfbench.models.isolated import envs_dir

    for name, steps in PRESETS.items():
        where = envs_dir() / name
        console.print(f"[bold]{name}[/] ({'exists' if where.exists() else 'not created'}: {where})")
        for step in steps:
            console.print("  pip install " + " ".join(step))


@env_app.command("create")
def env_create(
    name: Annotated[str, typer.Argument(help="Environment name; registry entries use it as python: env:NAME.")],
    preset: Annotated[Optional[str], typer.Option(help="Package set (default: the name).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the commands only.")] = False,
) -> None:
    """Create a venv with torch==2.13.0, this surfbench and a preset's packages."""
    from surfbench.models import environments

    preset = preset or name
    try:
        root, cmds = environments.create_commands(name, preset)
    except ValueError as exc:
        _fail(str(exc))
    if dry_run:
        console.print(f"python -m venv {root}")
        for cmd in cmds:
            console.print(" ".join(cmd))
        return
    environments.create(name, preset, echo=console.print)


@env_app.command("install")
def env_install(preset: Annotated[str, typer.Argument(help="Package set to install into the current environment.")]) -> None:
    """Install a preset's packages into the running environment (used by CI)."""
    from surfbench.models import environments

    if preset not in environments.PRESETS:
        _fail(f"unknown preset {preset!r}; known: {', '.join(environments.PRESETS)}")
    environments.install_here(preset, echo=console.print)


from surfbench.training.cli import train as _train  # noqa: E402 - the body imports its packages lazily

app.command("train")(_train)


if __name__ == "__main__":  # pragma: no cover
    app()
