"""Impossible structures (two atoms at the same place) are refused by the loaders and
`data validate`, and recorded as a failure kind by the protocols, never as an "ok" gamma;
unusually close atoms are a warning (issue 17, point 2)."""

import pytest
from ase.build import bulk, fcc111
from ase.io import write
from typer.testing import CliRunner

from surfbench.analysis.predictions import bulk_predictions, slab_predictions
from surfbench.cli import app
from surfbench.data.contacts import MIN_DISTANCE_A, close_contact, screen
from surfbench.data.errors import DataError
from surfbench.data.userdata import load_user_dataset, validate
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.results import ResultStore
from tests.conftest import needs_data

cli = CliRunner(env={"COLUMNS": "250"})


def _cu():
    b = bulk("Cu", "fcc", a=3.6, cubic=True)
    s = fcc111("Cu", size=(1, 1, 3), a=3.6, vacuum=6.0, periodic=True)
    s.info.clear()
    return b, s


def _doubled(atoms, index: int = 0):
    """``atoms`` with a second atom on top of atom ``index`` (distance 0)."""
    out = atoms.copy()
    out += atoms[index:index + 1]
    return out


def test_close_contact_thresholds():
    b, s = _cu()
    assert close_contact(b) is None and close_contact(s) is None
    c = close_contact(_doubled(b, 2))
    assert (c.i, c.j, c.distance_a, c.severity) == (2, 4, 0.0, "error")
    near = s.copy()
    near.positions[1] = near.positions[0] + [0.0, 0.0, 1.5]  # Cu-Cu bond 2.55, 0.7 x covalent sum 1.85
    c = close_contact(near)
    assert c.severity == "warning" and c.distance_a == pytest.approx(1.5) and c.limit_a == pytest.approx(0.7 * 2 * 1.32)
    # an atom overlapping its own periodic image: a lattice vector shorter than the limit
    tiny = bulk("Cu", "fcc", a=0.6)
    c = close_contact(tiny)
    assert c.severity == "error" and c.i == c.j == 0 and c.distance_a < MIN_DISTANCE_A
    # a skewed cell (a short lattice vector hidden as 10 c - 7 a - 3 b): found on the reduced
    # cell, where a plain neighbour-list search would scan millions of images
    from ase import Atoms

    skewed = Atoms("Cu2", positions=[[0, 0, 0], [5, 5, 3]], cell=[[10, 0, 0], [0, 10, 0], [7, 3, 0.0001]], pbc=True)
    c = close_contact(skewed)
    assert c.severity == "error" and c.i == c.j and c.distance_a == pytest.approx(0.001, rel=1e-6)


def _write_file(tmp_path, b, s, name="cu.extxyz"):
    b = b.copy()
    s = s.copy()
    b.info = {"kind": "bulk", "name": "cu-bulk", "energy": -16.0}
    s.info = {"kind": "slab", "name": "cu-111", "energy": -10.5, "miller": "1 1 1"}
    path = tmp_path / name
    write(path, [b, s], format="extxyz")
    return path


@pytest.mark.parametrize("which", ["slab", "bulk"])
def test_overlapping_atoms_are_refused_by_loader_validate_and_run(tmp_path, which):
    b, s = _cu()
    if which == "slab":
        s = _doubled(s)
    else:
        b = _doubled(b)
    path = _write_file(tmp_path, b, s)
    record = "#1 (cu-111)" if which == "slab" else "#0 (cu-bulk)"
    problems = validate(path)
    assert len(problems) == 1 and problems[0].record == record and problems[0].severity == "error"
    assert "0.000 Angstrom apart" in problems[0].message and "impossible" in problems[0].message
    with pytest.raises(DataError, match="0.000 Angstrom apart") as info:
        load_user_dataset(path)
    assert str(path) in str(info.value)
    out = cli.invoke(app, ["data", "validate", str(path)])
    assert out.exit_code == 1 and "impossible" in out.output, out.output
    out = cli.invoke(app, ["run", "--model", "emt", "--dataset", str(path), "--workdir", str(tmp_path / "w")])
    assert out.exit_code == 2 and str(path) in out.output and "0.000 Angstrom apart" in out.output, out.output
    assert "computed" not in out.output


def test_unusually_close_atoms_are_a_warning(tmp_path):
    b, s = _cu()
    s.positions[1] = s.positions[0] + [0.0, 0.0, 1.5]
    path = _write_file(tmp_path, b, s)
    problems = validate(path)
    assert [(p.record, p.severity) for p in problems] == [("#1 (cu-111)", "warning")]
    ds = load_user_dataset(path)
    assert len(ds.surfaces) == 1 and any("unusually close" in n and "cu-111" in n for n in ds.notes)
    out = cli.invoke(app, ["data", "validate", str(path)])
    assert out.exit_code == 0 and "warning" in out.output and "OK, 1 slabs" in out.output, out.output


def test_screen_refuses_any_data_set_with_overlapping_atoms():
    b, s = _cu()
    good = BulkRecord(id="b", element="Cu", atoms=b, energy_ev=-16.0)
    slab = SurfaceRecord(id="s", element="Cu", atoms=_doubled(s), energy_ev=-10.0, bulk_id="b",
                         bulk_energy_per_atom_ev=-4.0)
    with pytest.raises(DataError, match=r"record s: atoms 0 and 3 overlap"):
        screen(Dataset("toy", {"b": good}, [slab]))


@pytest.mark.parametrize("protocol", ["static", "relaxed"])
def test_protocols_record_overlapping_atoms_as_a_failure(tmp_path, protocol):
    """A data set built in Python (no loader in between): the bulk and one slab have two atoms
    at distance 0. EMT would return finite energies for them; the protocols record the
    failure kind instead, and the gamma of every slab that depends on them fails."""
    from surfbench.evaluation.relax import RelaxedProtocol

    b, s = _cu()
    bad_bulk = BulkRecord(id="bad-bulk", element="Cu", atoms=_doubled(b), energy_ev=-20.0)
    good_bulk = BulkRecord(id="good-bulk", element="Cu", atoms=b, energy_ev=-16.0)
    slabs = [
        SurfaceRecord(id="bad-slab", element="Cu", atoms=_doubled(s), energy_ev=-12.0, bulk_id="good-bulk",
                      bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1)),
        SurfaceRecord(id="slab-on-bad-bulk", element="Cu", atoms=s, energy_ev=-10.5, bulk_id="bad-bulk",
                      bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1)),
        SurfaceRecord(id="good-slab", element="Cu", atoms=s, energy_ev=-10.5, bulk_id="good-bulk",
                      bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1)),
    ]
    ds = Dataset("toy", {"bad-bulk": bad_bulk, "good-bulk": good_bulk}, slabs)
    proto = "static" if protocol == "static" else RelaxedProtocol(steps=20)
    with ResultStore(tmp_path) as store:
        summary = run(ds, load_model("emt"), store, proto)
        res = store.results("toy", protocol=summary.protocol)
    assert summary.failure_kinds.get("overlapping_atoms") == 2
    bulks = bulk_predictions(res).set_index("record_id")
    assert bulks.loc["bad-bulk", "failure_kind"] == "overlapping_atoms"
    assert "atoms 0 and 4 overlap: 0.000 Angstrom apart" in bulks.loc["bad-bulk", "message"]
    assert bulks.loc["good-bulk", "status"] == "ok"
    g = slab_predictions(res).set_index("record_id")
    assert g.loc["bad-slab", "gamma_failure"] == "overlapping_atoms"
    expected = "bulk_failed:overlapping_atoms" if protocol == "static" else "no_relaxed_bulk"
    assert g.loc["slab-on-bad-bulk", "gamma_failure"] == expected
    assert g.loc["good-slab", "gamma_status"] == "ok" and 0.3 < g.loc["good-slab", "gamma_pred_j_per_m2"] < 1.5


def test_named_data_sets_are_screened_too(monkeypatch):
    """Every data set goes through the same check: a named one with overlapping atoms is
    refused by the registry (and so by `run` and `data validate NAME`)."""
    from surfbench.data import registry

    b, s = _cu()
    bad = Dataset("fake", {"b": BulkRecord(id="b", element="Cu", atoms=_doubled(b), energy_ev=-20.0)},
                  [SurfaceRecord(id="s", element="Cu", atoms=s, energy_ev=-10.5, bulk_id="b", bulk_energy_per_atom_ev=-4.0)])
    info = registry.DatasetInfo("fake", "test", "-", "-", loader=lambda data_dir=None, download=True: bad)
    monkeypatch.setitem(registry.DATASETS, "fake", info)
    with pytest.raises(DataError, match=r"1 problem\(s\): record b: atoms 0 and 4 overlap"):
        registry.load_dataset("fake")
    out = cli.invoke(app, ["data", "validate", "fake"])
    assert out.exit_code == 2 and "record b: atoms 0 and 4 overlap" in out.output, out.output


@needs_data
def test_data_validate_mlearn_has_no_close_atoms(data_dir):
    out = cli.invoke(app, ["data", "validate", "mlearn-surfaces", "--data-dir", str(data_dir)])
    assert out.exit_code == 0 and "mlearn-surfaces: OK, 75 slabs, 6 bulks" in out.output, out.output
    assert "overlap" not in out.output and "unusually close" not in out.output


def test_screened_records_skip_the_evaluations_own_check_until_edited(monkeypatch):
    """A record that screen() cleared is not checked again by the static protocol (the check is
    a neighbour list, as long as a fast model's call); an edit to its atoms after screening
    (same object, new positions) makes the protocol check it again and record the overlap."""
    import pickle

    from ase.calculators.emt import EMT

    from surfbench.data import contacts
    from surfbench.evaluation.registry import get_protocol

    b, s = _cu()
    slab = SurfaceRecord(id="cu/111", element="Cu", atoms=s, energy_ev=-10.0, bulk_id="cu/bulk",
                         bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1))
    ds = screen(Dataset("toy", {"cu/bulk": BulkRecord(id="cu/bulk", element="Cu", atoms=b, energy_ev=-16.0)}, [slab]))
    assert contacts.already_checked(ds.surfaces[0]) and contacts.already_checked(pickle.loads(pickle.dumps(slab)))
    calls = []
    real = contacts.close_contact
    monkeypatch.setattr(contacts, "close_contact", lambda atoms: calls.append(len(atoms)) or real(atoms))
    static = get_protocol("static")
    assert static.calc_record(slab, EMT()).status == "ok" and calls == []
    slab.atoms.positions[1] = slab.atoms.positions[0]  # edited in place after screening
    out = static.calc_record(slab, EMT())
    assert calls == [3] and (out.status, out.failure_kind) == ("failed", "overlapping_atoms")
