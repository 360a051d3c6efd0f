"""Records no longer in their data set (issue 25, point 2): a slab removed from or renamed in a
user's data file, after a rerun, is kept in the store (nothing is lost) but marked stale and
left out of ``table``, ``report``, ``export`` and ``load_results``, which say how many they left
out; the numbers everywhere are those ``run`` prints. Cheap: EMT on a small Cu file."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from ase.build import fcc110
from typer.testing import CliRunner

import surfbench
from surfbench.cli import app
from surfbench.data.userdata import write_user_dataset
from surfbench.records import Dataset, SurfaceRecord
from surfbench.store.results import ResultStore
from tests.workdirs import cu_dataset

runner = CliRunner(env={"COLUMNS": "250"})


def _files(tmp_path):
    """The Cu toy data with a third slab, Cu-110, whose made-up DFT energy gives it a large
    error (so that counting it or not changes every number), and the same file without it."""
    ds = cu_dataset()
    extra = SurfaceRecord(id="Cu-110", element="Cu", atoms=fcc110("Cu", (1, 1, 4), a=3.6, vacuum=6.0, periodic=True),
                          energy_ev=-12.0, bulk_id="Cu-bulk", bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 0))
    three = write_user_dataset(Dataset("x", ds.bulks, [*ds.surfaces, extra]), tmp_path / "three.extxyz")
    two = write_user_dataset(Dataset("x", ds.bulks, list(ds.surfaces)), tmp_path / "two.extxyz")
    return three, two


def _gamma_row(text: str) -> tuple[str, str]:
    """(ok/total, RMSE) of the overall gamma row of a printed run table."""
    m = re.search(r"surface energy gamma\s*│\s*J/m\^2\s*│\s*(\d+/\d+)\s*│\s*([-\d.]+)\s*│\s*([-\d.]+)", text)
    return m.group(1), m.group(3)


def test_a_removed_slab_is_stale_and_left_out_everywhere(tmp_path):
    three, two = _files(tmp_path)
    data = tmp_path / "data.extxyz"
    work = tmp_path / "w"
    data.write_bytes(three.read_bytes())
    first = runner.invoke(app, ["run", "-m", "emt", "-d", str(data), "-w", str(work)])
    assert first.exit_code == 0 and _gamma_row(first.output)[0] == "3/3", first.output
    data.write_bytes(two.read_bytes())  # the user removes Cu-110 from the file and reruns
    second = runner.invoke(app, ["run", "-m", "emt", "-d", str(data), "-w", str(work)])
    assert second.exit_code == 0, second.output
    text = " ".join(second.output.split())
    assert "1 stored record(s) no longer in" in text and "-> stale" in text and "Cu-110" in text
    ran = _gamma_row(second.output)
    assert ran[0] == "2/2"

    table = runner.invoke(app, ["table", "-w", str(work)])
    assert table.exit_code == 0 and _gamma_row(table.output) == ran, table.output  # the numbers run printed
    assert "left out: 1 record(s) of" in " ".join(table.output.split())

    csv = tmp_path / "x.csv"
    exp = runner.invoke(app, ["export", "-w", str(work), "-o", str(csv)])
    assert exp.exit_code == 0 and "left out: 1 record(s)" in " ".join(exp.output.split()), exp.output
    assert sorted(pd.read_csv(csv)["record_id"]) == ["Cu-100", "Cu-111", "Cu-bulk"]

    res = surfbench.load_results(work)
    assert len(res) == 1 and sorted(res[0].predictions()["record_id"]) == ["Cu-100", "Cu-111", "Cu-bulk"]
    g = res[0].metrics().set_index("quantity").loc["gamma"]
    assert (int(g["n_ok"]), f"{g['rmse']:.3f}") == (2, ran[1])

    rep = runner.invoke(app, ["report", "-w", str(work), "-o", str(tmp_path / "r.html"), "--no-png", "--n-boot", "50"])
    assert rep.exit_code == 0, rep.output
    payload = json.loads((tmp_path / "r-metrics.json").read_text())
    assert payload["dataset_counts"]["slabs"] == 2 and payload["stale_records"] == 1
    overall = {r["quantity"]: r for r in payload["metrics"]["overall"]}
    assert overall["gamma"]["n_total"] == 2 and f"{overall['gamma']['rmse']:.3f}" == ran[1]

    # nothing is lost: the stale record and its result are still in the store
    with ResultStore(work, read_only=True) as store:
        assert len(store.results(include_stale=True)) == 4 and len(store.results()) == 3
        assert list(store.stale_records()["record_id"]) == ["Cu-110"]
    # put back, it is current again and counted
    data.write_bytes(three.read_bytes())
    third = runner.invoke(app, ["run", "-m", "emt", "-d", str(data), "-w", str(work)])
    assert "current again: Cu-110" in " ".join(third.output.split()) and _gamma_row(third.output)[0] == "3/3"
    assert "0 computed, 4 reused" in third.output  # its result was kept


def test_a_renamed_slab_and_a_subset_run(tmp_path):
    """A renamed slab: the old name is stale, the new one evaluated. A run on a subset
    (--elements, --split) knows the whole data set and marks nothing stale."""
    three, _ = _files(tmp_path)
    data = tmp_path / "data.extxyz"
    work = tmp_path / "w"
    data.write_bytes(three.read_bytes())
    assert runner.invoke(app, ["run", "-m", "emt", "-d", str(data), "-w", str(work), "--miller", "111"]).exit_code == 0
    assert runner.invoke(app, ["run", "-m", "emt", "-d", str(data), "-w", str(work)]).exit_code == 0
    with ResultStore(work, read_only=True) as store:
        assert store.stale_records().empty and len(store.results()) == 4
    data.write_text(data.read_text().replace("name=Cu-110", "name=Cu-110-renamed"))
    out = runner.invoke(app, ["run", "-m", "emt", "-d", str(data), "-w", str(work)])
    assert out.exit_code == 0 and "1 computed, 3 reused" in out.output, out.output
    with ResultStore(work, read_only=True) as store:
        assert sorted(store.results()["record_id"]) == ["Cu-100", "Cu-110-renamed", "Cu-111", "Cu-bulk"]
        assert list(store.stale_records()["record_id"]) == ["Cu-110"]


def test_an_in_memory_dataset_of_its_own_name(tmp_path):
    """The Python API: a Dataset of its own name is the whole data set; evaluated again without
    a slab, that slab is stale for load_results too."""
    from ase.calculators.emt import EMT

    ds = cu_dataset()
    surfbench.evaluate(EMT(), ds, workdir=tmp_path, name="emt-mem", progress=False)
    smaller = Dataset(ds.name, ds.bulks, ds.surfaces[:1])
    res = surfbench.evaluate(EMT(), smaller, workdir=tmp_path, name="emt-mem", progress=False)
    assert res.summary.computed == 0 and any("no longer in cu-toy" in line for line in res.summary.updated)
    assert sorted(surfbench.load_results(tmp_path)[0].predictions()["record_id"]) == ["Cu-111", "Cu-bulk"]
    assert len(ds.surfaces) == 2 and ds.members is None  # the caller's object is left as it was


@pytest.mark.parametrize("version", [4])
def test_a_read_only_store_of_schema_4_is_read_without_an_upgrade(tmp_path, version):
    """Schema 5 only added the stale columns: a schema-4 store that cannot be upgraded (a
    read-only folder) is read as it is, nothing stale."""
    import sqlite3

    from tests.workdirs import fill_store, read_only

    fill_store(tmp_path)
    con = sqlite3.connect(tmp_path / "surfbench.sqlite")
    with con:
        con.execute(f"PRAGMA user_version={version}")
        for table in ("records", "reference_facets"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN stale")
    con.close()  # the last connection folds the write-ahead log into the file
    with read_only(tmp_path):
        with ResultStore(tmp_path, read_only=True) as store:
            assert len(store.results()) == 3 and store.stale_records().empty and len(store.runs()) == 1
