"""Evaluation protocols, matcalc-style: one ``calc`` per structure, ``calc_many`` on top.

A protocol never raises for a bad structure: it returns an :class:`Outcome` with the failure
kind and message (ml-peg style), so a run records every structure, ok or not.
"""

from __future__ import annotations

import math
import numbers
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

# failure kinds
CALCULATOR_ERROR = "calculator_error"
NON_FINITE = "non_finite_energy"
UNSUPPORTED_ELEMENT = "unsupported_element"
MODEL_LOAD_ERROR = "model_load_error"
OVERLAPPING_ATOMS = "overlapping_atoms"  # atoms closer than the error limit of surfbench.data.contacts


@dataclass
class Outcome:
    """Result of evaluating one structure: total energy (eV) or a failure kind."""

    status: str  # "ok" | "failed"
    energy_ev: float | None = None
    failure_kind: str | None = None
    message: str | None = None
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @classmethod
    def failed(cls, kind: str, message: str, wall_s: float = 0.0) -> Outcome:
        return cls(status="failed", failure_kind=kind, message=message[:2000], wall_s=wall_s)


class BadOutput(Exception):
    """A calculator's result that is not what it claims to be (an energy that is a text or a
    bool, a stress of the wrong shape, NaN forces); the message names it."""


def checked_energy(value: object) -> float:
    """A calculator's energy (eV) as a float: a real number (a numpy scalar or a one-element
    array of numbers included), never a text such as "12.5" or a bool, which ``float()`` would
    turn into a number; :class:`BadOutput` otherwise. Non-finite values are the caller's to judge."""
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        value = value.reshape(-1)[0]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise BadOutput(f"the calculator's energy is {value!r} (a {type(value).__name__}), not a number")
    return float(value)


def _checked_array(name: str, value: object, shapes: tuple[tuple[int, ...], ...], finite: bool = True) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged nested lists
        raise BadOutput(f"the calculator's {name} is not an array of numbers ({type(value).__name__})") from None
    if arr.dtype.kind not in "fiu" or arr.shape not in shapes:
        want = " or ".join(str(s) for s in shapes)
        raise BadOutput(f"the calculator's {name} has shape {arr.shape} ({arr.dtype}), expected {want}")
    bad = int((~np.isfinite(arr.astype(float))).sum())
    if bad and finite:
        raise BadOutput(f"the calculator's {name} is not finite ({bad} of {arr.size} values NaN or inf)")
    return arr.astype(float)


def outputs_problem(atoms: Atoms, *, stress: bool = False, finite: bool = True) -> str | None:
    """What is wrong with the results the calculator of ``atoms`` last stored (energy, forces
    and, with ``stress``, the stress), or None: turns the errors ASE and the optimizers raise
    on such results (an empty AssertionError for a stress of shape (5,), "cannot convert float
    NaN to integer" for a NaN stress) into a message naming the output. ``finite=False``: a
    NaN energy or NaN forces are left to the caller (a relaxation records them as
    ``non_finite_energy`` and ``exploded``); a NaN stress never is."""
    results = getattr(atoms.calc, "results", None) or {}
    try:
        if "energy" in results:
            energy = checked_energy(results["energy"])
            if finite and not math.isfinite(energy):
                return f"the calculator's energy is {energy}"
        if "forces" in results:
            _checked_array("forces", results["forces"], ((len(atoms), 3),), finite=finite)
        if stress and "stress" in results:
            _checked_array("stress", results["stress"], ((6,), (3, 3)))
    except BadOutput as exc:
        return str(exc)
    return None


def impossible_structure(atoms: Atoms) -> Outcome | None:
    """The failure ``overlapping_atoms`` for a structure with two atoms closer than the error
    limit of :mod:`surfbench.data.contacts` (half the sum of their covalent radii, at least 0.5
    Angstrom; the model is not asked: it would return a finite but meaningless energy), else None."""
    from surfbench.data.contacts import close_contact

    contact = close_contact(atoms)
    if contact is None or contact.severity != "error":
        return None
    return Outcome.failed(OVERLAPPING_ATOMS, contact.message)


class Protocol(ABC):
    """How one structure is evaluated with a calculator."""

    name: str
    #: slabs need their bulk's result under the same protocol (the runner passes it)
    needs_bulk: bool = False
    #: builds its own structures from element, crystal and Miller index (can evaluate
    #: reference-value records, which have no structure to evaluate)
    builds_structures: bool = False
    #: protocols (names in :mod:`surfbench.evaluation.registry`, default settings) run before this
    #: one on the same records by ``surfbench run`` and :func:`surfbench.evaluate`
    needs_first: tuple[str, ...] = ()

    @abstractmethod
    def calc(self, atoms: Atoms, calculator: Calculator) -> Outcome:
        """Evaluate one structure; never raises for a failing structure."""

    def calc_record(self, record, calculator: Calculator, bulk_result: dict | None = None) -> Outcome:
        """Evaluate one data set record. ``bulk_result`` (for slabs of protocols with
        ``needs_bulk``) is the stored result of the slab's bulk: status, failure_kind,
        energy_ev, extra."""
        return self.calc(record.atoms, calculator)

    def check_dataset(self, dataset) -> None:
        """Refuse, with a ValueError naming the records, settings that cannot apply to the
        records of ``dataset`` (called before a run, so that nothing is computed with them and no
        model is loaded): here, a data set of reference values only (no DFT structure) under a
        protocol that evaluates given structures. A subclass that adds checks calls this one."""
        from surfbench.records import ReferenceSurfaceRecord

        if not self.builds_structures and any(isinstance(r, ReferenceSurfaceRecord) for r in dataset.surfaces):
            raise ValueError(f"data set {dataset.name} holds reference values only (no DFT structures to evaluate "
                             f"with the {self.name} protocol): use the model-built protocol (--protocol model-built)")

    def calc_many(self, structures: Iterable[Atoms], calculator: Calculator) -> Iterator[Outcome]:
        for atoms in structures:
            yield self.calc(atoms, calculator)


class StaticProtocol(Protocol):
    """Single-point energy on the DFT geometry. Slabs are evaluated as fully periodic
    cells (their vacuum gap separates the images): some potentials (matgl) treat any cell
    that is not periodic in all three directions as a molecule."""

    name = "static"

    def calc_record(self, record, calculator: Calculator, bulk_result: dict | None = None) -> Outcome:
        from surfbench.data.contacts import already_checked

        return self.calc(record.atoms, calculator, check_contacts=not already_checked(record))

    def calc(self, atoms: Atoms, calculator: Calculator, *, check_contacts: bool = True) -> Outcome:
        """``check_contacts=False`` skips the overlapping-atoms check for a structure already
        checked (a record of a loaded data set, see :func:`surfbench.data.checks.validate_dataset`)."""
        work = atoms.copy()
        work.pbc = True
        if check_contacts and (impossible := impossible_structure(work)) is not None:
            return impossible
        work.calc = calculator
        t0 = time.perf_counter()
        try:
            energy = checked_energy(work.get_potential_energy())
        except BadOutput as exc:
            return Outcome.failed(CALCULATOR_ERROR, str(exc), time.perf_counter() - t0)
        except Exception as exc:  # any calculator failure is recorded, not raised
            return Outcome.failed(CALCULATOR_ERROR, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
        wall = time.perf_counter() - t0
        if not math.isfinite(energy):
            return Outcome.failed(NON_FINITE, f"energy is {energy}", wall)
        return Outcome(status="ok", energy_ev=energy, wall_s=wall)
