"""Where model weights come from: a path the user gives, a local model folder, the cache,
or a pinned download.

A registry entry's ``weights`` block names them::

    weights:
      source: download            # wheel | download | local | code
      relpath: mace/2023-12-03-mace-128-L1_epoch-199.model   # inside a model folder
      url: https://...            # pinned URL (for a folder: base URL, files appended)
      sha256: <hex> | null        # null: not published; the hash is recorded on first use
      files: [model.json, model.pt, state.pt]   # only for a weights *folder*
      sha256_files: {model.pt: <hex>, ...}      # per-file hashes of a folder

Looked for, in order: the explicit path (``--weights``), ``$SURFBENCH_MODEL_DIR/<relpath>``,
the cache ``<user cache>/surfbench/models/<relpath>`` (or ``$SURFBENCH_CACHE_DIR/../models``),
then downloaded into the cache. Offline, the error names the URL and both ways to give a
local copy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from surfbench.models.base import ModelLoadError, ModelSpec
from surfbench.util import sha256_of

ENV_MODEL_DIR = "SURFBENCH_MODEL_DIR"
ENV_CACHE_DIR = "SURFBENCH_CACHE_DIR"


def model_cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE_DIR)
    return (Path(env) / "models") if env else Path(user_cache_dir("surfbench")) / "models"


def _complete(path: Path, files: list[str]) -> bool:
    if files:
        return path.is_dir() and all((path / f).is_file() for f in files)
    return path.is_file()


def check_pinned(path: Path, spec: ModelSpec, w: dict[str, Any]) -> Path:
    """``path`` (a weights file or folder) after checking it against the entry's pinned sha256
    (``sha256``, or ``sha256_files`` of a folder); another hash is a :class:`ModelLoadError`."""
    expected = {}
    if w.get("files"):
        expected = {path / f: h for f, h in (w.get("sha256_files") or {}).items()}
    elif w.get("sha256"):
        expected = {path: w["sha256"]}
    for file, sha in expected.items():
        actual = sha256_of(file)
        if actual != sha:
            raise ModelLoadError(
                f"model {spec.name}: {file} has sha256 {actual}, not the pinned {sha}; "
                "it is another version or damaged. Pass the intended file with --weights to use it anyway."
            )
    return path


def resolve_weights(spec: ModelSpec, explicit: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """A local path (file, or folder for multi-file weights) of the model's weights."""
    w = dict(spec.weights or {})
    files = list(w.get("files") or [])
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not _complete(path, files):
            need = f"a folder holding {files}" if files else "a file"
            raise ModelLoadError(f"model {spec.name}: --weights {path} is not {need}")
        return path  # the user's explicit choice: hashed into the fingerprint, not checked
    relpath = w.get("relpath")
    if not relpath:
        raise ModelLoadError(f"model {spec.name}: the registry gives no weights location; pass --weights PATH")
    searched = []
    env = os.environ.get(ENV_MODEL_DIR)
    for folder in ([Path(env).expanduser()] if env else []) + [model_cache_dir()]:
        candidate = folder / relpath
        searched.append(str(candidate))
        if _complete(candidate, files):
            return check_pinned(candidate, spec, w)
    url = w.get("url")
    hint = (
        f"Put a copy at <folder>/{relpath} and set {ENV_MODEL_DIR}=<folder>, "
        f"or pass --weights PATH (searched: {', '.join(searched)})."
    )
    if not url:
        raise ModelLoadError(f"model {spec.name}: weights not found and no download is known. {hint}")
    if not download:
        raise ModelLoadError(f"model {spec.name}: weights not found locally. {hint}")
    target = model_cache_dir() / relpath
    import pooch  # only needed for downloads

    try:
        if files:
            target.mkdir(parents=True, exist_ok=True)
            hashes = w.get("sha256_files") or {}
            for f in files:
                pooch.retrieve(f"{url.rstrip('/')}/{f}", known_hash=_known(hashes.get(f)),
                               fname=f, path=target, progressbar=False)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            pooch.retrieve(url, known_hash=_known(w.get("sha256")), fname=target.name,
                           path=target.parent, progressbar=False)
    except Exception as exc:  # requests/OSError/ValueError (hash) from pooch
        raise ModelLoadError(
            f"model {spec.name}: downloading {url} failed ({type(exc).__name__}: {exc}). "
            f"If this machine is offline: {hint}"
        ) from exc
    return target


def _known(sha: str | None) -> str | None:
    return f"sha256:{sha}" if sha else None
