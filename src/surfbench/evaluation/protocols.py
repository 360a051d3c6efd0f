"""Evaluation protocols, matcalc-style: one ``calc`` per structure, ``calc_many`` on top.

A protocol never raises for a bad structure: it returns an :class:`Outcome` with the failure
kind and message (ml-peg style), so a run records every structure, ok or not.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ase import Atoms
from ase.calculators.calculator import Calculator

# failure kinds
CALCULATOR_ERROR = "calculator_error"
NON_FINITE = "non_finite_energy"
UNSUPPORTED_ELEMENT = "unsupported_element"
MODEL_LOAD_ERROR = "model_load_error"
OVERLAPPING_ATOMS = "overlapping_atoms"  # atoms closer than surfbench.data.contacts.MIN_DISTANCE_A


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


def impossible_structure(atoms: Atoms) -> Outcome | None:
    """The failure ``overlapping_atoms`` for a structure with two atoms closer than
    :data:`surfbench.data.contacts.MIN_DISTANCE_A` (the model is not asked: it would return
    a finite but meaningless energy), else None."""
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

    @abstractmethod
    def calc(self, atoms: Atoms, calculator: Calculator) -> Outcome:
        """Evaluate one structure; never raises for a failing structure."""

    def calc_record(self, record, calculator: Calculator, bulk_result: dict | None = None) -> Outcome:
        """Evaluate one data set record. ``bulk_result`` (for slabs of protocols with
        ``needs_bulk``) is the stored result of the slab's bulk: status, failure_kind,
        energy_ev, extra."""
        return self.calc(record.atoms, calculator)

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
        checked (a record of a loaded data set, see :func:`surfbench.data.contacts.screen`)."""
        work = atoms.copy()
        work.pbc = True
        if check_contacts and (impossible := impossible_structure(work)) is not None:
            return impossible
        work.calc = calculator
        t0 = time.perf_counter()
        try:
            energy = float(work.get_potential_energy())
        except Exception as exc:  # any calculator failure is recorded, not raised
            return Outcome.failed(CALCULATOR_ERROR, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
        wall = time.perf_counter() - t0
        if not math.isfinite(energy):
            return Outcome.failed(NON_FINITE, f"energy is {energy}", wall)
        return Outcome(status="ok", energy_ev=energy, wall_s=wall)


PROTOCOLS: dict[str, str] = {
    "static": "surfbench.evaluation.protocols:StaticProtocol",
    "relaxed": "surfbench.evaluation.relax:RelaxedProtocol",
    "model-built": "surfbench.evaluation.model_built:ModelBuiltProtocol",
}


def get_protocol(name: str, **settings) -> Protocol:
    """A protocol by name (``static``, ``relaxed``, ``model-built``), with its settings as keyword arguments."""
    import importlib

    try:
        module, _, cls = PROTOCOLS[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None
    return getattr(importlib.import_module(module), cls)(**settings)
