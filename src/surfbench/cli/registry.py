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
    t = Table(title="model registry (the paper's Table II as a superset)")
    for col in ("name", "family", "package", "parameters", "training set", "level of theory", "weights", "here"):
        t.add_column(col)
    for s in list_specs():
        here = readiness(s).markup
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
