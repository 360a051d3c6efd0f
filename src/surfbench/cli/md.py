"""``surfbench md``: NVT stability runs of slabs with verdicts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

VERDICT_STYLE = {"stable": "green"}


def md_command(
    ids: Annotated[list[str] | None, typer.Argument(help="Slab record ids (instead of --select).")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Registry name or 'package.module:factory'.")] = "chgnet-0.3.0",
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Data set name or file.")] = "mlearn-surfaces",
    select: Annotated[str, typer.Option(help="Which slabs when no ids are given: worst-per-element (largest |gamma error| "
                                             "of the model in the store's static results).")] = "worst-per-element",
    workdir: Annotated[Path, typer.Option("--workdir", "-w", help="Folder of the result store; trajectories go to <workdir>/md/.")] = Path("."),
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder with local data files.")] = None,
    preset: Annotated[str, typer.Option(help="Settings preset: cpu-quick (0.2 ps) or paper (30 ps).")] = "cpu-quick",
    thermostat: Annotated[str | None, typer.Option(help="langevin, bussi or nose-hoover (default: the preset's).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Target temperature (K) for every slab, instead of factor x melting point.")] = None,
    temperature_factor: Annotated[float | None, typer.Option(help="T = factor x melting point (K) from pymatgen (default 0.8).")] = None,
    timestep: Annotated[float | None, typer.Option(help="Time step (fs).")] = None,
    steps: Annotated[int | None, typer.Option(help="Number of steps.")] = None,
    friction: Annotated[float | None, typer.Option(help="Langevin friction (1/fs).")] = None,
    taut: Annotated[float | None, typer.Option(help="Bussi / Nose-Hoover time constant (fs).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the velocities and the thermostat noise.")] = None,
    max_force: Annotated[float | None, typer.Option(help="Exploded above this force (eV/Angstrom); default 50.")] = None,
    min_distance_factor: Annotated[float | None, typer.Option(help="Too close below this x the nearest-neighbour distance; default 0.5.")] = None,
    desorption_height: Annotated[float | None, typer.Option(help="Desorbed beyond this height (Angstrom) past the outermost layer; default 4.")] = None,
    lindemann_max: Annotated[float | None, typer.Option(help="Melted above this inner-layer Lindemann ratio; default 0.2.")] = None,
    device: Annotated[str, typer.Option(help="Torch device: cpu or cuda.")] = "cpu",
    dtype: Annotated[str | None, typer.Option(help="float32 or float64 where the model supports both.")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads.")] = None,
    model_kwargs: Annotated[str | None, typer.Option(help="JSON keyword arguments for a 'module:factory' model.")] = None,
    rerun: Annotated[bool, typer.Option(help="Run again even where the store holds the run.")] = False,
) -> None:
    """NVT molecular dynamics of slabs at 0.8 x the melting point with a stability verdict per run
    (stable, exploded, too_close, desorbed, melted, calculator_error); results go to the store."""
    from dataclasses import replace

    from rich.table import Table

    from surfbench.cli.common import console, fail, load_dataset, model_kwargs_option, progress_bar
    from surfbench.dynamics.md import MDInputError
    from surfbench.dynamics.presets import MDSettingsError, get_preset
    from surfbench.dynamics.runner import run_checks
    from surfbench.dynamics.select import WORST_PER_ELEMENT, SelectionError, by_ids, worst_per_element
    from surfbench.dynamics.verdicts import Thresholds
    from surfbench.execution.run_command import check_threads
    from surfbench.models import ModelLoadError, load_model
    from surfbench.store.results import ResultStore

    check_threads(threads, fail)
    try:
        settings = get_preset(preset).with_overrides(
            thermostat=thermostat, temperature_k=temperature, temperature_factor=temperature_factor,
            timestep_fs=timestep, steps=steps, friction_per_fs=friction, taut_fs=taut, seed=seed)
        overrides = {"max_force_ev_per_a": max_force, "min_distance_factor": min_distance_factor,
                     "desorption_height_a": desorption_height, "lindemann_max": lindemann_max}
        thresholds = replace(Thresholds(), **{k: v for k, v in overrides.items() if v is not None})
    except (MDSettingsError, ValueError) as exc:
        fail(str(exc))
    kwargs = model_kwargs_option(model_kwargs)
    if not ids and select != WORST_PER_ELEMENT:
        fail(f"--select must be {WORST_PER_ELEMENT} (or give slab record ids as arguments)")
    ds = load_dataset(dataset, data_dir, "all")
    store = ResultStore(workdir)
    try:
        lm = load_model(model, device=device, kwargs=kwargs, dtype=dtype, weights=None)
        fingerprint = lm.fingerprint.id
        if ids:
            selection = by_ids(ds, list(ids))
        else:
            selection = worst_per_element(store, ds, fingerprint, model, workdir_hint=str(workdir))
        for note in selection.notes:
            console.print(f"[yellow]note:[/] {note}")
        if not selection.choices:
            fail("no slab selected")
        for c in selection.choices:
            console.print(f"{c.record.id} ({c.record.element}, {c.record.n_atoms} atoms): {c.reason}")
        for c in selection.choices:  # fail early, before any run, on an element without a melting point
            settings.temperature_for(c.record.element)
        console.print(f"{preset}: {settings.thermostat}, {settings.steps} steps of {settings.timestep_fs} fs "
                      f"({settings.duration_ps:g} ps), seed {settings.seed}")
        with progress_bar() as bar:
            task = {"id": None}

            def on_start(record_id: str, element: str, temp: float, total: int) -> None:
                task["id"] = bar.add_task(f"{model} {record_id} at {temp:.0f} K", total=total)

            def on_step(done: int, total: int) -> None:
                bar.update(task["id"], completed=done)

            results = run_checks(ds, selection.choices, lm, store, settings, thresholds, preset=preset,
                                 threads=threads, rerun=rerun, on_start=on_start, on_step=on_step)
    except (ModelLoadError, SelectionError, MDSettingsError, MDInputError) as exc:
        store.close()
        fail(str(exc))
    reused = sum(r.reused for r in results)
    if reused:
        console.print(f"reused {reused} of {len(results)} runs from {store.path}")
    console.print(verdict_table(results, f"{model} ({fingerprint}): MD stability, {preset}", Table))
    trajs = sorted({str(Path(store.path).parent / r.row["trajectory"]) for r in results if r.row.get("trajectory")})
    if trajs:
        console.print(f"trajectories (ASE .traj): {Path(trajs[0]).parent}/")
    store.close()


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def verdict_table(results, title: str, table_cls):
    """A rich table of CheckResults: verdict and numbers per slab."""
    t = table_cls(title=title)
    for col in ("slab", "element", "T (K)", "verdict", "time (ps)", "T mean +- std (K)", "drift (eV/atom/ps)",
                "max disp (A)", "min dist (A)", "Lindemann", "desorbed", "message"):
        t.add_column(col)
    for r in results:
        row = r.row
        style = VERDICT_STYLE.get(row["verdict"], "red")
        t.add_row(
            r.record_id, r.element, _fmt(row["temperature_k"], ".0f"), f"[{style}]{row['verdict']}[/]",
            _fmt(row["time_ps"], ".3g"),
            f"{_fmt(row['temperature_mean_k'], '.0f')} +- {_fmt(row['temperature_std_k'], '.0f')}",
            _fmt(row["energy_drift_ev_per_atom_per_ps"], "+.3f"), _fmt(row["max_displacement_a"], ".2f"),
            _fmt(row["min_distance_a"], ".2f"), _fmt(row["lindemann_inner"], ".3f"),
            _fmt(row["n_desorbed"], ".0f"), "" if row["verdict"] == "stable" else str(row["message"])[:80],
        )
    return t
