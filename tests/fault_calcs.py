"""Calculators that fail in the ways a real model can: spinning in C, crashing the process,
returning NaN. Kept in a light module: guard and Dask worker processes import it."""

from __future__ import annotations

import itertools
import os

from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones


class BusyInC(LennardJones):
    """Lennard-Jones, except that a cell of more than ``max_atoms`` atoms makes it spin in a
    C loop (``sum`` over ten trillion ones: hours) that holds the GIL and never looks at
    signals, like a stuck compiled kernel; ``signal.alarm`` cannot stop it."""

    def __init__(self, max_atoms: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.max_atoms = max_atoms

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if len(atoms) > self.max_atoms:
            sum(itertools.repeat(1, 10**13))
        super().calculate(atoms, properties, system_changes)


class CrashOnLarge(LennardJones):
    """Lennard-Jones that kills its own process (as a segfault would) on large cells."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if len(atoms) > 4:
            os.abort()
        super().calculate(atoms, properties, system_changes)


class NaNOnLarge(Calculator):
    implemented_properties = ["energy"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["energy"] = float("nan") if len(atoms) > 4 else -1.0 * len(atoms)


class SlowFirstCall(LennardJones):
    """Lennard-Jones whose first call in a process sleeps ``first_call_s`` (a model's one-off
    warm-up: graph compilation, kernel loading) and which hangs (sleeps an hour) on cells of
    more than ``max_atoms`` atoms; every other call is fast."""

    calls_in_this_process = 0

    def __init__(self, first_call_s: float = 2.0, max_atoms: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.first_call_s, self.max_atoms = first_call_s, max_atoms

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        import time

        SlowFirstCall.calls_in_this_process += 1
        if SlowFirstCall.calls_in_this_process == 1:
            time.sleep(self.first_call_s)
        if len(atoms) > self.max_atoms:
            time.sleep(3600)
        super().calculate(atoms, properties, system_changes)
