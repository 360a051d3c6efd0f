"""Project folders in the states a user meets: a small Cu data file, a store filled by EMT,
a damaged copy of a store, and a folder this process cannot write (even as root)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ase.build import bulk, fcc100, fcc111

from surfbench.records import BulkRecord, Dataset, SurfaceRecord


def cu_dataset() -> Dataset:
    """A 4-atom Cu bulk and two slabs (EMT knows Cu: every structure evaluates in milliseconds)."""
    b = BulkRecord(id="Cu-bulk", element="Cu", atoms=bulk("Cu", "fcc", a=3.6, cubic=True), energy_ev=-16.0)
    slabs = [
        SurfaceRecord(id="Cu-111", element="Cu", atoms=fcc111("Cu", (1, 1, 3), a=3.6, vacuum=6.0, periodic=True),
                      energy_ev=-11.0, bulk_id=b.id, bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1), split="test"),
        SurfaceRecord(id="Cu-100", element="Cu", atoms=fcc100("Cu", (1, 1, 4), a=3.6, vacuum=6.0, periodic=True),
                      energy_ev=-14.5, bulk_id=b.id, bulk_energy_per_atom_ev=-4.0, miller=(1, 0, 0), split="test"),
    ]
    return Dataset("cu-toy", {b.id: b}, slabs)


def write_cu_file(folder: Path) -> Path:
    from surfbench.data.userdata import write_user_dataset

    return Path(write_user_dataset(cu_dataset(), folder / "cu.extxyz"))


def fill_store(folder: Path) -> Path:
    """A store in ``folder`` holding EMT's results on :func:`cu_dataset`; its path."""
    from surfbench.execution.runner import run
    from surfbench.models import load_model
    from surfbench.store.results import ResultStore

    with ResultStore(folder) as store:
        summary = run(cu_dataset(), load_model("emt"), store)
        assert (summary.computed, summary.failed) == (3, 0)
    return store.path


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` and its files read-only for this process: write bits removed and, where this
    process is root (whom the bits do not stop), the immutable attribute set (``chattr +i``).
    Skips the test where neither makes the folder read-only."""
    paths = [folder, *folder.iterdir()]
    modes = {p: p.stat().st_mode for p in paths}
    immutable: list[Path] = []
    try:
        for p in paths:
            p.chmod(modes[p] & ~0o222)
        if _writable(folder) and shutil.which("chattr"):
            for p in paths:
                if subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode == 0:
                    immutable.append(p)
        if _writable(folder):
            pytest.skip("cannot make a folder read-only here (root without a working chattr)")
        yield folder
    finally:
        for p in immutable:
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)
        for p, mode in modes.items():
            p.chmod(mode)


def damage(store: Path, how: str) -> Path:
    """Damage ``store`` in place: ``truncate`` (cut to half), ``header`` (overwrite the SQLite
    header) or ``pages`` (overwrite the b-tree pages after the first); the path."""
    data = bytearray(store.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "header":
        data[:16] = b"not a database!!"
    elif how == "pages":
        page = int.from_bytes(data[16:18], "big")
        data[page: len(data)] = bytes(len(data) - page)
        data[page: page + 8] = b"\x0d\xff\xff\xff\xff\xff\xff\xff"
    else:
        raise ValueError(how)
    store.write_bytes(bytes(data))
    return store
