"""One set of checks for every way data enter (issue 25, points 3-5): an in-memory Dataset given
to ``surfbench.evaluate`` is checked as a data file is (the wrong element, a wrong vacuum axis, a
bulk energy that is not its bulk record's, alloys, a bulk with vacuum, NaN energies); a negative
DFT surface energy is refused and one outside 0.05-6 J/m^2 warned about (``data validate``, the
run summary, the API); the model-built protocol needs the vacuum a data file needs; the
overlapping-atoms limit is a fraction of the covalent radii (Cu, Li, Si)."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
from ase import Atoms
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from typer.testing import CliRunner

import surfbench
from surfbench.cli import app
from surfbench.data.checks import GAMMA_MAX_J_PER_M2, GAMMA_MIN_J_PER_M2, gamma_problem
from surfbench.data.contacts import close_contact
from surfbench.data.errors import DataError, DataWarning
from surfbench.data.userdata import validate, write_user_dataset
from surfbench.evaluation.protocols import StaticProtocol
from surfbench.records import BulkRecord, Dataset
from surfbench.store.results import STORE_NAME
from surfbench.units import EV_PER_A2_IN_J_PER_M2
from tests.workdirs import cu_dataset

runner = CliRunner(env={"COLUMNS": "250"})


def _with_slab(**changes) -> Dataset:
    """The Cu toy data set with its first slab changed."""
    ds = cu_dataset()
    first = dataclasses.replace(ds.surfaces[0], **changes)
    return Dataset(ds.name, ds.bulks, [first, *ds.surfaces[1:]])


def _refused(ds: Dataset, tmp_path, match: str) -> None:
    with pytest.raises(DataError, match=match):
        surfbench.evaluate(EMT(), ds, workdir=tmp_path, name="emt-mem", progress=False)
    assert not (tmp_path / STORE_NAME).exists()  # refused before anything is stored


# ---------------------------------------------------------------------------- point 3: in-memory data
def test_ni_atoms_labelled_cu_are_refused(tmp_path):
    ds = cu_dataset()
    ni = ds.surfaces[0].atoms.copy()
    ni.symbols[:] = "Ni"
    _refused(_with_slab(atoms=ni), tmp_path, r"record Cu-111: the atoms are Ni, but the record says element Cu")


def test_a_wrong_vacuum_axis_is_refused(tmp_path):
    _refused(_with_slab(vacuum_axis=0), tmp_path,
             r"record Cu-111: vacuum_axis is 0, but the vacuum gap is along lattice vector 2")


def test_a_bulk_energy_that_is_not_the_bulk_records_is_refused(tmp_path):
    _refused(_with_slab(bulk_energy_per_atom_ev=-3.5), tmp_path,
             r"record Cu-111: bulk_energy_per_atom_ev -3.5 is not the energy per atom of its bulk record 'Cu-bulk' "
             r"\(-4.000000 eV/atom\)")


def test_alloys_and_a_bulk_with_vacuum_are_refused(tmp_path):
    ds = cu_dataset()
    alloy = ds.surfaces[0].atoms.copy()
    alloy.symbols[0] = "Ni"
    _refused(_with_slab(atoms=alloy), tmp_path, r"record Cu-111: not elemental \(Cu/Ni\)")
    slabby = bulk("Cu", "fcc", a=3.6, cubic=True)
    slabby.center(vacuum=4.0, axis=2)
    b = BulkRecord(id="Cu-bulk", element="Cu", atoms=slabby, energy_ev=-16.0)
    _refused(Dataset("cu-toy", {b.id: b}, cu_dataset().surfaces), tmp_path,
             r"record Cu-bulk: a bulk with a vacuum gap of at least 5 Angstrom along lattice vector 2")


@pytest.mark.parametrize("energy", [float("nan"), float("inf"), "12.5", True])
def test_energies_that_are_not_numbers_are_refused(tmp_path, energy):
    _refused(_with_slab(energy_ev=energy), tmp_path, r"record Cu-111: energy_ev")


def test_a_valid_in_memory_dataset_is_evaluated(tmp_path):
    res = surfbench.evaluate(EMT(), cu_dataset(), workdir=tmp_path, name="emt-mem", progress=False)
    assert res.summary.computed == 3 and res.summary.failed == 0


# ---------------------------------------------------------------------------- point 4: impossible references
def _slab_energy_for(gamma_j_per_m2: float) -> float:
    """The slab energy (eV) that gives the Cu-111 toy slab this DFT surface energy."""
    s = cu_dataset().surfaces[0]
    return s.n_atoms * -4.0 + 2 * s.area_a2 * gamma_j_per_m2 / EV_PER_A2_IN_J_PER_M2


def test_the_plausible_range():
    assert gamma_problem(-0.44)[0] == "error" and gamma_problem(308.0)[0] == "warning"
    assert gamma_problem(0.04)[0] == "warning" and gamma_problem(1.3) is None and gamma_problem(math.nan) is None
    assert (GAMMA_MIN_J_PER_M2, GAMMA_MAX_J_PER_M2) == (0.05, 6.0)


def test_a_negative_dft_gamma_is_refused_everywhere(tmp_path):
    ds = _with_slab(energy_ev=_slab_energy_for(-0.44))
    assert ds.surfaces[0].dft_gamma_j_per_m2 == pytest.approx(-0.44)
    path = write_user_dataset(ds, tmp_path / "neg.extxyz")
    problems = validate(path)
    assert [(p.record, p.severity) for p in problems] == [("#1 (Cu-111)", "error")]
    assert "negative DFT surface energy -0.44 J/m^2" in problems[0].message
    out = runner.invoke(app, ["data", "validate", str(path)])
    assert out.exit_code == 1 and "negative DFT surface energy" in out.output
    out = runner.invoke(app, ["run", "-m", "emt", "-d", str(path), "-w", str(tmp_path / "w")])
    assert out.exit_code == 2 and "negative DFT surface energy" in out.output and "Traceback" not in out.output
    _refused(ds, tmp_path / "api", r"negative DFT surface energy")


def test_an_implausible_dft_gamma_is_a_warning_in_validate_the_run_and_the_api(tmp_path):
    ds = _with_slab(energy_ev=_slab_energy_for(308.0))
    path = write_user_dataset(ds, tmp_path / "big.extxyz")
    problems = validate(path)
    assert [(p.record, p.severity) for p in problems] == [("#1 (Cu-111)", "warning")]
    out = runner.invoke(app, ["data", "validate", str(path)])
    assert out.exit_code == 0 and "outside 0.05-6 J/m^2" in " ".join(out.output.split())
    out = runner.invoke(app, ["run", "-m", "emt", "-d", str(path), "-w", str(tmp_path / "w")])
    assert out.exit_code == 0, out.output
    tail = " ".join(out.output.split()).split("coverage:", 1)[1]  # the summary after the tables
    assert "warning: 1 slab(s) of" in tail and "Cu-111: 308 J/m^2" in tail
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        surfbench.evaluate(EMT(), ds, workdir=tmp_path / "api", name="emt-mem", progress=False)
    assert any(issubclass(w.category, DataWarning) and "Cu-111: 308 J/m^2" in str(w.message) for w in caught)


# ---------------------------------------------------------------------------- point 5: meaningless settings
def test_model_built_needs_the_vacuum_a_data_file_needs():
    from surfbench.evaluation.model_built import ModelBuiltProtocol

    with pytest.raises(ValueError, match="vacuum gap must be at least 5 Angstrom"):
        ModelBuiltProtocol(vacuum_a=2.0)
    with pytest.raises(ValueError, match="would hold every one of the slab's 4 layers fixed"):
        ModelBuiltProtocol(layers=4, fix_bottom_layers=4)
    assert ModelBuiltProtocol(vacuum_a=5.0).settings.vacuum_a == 5.0


def _pair(element: str, distance_a: float) -> Atoms:
    """Two atoms ``distance_a`` apart in a 12 Angstrom cubic cell."""
    return Atoms(f"{element}2", positions=[[1, 1, 1], [1 + distance_a, 1, 1]], cell=[12, 12, 12], pbc=True)


@pytest.mark.parametrize("element, distance, severity", [
    # half the covalent-radius sum: Cu 1.32, Li 1.28, Si 1.11 Angstrom; 0.7 of it: 1.85, 1.79, 1.55
    ("Cu", 0.6, "error"), ("Li", 0.6, "error"), ("Si", 0.6, "error"),
    ("Cu", 1.2, "error"), ("Li", 1.2, "error"), ("Si", 1.2, "warning"),
    ("Cu", 1.5, "warning"), ("Li", 1.5, "warning"), ("Si", 1.5, "warning"),
    ("Cu", 2.55, None), ("Li", 3.0, None), ("Si", 2.35, None),
])
def test_the_overlap_limit_is_element_aware(element, distance, severity):
    from ase.data import atomic_numbers, covalent_radii

    contact = close_contact(_pair(element, distance))
    assert (contact.severity if contact else None) == severity
    if severity == "error":
        assert contact.limit_a == pytest.approx(covalent_radii[atomic_numbers[element]])  # 0.5 x (r + r)
        # the protocol does not ask the model: a finite energy there is no surface energy
        out = StaticProtocol().calc(_pair(element, distance), EMT())
        assert out.failure_kind == "overlapping_atoms"


def test_cu_atoms_06_apart_in_a_slab_are_refused(tmp_path):
    """The issue's case: a Cu slab with two atoms 0.6 Angstrom apart was only a note, and its
    gamma of 78 J/m^2 "ok"."""
    s = fcc111("Cu", (1, 1, 3), a=3.6, vacuum=6.0, periodic=True)
    s += Atoms("Cu", positions=[s.positions[0] + [0.6, 0, 0]])
    ds = _with_slab(atoms=s, energy_ev=-11.0)
    _refused(ds, tmp_path, r"atoms 0 and 3 overlap: 0.600 Angstrom apart \(< 1.32 Angstrom, 0.5 x the sum")
    path = write_user_dataset(ds, tmp_path / "close.extxyz")
    assert any(p.severity == "error" and "overlap" in p.message for p in validate(path))
