"""``surfbench train``: train, register and evaluate a model (a learning curve with --sizes)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer


def train(
    method: Annotated[str, typer.Option("--method", "-m", help="mace, nequip, mtp, m3gnet, chgnet, sevennet, readout (a linear read-out on a frozen model's features: --from sevennet-0), snap or qsnap (linear/quadratic SNAP fitted from scratch).")],
    elements: Annotated[str, typer.Option("--elements", "-e", help="Elements, comma-separated: one model for all of them.")],
    source: Annotated[str, typer.Option("--from", help="'scratch', or the model to fine-tune: a registry name or a model file/folder.")] = "scratch",
    data: Annotated[str, typer.Option("--data", help="Training frames: 'mlearn', or extxyz file(s) with energies and forces, comma-separated.")] = "mlearn",
    preset: Annotated[str, typer.Option(help="paper, cpu-quick or tiny (see the presets table in docs/commands/train.md).")] = "cpu-quick",
    protocol: Annotated[str, typer.Option(help="no-surfaces (no slab trained; judged on all), mlearn-split (the data's split: judged on the test-split slabs) or facet-cv (leave one facet out per element).")] = "no-surfaces",
    sizes: Annotated[str | None, typer.Option(help="Training-set sizes of a learning curve, e.g. 10,20,40 or 10%,25%,50%,all ('all': the whole pool; default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/validation split and the subsets (and of the training).")] = 0,
    include_surfaces: Annotated[bool, typer.Option("--include-surfaces", help="Keep frames of evaluated slabs in the training pool (they are held out by default).")] = False,
    store: Annotated[Path, typer.Option("--store", "--workdir", "-w", help="Project folder: result store, trained models and their registry file.")] = Path("."),
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Surface data set to evaluate on (default mlearn-surfaces for --data mlearn).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda (training and evaluation).")] = "cpu",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder with local data files.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for training and evaluation (default: the packages').")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a preset setting, key=value (repeatable), e.g. --set epochs=5.")] = None,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="Budget of the command's iterative fits (MTP, SevenNet): a fit still running then stops at its last checkpoint, marked not converged (budget-stopped); rerun the same command to continue it.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue each fit from its checkpoint, and fail if there is none (a rerun without it continues a checkpoint of the same training too, and starts anything else over).")] = False,
) -> None:
    """Train a model (from scratch or fine-tuned) on leakage-safe training frames, register it,
    evaluate it on the held-out slabs and record its cost; with --sizes, a learning curve."""
    from surfbench.cli.common import console, fail
    from surfbench.data.errors import DataError
    from surfbench.execution.run_command import check_threads
    from surfbench.models.device import check_device
    from surfbench.training.base import TrainingError
    from surfbench.training.pipeline import train_curve
    from surfbench.training.presets import parse_overrides

    check_threads(threads, fail)
    check_device(device)  # before any frame is loaded or model trained
    try:
        overrides = parse_overrides(set_)
        result = train_curve(
            method, source, elements=[e.strip() for e in elements.split(",") if e.strip()], store_dir=store,
            data=data, dataset=dataset, preset=preset, sizes=sizes.split(",") if sizes else None, seed=seed,
            include_surfaces=include_surfaces, device=device, overrides=overrides,
            data_dir=data_dir, threads=threads, echo=lambda s: console.print(s, markup=False), protocol=protocol,
            max_minutes=max_minutes, resume=resume,
        )
    except (TrainingError, DataError, ValueError) as exc:
        fail(str(exc))
    from rich.table import Table

    def num(v, fmt="{:.3f}"):
        return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)

    if len(result.folds) > 1:
        _print_pooled(result, store, console)
        return
    rows = ([result.zero_shot] if result.zero_shot else []) + result.models
    n_test = rows[0].frames.get("n_frames", 0) if rows else 0
    t = Table(title=f"{result.curve}: gamma on {result.split.summary()['n_evaluated_slabs']} judged slabs "
                    f"({result.protocol}), energy/forces on {n_test} test frames")
    for col in ("model", "n_train", "gamma RMSE (J/m^2)", "gamma mean signed error", "E RMSE (eV/atom)", "F RMSE (eV/A)",
                "train wall (s)", "peak RSS (MB)", "parameters", ""):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r.name, str(r.n_train), num(r.surface.get("gamma_rmse")), num(r.surface.get("gamma_mean_signed_error"), "{:+.3f}"),
            num(r.frames.get("energy_rmse_ev_per_atom"), "{:.4f}"), num(r.frames.get("force_rmse_ev_per_a")),
            num(r.wall_s, "{:.0f}"), num(r.peak_rss_mb, "{:.0f}"), num(r.n_parameters, "{:,}"),
            "zero-shot" if r.n_train == 0 else ", ".join(x for x in ("reused" if r.reused else "",
                                                                      (f"NOT CONVERGED ({r.state})" if r.state else "NOT CONVERGED")
                                                                      if r.converged is False else "") if x),
        )
    console.print(t)
    console.print(f"store: {Path(store) / 'surfbench.sqlite'}; registry of trained models: "
                  f"{Path(store) / 'trained-models.yaml'} ('surfbench report --workdir {store}' shows the curves)")


def _print_pooled(result, store: Path, console) -> None:
    """facet-cv: one row per training-set size, the folds' judged slabs pooled (each slab
    predicted by the fold that never saw its facet), beside the zero-shot model on the same slabs."""
    from surfbench.report.protocol_console import protocol_rich_table
    from surfbench.store.results import ResultStore
    from surfbench.training.curves import protocol_table

    with ResultStore(store, read_only=True) as st:
        table = protocol_table(st, result.dataset, curves=[result.curve],
                               zero_shot=[result.zero_shot.fingerprint] if result.zero_shot else [])
    console.print(protocol_rich_table(table, title=f"{result.curve}: {len(result.folds)} folds, each slab judged by the "
                                                   "fold that never saw its facet"))
    console.print(f"store: {Path(store) / 'surfbench.sqlite'}; registry of trained models: "
                  f"{Path(store) / 'trained-models.yaml'} ('surfbench table --trained --workdir {store}' prints this again)")
