"""``surfbench datasets | models``: what can be evaluated, and with what."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from surfbench.cli.common import DataDirOpt, WorkdirOpt, app, console, load_dataset


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
            ds = load_dataset(name, data_dir, "all")
            console.print(ds.summary())
            for note in ds.notes:
                console.print(f"  note: {note}")


#: terminal width from which ``surfbench models`` shows every column of the registry
FULL_TABLE_COLUMNS = 150


@app.command()
def models(
    details: Annotated[bool, typer.Option(help="Also print licence, citation and notes.")] = False,
    workdir: WorkdirOpt = Path("."),
) -> None:
    """List the model registry (with the models trained in the work folder) and whether each
    model can run here."""
    from surfbench.models import list_specs
    from surfbench.models.readiness import readiness
    from surfbench.models.registry import use_project

    use_project(workdir)
    specs = list_specs()
    name_width = max((len(s.name) for s in specs), default=4)
    # every column needs room to be read; in a terminal narrower than that, the columns a user
    # needs to choose and type a model (the rest: --details, or a wider terminal)
    full = (console.width or 160) >= FULL_TABLE_COLUMNS
    t = Table(title="model registry (the paper's Table II as a superset)")
    # the name is what a user types (run -m NAME): never cut or wrapped, however narrow the
    # terminal; the other columns wrap around it
    t.add_column("name", no_wrap=True, min_width=name_width)
    cols = ("family", "package", "parameters", "training set", "level of theory", "weights", "here") if full else (
        "family", "parameters", "here")
    for col in cols:
        t.add_column(col, overflow="fold")
    for s in specs:
        cells = {"family": s.family, "package": f"{s.package}{s.version}",
                 "parameters": f"{s.parameters:,}" if s.parameters else "-",
                 "training set": f"{s.training_set} ({s.training_set_size})" if s.training_set_size else s.training_set,
                 "level of theory": s.level_of_theory, "weights": str(s.weights.get("source", "")),
                 "here": readiness(s).markup}
        t.add_row(s.name, *[cells[c] for c in cols])
    console.print(t)
    if not full and not details:
        console.print(f"[dim]package, training set, level of theory and weights: 'surfbench models --details', or a "
                      f"terminal of {FULL_TABLE_COLUMNS} columns or more[/]")
    if details:
        for s in specs:
            if not full:
                console.print(f"[bold]{s.name}[/]: {s.package}{s.version}; trained on {s.training_set}"
                              + (f" ({s.training_set_size})" if s.training_set_size else "")
                              + f"; {s.level_of_theory}; weights: {s.weights.get('source', '')}")
            console.print(f"[bold]{s.name}[/]: licence {s.licence}; {s.citation}")
            if s.note:
                console.print(f"  {s.note}")
