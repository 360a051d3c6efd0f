"""What every ``surfbench`` command shares: the Typer application with its error handling (a
damaged or unusable input ends a command with its message and exit code 2, never a traceback),
the consoles, the common options and the helpers that turn bad input into a clear error.

The commands live in one module per group beside this one (run, softening, results, registry,
data, env, md, map, train); :mod:`surfbench.cli` registers them in order."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from surfbench.records import SPLIT_CHOICES  # split name -> slab splits (the command modules use it too)


class _UserErrors(TyperGroup):
    """Runs a command; a damaged or unusable input (result store, data file, model, device, a
    file the command cannot read or write) ends it with its message and exit code 2, never a
    Python traceback (these errors name the file and what to do)."""

    def invoke(self, ctx):
        from rich.markup import escape

        from surfbench.data.errors import DataError
        from surfbench.models.base import ModelLoadError
        from surfbench.store.file import StoreError

        try:
            return super().invoke(ctx)
        except (StoreError, DataError, ModelLoadError) as exc:
            fail(escape(str(exc)))
        except OSError as exc:  # a folder that does not exist, a read-only file, a full disk
            if exc.filename is None:
                raise
            fail(escape(f"{exc.strerror or exc}: {exc.filename}"))


app = typer.Typer(
    help="surfbench: benchmark interatomic potentials on DFT surface energies.",
    no_args_is_help=True,
    add_completion=False,
    cls=_UserErrors,
)
console = Console()
err = Console(stderr=True)


def progress_bar(*, eta: bool = True):
    """The commands' progress bar on :data:`console`: description, bar, done/total, elapsed
    and (with ``eta``) the estimated time left; its lines stay after it ends."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, *([TimeRemainingColumn()] if eta else []), console=console, transient=False)


def fit_to_terminal(c: Console) -> None:
    """Make ``c`` as wide as the terminal, or 160 columns when its output is not a terminal
    (logs, pipes) so that tables do not wrap; $COLUMNS wins. Done at the start of every command
    (the consoles are module-level, shared by the command modules)."""
    stream = sys.stderr if c.stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    c.width = int(columns) if columns.isdigit() else (None if stream.isatty() else 160)  # type: ignore[assignment]


@app.callback()
def _main() -> None:
    """surfbench: benchmark interatomic potentials on DFT surface energies."""
    from surfbench.models.model_info import passive_openmp

    fit_to_terminal(console)
    fit_to_terminal(err)
    passive_openmp()  # before any model loads torch: OpenMP threads sleep rather than spin


WorkdirOpt = Annotated[Path, typer.Option("--workdir", "-w", help="Project folder holding the result store (surfbench.sqlite).")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder with local data files (searched before $SURFBENCH_DATA_DIR and the cache)."),
]


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def model_kwargs_option(text: str | None) -> dict | None:
    """``--model-kwargs``: the JSON keyword arguments of a ``module:factory`` model (None when
    not given); invalid JSON ends the command with a clear error."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--model-kwargs is not valid JSON: {exc}")


def dataset_key(name: str | None) -> str | None:
    """The store's name of a data set given on the command line: a user's data file is stored
    under its resolved path (see :func:`surfbench.data.userdata.dataset_name`)."""
    from surfbench.data.registry import stored_name

    return stored_name(name)


def load_dataset(name: str, data_dir: Path | None, split: str, *, cached: bool = False):
    """The data set with its slabs restricted to ``split``; ``cached``: from the built-data-set
    cache when its inputs are unchanged. Bad input ends the command with a clear error."""
    from surfbench.data.errors import DataError
    from surfbench.data.registry import load_dataset
    from surfbench.execution.dataset_cache import load_dataset_cached

    if split not in SPLIT_CHOICES:
        fail(f"--split must be one of {', '.join(SPLIT_CHOICES)}")
    try:
        with console.status(f"loading data set {name}"):
            ds = (load_dataset_cached if cached else load_dataset)(name, data_dir)
    except DataError as exc:
        fail(str(exc))
    return ds.select(splits=SPLIT_CHOICES[split])


ElementsOpt = Annotated[str | None, typer.Option("--elements", "-e", help="Only slabs of these elements, comma-separated (e.g. Mo,Si), with their bulks.")]
MillerOpt = Annotated[str | None, typer.Option("--miller", help="Only slabs of these Miller indices, comma-separated: 110,211 or '1 1 0' or '(1,1,0)'.")]


RequirePngOpt = Annotated[bool, typer.Option("--require-png", help="A PNG that cannot be written (no Chrome/Chromium) is an error (exit code 2) instead of a warning.")]


def check_png(png: bool, require_png: bool) -> None:
    if require_png and not png:
        fail("--require-png and --no-png contradict each other; give one of them")


def subset_option(elements: str | None, miller: str | None):
    """The ``--elements/--miller`` selection (:class:`surfbench.data.subset.Subset`); a malformed
    value ends the command with a clear error."""
    from surfbench.data.subset import Subset, SubsetError

    try:
        return Subset.parse(elements, miller)
    except SubsetError as exc:
        fail(str(exc))


def split_names(values: list[str] | str | None) -> list[str]:
    """Model names as ``run`` and ``table`` take them, in either form: repeated options
    (``-m a -m b``) or one comma-separated value (``--models a,b``), or both; each once, in the
    order given."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return list(dict.fromkeys(n.strip() for v in values for n in v.split(",") if n.strip()))


def model_names(models: list[str]) -> list[str]:
    """The ``--model`` values (:func:`split_names`: repeated or comma-separated) with
    ``offline`` expanded to the registry models ready here (as 'surfbench models' shows them);
    the others are listed as skipped, with the reason."""
    from surfbench.models.readiness import offline_models

    names: list[str] = []
    for m in split_names(models):
        if m != "offline":
            names.append(m)
            continue
        ready, skipped = offline_models()
        console.print(f"offline: {len(ready)} model(s) ready here: {', '.join(ready) or 'none'}")
        for name, reason in skipped:
            console.print(f"[dim]skipped {name}: {reason}[/]")
        names += ready
    names = list(dict.fromkeys(names))  # each model once, in the order given
    if not names:
        fail("no model to run: no registry model is ready here (see 'surfbench models')")
    return names


