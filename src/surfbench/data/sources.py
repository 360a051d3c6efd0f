"""Where data files come from: local folders first, then a pinned download into a cache.

A file is looked for, by its path relative to a data folder (e.g. ``mlearn/Mo/training.json``),
in this order:

1. the folder given on the command line (``--data-dir``) or in the API (``data_dir=``);
2. the folder in the environment variable ``SURFBENCH_DATA_DIR``;
3. the user cache folder (``platformdirs.user_cache_dir("surfbench")/data``, or
   ``SURFBENCH_CACHE_DIR``).

If none holds it, it is downloaded from a URL pinned to a commit into the cache, and its
sha256 is checked. Every local copy is checked against the same sha256, so a data set name
always means the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from surfbench.data.errors import DataError
from surfbench.util import sha256_of

ENV_DATA_DIR = "SURFBENCH_DATA_DIR"
ENV_CACHE_DIR = "SURFBENCH_CACHE_DIR"


@dataclass(frozen=True)
class PinnedFile:
    """A data file with its path inside a data folder, a pinned URL and its sha256."""

    relpath: str
    url: str
    sha256: str
    licence: str = ""


def cache_dir() -> Path:
    """The folder that downloads go to (created on demand)."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env) if env else Path(user_cache_dir("surfbench")) / "data"


def search_path(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for data files, in order."""
    folders: list[Path] = []
    if data_dir:
        folders.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        folders.append(Path(env).expanduser())
    folders.append(cache_dir())
    return folders


def find_local(relpath: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        candidate = folder / relpath
        if candidate.is_file():
            return candidate
    return None


def verify(path: Path, pinned: PinnedFile) -> Path:
    actual = sha256_of(path)
    if actual != pinned.sha256:
        raise DataError(
            f"sha256 {actual} differs from the pinned {pinned.sha256} of {pinned.url}; "
            "the file is truncated, modified or another version. Replace it with the "
            "original (or delete it to download it again).",
            path=path,
        )
    return path


def fetch(pinned: PinnedFile, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Return a verified local path of ``pinned``, downloading it into the cache if needed."""
    folders = search_path(data_dir)
    local = find_local(pinned.relpath, folders)
    if local is not None:
        return verify(local, pinned)
    searched = ", ".join(str(f) for f in folders)
    if not download:
        raise DataError(f"not found in any data folder ({searched})", path=pinned.relpath)
    target = cache_dir() / pinned.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    import pooch  # imported here: only needed for downloads

    try:
        got = pooch.retrieve(
            pinned.url,
            known_hash=f"sha256:{pinned.sha256}",
            fname=target.name,
            path=target.parent,
            progressbar=False,
        )
    except Exception as exc:  # network errors come in many types (requests, OSError, ...)
        raise DataError(
            f"not found locally (searched {searched}) and the download from {pinned.url} "
            f"failed: {type(exc).__name__}: {exc}. If this machine is offline, put a copy "
            f"at <folder>/{pinned.relpath} and point {ENV_DATA_DIR} or --data-dir at <folder>.",
            path=pinned.relpath,
        ) from exc
    return Path(got)


@dataclass(frozen=True)
class BuiltFiles:
    """What a data set builder wrote: the data file and its manifest."""

    data: Path
    manifest: Path


def read_manifest_json(path: str | os.PathLike, required: tuple[str, ...]) -> dict:
    """A built data set's manifest (JSON) with the ``required`` keys, or a :class:`DataError`
    naming the file."""
    import json

    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the manifest: {exc}", path=path) from None
    return require_keys(manifest, required, path)


def require_keys(manifest: dict, required: tuple[str, ...], path: str | os.PathLike) -> dict:
    """``manifest`` if it has every ``required`` key, else a :class:`DataError` naming the file."""
    for key in required:
        if key not in manifest:
            raise DataError(f"manifest has no {key!r}", path=path)
    return manifest
