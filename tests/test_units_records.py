import numpy as np
import pytest
import scipy.constants
from ase import Atoms

from surfbench.records import in_plane_area_a2, structure_hash, surface_energy_ev_per_a2
from surfbench.units import EV_PER_A2_IN_J_PER_M2, KBAR_IN_EV_PER_A3, ev_per_a2_to_j_per_m2


def test_conversion_factors_agree_with_scipy():
    # 1 eV/A^2 = e [J] / 1e-20 [m^2]
    assert EV_PER_A2_IN_J_PER_M2 == pytest.approx(scipy.constants.e / scipy.constants.angstrom**2, rel=1e-7)
    assert EV_PER_A2_IN_J_PER_M2 == pytest.approx(16.0217662, rel=1e-7)
    # 1 kBar = 1e8 Pa = 1e8 J/m^3 -> eV/A^3
    assert KBAR_IN_EV_PER_A3 == pytest.approx(1e8 * scipy.constants.angstrom**3 / scipy.constants.e, rel=1e-7)


def test_surface_energy_formula_by_hand():
    # 10 atoms, E_slab = -48 eV, e_bulk = -5 eV/atom, A = 4 A^2 -> (−48 + 50) / 8 = 0.25 eV/A^2
    g = surface_energy_ev_per_a2(-48.0, 10, -5.0, 4.0)
    assert g == pytest.approx(0.25, abs=1e-15)
    # ASE's elementary charge is CODATA 2014 (1.6021766208e-19 C); 2018 differs by 8e-9
    assert ev_per_a2_to_j_per_m2(g) == pytest.approx(0.25 * 16.02176634, rel=1e-7)
    with pytest.raises(ValueError, match="area must be positive"):
        surface_energy_ev_per_a2(-48.0, 10, -5.0, 0.0)


def test_area_from_in_plane_vectors():
    cell = [[3.0, 0.0, 0.0], [1.5, 2.0, 0.0], [0.3, 0.2, 20.0]]
    atoms = Atoms("Cu", positions=[[0, 0, 0]], cell=cell, pbc=True)
    assert in_plane_area_a2(atoms) == pytest.approx(6.0)
    # vacuum along a: area of |b x c|
    assert in_plane_area_a2(atoms, vacuum_axis=0) == pytest.approx(np.linalg.norm(np.cross(cell[1], cell[2])))


def test_structure_hash_sees_moves():
    a = Atoms("Cu2", positions=[[0, 0, 0], [1, 1, 1]], cell=[3, 3, 3], pbc=True)
    b = a.copy()
    assert structure_hash(a) == structure_hash(b)
    b.positions[1, 0] += 1e-3
    assert structure_hash(a) != structure_hash(b)
    assert len(structure_hash(a)) == 64
