"""A store written by the last release before the store package (schema 5, with ``md_runs`` and
``trainings`` created outside the versioned schema) opens with today's store, is migrated to
:data:`~surfbench.store.schema.SCHEMA_VERSION`, and reads back what that release wrote.
``tests/fixtures/make_store_v5.py`` says how the fixture was written."""

import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from surfbench.store.md_runs import MDStore, md_runs
from surfbench.store.results import STORE_NAME, ResultStore
from surfbench.store.schema import SCHEMA_VERSION
from surfbench.store.selection import select_runs, stored_runs
from surfbench.store.trainings import get_training, put_training, trainings

FIXTURE = Path(__file__).parent / "fixtures" / "store-v5.sqlite"
EMT = "emt@c3198b32ca25"
TRAINED = "toy-trained-Cu@49b35560d6ff"


@pytest.fixture
def old_store(tmp_path) -> Path:
    shutil.copy(FIXTURE, tmp_path / STORE_NAME)
    with sqlite3.connect(tmp_path / STORE_NAME) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 5
    return tmp_path


def _version(folder: Path) -> int:
    con = sqlite3.connect(folder / STORE_NAME)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("read_only", [True, False])
def test_a_schema_5_store_is_migrated_and_reads_back_what_was_written(old_store, read_only):
    with ResultStore(old_store, read_only=read_only) as store:
        results = store.results().set_index(["record_id", "model"])
        assert len(results) == 5 and set(results["status"]) == {"ok"}
        assert results.loc[("Cu/bulk", "emt"), "energy_ev"] == pytest.approx(-0.0267550747431535, rel=1e-12)
        assert results.loc[("Cu/111-3", "emt"), "energy_ev"] == pytest.approx(0.708910918545625, rel=1e-12)
        assert results.loc[("Cu/111-4", "emt"), "energy_ev"] == pytest.approx(0.702221968981819, rel=1e-12)
        assert results.loc[("Cu/111-3", "toy-trained-Cu"), "energy_ev"] == -10.5
        assert results.loc[("Cu/111-4", "toy-trained-Cu"), "energy_ev"] == -14.25
        assert results.loc[("Cu/111-4", "toy-trained-Cu"), "threads"] == 1
        assert results.loc[("Cu/111-3", "emt"), "dft_energy_ev"] == pytest.approx(-4.0 * 3 + 1.0)
        records = store.records().set_index("record_id")
        assert records.loc["Cu/bulk", "dft_energy_ev"] == -16.0 and records.loc["Cu/bulk", "spacegroup"] == 225
        assert list(store.models()["name"]) == ["emt", "toy-trained-Cu"]
        analysis, = store.analyses("softening", "toy")
        assert (analysis["fingerprint"], analysis["settings"], analysis["slope"], analysis["n"]) == (
            EMT, {"frames": 3}, 0.92, 3)

        md = md_runs(store, "toy")
        assert len(md) == 1
        row = md.iloc[0]
        assert (row["record_id"], row["fingerprint"], row["protocol"], row["verdict"]) == (
            "Cu/111-3", EMT, "md@0123456789ab", "stable")
        assert (row["time_ps"], row["temperature_mean_k"], row["steps_done"], row["seed"]) == (0.02, 305.0, 20, 7)
        assert pd.isna(row["conserved_drift_ev_per_atom_per_ps"])  # NaN is stored as NULL, never 0
        series = MDStore(store).series("toy", "Cu/111-3", EMT, "md@0123456789ab")
        assert series["time_fs"] == [0.0, 10.0, 20.0] and series["temperature_k"] == [300.0, 310.0, 305.0]
        assert series["epot_ev_per_atom"] == pytest.approx([-3.0, -8.9 / 3, -8.95 / 3])
        assert series["etot_ev_per_atom"] == pytest.approx([-8.9 / 3, -8.7 / 3, -8.8 / 3])

        tr = trainings(store)
        assert list(tr["name"]) == ["toy-trained-Cu"]
        t = tr.iloc[0]
        assert (t["fingerprint"], t["n_train"], t["wall_s"], t["state"], t["curve_elements"]) == (
            TRAINED, 12, 42.0, "converged", "Cu")
        assert t["split"] == {"held_out": ["Cu/111-3", "Cu/111-4"]} and t["history"] == [{"epoch": 1, "loss": 0.5}]
        one = get_training(store, "toy-trained-Cu")
        assert one["frame_metrics"] == {"energy_mae_ev_per_atom": 0.012} and one["protocol"] == "no-surfaces"

        # run selection: every run listed; a comparison of all models leaves the trained one out
        assert set(stored_runs(store)["fingerprint"]) == {EMT, TRAINED}
        assert list(select_runs(store, None, "all", "static", reference_section="ref")["fingerprint"]) == [EMT]
        named = select_runs(store, "toy", ["toy-trained-Cu", "emt"], "static", reference_section="ref")
        assert set(named["fingerprint"]) == {EMT, TRAINED}
    assert _version(old_store) == SCHEMA_VERSION  # a read in a writable folder upgrades it first


def test_a_trainings_table_of_an_earlier_release_gets_its_columns(old_store):
    """The protocol columns came after the table's first release: the migration adds them with
    the defaults of the rows written before (no-surfaces, one fold)."""
    con = sqlite3.connect(old_store / STORE_NAME)
    with con:
        for column in ("protocol", "fold", "judged", "size", "converged", "state"):
            con.execute(f"ALTER TABLE trainings DROP COLUMN {column}")
    con.close()
    with ResultStore(old_store) as store:
        t = trainings(store).iloc[0]
        assert (t["protocol"], t["fold"], t["size"], t["name"], t["n_train"]) == (
            "no-surfaces", "all", "12", "toy-trained-Cu", 12)
    con = sqlite3.connect(old_store / STORE_NAME)
    try:
        columns = [r[1] for r in con.execute("PRAGMA table_info(trainings)")]
    finally:
        con.close()
    assert columns[-6:] == ["protocol", "fold", "judged", "size", "converged", "state"]


def test_md_runs_and_trainings_are_created_by_their_first_writer(old_store):
    """A store without MD runs or trainings holds neither table (reading does not create them);
    the first write does."""
    con = sqlite3.connect(old_store / STORE_NAME)
    with con:
        con.execute("DROP TABLE md_runs")
        con.execute("DROP TABLE trainings")
    con.close()
    with ResultStore(old_store) as store:
        assert md_runs(store).empty and trainings(store).empty and get_training(store, "toy-trained-Cu") is None
        assert len(store.results()) == 5
    tables = _tables(old_store)
    assert tables >= {"records", "results", "analyses"} and not tables & {"md_runs", "trainings"}
    with ResultStore(old_store) as store:
        assert MDStore(store).get("toy", "Cu/111-3", EMT, "md@0123456789ab") is None
        put_training(store, {"name": "x", "method": "m", "mode": "scratch", "preset": "p", "elements": "Cu",
                             "data": "d", "dataset": "toy", "curve": "c", "seed": 0, "include_surfaces": 0,
                             "n_train": 1, "n_valid": 0, "n_test": 0, "settings": {}, "split": {},
                             "train_frames": [], "train_hashes": [], "weights": "w", "config_hash": "h",
                             "created_at": "2026-01-01T00:00:00+00:00"})
        assert get_training(store, "x")["settings"] == {} and trainings(store).iloc[0]["protocol"] == "no-surfaces"
    assert {"md_runs", "trainings"} <= _tables(old_store)


def _tables(folder: Path) -> set[str]:
    con = sqlite3.connect(folder / STORE_NAME)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()
