"""The result store in a folder the user cannot write, and damaged (truncated, overwritten)
stores: reading commands read a read-only store, writing commands and damaged stores give a
clear error naming the file (and, for damage, how to recover), never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from surfbench.cli import app
from surfbench.store.file import DamagedStore, StoreNotWritable
from surfbench.store.results import STORE_NAME, ResultStore
from tests.workdirs import damage, fill_store, read_only, write_cu_file

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A folder with a store of EMT's 3 results on the Cu toy data, and the data file."""
    folder = tmp_path_factory.mktemp("filled")
    fill_store(folder)
    write_cu_file(folder)
    return folder


@pytest.fixture
def work(filled, tmp_path):
    """A fresh copy of :func:`filled`."""
    shutil.copytree(filled, tmp_path / "work")
    return tmp_path / "work"


def _no_traceback(out) -> None:
    assert out.exception is None or isinstance(out.exception, SystemExit), repr(out.exception)
    assert "Traceback" not in out.output


# ---------------------------------------------------------------------------- read-only


def test_reading_commands_read_a_read_only_store(work, tmp_path):
    with read_only(work):
        table = runner.invoke(app, ["table", "--workdir", str(work)])
        _no_traceback(table)
        assert table.exit_code == 0, table.output
        assert "coverage: 3/3 structures evaluated ok; gamma for 2/2 slabs" in table.output
        csv = tmp_path / "out.csv"
        exp = runner.invoke(app, ["export", "-o", str(csv), "--workdir", str(work)])
        assert exp.exit_code == 0, exp.output
        with ResultStore(work, read_only=True) as store:
            assert len(store.results()) == 3
    df = pd.read_csv(csv)
    assert sorted(df["record_id"]) == ["Cu-100", "Cu-111", "Cu-bulk"] and set(df["status"]) == {"ok"}


_AS_OTHER_USER = r"""
import json, os, shutil, sys
from typer.testing import CliRunner
from surfbench.cli import app

store, warm, out = sys.argv[1:4]
runner = CliRunner(env={"COLUMNS": "250"})

def commands(workdir, tag):
    return {"table": ["table", "-w", workdir],
            "export": ["export", "-w", workdir, "-o", os.path.join(out, tag + ".csv")],
            "report": ["report", "-w", workdir, "-o", os.path.join(out, tag + ".html"), "--no-png", "--n-boot", "20"]}

# as root: each command once on a writable copy, so that every module it imports is loaded
# (the interpreter and the standard library may live where the other user cannot read)
for args in commands(warm, "warm").values():
    assert runner.invoke(app, args).exit_code == 0
if os.geteuid() == 0:
    uid = int(sys.argv[4])
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
results = {"euid": os.geteuid()}
for name, args in commands(store, "ro").items():
    res = runner.invoke(app, args)
    results[name] = {"code": res.exit_code, "output": res.output, "exception": repr(res.exception)}
print(json.dumps(results))
"""


def test_reading_commands_read_a_read_only_store_as_a_user_without_write_permission(filled):
    """The store read by a user who may not write it (not root, whom permissions do not stop and
    who needs ``chattr +i``): SQLite cannot create the WAL index beside it and says "attempt to
    write a readonly database"; table, export and report read it all the same. As root the
    command drops to the user ``nobody`` (after a first run as root has imported everything)."""
    import json
    import os
    import pwd
    import subprocess
    import sys
    import tempfile

    if os.geteuid() == 0:
        try:
            uid = pwd.getpwnam("nobody").pw_uid
        except KeyError:
            pytest.skip("running as root and there is no user 'nobody' to drop to")
    else:
        uid = os.geteuid()
    top = Path(tempfile.mkdtemp(prefix="surfbench-ro-"))  # not under pytest's 0700 folders: the user reaches it
    try:
        top.chmod(0o755)
        reach = [q for q in [top, *top.parents] if not q.stat().st_mode & 0o001]
        if reach and os.geteuid() == 0:
            pytest.skip(f"{reach[0]} is not reachable by other users")
        store, warm, out = top / "store", top / "warm", top / "out"
        shutil.copytree(filled, store)
        shutil.copytree(filled, warm)
        out.mkdir()
        out.chmod(0o777)
        for f in store.iterdir():
            f.chmod(0o444)
        store.chmod(0o555)
        before = sorted(q.name for q in store.iterdir())
        env = {**os.environ, "HOME": str(out), "MPLCONFIGDIR": str(out / "mpl"), "SURFBENCH_CACHE_DIR": str(out / "cache"),
               "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.run([sys.executable, "-c", _AS_OTHER_USER, str(store), str(warm), str(out), str(uid)],
                              capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        assert res["euid"] != 0
        for name in ("table", "export", "report"):
            assert res[name]["code"] == 0 and "Traceback" not in res[name]["output"], (name, res[name])
        assert "coverage: 3/3 structures evaluated ok; gamma for 2/2 slabs" in res["table"]["output"]
        df = pd.read_csv(out / "ro.csv")
        assert sorted(df["record_id"]) == ["Cu-100", "Cu-111", "Cu-bulk"]
        assert (out / "ro.html").is_file() and "(1 model on " in res["report"]["output"]
        assert sorted(q.name for q in store.iterdir()) == before  # nothing written beside the store
    finally:
        store_dir = top / "store"
        if store_dir.exists():
            store_dir.chmod(0o755)
        shutil.rmtree(top, ignore_errors=True)


def test_writing_commands_name_the_read_only_store(work):
    with read_only(work):
        with pytest.raises(StoreNotWritable, match="read-only"):
            ResultStore(work)
        out = runner.invoke(app, ["run", "--model", "emt", "--dataset", str(work / "cu.extxyz"),
                                  "--workdir", str(work)])
    _no_traceback(out)
    assert out.exit_code == 2
    assert f"cannot write the result store {work / STORE_NAME}" in " ".join(out.output.split())


def test_a_new_store_in_a_read_only_folder_is_a_clear_error(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with read_only(folder):
        with pytest.raises(StoreNotWritable) as info:
            ResultStore(folder)
    assert str(folder / STORE_NAME) in str(info.value)


# ---------------------------------------------------------------------------- damaged


@pytest.mark.parametrize("how, detail", [("truncate", "malformed"), ("header", "not an SQLite database"),
                                         ("pages", "integrity check")])
def test_a_damaged_store_is_named_with_the_way_to_recover(work, how, detail):
    damage(work / STORE_NAME, how)
    for args in (["table"], ["export", "-o", str(work / "x.csv")],
                 ["run", "--model", "emt", "--dataset", str(work / "cu.extxyz")]):
        out = runner.invoke(app, [*args, "--workdir", str(work)])
        _no_traceback(out)
        assert out.exit_code == 2 and "is damaged" in out.output and "keep a backup copy" in out.output, out.output
    for read in (True, False):
        with pytest.raises(DamagedStore) as info:
            ResultStore(work, read_only=read)
        msg = str(info.value)
        assert str(work / STORE_NAME) in msg and "is damaged" in msg and detail in msg
        assert "keep a backup copy" in msg and "start a new store" in msg


def test_an_empty_store_file_is_not_taken_for_a_store(work):
    (work / STORE_NAME).write_bytes(b"")
    out = runner.invoke(app, ["table", "--workdir", str(work)])
    _no_traceback(out)
    assert out.exit_code == 2 and "no records, models, results table" in out.output
    with pytest.raises(DamagedStore, match="no records, models, results table"):
        ResultStore(work, read_only=True)


def test_a_store_of_an_older_schema_is_upgraded_before_a_read(work):
    import sqlite3

    with sqlite3.connect(work / STORE_NAME) as con:
        con.execute("PRAGMA user_version=3")
    with ResultStore(work, read_only=True) as store:
        assert len(store.results()) == 3
    with sqlite3.connect(work / STORE_NAME) as con:
        from surfbench.store.schema import SCHEMA_VERSION

        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
