"""``python -m surfbench.cli``: the same as the ``surfbench`` command."""

from surfbench.cli import app

app()
