"""The relaxed protocol (EMT on copper; no real data needed) and the static/relaxation split."""

import json

import numpy as np
import pytest
from ase.build import bulk, fcc111
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.eos import EquationOfState
from ase.optimize import BFGS

from surfbench.analysis.predictions import slab_predictions
from surfbench.analysis.relaxation import relaxation_split, split_summary
from surfbench.data.geometry import layer_indices
from surfbench.evaluation.registry import get_protocol
from surfbench.evaluation.relax import RelaxedProtocol, RelaxSettings
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.results import ResultStore
from surfbench.units import EV_PER_A2_IN_J_PER_M2
from tests.calcs import Raising
from tests.conftest import needs_data


def emt_lattice_constant() -> tuple[float, float]:
    """EMT's fcc Cu lattice constant (Angstrom) and volume per atom (Angstrom^3) from an
    equation-of-state fit, independent of surfbench."""
    volumes, energies = [], []
    for a in np.linspace(3.52, 3.66, 9):
        at = bulk("Cu", "fcc", a=a)
        at.calc = EMT()
        volumes.append(at.get_volume())
        energies.append(at.get_potential_energy())
    v0, _, _ = EquationOfState(volumes, energies).fit()
    return (4 * v0) ** (1 / 3), v0


def _dataset(a: float, slab_atoms=None) -> Dataset:
    cu = bulk("Cu", "fcc", a=a, cubic=True)
    b = BulkRecord(id="Cu/bulk", element="Cu", atoms=cu, energy_ev=-3.7 * len(cu), split="train")
    slab = slab_atoms if slab_atoms is not None else fcc111("Cu", size=(2, 2, 4), a=a, vacuum=7.0, periodic=True)
    s = SurfaceRecord(id="Cu/111", element="Cu", atoms=slab, energy_ev=-3.7 * len(slab) + 2.0, bulk_id=b.id,
                      bulk_energy_per_atom_ev=-3.7, miller=(1, 1, 1), split="test")
    return Dataset("toy", {b.id: b}, [s])


def test_protocol_names_carry_the_settings():
    assert get_protocol("relaxed").name == "relaxed"
    name = get_protocol("relaxed", fmax_ev_per_a=0.02, steps=100).name
    assert name.startswith("relaxed(") and "fmax_ev_per_a=0.02" in name and "steps=100" in name
    with pytest.raises(ValueError, match="unknown optimizer"):
        RelaxSettings(optimizer="nope")
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("relaxd")


def test_structures_at_their_minimum_barely_move(tmp_path):
    a0, v0 = emt_lattice_constant()
    slab = fcc111("Cu", size=(2, 2, 4), a=a0, vacuum=7.0, periodic=True)
    slab.calc = EMT()
    BFGS(slab, logfile=None).run(fmax=1e-4)
    slab.calc = None
    ds = _dataset(a0, slab)
    with ResultStore(tmp_path) as store:
        summary = run(ds, load_model("emt"), store, "relaxed")
        assert summary.failed == 0
        fp = summary.fingerprint
        b = store.get_result("toy", "Cu/bulk", fp, "relaxed")
        s = store.get_result("toy", "Cu/111", fp, "relaxed")
    # the bulk relaxation lands on the equation-of-state minimum
    assert b["extra"]["volume_ratio"] * ds.bulks["Cu/bulk"].atoms.get_volume() / 4 == pytest.approx(v0, rel=2e-4)
    assert s["extra"]["lattice_scale"] == pytest.approx(1.0, abs=2e-4)
    assert s["extra"]["converged"] is True
    assert s["extra"]["rmsd_a"] < 2e-3 and s["extra"]["max_displacement_a"] < 5e-3
    assert s["extra"]["steps"] <= 10


def test_split_adds_up_and_gamma_relaxed_by_hand(tmp_path):
    ds = _dataset(3.70)  # 3 % larger than EMT's lattice: both bulk and slab relax
    with ResultStore(tmp_path) as store:
        model = load_model("emt")
        run(ds, model, store, "static")
        run(ds, model, store, "relaxed")
        fp = model.fingerprint.id
        static, relaxed = store.results("toy", fp, "static"), store.results("toy", fp, "relaxed")
        b = store.get_result("toy", "Cu/bulk", fp, "relaxed")
        s = store.get_result("toy", "Cu/111", fp, "relaxed")
    slab = ds.surfaces[0]
    scale = s["extra"]["lattice_scale"]
    assert scale == pytest.approx(b["extra"]["volume_ratio"] ** (1 / 3))
    assert scale < 0.99  # shrinks towards EMT's 3.59 Angstrom
    assert s["extra"]["area_a2"] == pytest.approx(slab.area_a2 * scale**2, rel=1e-10)
    gamma_hand = (s["energy_ev"] - slab.n_atoms * b["energy_ev"] / 4) / (2 * slab.area_a2 * scale**2) * EV_PER_A2_IN_J_PER_M2
    pred = slab_predictions(relaxed).set_index("record_id")
    assert pred.loc["Cu/111", "gamma_pred_j_per_m2"] == pytest.approx(gamma_hand, rel=1e-12)

    split = relaxation_split(static, relaxed)
    row = split.iloc[0]
    assert row["error_total_j_per_m2"] == pytest.approx(row["error_static_j_per_m2"] + row["error_relaxation_j_per_m2"], abs=1e-12)
    assert row["gamma_relaxed_j_per_m2"] == pytest.approx(gamma_hand, rel=1e-12)
    assert row["error_relaxation_j_per_m2"] != pytest.approx(0.0, abs=1e-3)  # relaxing changed gamma
    summary = split_summary(split).iloc[0]
    assert summary["n"] == 1 and summary["relaxed_failures"] == "none"
    assert summary["total_mean_signed_error"] == pytest.approx(summary["static_mean_signed_error"] + summary["relaxation_mean_signed_error"], abs=1e-12)


class NaNForces(Calculator):
    """EMT energies with NaN forces: a relaxation must stop as exploded."""

    implemented_properties = ["energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = EMT()
        self.results = {"energy": a.get_potential_energy(), "forces": np.full((len(a), 3), np.nan),
                        "stress": a.get_stress()}


def test_failure_kinds():
    ds = _dataset(3.70)
    b, s = ds.bulks["Cu/bulk"], ds.surfaces[0]
    short = RelaxedProtocol(steps=1)
    out = short.calc_record(b, EMT())
    assert out.failure_kind == "not_converged" and "after 1 steps" in out.message
    start = b.atoms.copy()
    start.calc = EMT()
    assert out.extra["last_energy_ev"] < start.get_potential_energy()  # one step downhill, kept
    exploded = RelaxedProtocol().calc_record(b, NaNForces())
    assert exploded.failure_kind == "exploded" and "non-finite forces" in exploded.message
    failed_bulk = RelaxedProtocol().calc_record(b, Raising())
    assert failed_bulk.failure_kind == "calculator_error"
    no_bulk = RelaxedProtocol().calc_record(s, EMT(), {"status": "failed", "failure_kind": "exploded"})
    assert no_bulk.failure_kind == "no_relaxed_bulk" and "exploded" in no_bulk.message
    assert RelaxedProtocol().calc_record(s, EMT(), None).failure_kind == "no_relaxed_bulk"


def test_fixed_bottom_layers_do_not_move():
    slab = fcc111("Cu", size=(2, 2, 4), a=3.70, vacuum=7.0, periodic=True)
    layers = layer_indices(slab, 2)
    assert sorted(np.bincount(layers).tolist()) == [4, 4, 4, 4]
    assert (layers[slab.positions[:, 2].argsort()[:4]] == 0).all()
    proto = RelaxedProtocol(fix_bottom_layers=2)
    out = proto.relax_slab(slab, EMT(), axis=2, scale=1.0)
    assert out.status == "ok" and out.extra["fixed_atoms"] == 8
    end = np.array(out.extra["positions"])
    fixed = layers < 2
    assert np.abs(end[fixed] - slab.positions[fixed]).max() < 1e-6
    assert np.abs(end[~fixed] - slab.positions[~fixed]).max() > 1e-3
    assert json.dumps(out.extra)  # extras are JSON for the store


def test_fixed_layers_beyond_the_slab_are_refused():
    """--fix-bottom-layers N with N at least the slab's layer count held every atom fixed and
    "converged" at once (issue 25, point 8): refused before the run, and never relaxed."""
    ds = _dataset(3.70)
    slab = ds.surfaces[0]
    n_layers = int(layer_indices(slab.atoms, slab.vacuum_axis).max()) + 1
    RelaxedProtocol(fix_bottom_layers=n_layers - 1).check_dataset(ds)  # one layer left free: fine
    with pytest.raises(ValueError, match=f"--fix-bottom-layers {n_layers} would hold every atomic layer of 1 slab"):
        RelaxedProtocol(fix_bottom_layers=n_layers).check_dataset(ds)
    out = RelaxedProtocol(fix_bottom_layers=n_layers).relax_slab(slab.atoms, EMT(), axis=2, scale=1.0)
    assert out.status == "failed" and out.failure_kind == "invalid_settings" and "nothing would relax" in out.message


class OddOutputs(Calculator):
    """EMT with one output made wrong: the energy as a text or a bool, the stress of shape (5,)
    or NaN (from the first call, or from the ``after``-th call on)."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, odd: str, after: int = 0):
        super().__init__()
        self.odd, self.after, self.calls = odd, after, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        a = self.atoms.copy()
        a.calc = EMT()
        energy, stress = a.get_potential_energy(), a.get_stress()
        if self.calls > self.after:
            energy = {"text": "12.5", "bool": True}.get(self.odd, energy)
            stress = {"shape": stress[:5], "nan": stress * np.nan}.get(self.odd, stress)
        self.results = {"energy": energy, "forces": a.get_forces(), "stress": stress}


@pytest.mark.parametrize("odd, after, message", [
    ("text", 0, "the calculator's energy is '12.5' (a str), not a number"),
    ("bool", 0, "the calculator's energy is True (a bool), not a number"),
    ("shape", 0, "the calculator's stress has shape (5,) (float64), expected (6,) or (3, 3)"),
    ("nan", 0, "the calculator's stress is not finite (6 of 6 values NaN or inf)"),
    ("nan", 3, "the calculator's stress is not finite (6 of 6 values NaN or inf)"),
])
def test_calculator_outputs_that_are_not_what_they_claim(odd, after, message):
    """A calculator returning "12.5" or True as its energy was scored; a stress of shape (5,)
    gave an empty "AssertionError:", a NaN stress "cannot convert float NaN to integer" (issue
    25, point 8): each is a calculator_error naming the output."""
    from surfbench.evaluation.protocols import StaticProtocol

    ds = _dataset(3.70)
    b = ds.bulks["Cu/bulk"]
    out = RelaxedProtocol().calc_record(b, OddOutputs(odd, after))
    assert (out.status, out.failure_kind, out.message) == ("failed", "calculator_error", message)
    static = StaticProtocol().calc(b.atoms, OddOutputs(odd, after))
    if odd in ("text", "bool"):  # a static point reads the energy only
        assert (static.failure_kind, static.message) == ("calculator_error", message)
    else:
        assert static.status == "ok"


@needs_data
def test_relaxed_run_cli_on_mlearn_with_emt(tmp_path, data_dir):
    from typer.testing import CliRunner

    from surfbench.cli import app

    args = ["run", "--model", "emt", "--protocol", "relaxed", "--split", "test", "--steps", "300",
            "--workdir", str(tmp_path), "--data-dir", str(data_dir)]
    out = CliRunner(env={"COLUMNS": "250"}).invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "gamma error split" in out.output and "unsupported_element" in out.output
    relaxed = RelaxSettings(steps=300).key
    assert relaxed != "relaxed" and "steps=300" in out.output
    with ResultStore(tmp_path) as store:
        runs = store.runs().set_index("protocol")
        split = relaxation_split(store.results(protocol="static"), store.results(protocol=relaxed))
    # EMT knows Cu and Ni: their 2 bulks and 4 test slabs relax; the static run came along
    assert runs.loc[relaxed, "ok"] == 6 and runs.loc["static", "ok"] == 6
    both = split.dropna(subset=["error_total_j_per_m2"])
    assert sorted(both["element"]) == ["Cu", "Cu", "Ni", "Ni"]
    assert np.allclose(both["error_total_j_per_m2"], both["error_static_j_per_m2"] + both["error_relaxation_j_per_m2"])
    assert (both["converged"] == True).all()  # noqa: E712
