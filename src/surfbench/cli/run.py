"""``surfbench run``: evaluate one or several models on a data set and print the metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from surfbench.cli.common import (
    DataDirOpt,
    ElementsOpt,
    MillerOpt,
    WorkdirOpt,
    app,
    console,
    err,
    fail,
    load_dataset,
    model_kwargs_option,
    model_names,
    progress_bar,
    subset_option,
)
from surfbench.evaluation.registry import protocols_help

#: what ``surfbench run`` evaluates when no model is named (the README's main job)
DEFAULT_MODEL = "chgnet-0.3.0"


@app.command()
def run(
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Registry name (see 'surfbench models') or 'package.module:factory' [default: chgnet-0.3.0]; several: repeat it (-m a -m b) or separate them with commas (-m a,b); 'offline': every registry model ready here.")] = None,
    models: Annotated[str | None, typer.Option("--models", help="Several models, comma-separated (a,b): the same as -m a -m b, and as 'table --models a,b'.")] = None,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Data set name (see 'surfbench datasets').")] = "mlearn-surfaces",
    workdir: WorkdirOpt = Path("."),
    data_dir: DataDirOpt = None,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:N or mps.")] = "cpu",
    dtype: Annotated[str | None, typer.Option(help="float32 or float64 where the model supports both (default: the model's).")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads (default: torch's).")] = None,
    weights: Annotated[Path | None, typer.Option(help="Local weights file/folder, instead of the registry's source (one --model only).")] = None,
    protocol: Annotated[str, typer.Option(help=f"Evaluation protocol: {protocols_help()}.")] = "static",
    split: Annotated[str, typer.Option(help="Which slabs: all, train or test.")] = "all",
    elements: ElementsOpt = None,
    miller: MillerOpt = None,
    model_kwargs: Annotated[str | None, typer.Option(help="JSON keyword arguments for a 'module:factory' model (one --model only).")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Recompute structures whose stored result is a failure.")] = False,
    fmax: Annotated[float, typer.Option(help="relaxed: convergence, max force in eV/Angstrom.")] = 0.05,
    steps: Annotated[int, typer.Option(help="relaxed: optimizer steps per structure.")] = 500,
    optimizer: Annotated[str, typer.Option(help="relaxed: FIRE, BFGS or LBFGS.")] = "FIRE",
    fix_bottom_layers: Annotated[int, typer.Option(help="relaxed: slab layers held fixed, from the bottom.")] = 0,
    layers: Annotated[int | None, typer.Option(help="model-built: slab thickness in atomic layers (default: the protocol's).")] = None,
    vacuum: Annotated[float | None, typer.Option(help="model-built: vacuum gap between slab images in Angstrom (default: the protocol's).")] = None,
    workers: Annotated[int | None, typer.Option(help="Evaluate on a local Dask cluster of N worker processes (one torch thread each unless --threads); with --scheduler slurm|pbs: N jobs.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Address of a running Dask scheduler (tcp://host:8786), or slurm / pbs for a dask-jobqueue cluster configured in Dask's jobqueue config.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds allowed per structure; an overrun is killed and recorded as failure kind 'timeout' (the model then runs in a killable child process).")] = None,
    keep_both_fingerprints: Annotated[bool, typer.Option(help="Store results even if the model's fingerprint differs from the one stored under the same name.")] = False,
) -> None:
    """Evaluate one or several models on a data set (only what the store lacks), then print the
    metrics (for several models: one comparison table; a model that fails to load is reported,
    the others still run, and the exit code is 1).

    With --protocol relaxed the static run is done too (or reused) and the gamma error is split
    into its static part (DFT geometry) and its relaxation part."""
    from surfbench.execution.run_command import executor_for
    from surfbench.models import ModelLoadError
    from surfbench.models.device import check_device
    from surfbench.models.registry import use_project
    from surfbench.store.results import ResultStore

    check_device(device)  # up front: a missing GPU is known before any data is loaded
    executor = executor_for(workers, scheduler, threads, timeout, fail)
    kwargs = model_kwargs_option(model_kwargs)
    subset = subset_option(elements, miller)
    use_project(workdir)  # models trained in this folder (surfbench train) are known by name
    names = model_names([*(model or []), *([models] if models else [])] or [DEFAULT_MODEL])
    if len(names) > 1 and (weights is not None or kwargs):
        fail("--weights and --model-kwargs belong to one model; give a single --model with them")
    if len(names) == 1:  # a mistyped name is known before the data set is loaded
        from surfbench.models.registry import resolve_model

        resolve_model(names[0], kwargs)  # ModelLoadError: exit code 2 with did-you-mean (cli._UserErrors)
    from surfbench.evaluation.registry import protocol_from_options

    options = dict(fmax_ev_per_a=fmax, steps=steps, optimizer=optimizer, fix_bottom_layers=fix_bottom_layers,
                   layers=layers, vacuum_a=vacuum)
    try:  # ValueError: an unknown protocol, settings it refuses (a vacuum under 5 Angstrom, ...)
        proto = protocol_from_options(protocol, options)
    except ValueError as exc:
        fail(escape(str(exc)))
    ds = subset.dataset(load_dataset(dataset, data_dir, split, cached=True))
    if not ds.surfaces:
        fail(f"data set {ds.name} has no slabs" + (f" in split {split!r}" if split != "all" else "")
              + (f" with {subset.describe()}" if not subset.everything else ""))
    try:
        proto.check_dataset(ds)
    except ValueError as exc:
        fail(escape(str(exc)))
    for note in ds.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    _busy_hint(threads, workers, scheduler)
    store = ResultStore(workdir)
    settings = dict(device=device, kwargs=kwargs, dtype=dtype, weights=str(weights) if weights else None, threads=threads,
                    protocol=protocol, proto=proto, retry_failed=retry_failed, keep_both_fingerprints=keep_both_fingerprints)
    done: list = []  # run summaries, in the order of the models
    failed: dict[str, str] = {}  # model -> why it did not run
    try:
        for name in names:
            try:
                done.append(_evaluate(name, ds, store, executor, **settings))
            except (ModelLoadError, ValueError) as exc:
                if len(names) == 1:
                    store.close()
                    fail(str(exc))
                failed[name] = str(exc)
                err.print(f"[bold red]error:[/] {escape(name)}: {escape(str(exc))}")
    finally:
        executor.close()
    ids = {r.id for r in [*ds.bulks.values(), *ds.surfaces]}
    if len(names) == 1:
        _report_single(store, ds, done[0], proto, ids)
    else:
        _report_several(store, ds, done, failed, ids, subset)
    store.close()
    from surfbench.data.checks import range_warning

    if (doubt := range_warning(ds)) is not None:
        err.print(f"[yellow]warning:[/] {escape(doubt)}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _busy_hint(threads: int | None, workers: int | None, scheduler: str | None) -> None:
    """A line when other processes keep this machine's cores busy and no thread count was given:
    the packages' default (a thread per core) then competes with them."""
    import os

    if threads is not None or workers is not None or scheduler is not None or not hasattr(os, "getloadavg"):
        return
    cores, load = os.cpu_count() or 1, os.getloadavg()[0]
    if load > cores:
        console.print(f"[dim]note: this machine is busy (load average {load:.1f} on {cores} cores); if the run is "
                      "slow, --threads 1 keeps its threads from competing with the other processes[/]")


def _evaluate(name: str, ds, store, executor, *, device, kwargs, dtype, weights, threads, protocol, proto, retry_failed,
              keep_both_fingerprints):
    """Load one model and evaluate it on ``ds`` under its own progress bar; returns its run
    summary with the lines of every record whose labels changed (``summary.updated``)."""
    from surfbench.execution.run_command import run_protocol
    from surfbench.models import load_model

    lm = load_model(name, device=device, kwargs=kwargs, dtype=dtype, weights=weights)
    with progress_bar() as bar:
        task = bar.add_task(f"{name} on {ds.name} ({protocol})", total=None)
        current = [protocol]  # the protocol running now (a relaxed run does the static one first)

        def on_start(total: int, todo: int) -> None:
            if not todo:  # nothing to compute: a sentence, not an empty 0/0 bar
                bar.update(task, visible=False)
                bar.live.transient = True  # and no empty line where the bar was
                console.print(f"{escape(name)} on {ds.name} ({current[0]}): all {total} results reused from {store.path}")
                return
            bar.update(task, total=todo, visible=True)
            if todo < total:
                console.print(f"reusing {total - todo} of {total} results from {store.path}")

        def on_protocol(p: str) -> None:
            current[0] = p
            bar.update(task, description=f"{name} on {ds.name} ({p})", completed=0)

        def progress(record_id: str, outcome) -> None:
            bar.advance(task)
            if outcome is not None and outcome.status != "ok":
                bar.console.print(f"[yellow]{record_id}: {outcome.failure_kind}: {outcome.message}[/]")

        common = dict(threads=threads, retry_failed=retry_failed, progress=progress, on_start=on_start,
                      executor=executor, keep_both_fingerprints=keep_both_fingerprints)
        # the same computation as surfbench.evaluate(); a relaxed protocol runs the static one first
        summaries = run_protocol(ds, lm, store, proto, **common, on_protocol=on_protocol)
    summary = summaries[-1]
    summary.updated[:0] = [line for s in summaries[:-1] for line in s.updated]  # labels changed, seen by the static run
    return summary


def _report_single(store, ds, summary, proto, ids: set[str]) -> None:
    """What ``run`` prints for one model: its counts, metrics and, for a protocol that runs the
    static one first (``needs_first``: relaxed), the split of its error into static and relaxation."""
    from rich.markup import escape

    for line in summary.updated:
        console.print(f"[yellow]{escape(line)}[/]")
    console.print(
        f"{summary.computed} computed, {summary.reused} reused, {summary.failed} failed "
        f"(model fingerprint {summary.fingerprint})"
    )
    reference = store.reference_results(ds.name, summary.fingerprint, summary.protocol)
    if not reference.empty:  # a reference-value data set (mse21): no DFT energies to render
        from surfbench.analysis.reference_gamma import reference_predictions
        from surfbench.report.reference_tables import render_reference

        render_reference(console, reference_predictions(reference[reference["record_id"].isin(ids)]))
    else:
        _render(store, ds.name, summary.fingerprint, summary.protocol, ids)
    if "static" in proto.needs_first:
        from surfbench.analysis.relaxation import relaxation_split
        from surfbench.report.console import render_relaxation_split

        def part(key: str):
            res = store.results(ds.name, summary.fingerprint, key)
            return res[res["record_id"].isin(ids)]

        render_relaxation_split(console, relaxation_split(part("static"), part(summary.protocol)))


def _report_several(store, ds, done: list, failed: dict[str, str], ids: set[str], subset) -> None:
    """What ``run`` prints for several models: a line per model (or its error), then one
    comparison table per protocol (as ``table --models``)."""
    import pandas as pd
    from rich.markup import escape

    from surfbench.analysis.stored import run_results
    from surfbench.report.console import render_comparison

    for s in done:
        for line in s.updated:
            console.print(f"[yellow]{escape(line)}[/]")
        console.print(f"{escape(s.model)}: {s.computed} computed, {s.reused} reused, {s.failed} failed "
                      f"(model fingerprint {s.fingerprint})")
    for name, why in failed.items():
        console.print(f"[red]{escape(name)}: not run: {escape(why)}[/]")
    where = f" ({subset.describe()})" if not subset.everything else ""
    for proto in dict.fromkeys(s.protocol for s in done):
        fps = [s.fingerprint for s in done if s.protocol == proto]
        reference = pd.concat([store.reference_results(ds.name, fp, proto) for fp in fps], ignore_index=True)
        if not reference.empty:  # a reference-value data set (mse21)
            from surfbench.analysis.reference_gamma import reference_predictions
            from surfbench.report.reference_tables import render_reference

            render_reference(console, reference_predictions(reference[reference["record_id"].isin(ids)]))
            continue
        combined = pd.concat([run_results(store, ds.name, fp, proto, record_ids=ids) for fp in fps], ignore_index=True)
        render_comparison(console, combined, f"models on {ds.name}, {proto}{where}")


def _render(store, dataset: str, fingerprint: str, protocol: str, ids: set[str] | None = None) -> None:
    from surfbench.analysis.stored import run_results
    from surfbench.report.console import render_run

    results = run_results(store, dataset, fingerprint, protocol, record_ids=ids)
    render_run(console, results, f"{fingerprint} on {dataset}, {protocol}")
