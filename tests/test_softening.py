"""Softening slopes and the scale correction, on synthetic "DFT" data made from EMT with a
known softening factor, so every slope and the fitted scale are known exactly."""

import json

import numpy as np
import pytest
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from typer.testing import CliRunner

from surfbench.analysis.softening import _bootstrap_ratio, slope_through_origin
from surfbench.analysis.softening_study import REF_PREFIX, softening_study
from surfbench.data.frames import Frame
from surfbench.evaluation.frames import evaluate_frames, frame_id
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.models.correction import CorrectedModel, ScaledCalculator, SofteningCorrection
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.report.html import build_report
from surfbench.store.results import ResultStore
from tests.checks import assert_stress_is_strain_derivative
from tests.conftest import needs_data

K = 0.8  # EMT = DFT softened by this factor about the bulk reference
E_REF_DFT = -3.7  # eV/atom, the synthetic DFT bulk energy


def _emt(atoms):
    a = atoms.copy()
    a.pbc = True
    a.calc = EMT()
    return float(a.get_potential_energy()), a.get_forces()


def _synthetic():
    """A Cu data set and frames whose DFT labels are EMT stiffened by 1/K about the bulk."""
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    e_ref_emt = _emt(cu)[0] / len(cu)

    def dft(atoms):
        e, f = _emt(atoms)
        n = len(atoms)
        return n * E_REF_DFT + (e - n * e_ref_emt) / K, f / K

    b = BulkRecord(id="Cu/bulk", element="Cu", atoms=cu, energy_ev=dft(cu)[0], split="train")
    slab = fcc111("Cu", size=(2, 2, 3), a=3.6, vacuum=7.0, periodic=True)
    s = SurfaceRecord(id="Cu/111", element="Cu", atoms=slab, energy_ev=dft(slab)[0], bulk_id=b.id,
                      bulk_energy_per_atom_ev=E_REF_DFT, miller=(1, 1, 1), split="test")
    ds = Dataset("toy", {b.id: b}, [s])
    rng = np.random.default_rng(1)
    frames = []
    for i in range(8):
        at = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        at.rattle(0.05 + 0.01 * i, seed=i)
        at.set_cell(at.cell * (1 + 0.01 * rng.normal()), scale_atoms=True)
        split, group = ("test", "AIMD-NVT") if i >= 6 else ("train", "AIMD-NVT" if i % 2 else "Vacancy")
        e, f = dft(at)
        frames.append(Frame(atoms=at, energy_ev=e, element="Cu", split=split, index=i, source="synthetic",
                            group=group, forces_ev_per_a=f))
    # the evaluated slab again, unlabelled (like the Ni/Cu training extxyz): never fitted on
    e, f = dft(slab)
    frames.append(Frame(atoms=slab.copy(), energy_ev=e, element="Cu", split="train", index=8, source="synthetic",
                        group=None, forces_ev_per_a=f))
    return ds, frames


def test_slope_fit_recovers_a_known_scale_from_noisy_data():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1.0, 20000)
    y = 0.83 * x + rng.normal(0, 0.1, x.size)
    assert slope_through_origin(x, y) == pytest.approx(0.83, abs=3e-3)
    lo, hi = _bootstrap_ratio(x * y, x * x, 500, 0, 0.95)
    assert lo < 0.83 < hi and hi - lo < 0.01
    assert np.isnan(slope_through_origin([0.0, 0.0], [1.0, 2.0]))


def test_study_recovers_the_softening_and_the_correction_undoes_it(tmp_path):
    ds, frames = _synthetic()
    with ResultStore(tmp_path) as store:
        model = load_model("emt")
        res = softening_study(ds, frames, [model], store, n_fit_frames=3, seed=0)
        # everything is in the store: a second pass computes nothing
        items = [(frame_id(f), f.atoms) for f in frames] + [(REF_PREFIX + "Cu/bulk", ds.bulks["Cu/bulk"].atoms)]
        assert evaluate_frames(items, model, store) == (0, len(items))
        run(ds, model, store, "relaxed")
        html = build_report(store, "toy", ["emt"], output=tmp_path / "r.html", png=False, n_boot=50).read_text()
        meta = json.loads((tmp_path / "r-metrics.json").read_text())
    overall = res.slopes["overall"].iloc[0]
    assert overall["force_slope"] == pytest.approx(K, rel=1e-6)  # forces are stored to 1e-6 eV/Angstrom
    assert overall["energy_slope"] == pytest.approx(K, rel=1e-9)
    assert overall["n_frames"] == len(frames) and overall["n_failed"] == 0
    assert set(res.slopes["group"]["group"]) == {"AIMD-NVT", "Vacancy", "Surface"}
    assert res.gamma_slopes.iloc[0]["gamma_slope"] == pytest.approx(K, rel=1e-9)

    corr = res.corrections["emt"]
    assert corr.scale["*"] == pytest.approx(1 / K, rel=1e-6)
    assert len(corr.frames) == 3
    train_bulk = {frame_id(f) for f in frames if f.split == "train" and f.group}
    assert set(corr.frames) <= train_bulk  # never a test frame, never the slab
    eff = res.correction_effect.iloc[0]
    assert eff["rmse_before_j_per_m2"] > 0.05
    assert eff["rmse_after_j_per_m2"] == pytest.approx(0.0, abs=1e-6 * eff["rmse_before_j_per_m2"])
    assert "1 frames are structures of evaluated slabs" in " ".join(res.notes)

    # the report shows both from the store alone
    assert 'id="softening"' in html and 'id="relaxation"' in html and "1.2500" in html
    stored = meta["softening"]["models"]["emt"]
    assert stored["correction"]["scale"]["*"] == pytest.approx(1 / K, rel=1e-6)
    assert stored["effect"][0]["rmse_after_j_per_m2"] == pytest.approx(0.0, abs=1e-6)
    relaxed = meta["relaxation"]["summary"][0]
    assert relaxed["n"] == 1 and relaxed["total_mean_signed_error"] == pytest.approx(relaxed["static_mean_signed_error"] + relaxed["relaxation_mean_signed_error"])


def test_scaled_calculator_is_conservative_and_scales_gamma(tmp_path):
    cu = bulk("Cu", "fcc", a=3.62, cubic=True)
    cu.rattle(0.03, seed=3)
    corr = SofteningCorrection(model="emt", fingerprint="x", scale={"*": 1.3}, reference_ev_per_atom={"Cu": 0.01})
    calc = ScaledCalculator(EMT(), corr)
    a = cu.copy()
    a.calc = calc
    e_base, f_base = _emt(cu)
    assert a.get_potential_energy() == pytest.approx(0.01 * 4 + 1.3 * (e_base - 0.01 * 4), rel=1e-12)
    assert np.allclose(a.get_forces(), 1.3 * f_base)
    h, i = 1e-4, 2
    plus, minus = cu.copy(), cu.copy()
    plus.positions[i, 0] += h
    minus.positions[i, 0] -= h
    plus.calc, minus.calc = ScaledCalculator(EMT(), corr), ScaledCalculator(EMT(), corr)
    assert a.get_forces()[i, 0] == pytest.approx(-(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h), rel=1e-5)
    assert_stress_is_strain_derivative(cu, ScaledCalculator(EMT(), corr), a.get_stress(voigt=False))

    model = load_model("emt")
    with pytest.raises(ValueError, match="fitted for x"):
        CorrectedModel(model, corr)
    fixed = CorrectedModel(model, SofteningCorrection(**{**json.loads(corr.to_json()), "fingerprint": model.fingerprint.id,
                                                          "frames": ()}))
    assert fixed.fingerprint.id != model.fingerprint.id and fixed.name.startswith("emt+softening-fix-")
    per_el = SofteningCorrection(model="emt", fingerprint="x", scale={"Cu": 1.1}, reference_ev_per_atom={"Cu": 0.0, "Ni": 0.0})
    mixed = cu.copy()
    mixed[0].symbol = "Ni"
    mixed.calc = ScaledCalculator(EMT(), per_el)
    with pytest.raises(ValueError, match="cannot scale a structure"):
        mixed.get_potential_energy()


@needs_data
def test_softening_cli_on_mlearn_with_emt(tmp_path, data_dir):
    from surfbench.cli import app

    out = CliRunner(env={"COLUMNS": "200"}).invoke(app, [
        "softening", "-m", "emt", "--workdir", str(tmp_path), "--data-dir", str(data_dir), "--out", str(tmp_path / "soft"),
        "--max-frames-per-group", "2", "--fit-frames", "4", "--no-png"])
    assert out.exit_code == 0, out.output
    assert "softening slopes" in out.output and "RMSE before" in out.output
    corr = SofteningCorrection.load(tmp_path / "soft" / "correction_emt.json")
    assert len(corr.frames) == 4 and all(f.split("/")[0] in ("Cu", "Ni") for f in corr.frames)
    assert all("/train/" in f for f in corr.frames)
    for name in ("slopes_overall.csv", "slopes_element.csv", "slopes_group.csv", "correction_effect.csv",
                 "force_parity.html", "slopes.html"):
        assert (tmp_path / "soft" / name).is_file()
