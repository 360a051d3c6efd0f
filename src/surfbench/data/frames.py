"""Labelled DFT frames (energy, forces, stress) and the VASP -> ASE stress conversion."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from surfbench.units import KBAR_IN_EV_PER_A3

# VASP writes the stress as [xx, yy, zz, xy, yz, zx]; ASE's Voigt order is
# [xx, yy, zz, yz, xz, xy]. VASP's sign is positive for compression (a pressure), ASE's
# stress is dE/d(strain)/V, negative for a compressed cell.
_VASP_TO_VOIGT = (0, 1, 2, 4, 5, 3)


def vasp_kbar_to_ase_stress(virial_stress_kbar) -> np.ndarray:
    """Convert a VASP stress [xx, yy, zz, xy, yz, zx] in kBar (positive = compressive) to
    ASE's Voigt stress [xx, yy, zz, yz, xz, xy] in eV/Angstrom^3 (negative = compressive)."""
    v = np.asarray(virial_stress_kbar, dtype=float)
    if v.shape != (6,):
        raise ValueError(f"expected 6 stress components, got shape {v.shape}")
    return -v[list(_VASP_TO_VOIGT)] * KBAR_IN_EV_PER_A3


@dataclass(frozen=True)
class Frame:
    """One DFT-labelled structure of a training/test set.

    Energies in eV (total), forces in eV/Angstrom, stress in eV/Angstrom^3 (ASE Voigt order
    and sign). ``group`` is the data set's label ("Surface", "Elastic", "AIMD-NVT",
    "Vacancy", ...) or None where the source has none.
    """

    atoms: Atoms = field(repr=False, compare=False)
    energy_ev: float
    element: str
    split: str
    index: int
    source: str
    group: str | None = None
    description: str = ""
    forces_ev_per_a: np.ndarray | None = field(default=None, repr=False, compare=False)
    stress_ev_per_a3: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    @property
    def energy_per_atom_ev(self) -> float:
        return self.energy_ev / len(self.atoms)

    def labelled_atoms(self) -> Atoms:
        """A copy of the structure carrying the DFT labels in a SinglePointCalculator and
        the metadata in ``atoms.info`` (ready for extxyz export or training)."""
        atoms = self.atoms.copy()
        results: dict[str, object] = {"energy": self.energy_ev}
        if self.forces_ev_per_a is not None:
            results["forces"] = np.array(self.forces_ev_per_a)
        if self.stress_ev_per_a3 is not None:
            results["stress"] = np.array(self.stress_ev_per_a3)
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info.update(
            element=self.element, split=self.split, group=self.group or "",
            description=self.description, source=self.source,
        )
        return atoms
