"""Checks shared by the backend tests."""

from __future__ import annotations

import numpy as np
import pytest


def energy_of(atoms, calc) -> float:
    """Total energy (eV) of a copy of ``atoms`` with ``calc``."""
    atoms = atoms.copy()
    atoms.calc = calc
    return float(atoms.get_potential_energy())


def assert_stress_is_strain_derivative(base, calc, stress, h: float = 1e-4, rel: float = 2e-2, abs_: float = 1e-7) -> None:
    """Every component of ``stress`` (3x3, eV/Angstrom^3) equals (1/V) dE/d(strain) by central
    differences of step ``h``; a stress in GPa would be off by a factor of 160."""
    volume = base.get_volume()

    def energy(eps: np.ndarray) -> float:
        a = base.copy()
        a.set_cell(base.cell @ (np.eye(3) + eps), scale_atoms=True)
        return energy_of(a, calc)

    for i, j in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        eps = np.zeros((3, 3))
        # dE = V sum_kl s_kl d(eps_kl): for i != j, eps_ij = eps_ji = h/2 also gives dE/dh = V s_ij
        eps[i, j] = eps[j, i] = h / 2 if i != j else h
        fd = (energy(eps) - energy(-eps)) / (2 * h) / volume
        assert stress[i, j] == pytest.approx(fd, rel=rel, abs=abs_), (i, j, stress[i, j], fd)
