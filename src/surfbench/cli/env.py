"""``surfbench env list | create | install``: environments for packages with conflicting pins."""

from __future__ import annotations

from typing import Annotated

import typer

from surfbench.cli.common import app, console, fail

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
    preset: Annotated[str | None, typer.Option(help="Package set (default: the name).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the commands only.")] = False,
) -> None:
    """Create a venv with torch==2.13.0, this surfbench and a preset's packages."""
    from surfbench.models import environments

    preset = preset or name
    try:
        root, cmds = environments.create_commands(name, preset)
    except ValueError as exc:
        fail(str(exc))
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
        fail(f"unknown preset {preset!r}; known: {', '.join(environments.PRESETS)}")
    environments.install_here(preset, echo=console.print)
