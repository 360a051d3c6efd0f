"""Result store and runner on a small synthetic data set (no real data needed)."""

import math

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk, fcc111

from surfbench.analysis.metrics import error_stats, metrics
from surfbench.analysis.predictions import bulk_predictions, slab_predictions
from surfbench.evaluation.runner import pending, run
from surfbench.evaluation.store import ResultStore
from surfbench.models import load_model
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
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
        s = run(ds2, model, store)
        assert s.computed == 1
        assert len(store.results("toy")) == 3


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
        store.export(tmp_path / "r.csv")
        store.export(tmp_path / "r.parquet")
        with pytest.raises(ValueError, match="unknown export format"):
            store.export(tmp_path / "r.xlsx")
        ref = store.results("toy")
    for df in (pd.read_csv(tmp_path / "r.csv"), pd.read_parquet(tmp_path / "r.parquet")):
        assert len(df) == 3
        np.testing.assert_allclose(np.sort(df["energy_ev"]), np.sort(ref["energy_ev"]), rtol=1e-12)


def test_error_stats_by_hand():
    s = error_stats(np.array([0.1, -0.3, np.nan, 0.2]))
    assert (s["n_ok"], s["n_failed"], s["n_total"]) == (3, 1, 4)
    assert s["mae"] == pytest.approx(0.2)
    assert s["rmse"] == pytest.approx(np.sqrt((0.01 + 0.09 + 0.04) / 3))
    assert s["mse"] == pytest.approx(0.0)
    assert s["max_abs"] == pytest.approx(0.3)
    empty = error_stats(np.array([np.nan]))
    assert empty["n_ok"] == 0 and math.isnan(empty["rmse"])
