"""The result store in a folder the user cannot write, and damaged (truncated, overwritten)
stores: reading commands read a read-only store, writing commands and damaged stores give a
clear error naming the file (and, for damage, how to recover), never a traceback."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from surfbench.cli import app
from surfbench.evaluation.store import STORE_NAME, ResultStore
from surfbench.evaluation.store_file import DamagedStore, StoreNotWritable
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
        from surfbench.evaluation.store import SCHEMA_VERSION

        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
