"""The CLI is its own package: shared options and error handling in ``surfbench.cli.common``,
one module per command group, and no module reaches into another's private helpers."""

from __future__ import annotations

import ast
from pathlib import Path

import surfbench

SRC = Path(surfbench.__file__).parent


def _imports_from_cli(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("surfbench.cli"):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "surfbench":
            yield "surfbench", [a.name for a in node.names if a.name == "cli"]


def test_no_private_helper_is_imported_from_the_cli():
    offenders = []
    for path in SRC.rglob("*.py"):
        for module, names in _imports_from_cli(ast.parse(path.read_text(), str(path))):
            private = [n for n in names if n.startswith("_")]
            if private or (module == "surfbench" and names):
                offenders.append(f"{path.relative_to(SRC)}: from {module} import {', '.join(names)}")
    assert not offenders, offenders


def test_command_modules_live_in_the_cli_package_and_every_command_is_registered():
    from surfbench.cli import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    groups = {g.name for g in app.registered_groups}
    assert commands == {"run", "softening", "table", "report", "export", "map", "datasets", "models", "md", "train"}
    assert groups == {"data", "env"}
    for c in app.registered_commands:
        assert c.callback.__module__.startswith("surfbench.cli."), (c.name, c.callback.__module__)
    assert not (SRC / "cli.py").exists()
