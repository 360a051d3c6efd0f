"""A calculator wrapper that normalises what surfbench asks of every model.

* Every structure is evaluated as a fully periodic cell. A slab given with pbc=(T, T, F) is
  the same slab: its vacuum separates the periodic images. Some potentials (matgl) treat any
  cell that is not periodic in all three directions as a molecule and return a different,
  wrong energy for a slab (ENVIRONMENT.md: 96-atom Cu(111), -344.88 vs -385.25 eV).
* Stress is returned in eV/Angstrom^3 (ASE's convention), whatever the model's own unit.
"""

from __future__ import annotations

from ase.calculators.calculator import Calculator, all_changes


class PeriodicCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, inner: Calculator, stress_factor: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        self.stress_factor = stress_factor

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.pbc = True
        work.calc = self.inner
        self.results["energy"] = float(work.get_potential_energy())
        self.results["free_energy"] = self.results["energy"]
        if "forces" in properties:
            self.results["forces"] = work.get_forces()
        if "stress" in properties:
            self.results["stress"] = work.get_stress() * self.stress_factor
