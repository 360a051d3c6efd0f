"""The Python API (surfbench.evaluate / Results / load_results) with an in-memory EMT
calculator on a small user data file: numbers against a hand computation, caching, the same
store and numbers as the command line, figures, report, fingerprints of calculator objects."""

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.calculators.emt import EMT
from ase.io import read, write
from typer.testing import CliRunner

import surfbench
from surfbench.cli import app
from surfbench.models.base import ModelLoadError
from surfbench.models.instance import instance_model
from surfbench.store.results import FingerprintChanged
from surfbench.units import EV_PER_A2_IN_J_PER_M2

runner = CliRunner(env={"COLUMNS": "250"})
LATTICE_A = {"Cu": 3.6, "Ni": 3.52}
SLAB_BUILDERS = {"111": fcc111, "100": fcc100, "110": fcc110}


def _frames():
    """Cu and Ni: a bulk and three slabs each, with made-up DFT energies (eV)."""
    frames = []
    for i, (el, a) in enumerate(LATTICE_A.items()):
        b = bulk(el, "fcc", a=a, cubic=True)
        b.info.update(kind="bulk", name=f"{el}-bulk", energy=-4.0 * len(b) - i)
        frames.append(b)
        for j, (hkl, build) in enumerate(SLAB_BUILDERS.items()):
            s = build(el, size=(1, 1, 4), a=a, vacuum=6.0, periodic=True)
            s.info.clear()
            s.info.update(kind="slab", name=f"{el}-{hkl}", energy=-4.0 * len(s) + 0.5 + 0.25 * j, miller=hkl)
            frames.append(s)
    return frames


def _emt_energy_ev(atoms) -> float:
    a = atoms.copy()
    a.pbc = True
    a.calc = EMT()
    return float(a.get_potential_energy())


def _hand_gammas(frames) -> dict[str, tuple[float, float]]:
    """record -> (DFT gamma, EMT gamma) in J/m^2: (E_slab - n e_bulk) / (2 A), each side with
    its own bulk energy per atom; A spanned by the two in-plane cell vectors."""
    bulks = {f.info["name"].split("-")[0]: f for f in frames if f.info["kind"] == "bulk"}
    out = {}
    for s in (f for f in frames if f.info["kind"] == "slab"):
        b = bulks[s.info["name"].split("-")[0]]
        area_a2 = float(np.linalg.norm(np.cross(s.cell[0], s.cell[1])))
        dft = (s.get_potential_energy() - len(s) * b.get_potential_energy() / len(b)) / (2 * area_a2)  # as read
        emt = (_emt_energy_ev(s) - len(s) * _emt_energy_ev(b) / len(b)) / (2 * area_a2)
        out[s.info["name"]] = (dft * EV_PER_A2_IN_J_PER_M2, emt * EV_PER_A2_IN_J_PER_M2)
    return out


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """One API run of an in-memory EMT (name emt-mem) on the data file; the cache of built
    data sets in a temporary folder (the autouse fixture is per test)."""
    root = tmp_path_factory.mktemp("api")
    frames = _frames()
    data = root / "cu-ni.extxyz"
    write(data, frames, format="extxyz")
    frames = read(data, ":")  # as stored (the file rounds positions)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SURFBENCH_CACHE_DIR", str(root / "cache"))
        res = surfbench.evaluate(EMT(), data, workdir=root / "w", name="emt-mem", progress=False)
    return res, data, frames


def test_predictions_are_the_hand_computed_surface_energies(evaluated):
    res, data, frames = evaluated
    assert res.model == "emt-mem" and res.protocol == "static" and res.dataset == str(data.resolve())
    assert res.summary.computed == 8 and res.summary.failed == 0
    p = res.predictions().set_index("record_id")
    assert list(p.columns) == [c for c in surfbench.api.PREDICTION_COLUMNS if c != "record_id"]
    hand = _hand_gammas(frames)
    slabs = p[p["kind"] == "slab"]
    assert sorted(slabs.index) == sorted(hand) and (slabs["status"] == "ok").all()
    for rid, (dft, emt) in hand.items():
        assert slabs.loc[rid, "dft_gamma_j_per_m2"] == pytest.approx(dft, rel=1e-10)
        assert slabs.loc[rid, "model_gamma_j_per_m2"] == pytest.approx(emt, rel=1e-10)
        assert slabs.loc[rid, "error_gamma_j_per_m2"] == pytest.approx(emt - dft, rel=1e-9)
    cu_bulk = next(f for f in frames if f.info["name"] == "Cu-bulk")
    assert p.loc["Cu-bulk", "model_e_per_atom_ev"] == pytest.approx(_emt_energy_ev(cu_bulk) / len(cu_bulk), rel=1e-12)
    assert p.loc["Cu-111", "miller"] == "1 1 1" and p.loc["Cu-111", "in_training"] == "unseen"
    assert p["failure_kind"].isna().all()

    gamma = res.metrics().set_index("quantity").loc["gamma"]
    errors = np.array([emt - dft for dft, emt in hand.values()])
    assert gamma["n_ok"] == 6 and gamma["rmse"] == pytest.approx(math.sqrt(np.mean(errors**2)), rel=1e-9)
    per_el = res.metrics(by="element")
    cu = per_el[(per_el["element"] == "Cu") & (per_el["quantity"] == "gamma")].iloc[0]
    cu_err = np.array([emt - dft for rid, (dft, emt) in hand.items() if rid.startswith("Cu")])
    assert cu["mae"] == pytest.approx(np.mean(np.abs(cu_err)), rel=1e-9)
    assert set(res.metrics(by="miller").dropna(subset=["miller"])["miller"]) == {"111", "100", "110"}
    with pytest.raises(ValueError, match="by='lattice'"):
        res.metrics(by="lattice")


def test_a_second_evaluate_reuses_everything(evaluated, tmp_path):
    res, data, _ = evaluated
    again = surfbench.evaluate(EMT(), data, workdir=res.workdir, name="emt-mem", progress=False)
    assert again.summary.computed == 0 and again.summary.reused == 8
    assert again.fingerprint == res.fingerprint
    pd.testing.assert_frame_equal(again.predictions(), res.predictions())
    cu = surfbench.evaluate(EMT(), data, workdir=res.workdir, name="emt-mem", elements=["Cu"], progress=False)
    assert cu.summary.computed == 0 and cu.summary.total == 4
    assert set(cu.predictions()["element"]) == {"Cu"}
    top = surfbench.evaluate(EMT(), data, workdir=res.workdir, name="emt-mem", miller=[(1, 1, 1)], progress=False)
    assert top.summary.computed == 0 and top.summary.total == 4
    assert sorted(top.predictions()["record_id"]) == ["Cu-111", "Cu-bulk", "Ni-111", "Ni-bulk"]
    [loaded] = surfbench.load_results(res.workdir, model="emt-mem")
    assert loaded.fingerprint == res.fingerprint and loaded.summary is None
    pd.testing.assert_frame_equal(loaded.predictions(), res.predictions())


def test_api_and_cli_share_store_and_numbers(evaluated, tmp_path):
    """The CLI's run of the registry 'emt' into a store, and the API's: the API reuses what the
    CLI stored, computes the same numbers into a fresh store, and the CLI reads the API's runs."""
    res, data, _ = evaluated
    cli_dir, api_dir = tmp_path / "cli", tmp_path / "api"
    out = runner.invoke(app, ["run", "--model", "emt", "--dataset", str(data), "--workdir", str(cli_dir)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["export", "--output", str(tmp_path / "cli.csv"), "--workdir", str(cli_dir)])
    assert out.exit_code == 0, out.output
    cli = pd.read_csv(tmp_path / "cli.csv").set_index("record_id")

    reused = surfbench.evaluate("emt", data, workdir=cli_dir, progress=False)
    assert reused.summary.computed == 0 and reused.summary.reused == 8
    fresh = surfbench.evaluate("emt", data, workdir=api_dir, progress=False)
    assert fresh.summary.computed == 8 and fresh.fingerprint == reused.fingerprint == cli["fingerprint"].iloc[0]
    for api in (reused.predictions().set_index("record_id"), fresh.predictions().set_index("record_id")):
        assert sorted(api.index) == sorted(cli.index)
        slabs = api[api["kind"] == "slab"].index
        np.testing.assert_allclose(api.loc[slabs, "model_gamma_j_per_m2"], cli.loc[slabs, "gamma_pred_j_per_m2"],
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(api["model_energy_ev"], cli.loc[api.index, "energy_ev"], rtol=0, atol=1e-12)
    # the registry EMT and the in-memory one are the same potential: the same numbers
    np.testing.assert_allclose(fresh.predictions()["model_gamma_j_per_m2"], res.predictions()["model_gamma_j_per_m2"],
                               rtol=0, atol=1e-12)
    out = runner.invoke(app, ["table", "--workdir", str(res.workdir), "--model", "emt-mem"])
    assert out.exit_code == 0, out.output
    assert res.fingerprint in out.output and "surface energy gamma" in out.output

    table = res.compare(fresh, n_boot=50).set_index("model")
    assert sorted(table.index) == ["emt", "emt-mem"]
    rmse = res.metrics().set_index("quantity").loc["gamma", "rmse"]
    assert table.loc["emt", "gamma_rmse"] == pytest.approx(rmse, abs=1e-12)
    assert table.loc["emt-mem", "gamma_rmse"] == pytest.approx(rmse, abs=1e-12)


def test_figures_and_report(evaluated, tmp_path):
    res, _, _ = evaluated
    dft = res.predictions().dropna(subset=["dft_gamma_j_per_m2"])
    parity = res.parity()
    points = [t for t in parity.data if t.mode == "markers"]
    assert len(points) == 1 and sorted(points[0].x) == pytest.approx(sorted(dft["dft_gamma_j_per_m2"]))
    for fig in (res.error_distribution(), res.periodic_table(), res.facet_ordering(), res.wulff()):
        assert isinstance(fig, go.Figure) and len(fig.data) > 0
    path = res.report(tmp_path / "emt-report.html", n_boot=50)
    assert path.is_file() and path.suffix == ".html"
    text = path.read_text(encoding="utf-8")
    assert res.fingerprint in text and "Surface energy" in text


def test_bad_input_is_a_clear_error(evaluated):
    res, data, _ = evaluated
    with pytest.raises(ModelLoadError, match="needs a name"):
        surfbench.evaluate(EMT(), data, workdir=res.workdir, progress=False)
    with pytest.raises(ModelLoadError, match="registry model"):
        surfbench.evaluate(EMT(), data, workdir=res.workdir, name="emt", progress=False)
    with pytest.raises(ValueError, match="names a calculator object"):
        surfbench.evaluate("emt", data, workdir=res.workdir, name="mine", progress=False)
    with pytest.raises(ValueError, match=r"elements \['Mo'\] are not in data set"):
        surfbench.evaluate(EMT(), data, workdir=res.workdir, name="emt-mem", elements=["Mo"], progress=False)
    with pytest.raises(ValueError, match="miller=.*not a Miller index"):
        surfbench.evaluate(EMT(), data, workdir=res.workdir, name="emt-mem", miller=["11"], progress=False)
    with pytest.raises(ValueError, match="no slabs .* Miller 211"):
        surfbench.evaluate(EMT(), data, workdir=res.workdir, name="emt-mem", miller="211", progress=False)
    with pytest.raises(ValueError, match="split='val'"):
        surfbench.evaluate(EMT(), data, workdir=res.workdir, name="emt-mem", split="val", progress=False)
    with pytest.raises(TypeError, match="ASE calculator object"):
        surfbench.evaluate(42, data, workdir=res.workdir, progress=False)
    with pytest.raises(ValueError, match="no stored run"):
        surfbench.load_results(res.workdir, model="nope")
    # the same name with another fingerprint is refused by the store, as for every model
    with pytest.raises(FingerprintChanged, match="emt-mem"):
        surfbench.evaluate(EMT(asap_cutoff=True), data, workdir=res.workdir, name="emt-mem", progress=False)


def test_fingerprints_of_calculator_objects():
    def fp(calc, name="emt-mem"):
        return instance_model(calc, name).fingerprint

    assert fp(EMT()).id == fp(EMT()).id
    assert fp(EMT(asap_cutoff=True)).id != fp(EMT()).id
    assert fp(EMT(), "other").id != fp(EMT()).id
    assert fp(EMT()).package_version.startswith("ase ") and '"ase.calculators.emt.EMT"' in fp(EMT()).options
    with_array, other_array, with_object = EMT(), EMT(), EMT()
    with_array.parameters["charges"] = np.array([0.0, 0.1])
    other_array.parameters["charges"] = np.array([0.0, 0.2])
    assert fp(with_array).id != fp(other_array).id
    with_object.parameters["callback"] = object()  # not JSON: named in the options, its value not hashed
    assert '"unhashed_parameters": ["callback"]' in fp(with_object).options


def test_torch_weights_changed_in_place_give_a_new_fingerprint():
    import torch
    from ase.calculators.calculator import Calculator

    class TorchCalc(Calculator):
        implemented_properties = ["energy"]

        def __init__(self):
            super().__init__()
            self.model = torch.nn.Linear(3, 1).double()
            self.helper = type("Predictor", (), {})()
            self.helper.heads = [torch.nn.Linear(2, 1)]

    calc = TorchCalc()
    before = instance_model(calc, "torch-mem").fingerprint
    assert before.dtype == "float32,float64"
    assert instance_model(calc, "torch-mem").fingerprint.id == before.id
    with torch.no_grad():
        calc.model.weight += 1.0
    after = instance_model(calc, "torch-mem").fingerprint
    assert after.id != before.id
    with torch.no_grad():
        calc.helper.heads[0].bias += 1.0  # one level down, in a list
    assert instance_model(calc, "torch-mem").fingerprint.id != after.id


def test_relaxed_runs_the_static_protocol_first(evaluated, tmp_path):
    """As ``surfbench run --protocol relaxed``: the static run is done too (same function)."""
    _, data, _ = evaluated
    relaxed = surfbench.evaluate(EMT(), data, "relaxed", workdir=tmp_path, name="emt-mem", elements=["Cu"],
                                 progress=False)
    assert relaxed.protocol == "relaxed" and relaxed.summary.computed == 4
    runs = {r.protocol: r for r in surfbench.load_results(tmp_path, protocol=None)}
    assert sorted(runs) == ["relaxed", "static"]
    static = runs["static"].predictions().set_index("record_id")
    assert sorted(static.index) == ["Cu-100", "Cu-110", "Cu-111", "Cu-bulk"] and (static["status"] == "ok").all()
    gamma = relaxed.predictions().set_index("record_id")["model_gamma_j_per_m2"]
    assert gamma[["Cu-100", "Cu-110", "Cu-111"]].notna().all()
