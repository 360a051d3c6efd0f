"""Writing labelled frames for the training packages (extended XYZ).

Two layouts:

* ``calc`` (NequIP, motep, and any reader that takes ASE's calculator results): energy (eV),
  forces (eV/Angstrom) and, if asked, stress (eV/Angstrom^3, ASE sign and Voigt order) as
  single-point results, as :meth:`surfbench.data.frames.Frame.labelled_atoms` gives them;
* ``ref`` (mace_run_train): the same numbers under ``REF_energy``, ``REF_forces`` and
  ``REF_stress`` (``--energy_key`` etc.), so that mace never mistakes them for its own
  predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from surfbench.data.frames import Frame

REF_ENERGY, REF_FORCES, REF_STRESS = "REF_energy", "REF_forces", "REF_stress"


def has_stress(frames: Sequence[Frame]) -> bool:
    """Whether every frame carries a stress."""
    return bool(frames) and all(f.stress_ev_per_a3 is not None for f in frames)


def has_forces(frames: Sequence[Frame]) -> bool:
    return bool(frames) and all(f.forces_ev_per_a is not None for f in frames)


def to_atoms(frame: Frame, layout: str = "calc", stress: bool = True) -> Atoms:
    atoms = Atoms(numbers=frame.atoms.numbers, positions=frame.atoms.positions, cell=frame.atoms.cell, pbc=True)
    if layout == "calc":
        results: dict[str, object] = {"energy": frame.energy_ev}
        if frame.forces_ev_per_a is not None:
            results["forces"] = np.array(frame.forces_ev_per_a)
        if stress and frame.stress_ev_per_a3 is not None:
            results["stress"] = np.array(frame.stress_ev_per_a3)
        atoms.calc = SinglePointCalculator(atoms, **results)
    elif layout == "ref":
        atoms.info[REF_ENERGY] = float(frame.energy_ev)
        if frame.forces_ev_per_a is not None:
            atoms.arrays[REF_FORCES] = np.array(frame.forces_ev_per_a, dtype=float)
        if stress and frame.stress_ev_per_a3 is not None:
            atoms.info[REF_STRESS] = np.array(frame.stress_ev_per_a3, dtype=float)
    else:
        raise ValueError(f"layout must be 'calc' or 'ref', got {layout!r}")
    return atoms


def write_extxyz(frames: Sequence[Frame], path: Path, layout: str = "calc", stress: bool = True) -> Path:
    """Write ``frames`` to ``path`` (extended XYZ) in ``layout``; stress only if ``stress``."""
    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, [to_atoms(f, layout, stress) for f in frames], format="extxyz")
    return path
