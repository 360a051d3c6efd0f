"""Result store and runner on a small synthetic data set (no real data needed)."""

import math

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT

from surfbench.analysis.export import export_results
from surfbench.analysis.metrics import error_stats, metrics
from surfbench.analysis.predictions import bulk_predictions, slab_predictions
from surfbench.execution.runner import pending, run
from surfbench.models import load_model
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.results import ResultStore
from surfbench.units import EV_PER_A2_IN_J_PER_M2


def _dataset(with_orphan: bool = False) -> Dataset:
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    b = BulkRecord(id="Cu/bulk", element="Cu", atoms=cu, energy_ev=-4.0 * len(cu), split="train")
    slabs = []
    for i, layers in enumerate((3, 4)):
        s = fcc111("Cu", size=(1, 1, layers), a=3.6, vacuum=6.0, periodic=True)
        slabs.append(SurfaceRecord(
            id=f"Cu/111-{layers}", element="Cu", atoms=s, energy_ev=-4.0 * len(s) + 1.0 + 0.1 * i,
            bulk_id=b.id, bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1), split="test",
        ))
    if with_orphan:
        au = fcc111("Au", size=(1, 1, 3), a=4.08, vacuum=6.0, periodic=True)
        slabs.append(SurfaceRecord(id="Au/111", element="Au", atoms=au, energy_ev=-9.0, bulk_id=None,
                                   bulk_energy_per_atom_ev=None, miller=(1, 1, 1), split="test"))
    return Dataset("toy", {b.id: b}, slabs)


def test_rerun_computes_nothing_and_numbers_match(tmp_path):
    ds = _dataset()
    model = load_model("emt")
    with ResultStore(tmp_path) as store:
        s1 = run(ds, model, store)
        assert (s1.total, s1.computed, s1.reused, s1.failed) == (3, 3, 0, 0)
        first = store.results("toy").set_index("record_id")["energy_ev"]
        s2 = run(ds, load_model("emt"), store)
        assert (s2.computed, s2.reused) == (0, 3)
        again = store.results("toy").set_index("record_id")["energy_ev"]
        pd.testing.assert_series_equal(first, again)
        assert len(store.results("toy")) == 3


def test_gamma_from_model_energies_by_hand(tmp_path):
    ds = _dataset()
    with ResultStore(tmp_path) as store:
        run(ds, load_model("emt"), store)
        res = store.results("toy")
    from ase.calculators.emt import EMT

    e = {}
    for rec in [*ds.bulks.values(), *ds.surfaces]:
        a = rec.atoms.copy()
        a.calc = EMT()
        e[rec.id] = a.get_potential_energy()
    slabs = slab_predictions(res).set_index("record_id")
    e_b = e["Cu/bulk"] / len(ds.bulks["Cu/bulk"].atoms)
    for rec in ds.surfaces:
        hand = (e[rec.id] - rec.n_atoms * e_b) / (2 * rec.area_a2) * EV_PER_A2_IN_J_PER_M2
        assert slabs.loc[rec.id, "gamma_pred_j_per_m2"] == pytest.approx(hand, rel=1e-12)
        # DFT side: (E - n*e_bulk)/(2A) with the record's numbers
        dft = (rec.energy_ev + 4.0 * rec.n_atoms) / (2 * rec.area_a2) * EV_PER_A2_IN_J_PER_M2
        assert slabs.loc[rec.id, "dft_gamma_j_per_m2"] == pytest.approx(dft, rel=1e-12)
    # EMT Cu(111) surface energy is about 0.7 J/m^2 (EMT underestimates experiment)
    assert 0.4 < slabs["gamma_pred_j_per_m2"].iloc[0] < 1.2


def test_failures_are_recorded_with_kinds(tmp_path):
    ds = _dataset(with_orphan=True)
    with ResultStore(tmp_path) as store:
        s = run(ds, load_model("tests.calcs:Raising"), store)
        assert s.failed == 4 and s.failure_kinds == {"calculator_error": 4}
        res = store.results("toy")
        assert set(res["failure_kind"]) == {"calculator_error"}
        assert res["energy_ev"].isna().all()  # never replaced by 0.0
        assert res["message"].str.contains("deliberate failure").all()

        run(ds, load_model("tests.calcs:NaNEnergy"), store)
        nan_fp = load_model("tests.calcs:NaNEnergy").fingerprint.id
        assert set(store.results("toy", nan_fp)["failure_kind"]) == {"non_finite_energy"}

        # EMT: Au is supported; the Au slab has no bulk reference -> gamma failure, not a skip
        run(ds, load_model("emt"), store)
        emt = store.results("toy", load_model("emt").fingerprint.id)
        slabs = slab_predictions(emt).set_index("record_id")
        assert slabs.loc["Au/111", "status"] == "ok"
        assert slabs.loc["Au/111", "gamma_failure"] == "no_bulk_reference"
        assert math.isnan(slabs.loc["Au/111", "gamma_pred_j_per_m2"])
        m = metrics(bulk_predictions(emt), slab_predictions(emt))
        g = m[m["quantity"] == "gamma"].iloc[0]
        assert (g["n_ok"], g["n_failed"], g["n_total"]) == (2, 1, 3)


def test_unsupported_element_and_bulk_failure_propagate(tmp_path):
    ds = _dataset()
    mo = Dataset("toy", {"Cu/bulk": ds.bulks["Cu/bulk"]}, ds.surfaces)
    # relabel the bulk as Mo so EMT refuses it: the slabs then lose their gamma
    b = mo.bulks["Cu/bulk"]
    mo.bulks["Cu/bulk"] = BulkRecord(id=b.id, element="Mo", atoms=b.atoms, energy_ev=b.energy_ev)
    with ResultStore(tmp_path) as store:
        run(mo, load_model("emt"), store)
        res = store.results("toy")
    bulks = bulk_predictions(res)
    assert bulks["failure_kind"].tolist() == ["unsupported_element"]
    slabs = slab_predictions(res)
    assert slabs["gamma_failure"].tolist() == ["bulk_failed:unsupported_element"] * 2


def test_changed_structure_is_recomputed(tmp_path):
    ds = _dataset()
    model = load_model("emt")
    with ResultStore(tmp_path) as store:
        run(ds, model, store)
        moved = ds.surfaces[0].atoms.copy()
        moved.positions[0, 2] += 0.05
        s0 = ds.surfaces[0]
        ds2 = Dataset("toy", ds.bulks, [SurfaceRecord(**{**s0.__dict__, "atoms": moved}), ds.surfaces[1]])
        assert [r.id for r in pending(ds2, store, model.fingerprint.id, "static")] == [s0.id]
        fp = model.fingerprint.id
        old_energy_ev = store.get_result("toy", s0.id, fp, "static")["energy_ev"]
        s = run(ds2, model, store)
        assert s.computed == 1
        assert len(store.results("toy")) == 3
        # the stored row is the new structure's (its hash and EMT energy), not the old one's
        new_hash = ds2.surfaces[0].content_hash
        assert new_hash != s0.content_hash
        assert store.done("toy", fp, "static")[s0.id] == new_hash
        atoms = moved.copy()
        atoms.calc = EMT()
        new_energy_ev = store.get_result("toy", s0.id, fp, "static")["energy_ev"]
        assert new_energy_ev == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
        assert abs(new_energy_ev - old_energy_ev) > 1e-4
        # and a second rerun finds everything in the store
        again = run(ds2, model, store)
        assert (again.computed, again.reused) == (0, 3)


def test_retry_failed_recomputes_only_the_failures(tmp_path):
    """Failed results are reused by a plain rerun and recomputed with ``retry_failed``; ok
    results are reused either way. The model (same fingerprint throughout) fails while a flag
    file exists."""
    ds = _dataset()
    flag = tmp_path / "broken"
    model = load_model("tests.calcs:FlakyEMT", kwargs={"flag": str(flag)})
    with ResultStore(tmp_path / "store") as store:
        first = run(Dataset("toy", ds.bulks, []), model, store)  # the bulk, while the model works
        assert (first.computed, first.failed) == (1, 0)
        flag.touch()
        broken = run(ds, model, store)
        assert (broken.computed, broken.reused, broken.failed) == (2, 1, 2)
        assert broken.failure_kinds == {"calculator_error": 2}
        flag.unlink()
        plain = run(ds, model, store)
        assert (plain.computed, plain.reused) == (0, 3)
        status = store.results("toy").set_index("record_id")["status"].to_dict()
        assert status == {"Cu/bulk": "ok", "Cu/111-3": "failed", "Cu/111-4": "failed"}
        retried = run(ds, model, store, retry_failed=True)
        assert (retried.computed, retried.reused, retried.failed) == (2, 1, 0)
        res = store.results("toy").set_index("record_id")
        assert set(res["status"]) == {"ok"}
        for rec in ds.surfaces:
            atoms = rec.atoms.copy()
            atoms.calc = EMT()
            assert res.loc[rec.id, "energy_ev"] == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
        again = run(ds, model, store, retry_failed=True)
        assert (again.computed, again.reused) == (0, 3)


def test_fingerprint_depends_on_options_and_is_stable():
    a = load_model("emt").fingerprint
    assert a == load_model("emt").fingerprint
    lj1 = load_model("ase.calculators.lj:LennardJones", kwargs={"sigma": 2.3}).fingerprint
    lj2 = load_model("ase.calculators.lj:LennardJones", kwargs={"sigma": 2.4}).fingerprint
    assert lj1.id != lj2.id
    assert len(a.weights_sha256) == 64 and a.package_version.startswith("ase ")


def test_export_roundtrip(tmp_path):
    ds = _dataset()
    with ResultStore(tmp_path) as store:
        run(ds, load_model("emt"), store)
        export_results(store, tmp_path / "r.csv")
        export_results(store, tmp_path / "r.parquet")
        with pytest.raises(ValueError, match="unknown export format"):
            export_results(store, tmp_path / "r.xlsx")
        ref = store.results("toy")
    for df in (pd.read_csv(tmp_path / "r.csv"), pd.read_parquet(tmp_path / "r.parquet")):
        assert len(df) == 3
        np.testing.assert_allclose(np.sort(df["energy_ev"]), np.sort(ref["energy_ev"]), rtol=1e-12)


def test_error_stats_by_hand():
    s = error_stats(np.array([0.1, -0.3, np.nan, 0.2]))
    assert (s["n_ok"], s["n_failed"], s["n_total"]) == (3, 1, 4)
    assert s["mae"] == pytest.approx(0.2)
    assert s["rmse"] == pytest.approx(np.sqrt((0.01 + 0.09 + 0.04) / 3))
    assert s["mean_signed_error"] == pytest.approx(0.0)
    assert s["max_abs"] == pytest.approx(0.3)
    empty = error_stats(np.array([np.nan]))
    assert empty["n_ok"] == 0 and math.isnan(empty["rmse"])


def test_export_has_gamma_columns_and_miller_as_text(tmp_path):
    """Per slab: the model's and DFT gamma (J/m^2), the error and the gamma's status/failure
    kind; the Miller index as text, unambiguous for negative and multi-digit indices (issue 17,
    point 10)."""
    ds = _dataset()
    s3, s4 = ds.surfaces
    ds = Dataset("toy", ds.bulks, [SurfaceRecord(**{**s3.__dict__, "miller": (1, -1, 0)}),
                                   SurfaceRecord(**{**s4.__dict__, "miller": (10, 1, 0)})])
    mo = Dataset("toy-mo", {"Cu/bulk": BulkRecord(id="Cu/bulk", element="Mo", atoms=ds.bulks["Cu/bulk"].atoms,
                                                  energy_ev=-16.0)}, ds.surfaces)
    with ResultStore(tmp_path) as store:
        run(ds, load_model("emt"), store)
        run(mo, load_model("emt"), store)  # EMT refuses the Mo bulk: the slabs lose their gamma
        ref = slab_predictions(store.results("toy")).set_index("record_id")
        export_results(store, tmp_path / "r.csv")
        export_results(store, tmp_path / "r.parquet")
    for df in (pd.read_csv(tmp_path / "r.csv"), pd.read_parquet(tmp_path / "r.parquet")):
        assert len(df) == 6
        toy = df[df["dataset"] == "toy"].set_index("record_id")
        for rid in ("Cu/111-3", "Cu/111-4"):
            assert toy.loc[rid, "gamma_pred_j_per_m2"] == pytest.approx(ref.loc[rid, "gamma_pred_j_per_m2"], rel=1e-12)
            assert 0.4 < toy.loc[rid, "gamma_pred_j_per_m2"] < 1.2
            assert toy.loc[rid, "error_gamma_j_per_m2"] == pytest.approx(
                toy.loc[rid, "gamma_pred_j_per_m2"] - toy.loc[rid, "dft_gamma_j_per_m2"], rel=1e-12)
            assert toy.loc[rid, "gamma_status"] == "ok"
        assert (toy.loc["Cu/111-3", "miller"], toy.loc["Cu/111-4", "miller"]) == ("1 -1 0", "10 1 0")
        assert pd.isna(toy.loc["Cu/bulk", "miller"]) and pd.isna(toy.loc["Cu/bulk", "gamma_pred_j_per_m2"])
        bad = df[df["dataset"] == "toy-mo"].set_index("record_id")
        assert bad.loc["Cu/111-3", "gamma_status"] == "failed"
        assert bad.loc["Cu/111-3", "gamma_failure"] == "bulk_failed:unsupported_element"
        assert pd.isna(bad.loc["Cu/111-3", "gamma_pred_j_per_m2"]) and pd.isna(bad.loc["Cu/111-3", "error_gamma_j_per_m2"])
        assert bad.loc["Cu/111-3", "dft_gamma_j_per_m2"] == pytest.approx(toy.loc["Cu/111-3", "dft_gamma_j_per_m2"])


def test_tables_of_an_empty_run_print(tmp_path):
    """No results (e.g. a data set without slabs): the metric tables print empty, no KeyError."""
    from rich.console import Console

    from surfbench.report.console import render_run

    with ResultStore(tmp_path) as store:
        res = store.results("nothing")
    assert list(metrics(bulk_predictions(res), slab_predictions(res))["quantity"]) == []
    console = Console(record=True, width=200)
    render_run(console, res, "empty")
    assert "coverage: 0/0 structures evaluated ok; gamma for 0/0 slabs" in console.export_text()
