"""A cache of built data sets, so that a rerun does not parse and analyse the inputs again.

Building ``mlearn-surfaces`` parses about 20 MB of JSON/extxyz, infers Miller indices and runs
symmetry analysis: seconds, every run. The built :class:`~surfbench.records.Dataset` is
pickled into ``<cache dir>/datasets/`` (``$SURFBENCH_CACHE_DIR``, see
:mod:`surfbench.data.sources`), keyed by

* the data set name and the input files it is built from (resolved path and the sha256 of the
  content: an edit that keeps the size and the modification time, e.g. a copy with
  ``cp -p``, is still seen; about 15 MB for mlearn-surfaces, tens of milliseconds),
* the surfbench version and the size/mtime of the modules that build data sets
  (``surfbench/data/*.py``, ``records.py``, ``units.py``), so a changed loader is not served
  a stale data set.

Data sets whose inputs are not known up front (``mp-surfaces``, a data set still to be
downloaded) are not cached. A cache file that cannot be read is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
from pathlib import Path

from surfbench.records import Dataset


def input_files(name: str, data_dir: str | os.PathLike | None = None) -> list[Path] | None:
    """The files a named data set (or a user's data file) is built from; None if not known."""
    from surfbench.data.registry import DATASETS
    from surfbench.data.sources import search_path

    if name not in DATASETS:
        path = Path(name)
        if not path.is_file():
            return None
        if name.endswith(".manifest.json"):
            try:
                return [path, path.parent / json.loads(path.read_text())["file"]]
            except (OSError, ValueError, KeyError, TypeError):
                return None
        return [path]
    if name == "mlearn-surfaces":
        # every file of the mlearn/ and ace_zuo2020/ folders of every data folder searched (a
        # superset of what the loader reads; importing the loader to ask costs seconds)
        files = [f for folder in search_path(data_dir)
                 for f in sorted([*folder.glob("mlearn/*/*.json"), *folder.glob("ace_zuo2020/*")]) if f.is_file()]
        names = {f"{f.parent.name}/{f.name}" for f in files}
        return files if "ace_zuo2020/ZuoEtAl2020.tar.gz" in names and len(names) > 1 else None
    if name == "synthetic-paper-scale":
        from surfbench.data import synthetic
        from surfbench.data.errors import DataError

        try:
            manifest = synthetic.find_manifest(data_dir)
        except DataError:
            return None
        return [manifest, manifest.parent / synthetic.read_manifest(manifest)["file"]]
    return None


def _stat(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def cache_key(name: str, files: list[Path]) -> str:
    import surfbench
    from surfbench.util import package_version, sha256_of

    root = Path(surfbench.__file__).parent
    code = sorted((root / "data").glob("*.py")) + [root / "records.py", root / "units.py"]
    payload = {
        "name": name, "version": package_version("surfbench"),
        "code": [_stat(p)[1:] + [p.name] for p in code if p.is_file()],
        "files": [[str(Path(f).resolve()), sha256_of(Path(f))] for f in files],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def cache_folder() -> Path:
    from surfbench.data.sources import cache_dir

    return cache_dir() / "datasets"


def load_dataset_cached(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """``surfbench.data.registry.load_dataset(name, data_dir)``, from the cache when the
    inputs and the loader code are unchanged."""
    from surfbench.data.registry import load_dataset

    files = input_files(name, data_dir)
    if files is None:
        return load_dataset(name, data_dir)
    path = cache_folder() / f"{cache_key(name, files)}.pkl"
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                ds = pickle.load(fh)
            if isinstance(ds, Dataset):
                return ds
        except Exception:  # a truncated or foreign file: rebuild it
            pass
    ds = load_dataset(name, data_dir)
    from surfbench.data.geometry import bulk_lattice

    for bulk in ds.bulks.values():  # the store needs it for every new store: analysed once here
        bulk_lattice(bulk)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pickle.dump(ds, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    except OSError:  # a read-only cache only costs speed
        with contextlib.suppress(OSError):
            tmp.unlink()
    return ds
