"""Command-line interface: ``surfbench run | softening | table | report | map | datasets |
models | data | export | md | env | train``.

One module per command group; what they share (the application, its error handling, the
consoles, common options) is in :mod:`surfbench.cli.common`. Importing this package registers
every command on :data:`app`, in the order ``surfbench --help`` lists them. Each command imports
what it needs (torch, the potential packages) only when it runs.
"""

from __future__ import annotations

from surfbench.cli import (  # noqa: F401  (register run, softening)
    results,  # noqa: F401  (table, report, export)
    run,
    softening,
)
from surfbench.cli.common import app
from surfbench.cli.map import map_command
from surfbench.cli.md import md_command
from surfbench.cli.train import train

app.command("map")(map_command)
from surfbench.cli import data, registry  # noqa: E402,F401  (datasets, models; data build/validate/explore)

app.command("md")(md_command)
from surfbench.cli import env  # noqa: E402,F401  (env list/create/install)

app.command("train")(train)

__all__ = ["app"]
