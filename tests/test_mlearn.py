"""The mlearn loader against numbers computed by hand from the raw JSON files."""

import json

import numpy as np
import pytest
from ase import units

from surfbench.data.frames import vasp_kbar_to_ase_stress
from surfbench.data.mlearn import parse_surface_description, read_mlearn_json
from tests.conftest import needs_data

pytestmark = needs_data


def _hand_gamma(path, description):
    docs = json.loads(path.read_text())
    slab = next(d for d in docs if d["description"] == description)
    bulk = next(d for d in docs if d["description"] == "Ground state crystal")
    m = np.array(slab["structure"]["lattice"]["matrix"], dtype=float)
    area = np.linalg.norm(np.cross(m[0], m[1]))
    e_bulk = bulk["outputs"]["energy"] / len(bulk["structure"]["sites"])
    n = len(slab["structure"]["sites"])
    gamma_ev_a2 = (slab["outputs"]["energy"] - n * e_bulk) / (2 * area)
    return gamma_ev_a2 * units._e * 1e20, area


@pytest.mark.parametrize(
    "element, description",
    [("Mo", "Mo_surface_mp/Mo_mp-129_(1_1_0)"), ("Li", "Li_surface_mp/Li_mp-135_(1_0_0)")],
)
def test_gamma_matches_hand_computation(mlearn_surfaces, data_dir, element, description):
    expected, area = _hand_gamma(data_dir / "mlearn" / element / "training.json", description)
    rec = next(s for s in mlearn_surfaces.surfaces if s.id == f"{element}/train/{description.split('/')[1]}")
    assert rec.split == "train"
    assert rec.area_a2 == pytest.approx(area, abs=1e-12)
    assert rec.dft_gamma_j_per_m2 == pytest.approx(expected, abs=1e-9)
    assert rec.dft_gamma_ev_per_a2 * units._e * 1e20 == pytest.approx(expected, abs=1e-9)


def test_loaded_gammas_are_physical(mlearn_surfaces):
    """The loader's DFT gammas (J/m^2) against literature PBE values: Mo(110) ~2.8-3.0,
    Li(100) ~0.45-0.5 J/m^2."""
    gamma = {s.id: s.dft_gamma_j_per_m2 for s in mlearn_surfaces.surfaces}
    assert 2.5 < gamma["Mo/train/Mo_mp-129_(1_1_0)"] < 3.3
    assert 0.3 < gamma["Li/train/Li_mp-135_(1_0_0)"] < 0.6


def test_description_parser():
    assert parse_surface_description("Mo_surface_mp/Mo_mp-129_(1_1_0)") == ("Mo", "mp-129", (1, 1, 0), False)
    assert parse_surface_description("Si_surface_mp/Si_mp-149_(1_0_0)_reconstructed") == ("Si", "mp-149", (1, 0, 0), True)
    with pytest.raises(ValueError, match="does not look like"):
        parse_surface_description("Mo 3x3x3 cell, mode 2, strain -0.0200")


def test_stress_conversion_order_unit_and_sign(data_dir):
    raw = json.loads((data_dir / "mlearn/Cu/test.json").read_text())
    frames = read_mlearn_json(data_dir / "mlearn/Cu/test.json", "Cu", "test")
    # a cell compressed along x by 10 %: VASP reports +232 kBar (compressive), ASE must be negative
    i = next(k for k, d in enumerate(raw) if d["description"] == "Cu 3x3x3 cell, mode 1, strain -0.1000")
    v = raw[i]["outputs"]["virial_stress"]
    s = frames[i].stress_ev_per_a3
    gpa = units.GPa
    assert s[0] == pytest.approx(-v[0] * 0.1 * gpa, rel=1e-12)
    assert s[0] < 0
    # VASP [xx, yy, zz, xy, yz, zx] -> ASE Voigt [xx, yy, zz, yz, xz, xy]
    np.testing.assert_allclose(s, -np.array([v[0], v[1], v[2], v[4], v[5], v[3]]) * 0.1 * gpa, rtol=1e-12)
    # 232.08 kBar = 23.208 GPa = 0.14485 eV/A^3
    assert abs(s[0]) == pytest.approx(232.08421887 / 10 / 160.21766, rel=1e-6)


def test_stress_conversion_unit():
    out = vasp_kbar_to_ase_stress([10.0, 0, 0, 1.0, 2.0, 3.0])
    assert out[0] == pytest.approx(-1.0 * units.GPa)
    assert list(np.sign(out[3:])) == [-1.0, -1.0, -1.0]
    assert out[3] == pytest.approx(-0.2 * units.GPa) and out[5] == pytest.approx(-0.1 * units.GPa)
    with pytest.raises(ValueError):
        vasp_kbar_to_ase_stress([1, 2, 3])


def test_frames_keep_split_group_forces(data_dir):
    frames = read_mlearn_json(data_dir / "mlearn/Mo/test.json", "Mo", "test")
    assert len(frames) == 23
    assert {f.split for f in frames} == {"test"}
    assert sum(f.group == "Surface" for f in frames) == 2
    f = frames[0]
    assert f.forces_ev_per_a.shape == (f.n_atoms, 3)
    atoms = f.labelled_atoms()
    assert atoms.get_potential_energy() == pytest.approx(f.energy_ev)
    np.testing.assert_allclose(atoms.get_forces(), f.forces_ev_per_a)


def test_slabs_without_any_bulk_frame_are_kept_and_flagged(data_dir):
    from surfbench.data.mlearn import build_surface_dataset

    frames = [f for f in read_mlearn_json(data_dir / "mlearn/Mo/test.json", "Mo", "test") if f.group == "Surface"]
    ds = build_surface_dataset(frames, name="mo-slabs-only")
    assert len(ds.surfaces) == 2 and not ds.bulks
    assert all(s.bulk_id is None and np.isnan(s.dft_gamma_j_per_m2) for s in ds.surfaces)
    assert any(n.startswith("Mo: no bulk reference") for n in ds.notes)


def test_dataset_counts(mlearn_surfaces):
    from collections import Counter

    counts = Counter((s.element, s.split) for s in mlearn_surfaces.surfaces)
    assert counts == {
        ("Ni", "train"): 11, ("Ni", "test"): 2, ("Cu", "train"): 10, ("Cu", "test"): 2,
        ("Li", "train"): 11, ("Li", "test"): 2, ("Mo", "train"): 9, ("Mo", "test"): 2,
        ("Si", "train"): 12, ("Si", "test"): 2, ("Ge", "train"): 11, ("Ge", "test"): 1,
    }
    assert len(mlearn_surfaces.bulks) == 6
    inferred = [s for s in mlearn_surfaces.surfaces if s.miller_source == "inferred"]
    assert len(inferred) == 21 and all(s.miller is not None for s in inferred)
    assert sum(bool(s.reconstructed) for s in mlearn_surfaces.surfaces) == 5
    # every DFT gamma is finite and positive
    assert all(0.2 < s.dft_gamma_j_per_m2 < 3.5 for s in mlearn_surfaces.surfaces)
    ni_bulk = mlearn_surfaces.bulks["Ni/train/bulk/frame262"]
    assert ni_bulk.n_atoms == 108 and ni_bulk.energy_per_atom_ev == pytest.approx(-5.780231, abs=1e-6)
