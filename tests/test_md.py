"""MD stability runs: settings and melting points, the verdict taxonomy on runs of a Cu slab
with EMT (stable) and with deliberately broken calculators, the numbers against the written
trajectory, the md_runs store (reuse, keys), the choice of the worst slabs, the CLI and the
report section."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ase.build import bulk, fcc100, fcc111
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.io import read
from ase.units import kB

from surfbench.dynamics import verdicts as V
from surfbench.dynamics.md import MDInputError, make_slab_whole, run_md
from surfbench.dynamics.presets import MDSettings, MDSettingsError, get_preset, melting_point_k, protocol_key
from surfbench.dynamics.select import SelectionError, by_ids, worst_per_element
from surfbench.execution.runner import run as run_static
from surfbench.models import load_model
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.md_runs import MDStore, md_runs
from surfbench.store.results import ResultStore
from surfbench.units import EV_PER_A2_IN_J_PER_M2

QUICK = get_preset("cpu-quick")
T_CU_K = 0.8 * 1357.77  # pymatgen's melting point of Cu (K), checked below


def cu_slab(size=(2, 2, 4)):
    return fcc111("Cu", size=size, a=3.61, vacuum=8.0, periodic=True)


# --------------------------------------------------------------------------- broken calculators
class Wrapped(Calculator):
    """EMT with a defect: forces scaled, NaN after some calls, a pair of atoms pulled onto each
    other (their EMT forces replaced by a constant attraction), or one atom lifted by a
    constant force along +z."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, force_scale=1.0, nan_after=None, collapse=None, lift=None):
        super().__init__()
        self.inner, self.force_scale, self.nan_after = EMT(), force_scale, nan_after
        self.collapse, self.lift, self.calls = collapse, lift, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        energy, forces = a.get_potential_energy(), a.get_forces() * self.force_scale
        if self.collapse is not None:  # a potential with a hole: no repulsion between i and j
            i, j, f = self.collapse
            d = a.positions[j] - a.positions[i]
            r = np.linalg.norm(d)
            forces[i], forces[j] = f * d / r, -f * d / r
            if self.calls == 0:
                self.e0, self.r0 = energy, r
            energy = self.e0 - f * (self.r0 - r)  # the energy falls as the pair closes
        if self.lift is not None:
            i, f = self.lift
            forces[i, 2] += f
        self.calls += 1
        if self.nan_after is not None and self.calls > self.nan_after:
            energy, forces = math.nan, forces * math.nan
        self.results = {"energy": energy, "forces": forces}


# --------------------------------------------------------------------------- settings
def test_melting_points_and_temperature():
    assert melting_point_k("Cu") == pytest.approx(1357.77)
    assert melting_point_k("Mo") == pytest.approx(2896.0)
    assert QUICK.temperature_for("Cu") == pytest.approx(T_CU_K)
    assert QUICK.with_overrides(temperature_k=500.0).temperature_for("Cu") == 500.0
    assert QUICK.with_overrides(temperature_factor=0.5).temperature_for("Li") == pytest.approx(0.5 * 453.69)
    with pytest.raises(MDSettingsError, match="no melting point for Og"):
        melting_point_k("Og")
    with pytest.raises(MDSettingsError, match="not a chemical element"):
        melting_point_k("Xx")
    with pytest.raises(MDSettingsError, match="unknown thermostat"):
        MDSettings(thermostat="berendsen")
    with pytest.raises(MDSettingsError, match="timestep_fs must be a positive"):
        MDSettings(timestep_fs=0.0)
    with pytest.raises(MDSettingsError, match="unknown MD preset"):
        get_preset("fast")
    # the paper preset is 30 ps; cpu-quick 0.2 ps
    assert get_preset("paper").duration_ps == pytest.approx(30.0)
    assert QUICK.duration_ps == pytest.approx(0.2)


def test_protocol_key_changes_with_every_setting():
    th = V.Thresholds().as_dict()
    base = protocol_key(QUICK.key("Cu", th))
    assert base == protocol_key(QUICK.key("Cu", th)) and base.startswith("md@")
    changed = [QUICK.with_overrides(seed=1), QUICK.with_overrides(steps=101), QUICK.with_overrides(timestep_fs=1.0),
               QUICK.with_overrides(thermostat="bussi"), QUICK.with_overrides(friction_per_fs=0.02),
               QUICK.with_overrides(temperature_k=900.0)]
    keys = {protocol_key(s.key("Cu", th)) for s in changed} | {protocol_key(QUICK.key("Ni", th))}
    keys.add(protocol_key(QUICK.key("Cu", {**th, "lindemann_max": 0.3})))
    assert base not in keys and len(keys) == 8
    # a parameter the chosen thermostat does not use does not change the key
    assert protocol_key(QUICK.with_overrides(taut_fs=50.0).key("Cu", th)) == base


def test_make_slab_whole_and_frame():
    slab = cu_slab()
    split = slab.copy()
    split.positions[:, 2] -= slab.positions[:, 2].min() + 3.0  # the slab straddles the cell boundary
    split.wrap()
    whole = make_slab_whole(split, 2)
    z = np.sort(whole.positions[:, 2])
    # 4 layers of fcc(111) with a = 3.61: thickness 3 x a / sqrt(3), centred in the cell
    assert z[-1] - z[0] == pytest.approx(3 * 3.61 / math.sqrt(3), abs=1e-9)
    assert 0.5 * (z[-1] + z[0]) == pytest.approx(0.5 * whole.cell[2, 2], abs=1e-9)
    frame = V.slab_frame(whole, 2, V.Thresholds())
    assert frame.nn_distance_a == pytest.approx(3.61 / math.sqrt(2))
    assert frame.inner.sum() == 8  # the two middle layers of four (central half of the thickness)
    with pytest.raises(MDInputError, match="not a slab"):
        run_md(bulk("Cu", "fcc", a=3.61, cubic=True), EMT(), QUICK, 1000.0)


# --------------------------------------------------------------------------- runs and verdicts
def test_stable_cu_slab_numbers_match_trajectory(tmp_path):
    traj = tmp_path / "cu.traj"
    run = run_md(cu_slab(), EMT(), QUICK, T_CU_K, trajectory=traj)
    v = run.verdict
    assert v.verdict == V.STABLE, v.message
    assert run.steps_done == 100 and len(run.samples) == 21  # step 0 and every 5 steps
    frames = read(traj, ":")
    assert len(frames) == 11  # every 10 steps
    # temperatures of the trajectory frames, from their momenta: 2 Ekin / (3 N - 3) kB (centre of mass fixed)
    n = len(frames[0])
    for k, atoms in enumerate(frames):
        t_by_hand = 2.0 * atoms.get_kinetic_energy() / ((3 * n - 3) * kB)
        assert t_by_hand == pytest.approx(run.samples.temperature_k[2 * k], rel=1e-9)
    # smallest distance seen in the written frames >= smallest sampled distance (frames are a subset)
    d_frames = min(a.get_all_distances(mic=True)[np.triu_indices(n, 1)].min() for a in frames)
    assert d_frames >= v.numbers["min_distance_a"] - 1e-9
    assert v.numbers["min_distance_a"] == pytest.approx(min(run.samples.min_distance_a))
    # temperature mean over the second half of the samples (11 of 21)
    temps = np.array(run.samples.temperature_k[10:])
    assert v.numbers["temperature_mean_k"] == pytest.approx(temps.mean())
    assert 0.6 * T_CU_K < v.numbers["temperature_mean_k"] < 1.4 * T_CU_K
    assert v.numbers["lindemann_inner"] < 0.2 and v.numbers["n_desorbed"] == 0
    assert 0.0 < v.numbers["max_displacement_a"] < 2.0
    # the energy drift is the slope of the total energy per atom over the second half
    etot = (np.array(run.samples.epot_ev) + np.array(run.samples.ekin_ev))[10:] / n
    t_ps = np.array(run.samples.time_fs[10:]) / 1000.0
    assert v.numbers["energy_drift_ev_per_atom_per_ps"] == pytest.approx(np.polyfit(t_ps, etot, 1)[0])


def test_bussi_conserved_energy_is_conserved():
    run = run_md(cu_slab(), EMT(), QUICK.with_overrides(thermostat="bussi", steps=100, timestep_fs=1.0), T_CU_K)
    assert run.verdict.verdict == V.STABLE
    # velocity Verlet with 1 fs: the conserved quantity drifts by far less than kT per atom per ps
    assert abs(run.verdict.numbers["conserved_drift_ev_per_atom_per_ps"]) < 0.1 * kB * T_CU_K


def test_nan_calculator_is_exploded():
    run = run_md(cu_slab(), Wrapped(nan_after=12), QUICK, T_CU_K)
    assert run.verdict.verdict == V.EXPLODED
    assert "non-finite energy, forces" in run.verdict.message
    assert run.steps_done < 100  # stopped at the failure


def test_scaled_up_forces_explode():
    # forces x 3000 with the same masses: vibrations 55x faster, beyond what a 2 fs step integrates
    run = run_md(cu_slab(), Wrapped(force_scale=3000.0), QUICK, T_CU_K)
    assert run.verdict.verdict == V.EXPLODED, run.verdict.message
    assert run.steps_done < 50


def test_collapsing_pair_is_too_close():
    slab = cu_slab()
    i = int(np.argmax(slab.positions[:, 2]))
    j = int(np.argsort(slab.get_distances(i, range(len(slab)), mic=True))[1])  # its nearest neighbour
    run = run_md(slab, Wrapped(collapse=(i, j, 2.0)), QUICK, T_CU_K)
    assert run.verdict.verdict == V.TOO_CLOSE, run.verdict.message
    assert run.verdict.numbers["min_distance_a"] < 0.5 * 3.61 / math.sqrt(2)


def test_lifted_atom_is_desorbed():
    slab = cu_slab()
    top = int(np.argmax(slab.positions[:, 2]))
    run = run_md(slab, Wrapped(lift=(top, 3.0)), QUICK.with_overrides(steps=120), T_CU_K)
    assert run.verdict.verdict == V.DESORBED, run.verdict.message
    assert run.verdict.numbers["n_desorbed"] == 1
    assert run.verdict.numbers["max_displacement_a"] > 4.0


def test_hot_slab_is_melted():
    # EMT Cu far above its melting point: the inner layers diffuse
    run = run_md(cu_slab(), EMT(), QUICK.with_overrides(steps=300), 4000.0)
    assert run.verdict.verdict == V.MELTED, run.verdict.message
    assert run.verdict.numbers["lindemann_inner"] > 0.2


def test_lindemann_ratio_by_hand():
    # two inner atoms of a synthetic run: one vibrating between two points, one walking away
    frame = V.SlabFrame(normal=np.array([0.0, 0.0, 1.0]), heights0=np.array([0.0, 5.0, 10.0, 2.0]),
                        inner=np.array([False, True, False, True]), nn_distance_a=2.5, min_distance0_a=2.5)
    s = V.Samples()
    base = np.array([[0.0, 0, 0], [0, 0, 5], [0, 0, 10], [0, 0, 2]])
    for k in range(4):
        pos = base.copy()
        pos[1, 0] = 0.1 * (-1) ** k  # +-0.1 Angstrom
        pos[3, 1] = 1.0 * k  # 1 Angstrom per sample
        s.step.append(k)
        s.time_fs.append(float(k))
        for name in ("epot_ev", "ekin_ev", "temperature_k", "fmax_ev_per_a", "min_distance_a", "conserved_ev"):
            getattr(s, name).append(1.0)
        s.positions.append(pos)
    numbers = V.measure(s, frame, 4, V.Thresholds())
    # displacements relative to the per-sample median of all atoms' displacements:
    # sample 2 and 3 (second half): atom 1 at x = +0.1 - med, -0.1 - med; atom 3 at y = 2, 3 ...
    disp = np.array(s.positions) - s.positions[0]
    disp -= np.median(disp, axis=1, keepdims=True)
    u = disp[2:][:, [1, 3]]
    expected = math.sqrt(((u - u.mean(axis=0)) ** 2).sum(axis=2).mean()) / 2.5
    assert numbers["lindemann_inner"] == pytest.approx(expected)
    # hand value: atom 1 moves 0.2 in x between the two samples, atom 3 1.0 in y (the medians are 0 here)
    assert expected == pytest.approx(math.sqrt((0.1 ** 2 + 0.5 ** 2) / 2) / 2.5)


# --------------------------------------------------------------------------- store, selection, CLI, report
def toy_dataset() -> Dataset:
    """Cu(111) and Cu(100) slabs with chosen DFT surface energies (J/m^2); with EMT, (100) has
    the larger |gamma error|."""
    cell = bulk("Cu", "fcc", a=3.61, cubic=True)
    b = BulkRecord(id="Cu/bulk", element="Cu", atoms=cell, energy_ev=-3.5 * len(cell), split="train")
    slabs = []
    for name, atoms, gamma in (("Cu/111", fcc111("Cu", (2, 2, 4), a=3.61, vacuum=7.0, periodic=True), 1.3),
                               ("Cu/100", fcc100("Cu", (2, 2, 4), a=3.61, vacuum=7.0, periodic=True), 3.0)):
        area = np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1]))
        slabs.append(SurfaceRecord(id=name, element="Cu", atoms=atoms, bulk_id=b.id, bulk_energy_per_atom_ev=-3.5,
                                   energy_ev=-3.5 * len(atoms) + 2 * area * gamma / EV_PER_A2_IN_J_PER_M2,
                                   miller=(1, 1, 1) if name.endswith("111") else (1, 0, 0), split="test"))
    return Dataset("toy-md", {b.id: b}, slabs)


@pytest.fixture(scope="module")
def md_store(tmp_path_factory):
    """A store with EMT's static results on the toy data set and a cpu-quick MD run of the
    worst slab, made through the CLI."""
    from typer.testing import CliRunner

    from surfbench.cli import app
    from surfbench.data.registry import load_dataset
    from surfbench.data.userdata import write_user_dataset

    root = tmp_path_factory.mktemp("md-store")
    ds = toy_dataset()
    path = root / "toy.extxyz"
    write_user_dataset(ds, path)
    runner = CliRunner()
    res = runner.invoke(app, ["md", "--model", "emt", "--dataset", str(path), "--workdir", str(root)])
    assert res.exit_code == 2 and "no static results of emt" in res.output and "surfbench run --model emt" in res.output
    with ResultStore(root) as store:
        run_static(load_dataset(str(path)), load_model("emt"), store)
    res = runner.invoke(app, ["md", "--model", "emt", "--dataset", str(path), "--workdir", str(root), "--steps", "60"])
    assert res.exit_code == 0, res.output
    return root, path, res.output


def test_worst_per_element_and_store_reuse(md_store):
    from typer.testing import CliRunner

    from surfbench.cli import app
    from surfbench.data.registry import load_dataset

    root, path, output = md_store
    ds = load_dataset(str(path), None)
    with ResultStore(root) as store:
        fp = load_model("emt").fingerprint.id
        sel = worst_per_element(store, ds, fp, "emt")
        static = store.results(ds.name, fp, "static").set_index("record_id")
        gamma_err = {}
        e_bulk = static.loc["Cu/bulk", "energy_ev"] / static.loc["Cu/bulk", "n_atoms"]
        for rec in ds.surfaces:
            g = (static.loc[rec.id, "energy_ev"] - rec.n_atoms * e_bulk) / (2 * rec.area_a2) * EV_PER_A2_IN_J_PER_M2
            gamma_err[rec.id] = g - rec.dft_gamma_j_per_m2
        worst = max(gamma_err, key=lambda k: abs(gamma_err[k]))
        assert [c.record.id for c in sel.choices] == [worst]
        assert sel.choices[0].gamma_error_j_per_m2 == pytest.approx(gamma_err[worst])
        runs = md_runs(store, ds.name)
        assert len(runs) == 1 and runs.iloc[0]["record_id"] == worst and runs.iloc[0]["verdict"] == "stable"
        row = runs.iloc[0]
        assert row["steps_done"] == 60 and row["time_ps"] == pytest.approx(0.12)
        assert row["temperature_k"] == pytest.approx(T_CU_K)
        settings = json.loads(row["settings"])
        assert settings["steps"] == 60 and settings["thresholds"]["lindemann_max"] == 0.2
        assert row["protocol"] == protocol_key(settings)
        assert (root / row["trajectory"]).is_file() and len(read(root / row["trajectory"], ":")) == 7
        series = MDStore(store).series(ds.name, worst, fp, row["protocol"])
        assert len(series["time_fs"]) == 13 and series["time_fs"][-1] == 120.0
        with pytest.raises(SelectionError, match="no slab with id 'Cu/bulk'.*bulk records"):
            by_ids(ds, ["Cu/bulk"])
    assert worst in output and "stable" in output
    # rerun: reused, nothing recomputed
    res = CliRunner().invoke(app, ["md", "--model", "emt", "--dataset", str(path), "--workdir", str(root), "--steps", "60"])
    assert res.exit_code == 0 and "reused 1 of 1 runs" in res.output
    # an explicit id and another seed: a second row
    res = CliRunner().invoke(app, ["md", "Cu/111", "--model", "emt", "--dataset", str(path), "--workdir", str(root),
                                   "--steps", "20", "--seed", "3", "--thermostat", "nose-hoover"])
    assert res.exit_code == 0, res.output
    with ResultStore(root) as store:
        assert len(md_runs(store)) == 2


def test_report_md_section(md_store):
    from surfbench.report.html import SECTIONS, build_report

    root, _, _ = md_store
    with ResultStore(root) as store:
        out = build_report(store, None, "all", "static", root / "rep" / "report.html", png=False, n_boot=20)
    html = out.read_text()
    assert "md" in SECTIONS and '<section id="md">' in html
    section = html.split('<section id="md">', 1)[1].split("</section>", 1)[0]
    assert "Verdicts, cpu-quick: langevin, 60 x 2 fs" in section and "stable" in section
    assert 'data-figure="md-emt"' in section
    payload = json.loads(out.with_name("report-metrics.json").read_text())
    assert len(payload["md_runs"]) == 2 and {r["verdict"] for r in payload["md_runs"]} == {"stable"}
