"""A record's labels (DFT energy, bulk id, Miller index, split, ...) are part of its content in
the store: an edited label updates the stored record and the gamma that depends on it, the
model results on the unchanged structure are reused, and the run says what changed. Data sets
from different files are never taken for one another (issue 17, point 1)."""

import os

import pandas as pd
import pytest
from ase.build import bulk, fcc111
from typer.testing import CliRunner

from surfbench.cli import app
from surfbench.data.userdata import dataset_name, write_user_dataset
from surfbench.execution.dataset_cache import load_dataset_cached
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.results import ResultStore
from surfbench.units import EV_PER_A2_IN_J_PER_M2

cli = CliRunner(env={"COLUMNS": "250"})


def _dataset(slab_shift_ev: float = 0.0, bulk_for_slab: str = "Cu/bulk", miller=(1, 1, 1), split="test") -> Dataset:
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cu2 = bulk("Cu", "fcc", a=3.62, cubic=True)
    bulks = {"Cu/bulk": BulkRecord(id="Cu/bulk", element="Cu", atoms=cu, energy_ev=-16.0),
             "Cu/bulk-b": BulkRecord(id="Cu/bulk-b", element="Cu", atoms=cu2, energy_ev=-15.9)}
    slabs = []
    for layers in (3, 4):
        s = fcc111("Cu", size=(1, 1, layers), a=3.6, vacuum=6.0, periodic=True)
        shift = slab_shift_ev if layers == 3 else 0.0
        bid = bulk_for_slab if layers == 3 else "Cu/bulk"
        slabs.append(SurfaceRecord(
            id=f"Cu/slab-{layers}", element="Cu", atoms=s, energy_ev=-4.0 * layers + 1.0 + shift, bulk_id=bid,
            bulk_energy_per_atom_ev=bulks[bid].energy_per_atom_ev, miller=miller if layers == 3 else (1, 1, 1),
            split=split if layers == 3 else "test", vacuum_axis=2))
    return Dataset("toy", bulks, slabs)


def _run_cli(path, workdir):
    out = cli.invoke(app, ["run", "--model", "emt", "--dataset", str(path), "--workdir", str(workdir)])
    assert out.exit_code == 0, out.output
    return out.output


def _export(workdir):
    csv = workdir / "x.csv"
    out = cli.invoke(app, ["export", "-o", str(csv), "--workdir", str(workdir)])
    assert out.exit_code == 0, out.output
    return pd.read_csv(csv)


def test_edited_dft_energy_updates_the_record_and_gamma_without_recomputing(tmp_path):
    path = write_user_dataset(_dataset(), tmp_path / "cu.extxyz")
    work = tmp_path / "w"
    first = _run_cli(path, work)
    assert "3 computed, 0 reused" in first  # the unused bulk Cu/bulk-b is left out
    before = _export(work).set_index("record_id")

    # the same atoms, one slab's DFT energy +1 eV
    write_user_dataset(_dataset(slab_shift_ev=1.0), path)
    second = _run_cli(path, work)
    assert "0 computed, 3 reused" in second  # nothing recomputed by the model
    assert "record Cu/slab-3: dft energy, dft gamma changed -> updated" in second
    assert second.count("changed -> updated") == 1
    after = _export(work).set_index("record_id")

    # model energies untouched (the same rows, not recomputed), DFT side updated
    pd.testing.assert_series_equal(before["energy_ev"], after["energy_ev"])
    pd.testing.assert_series_equal(before["created_at"], after["created_at"])
    assert after.loc["Cu/slab-3", "dft_energy_ev"] == pytest.approx(before.loc["Cu/slab-3", "dft_energy_ev"] + 1.0)
    area = before.loc["Cu/slab-3", "area_a2"]
    d_gamma = 1.0 / (2 * area) * EV_PER_A2_IN_J_PER_M2  # J/m^2
    assert after.loc["Cu/slab-3", "dft_gamma_j_per_m2"] == pytest.approx(before.loc["Cu/slab-3", "dft_gamma_j_per_m2"] + d_gamma)
    assert after.loc["Cu/slab-3", "gamma_pred_j_per_m2"] == pytest.approx(before.loc["Cu/slab-3", "gamma_pred_j_per_m2"])
    assert after.loc["Cu/slab-3", "error_gamma_j_per_m2"] == pytest.approx(
        before.loc["Cu/slab-3", "error_gamma_j_per_m2"] - d_gamma)
    assert after.loc["Cu/slab-4", "error_gamma_j_per_m2"] == before.loc["Cu/slab-4", "error_gamma_j_per_m2"]

    # a fresh workdir gives the same numbers
    fresh = tmp_path / "fresh"
    _run_cli(path, fresh)
    ref = _export(fresh).set_index("record_id")
    for col in ("dft_energy_ev", "dft_gamma_j_per_m2", "gamma_pred_j_per_m2", "error_gamma_j_per_m2"):
        pd.testing.assert_series_equal(ref[col], after[col], check_exact=False, rtol=1e-12)

    third = _run_cli(path, work)  # nothing changed any more
    assert "0 computed, 3 reused" in third and "changed" not in third


def test_every_label_that_enters_a_number_is_compared(tmp_path):
    model = load_model("emt")
    with ResultStore(tmp_path) as store:
        run(_dataset(), model, store)
        s = run(_dataset(bulk_for_slab="Cu/bulk-b", miller=(1, 1, 0), split="train"), model, store)
        assert s.computed == 0 and s.reused == 4
        assert s.updated == ["record Cu/slab-3: bulk id, bulk reference energy, miller index, split, dft gamma "
                             "changed -> updated"]
        rec = store.records("toy").set_index("record_id")
        assert (rec.loc["Cu/slab-3", "bulk_id"], rec.loc["Cu/slab-3", "miller"], rec.loc["Cu/slab-3", "split"]) \
            == ("Cu/bulk-b", "110", "train")
        # the model's gamma now uses the other bulk's model energy
        from surfbench.analysis.predictions import slab_predictions

        g = slab_predictions(store.results("toy")).set_index("record_id")
        res = store.results("toy").set_index("record_id")
        e_b = res.loc["Cu/bulk-b", "energy_ev"] / 4
        area = rec.loc["Cu/slab-3", "area_a2"]
        hand = (res.loc["Cu/slab-3", "energy_ev"] - 3 * e_b) / (2 * area) * EV_PER_A2_IN_J_PER_M2
        assert g.loc["Cu/slab-3", "gamma_pred_j_per_m2"] == pytest.approx(hand, rel=1e-12)


def test_relaxed_slab_is_recomputed_when_its_bulk_changes(tmp_path):
    """A relaxed slab depends on its bulk's relaxation (the lattice scale), not only on its own
    structure: a new bulk id recomputes it; the static result is reused."""
    from surfbench.evaluation.relax import RelaxedProtocol

    model = load_model("emt")
    with ResultStore(tmp_path) as store:
        run(_dataset(), model, store, "static")
        run(_dataset(), model, store, RelaxedProtocol(steps=30))
        static = run(_dataset(bulk_for_slab="Cu/bulk-b"), model, store, "static")
        assert static.computed == 0
        relaxed = run(_dataset(bulk_for_slab="Cu/bulk-b"), model, store, RelaxedProtocol(steps=30))
        assert relaxed.computed == 1 and relaxed.reused == 3


def test_files_with_the_same_stem_are_distinct_data_sets(tmp_path):
    a = write_user_dataset(_dataset(), (tmp_path / "a").mkdir() or tmp_path / "a" / "cu.extxyz")
    b = write_user_dataset(_dataset(slab_shift_ev=0.5), (tmp_path / "b").mkdir() or tmp_path / "b" / "cu.extxyz")
    work = tmp_path / "w"
    assert "3 computed, 0 reused" in _run_cli(a, work)
    out_b = _run_cli(b, work)
    assert "3 computed, 0 reused" in out_b and "changed" not in out_b
    df = _export(work)
    assert set(df["dataset"]) == {dataset_name(a), dataset_name(b)} == {str(a.resolve()), str(b.resolve())}
    energies = df[df["record_id"] == "Cu/slab-3"].set_index("dataset")["dft_energy_ev"]
    assert energies[str(b.resolve())] - energies[str(a.resolve())] == pytest.approx(0.5)
    # table filters by the path as given
    out = cli.invoke(app, ["table", "--workdir", str(work), "--dataset", str(b)])
    assert out.exit_code == 0 and str(b.resolve()) in out.output and str(a.resolve()) not in out.output


def test_dataset_cache_sees_an_edit_that_keeps_size_and_mtime(tmp_path):
    path = write_user_dataset(_dataset(), tmp_path / "cu.extxyz")
    first = load_dataset_cached(str(path))
    st = path.stat()
    text = path.read_text()
    edited = text.replace("energy=-11.0", "energy=-12.0", 1)
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp -p` or a coarse clock would leave it
    again = load_dataset_cached(str(path))
    e = {s.id: s.energy_ev for s in again.surfaces}
    assert e["Cu/slab-3"] == pytest.approx(-12.0) and first.surfaces[0].energy_ev == pytest.approx(-11.0)
