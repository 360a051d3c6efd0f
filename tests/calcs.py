"""Calculators for tests: one that raises, one that returns NaN, a slow Lennard-Jones, an EMT
that fails while a flag file exists."""

from __future__ import annotations

import time
from pathlib import Path

from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones


class Raising(Calculator):
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        raise RuntimeError("deliberate failure")


class NaNEnergy(Calculator):
    implemented_properties = ["energy"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["energy"] = float("nan")


class SlowLJ(LennardJones):
    """Lennard-Jones that sleeps ``delay`` seconds per call (to kill a run mid-way)."""

    def __init__(self, delay: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        self.delay = delay

    def calculate(self, *args, **kwargs):
        time.sleep(self.delay)
        super().calculate(*args, **kwargs)


class FlakyEMT(EMT):
    """EMT that raises while the file ``flag`` exists: a transient failure (out of memory, a
    lost worker) that is gone on a later run, with the same model fingerprint."""

    def __init__(self, flag: str, **kwargs):
        super().__init__(**kwargs)
        self.flag = Path(flag)

    def calculate(self, *args, **kwargs):
        if self.flag.exists():
            raise RuntimeError(f"deliberate transient failure ({self.flag} exists)")
        super().calculate(*args, **kwargs)
