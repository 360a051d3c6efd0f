"""Small helpers every layer uses: the installed version of a distribution and the sha256 of a
file. Below models and data (it imports nothing of surfbench), so neither reaches into the
other for them."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` (a name on PyPI, e.g. ``"mace-torch"``), or
    ``"not-installed"``; read from its metadata, without importing it."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not-installed"


def sha256_of(path: Path) -> str:
    """The sha256 (hex) of one file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
