"""The frozen-feature readout (``surfbench train --method readout``): the per-atom correction
inside each tapped family's network (energy difference = sum of the correction, forces and
stress = finite differences), the closed-form fit recovering known coefficients, the cached
energies and features, the fingerprint, the relaxed protocol and the command end to end."""

from __future__ import annotations

import json
from importlib.util import find_spec

import numpy as np
import pytest
from ase.build import bulk, fcc111

from surfbench.models import load_model, registry
from surfbench.models.features import FeatureError, Readout, ReadoutCalculator, supports_readout, tap_for
from surfbench.models.wrapper import PeriodicCalculator
from surfbench.training.base import TrainingError
from surfbench.training.readout import alphas_of, fit_readout
from tests.checks import energy_of
from tests.conftest import REPO, needs_shared

MODELS = REPO.parent / "shared" / "models"
needs_sevenn = pytest.mark.skipif(find_spec("sevenn") is None, reason="the 'sevenn' package is not installed")
needs_chgnet = pytest.mark.skipif(find_spec("chgnet") is None, reason="the 'chgnet' package is not installed")
needs_matgl = [pytest.mark.skipif(find_spec("matgl") is None, reason="the 'matgl' package is not installed"),
               needs_shared(MODELS / "matgl" / "TensorNet-MatPES-PBE-v2025.1-PES" / "model.pt",
                            reason="the TensorNet-MatPES model folder of ../shared/models is missing")]
TENSORNET = "tensornet-matpes-pbe-v2025.1-pes"

FAMILIES = [
    pytest.param("sevennet-0", marks=needs_sevenn),
    pytest.param("chgnet-0.3.0", marks=needs_chgnet),
    pytest.param(TENSORNET, marks=needs_matgl),
]


@pytest.fixture(autouse=True)
def _models(monkeypatch):
    monkeypatch.setenv("SURFBENCH_MODEL_DIR", str(MODELS))
    yield
    registry.use_project(None)


def _cell():
    """A strained, rattled 4-atom Cu cell: forces and all six stress components are non-zero."""
    a = bulk("Cu", "fcc", a=3.62, cubic=True)
    a.set_cell(a.cell @ np.array([[1.02, 0.0, 0.025], [0.0, 0.99, 0.04], [0.025, 0.04, 1.015]]), scale_atoms=True)
    a.rattle(0.08, seed=3)
    return a


def _readout(d: int, elements=("Cu",), scale: float = 0.05, seed: int = 0) -> Readout:
    rng = np.random.default_rng(seed)
    return Readout(tuple(elements), rng.normal(scale=scale, size=(len(elements), d)), rng.normal(size=len(elements)))


@pytest.mark.parametrize("name", FAMILIES)
def test_correction_inside_the_network(name):
    """E_corr - E_base = sum_i (w . h_i + b) with h from the energy-only pass; the correction's
    forces and stress are finite differences of the correction's energy (float32 models: steps of
    5e-3 Angstrom / 5e-3 strain, the correction's forces made large so that a missing term fails)."""
    model = load_model(name)
    assert supports_readout(model)
    tap = tap_for(model)
    atoms = _cell()
    e_base, h, z = tap.energy_and_features(atoms)
    assert h.shape[0] == len(atoms) and h.shape[1] >= 32
    assert list(z) == [29] * 4
    assert e_base == pytest.approx(energy_of(atoms, model.calculator), abs=1e-4)  # the same energy as the calculator
    readout = _readout(h.shape[1], scale=0.3 / max(float(h.std()), 1e-3))  # a correction of the same size for every family
    corrected = PeriodicCalculator(ReadoutCalculator(tap, readout), stress_factor=model.backend.stress_factor)
    work = atoms.copy()
    work.calc = corrected
    expected = float(readout.correction_ev(h, z).sum())
    assert abs(expected) > 0.1
    energy_alone = work.get_potential_energy()  # the energy-only pass (the static protocol's request)
    work.calc.reset()
    work.get_forces()
    assert work.get_potential_energy() - e_base == pytest.approx(expected, abs=2e-3)
    assert energy_alone == pytest.approx(work.get_potential_energy(), abs=1e-4)
    base = atoms.copy()
    base.calc = model.calculator
    d_forces = work.get_forces() - base.get_forces()
    d_stress = work.get_stress(voigt=False) - base.get_stress(voigt=False)
    assert np.abs(d_forces).max() > 0.2  # the correction moves the forces: a test that can fail

    def d_energy(a) -> float:
        return energy_of(a, corrected) - energy_of(a, model.calculator)

    step = 5e-3
    for i, k in [(0, 0), (1, 2), (3, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += step
        minus.positions[i, k] -= step
        fd = -(d_energy(plus) - d_energy(minus)) / (2 * step)
        assert d_forces[i, k] == pytest.approx(fd, abs=0.02 + 0.03 * abs(fd)), (i, k)
    volume = atoms.get_volume()
    for i, j in [(0, 0), (2, 2), (0, 1), (1, 2)]:
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = step / 2 if i != j else step
        plus, minus = atoms.copy(), atoms.copy()
        plus.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
        minus.set_cell(atoms.cell @ (np.eye(3) - eps), scale_atoms=True)
        fd = (d_energy(plus) - d_energy(minus)) / (2 * step) / volume
        assert d_stress[i, j] == pytest.approx(fd, abs=2e-3 + 0.03 * abs(fd)), (i, j)
    # the shared base calculator is left uncorrected
    assert energy_of(atoms, model.calculator) == pytest.approx(e_base, abs=1e-4)


@needs_sevenn
def test_element_without_coefficients_is_an_error():
    model = load_model("sevennet-0")
    tap = tap_for(model)
    calc = ReadoutCalculator(tap, _readout(64, elements=("Mo",)))
    with pytest.raises(FeatureError, match="no coefficients for Cu"):
        energy_of(_cell(), calc)


def test_family_without_features_is_refused():
    model = load_model("emt")
    assert not supports_readout(model)
    with pytest.raises(FeatureError, match="implemented for"):
        tap_for(model)


# ---------------------------------------------------------------------------- the fit


def test_fit_recovers_known_coefficients():
    """Energies made from known w, b on random features (two elements, mixed frames) give back
    w and b (to 1e-6) and predict the energies exactly; alpha comes out at the small end."""
    rng = np.random.default_rng(1)
    d, frames = 6, 80
    truth = Readout(("Cu", "Ni"), rng.normal(size=(2, d)), np.array([-0.3, 0.7]))
    feats, numbers, e_base, e_dft = [], [], [], []
    for _ in range(frames):
        n = int(rng.integers(2, 9))
        z = rng.choice([28, 29], size=n)
        h = rng.normal(size=(n, d))
        eb = float(rng.normal(scale=5.0))
        feats.append(h)
        numbers.append(z)
        e_base.append(eb)
        e_dft.append(eb + float(truth.correction_ev(h, z).sum()))
    fitted = fit_readout(e_dft, e_base, feats, numbers, seed=0)
    assert fitted.elements == ("Cu", "Ni")
    np.testing.assert_allclose(fitted.weights, truth.weights, atol=1e-6)
    np.testing.assert_allclose(fitted.bias_ev, truth.bias_ev, atol=1e-6)
    assert fitted.info["alpha"] <= 1e-6
    assert fitted.info["train_rmse_ev_per_atom"] < 1e-8


def test_fit_regularises_noise_by_cross_validation():
    """Noisy energies and more features than the signal needs: CV picks a larger alpha than for
    clean data, and the fit's CV error is below the uncorrected spread."""
    rng = np.random.default_rng(2)
    d, frames = 20, 60
    w = np.zeros((1, d))
    w[0, :2] = [0.4, -0.2]
    truth = Readout(("Mo",), w, np.array([0.1]))
    feats = [rng.normal(size=(int(n), d)) for n in rng.integers(4, 12, size=frames)]
    numbers = [np.full(len(h), 42) for h in feats]
    e_base = np.zeros(frames)
    e_dft = np.array([truth.correction_ev(h, z).sum() + rng.normal(scale=0.3) for h, z in zip(feats, numbers)])
    fitted = fit_readout(e_dft, e_base, feats, numbers, seed=0)
    assert fitted.info["alpha"] > 1e-3
    assert fitted.info["cv_rmse_ev_per_atom"] < fitted.info["base_rmse_ev_per_atom"]


def test_alpha_grid_setting():
    assert alphas_of([1e-2, 1.0, 3]) == pytest.approx([1e-2, 1e-1, 1.0])
    with pytest.raises(TrainingError, match="alpha_grid"):
        alphas_of([0, 1, 3])


def test_readout_file_round_trip(tmp_path):
    r = _readout(5, elements=("Cu", "Mo"))
    path = r.save(tmp_path / "readout.json")
    back = Readout.load(path)
    np.testing.assert_array_equal(back.weights, r.weights)
    np.testing.assert_array_equal(back.bias_ev, r.bias_ev)
    (tmp_path / "bad.json").write_text(json.dumps({"kind": "other"}))
    with pytest.raises(FeatureError, match="not a surfbench readout"):
        Readout.load(tmp_path / "bad.json")


# ---------------------------------------------------------------------------- cache, fingerprint, protocols


@pytest.mark.parametrize("name", [pytest.param(TENSORNET, marks=needs_matgl)])
def test_features_and_energies_cached_together(name, tmp_path):
    from surfbench.analysis.descriptors import DescriptorCache, model_energies_and_features

    model = load_model(name)
    tap = tap_for(model)
    structures = [_cell(), bulk("Cu", "fcc", a=3.6)]
    cache = DescriptorCache(tmp_path / "cache")
    e1, f1 = model_energies_and_features(model, structures, cache=cache)
    calls = []
    original = tap._energy_only
    tap._energy_only = lambda a: calls.append(1) or original(a)
    try:
        e2, f2 = model_energies_and_features(model, structures, cache=DescriptorCache(tmp_path / "cache"))
    finally:
        tap._energy_only = original
    assert calls == []  # everything from the cache
    np.testing.assert_array_equal(e1, e2)
    for a, b in zip(f1, f2):
        np.testing.assert_array_equal(a, b)
    assert e1[1] == pytest.approx(energy_of(structures[1], model.calculator), abs=1e-4)


def _register(tmp_path, name: str, base: str, readout: Readout) -> None:
    from surfbench.training.pipeline import write_registry_entry

    path = readout.save(tmp_path / name / "readout.json")
    write_registry_entry(tmp_path, {
        "name": name, "family": "readout", "backend": "surfbench.models.loaders.readout:ReadoutBackend",
        "kwargs": {"base": base}, "weights": {"source": "local", "path": str(path)}, "licence": "MIT",
        "citation": "-", "elements": list(readout.elements)})


@pytest.mark.parametrize("name", [pytest.param(TENSORNET, marks=needs_matgl)])
def test_fingerprint_follows_the_coefficients(name, tmp_path):
    base = load_model(name)
    d = tap_for(base).energy_and_features(_cell())[1].shape[1]
    _register(tmp_path, "ro-a", name, _readout(d, seed=0))
    _register(tmp_path, "ro-b", name, _readout(d, seed=1))
    a, b = load_model("ro-a"), load_model("ro-b")
    assert a.fingerprint.id != b.fingerprint.id
    assert json.loads(a.fingerprint.options)["readout_of"] == base.fingerprint.id
    again = load_model("ro-a")
    assert again.fingerprint == a.fingerprint
    _register(tmp_path, "ro-a", name, _readout(d, seed=2))  # refitted: another model
    assert load_model("ro-a").fingerprint.id != a.fingerprint.id


@pytest.mark.parametrize("name", [pytest.param(TENSORNET, marks=needs_matgl)])
def test_relaxed_protocol_with_a_readout(name, tmp_path):
    """A readout model relaxes a Cu(111) slab through the normal runner: forces converge to
    fmax (so they are the gradient the optimiser follows) and gamma is finite."""
    from surfbench.analysis.predictions import slab_predictions
    from surfbench.execution.runner import run
    from surfbench.records import BulkRecord, Dataset, SurfaceRecord
    from surfbench.store.results import ResultStore

    base = load_model(name)
    d = tap_for(base).energy_and_features(_cell())[1].shape[1]
    _register(tmp_path, "ro-relax", name, _readout(d, scale=0.01))
    model = load_model("ro-relax")
    cu = bulk("Cu", "fcc", a=3.62)
    slab = fcc111("Cu", size=(1, 1, 4), a=3.62, vacuum=6.0)
    slab.pbc = (True, True, False)
    ds = Dataset("tiny-cu", {"cu-bulk": BulkRecord("cu-bulk", "Cu", cu, -3.7)},
                 [SurfaceRecord("cu-111", "Cu", slab, -14.2, "cu-bulk", -3.7, (1, 1, 1))])
    with ResultStore(tmp_path) as store:
        run(ds, model, store, "static")
        summary = run(ds, model, store, "relaxed")
        assert summary.failed == 0
        res = store.results("tiny-cu", model.fingerprint.id, "relaxed")
    slab_row = slab_predictions(res).iloc[0]
    assert slab_row["gamma_status"] == "ok"
    assert 0.1 < slab_row["gamma_pred_j_per_m2"] < 5.0
    extra = json.loads(res.loc[res["kind"] == "slab", "extra"].iloc[0])
    assert extra.get("converged", True)
    import surfbench

    api = surfbench.evaluate("ro-relax", ds, workdir=tmp_path, progress=False)  # the Python API: the same run
    assert api.fingerprint == model.fingerprint.id and api.summary.reused == 2 and api.summary.computed == 0


def test_slab_weight_by_cross_validation():
    """Slab frames whose energy error follows another feature than the rest: weighting them up
    fits them better; ``slab_weight: cv`` picks a weight above 1 from the CV error on the held-out
    slab frames of the training data, and records the trials."""
    rng = np.random.default_rng(4)
    d, frames = 4, 90
    feats = [rng.normal(size=(int(n), d)) for n in rng.integers(4, 10, size=frames)]
    numbers = [np.full(len(h), 29) for h in feats]
    slab = np.arange(frames) % 6 == 0
    w_bulk, w_slab = np.array([0.3, 0.0, 0.0, 0.0]), np.array([0.3, 0.0, 0.0, 0.5])
    e_dft = [float((h @ (w_slab if s else w_bulk)).sum()) + rng.normal(scale=0.05) for h, s in zip(feats, slab)]
    plain = fit_readout(e_dft, np.zeros(frames), feats, numbers, slab=slab)
    heavy = fit_readout(e_dft, np.zeros(frames), feats, numbers, slab=slab, slab_weight=10)
    chosen = fit_readout(e_dft, np.zeros(frames), feats, numbers, slab=slab, slab_weight="cv")

    def slab_rmse(r):
        return np.sqrt(np.mean([((r.correction_ev(h, z).sum() - e) / len(z)) ** 2
                                for h, z, e, s in zip(feats, numbers, e_dft, slab) if s]))

    assert slab_rmse(heavy) < 0.8 * slab_rmse(plain)
    assert plain.info["slab_weight"] == 1.0 and heavy.info["slab_weight"] == 10.0
    assert chosen.info["slab_weight"] > 1.0
    assert [t["slab_weight"] for t in chosen.info["slab_weight_selection"]] == [1.0, 3.0, 10.0, 30.0]
    with pytest.raises(TrainingError, match="slab_weight must be a number or 'cv'"):
        fit_readout(e_dft, np.zeros(frames), feats, numbers, slab=slab, slab_weight="heavy")
