"""The relaxed protocol: the model's own minimum for bulk and slab.

* **Bulk**: positions and cell relaxed together (ASE :class:`FrechetCellFilter`), from the
  DFT geometry.
* **Slab**: no new slab is cut. The DFT slab's in-plane cell vectors (and the atoms with them)
  are scaled by the model's relaxed bulk lattice relative to the DFT bulk lattice,
  ``s = (V_model / V_DFT)^(1/3)`` per atom (isotropic: exact for the cubic crystals of the
  mlearn data; for non-cubic bulks the anisotropy of the bulk relaxation is recorded as
  ``bulk_strain_anisotropy`` so a user can judge it). The in-plane cell is then fixed and the
  atomic positions relaxed; the bottom ``fix_bottom_layers`` atomic layers can be held fixed
  (default none: both faces relax, as the 2A in gamma assumes).

The model's surface energy is then ``gamma = (E_slab - n e_bulk) / (2 A)`` with its relaxed
energies and the scaled area ``A = s^2 A_DFT`` (stored with the result as ``area_a2``).

Failure kinds: ``not_converged`` (max force above ``fmax`` after ``steps`` steps; the last
energy is kept in ``extra``), ``exploded`` (non-finite energy or forces, atoms closer than
half the shortest distance of the start geometry, an atom moved more than
``max_displacement_a``, or the bulk volume changed by more than a factor
``max_volume_ratio``), ``no_relaxed_bulk`` (a slab whose bulk relaxation is missing or failed),
``overlapping_atoms`` (the start geometry has atoms closer than half the sum of their covalent
radii, see :mod:`surfbench.data.contacts`; not relaxed), ``invalid_settings``
(``fix_bottom_layers`` holding every layer of the slab; :meth:`RelaxedProtocol.check_dataset`
refuses such a run before it starts), ``calculator_error`` (also for a calculator output that is
not what it should be: an energy that is a text or a bool, a stress of the wrong shape or NaN).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.constraints import FixAtoms
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE, LBFGS

from surfbench.data.geometry import layer_indices
from surfbench.evaluation.protocols import (
    CALCULATOR_ERROR,
    NON_FINITE,
    BadOutput,
    Outcome,
    Protocol,
    checked_energy,
    impossible_structure,
    outputs_problem,
)
from surfbench.records import BulkRecord, SurfaceRecord, in_plane_area_a2

NOT_CONVERGED = "not_converged"
EXPLODED = "exploded"
NO_RELAXED_BULK = "no_relaxed_bulk"
INVALID_SETTINGS = "invalid_settings"  # e.g. fix_bottom_layers holding every layer of the slab

OPTIMIZERS = {"FIRE": FIRE, "BFGS": BFGS, "LBFGS": LBFGS}


@dataclass(frozen=True)
class RelaxSettings:
    """Relaxation settings; all of them are part of the protocol's key in the store."""

    fmax_ev_per_a: float = 0.05  # convergence: max atomic force (and cell force) in eV/Angstrom
    steps: int = 500  # optimizer steps per structure
    optimizer: str = "FIRE"
    fix_bottom_layers: int = 0  # slab layers held fixed, counted from the bottom
    max_displacement_a: float = 5.0  # an atom moving further than this (Angstrom) -> exploded
    max_volume_ratio: float = 2.0  # bulk volume changing by more than this factor -> exploded

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if not (self.fmax_ev_per_a > 0 and self.steps > 0 and self.fix_bottom_layers >= 0):
            raise ValueError(f"invalid relaxation settings {self}")

    @property
    def key(self) -> str:
        """Protocol name stored with each result, e.g. ``relaxed`` for the defaults, else
        ``relaxed(fmax=0.02,steps=500,...)`` with every setting."""
        if self == RelaxSettings():
            return "relaxed"
        body = ",".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))
        return f"relaxed({body})"


def _min_distance_a(atoms: Atoms) -> float:
    if len(atoms) < 2:
        # one atom: its distance to its own periodic images
        cell = atoms.cell.array
        return float(min(np.linalg.norm(v) for v in cell))
    d = atoms.get_all_distances(mic=True)
    return float(d[np.triu_indices(len(atoms), 1)].min())


def _displacements_a(start: Atoms, end: Atoms) -> np.ndarray:
    """Per-atom displacement (Angstrom) in the end cell, minimum image, net drift removed."""
    d = end.positions - start.positions
    frac = np.linalg.solve(end.cell.array.T, d.T).T
    frac -= np.round(frac)
    d = frac @ end.cell.array
    d -= d.mean(axis=0)
    return np.linalg.norm(d, axis=1)


class RelaxedProtocol(Protocol):
    """Relax with the model (bulk: positions + cell; slab: positions at the model's lattice)."""

    needs_bulk = True
    #: the split of the gamma error into its static and relaxation parts needs the static run
    needs_first = ("static",)

    def __init__(self, settings: RelaxSettings | None = None, **kwargs):
        self.settings = settings or RelaxSettings(**kwargs)
        self.name = self.settings.key

    # ------------------------------------------------------------------ helpers
    def _optimize(self, target, work: Atoms, start_min_dist: float, start: Atoms) -> tuple[int, bool, str | None]:
        """Run the optimizer; return (steps, converged, explosion reason). A calculator output
        that is not what it should be (see :func:`~surfbench.evaluation.protocols.outputs_problem`)
        raises :class:`~surfbench.evaluation.protocols.BadOutput`, before it moves the atoms or
        the cell (a NaN stress would make the cell NaN)."""
        s = self.settings
        stress = isinstance(target, FrechetCellFilter)
        work.get_potential_energy()
        work.get_forces()
        if stress:
            work.calc.get_property("stress", work)  # as the calculator gives it (Atoms.get_stress asserts its shape)
        if (problem := outputs_problem(work, stress=stress, finite=False)) is not None:
            raise BadOutput(problem)
        opt = OPTIMIZERS[s.optimizer](target, logfile=None)
        reason: list[str] = []

        def check() -> None:
            if reason:
                return
            if (problem := outputs_problem(work, stress=stress, finite=False)) is not None:
                raise BadOutput(problem)
            f = work.get_forces()
            if not np.all(np.isfinite(f)):
                reason.append("non-finite forces")
            elif _min_distance_a(work) < 0.5 * start_min_dist:
                reason.append(f"atoms closer than {0.5 * start_min_dist:.2f} Angstrom (half the start's shortest distance)")
            elif (disp := _displacements_a(start, work).max()) > s.max_displacement_a:
                reason.append(f"an atom moved {disp:.1f} Angstrom (> {s.max_displacement_a})")
            if reason:
                raise _Exploded(reason[0])

        opt.attach(check, interval=1)
        try:
            converged = bool(opt.run(fmax=s.fmax_ev_per_a, steps=s.steps))
        except _Exploded:
            return opt.nsteps, False, reason[0]
        return opt.nsteps, converged, None

    def _finish(self, work: Atoms, start: Atoms, steps: int, converged: bool, reason: str | None, t0: float, extra: dict) -> Outcome:
        wall = time.perf_counter() - t0
        extra.update(steps=steps, converged=converged)
        if reason is not None:
            out = Outcome.failed(EXPLODED, reason, wall)
            out.extra = extra
            return out
        energy = checked_energy(work.get_potential_energy())  # BadOutput: the caller's calculator error
        if not math.isfinite(energy):
            out = Outcome.failed(NON_FINITE, f"energy is {energy} after relaxation", wall)
            out.extra = extra
            return out
        disp = _displacements_a(start, work)
        extra.update(
            rmsd_a=float(np.sqrt(np.mean(disp**2))), max_displacement_a=float(disp.max()),
            cell=np.round(work.cell.array, 8).tolist(), positions=np.round(work.positions, 6).tolist(),
        )
        if not converged:
            extra["last_energy_ev"] = energy
            fmax = float(np.linalg.norm(work.get_forces(), axis=1).max())
            out = Outcome.failed(NOT_CONVERGED, f"max force {fmax:.3f} eV/Angstrom after {steps} steps", wall)
            out.extra = extra
            return out
        return Outcome(status="ok", energy_ev=energy, wall_s=wall, extra=extra)

    # ------------------------------------------------------------------ protocol
    def calc(self, atoms: Atoms, calculator: Calculator) -> Outcome:
        """Relax positions and cell of a bulk crystal."""
        t0 = time.perf_counter()
        work = atoms.copy()
        work.pbc = True
        if (impossible := impossible_structure(work)) is not None:
            return impossible
        work.calc = calculator
        start = work.copy()
        try:
            steps, converged, reason = self._optimize(FrechetCellFilter(work), work, _min_distance_a(start), start)
            ratio = work.get_volume() / start.get_volume()
            if reason is None and not (1 / self.settings.max_volume_ratio < ratio < self.settings.max_volume_ratio):
                reason = f"volume changed by a factor {ratio:.2f}"
            extra = {"volume_ratio": float(ratio), "dft_cell": np.round(start.cell.array, 8).tolist()}
            # deformation of the cell: start_cell @ F = end_cell; anisotropy of its stretches
            F = np.linalg.solve(start.cell.array, work.cell.array)
            stretches = np.linalg.svd(F, compute_uv=False)
            extra["bulk_strain_anisotropy"] = float(stretches.max() / stretches.min() - 1.0)
            return self._finish(work, start, steps, converged, reason, t0, extra)
        except Exception as exc:  # any calculator failure is recorded, not raised
            return _calculator_error(work, exc, t0, stress=True)

    def relax_slab(self, atoms: Atoms, calculator: Calculator, axis: int, scale: float) -> Outcome:
        """Scale the in-plane cell by ``scale``, then relax positions (cell fixed)."""
        t0 = time.perf_counter()
        work = atoms.copy()
        work.pbc = True
        if (impossible := impossible_structure(work)) is not None:
            return impossible
        cell = work.cell.array.copy()
        for i in range(3):
            if i != axis:
                cell[i] *= scale
        work.set_cell(cell, scale_atoms=True)
        extra = {"lattice_scale": float(scale), "area_a2": in_plane_area_a2(work, axis)}
        n = self.settings.fix_bottom_layers
        if n:
            layers = layer_indices(work, axis)
            if n > layers.max():
                return Outcome.failed(INVALID_SETTINGS, f"fix_bottom_layers={n} holds all {layers.max() + 1} layers of "
                                                        "the slab fixed: nothing would relax")
            fixed = np.flatnonzero(layers < n)
            work.set_constraint(FixAtoms(indices=fixed))
            extra["fixed_atoms"] = int(fixed.size)
        work.calc = calculator
        start = work.copy()
        try:
            steps, converged, reason = self._optimize(work, work, _min_distance_a(start), start)
            return self._finish(work, start, steps, converged, reason, t0, extra)
        except Exception as exc:  # any calculator failure is recorded, not raised
            return _calculator_error(work, exc, t0)

    def check_dataset(self, dataset) -> None:
        """:meth:`Protocol.check_dataset`, and ``fix_bottom_layers`` must leave at least one
        atomic layer of every slab free."""
        super().check_dataset(dataset)
        n = self.settings.fix_bottom_layers
        if not n:
            return
        thin = []
        for s in dataset.surfaces:
            if isinstance(s, SurfaceRecord):
                layers = int(layer_indices(s.atoms, s.vacuum_axis).max()) + 1
                if n >= layers:
                    thin.append((layers, s.id))
        if thin:
            thin.sort()
            shown = ", ".join(f"{rid} ({k} layers)" for k, rid in thin[:8]) + (f" and {len(thin) - 8} more" if len(thin) > 8 else "")
            raise ValueError(f"--fix-bottom-layers {n} would hold every atomic layer of {len(thin)} slab(s) of "
                             f"{dataset.name} fixed, so nothing of them would relax: {shown}; use at most "
                             f"{thin[0][0] - 1} (gamma's 2A assumes both faces relax: the default is 0)")

    def calc_record(self, record, calculator: Calculator, bulk_result: dict | None = None) -> Outcome:
        if isinstance(record, BulkRecord):
            return self.calc(record.atoms, calculator)
        assert isinstance(record, SurfaceRecord)
        if bulk_result is None or bulk_result.get("status") != "ok":
            why = "not evaluated" if bulk_result is None else f"failed ({bulk_result.get('failure_kind')})"
            return Outcome.failed(NO_RELAXED_BULK, f"bulk {record.bulk_id} relaxation {why}")
        extra = bulk_result.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        ratio = float(extra["volume_ratio"])
        out = self.relax_slab(record.atoms, calculator, record.vacuum_axis, ratio ** (1.0 / 3.0))
        out.extra["bulk_strain_anisotropy"] = extra.get("bulk_strain_anisotropy")
        return out

    def describe(self) -> dict:
        return asdict(self.settings)


class _Exploded(Exception):
    pass


def _calculator_error(work: Atoms, exc: Exception, t0: float, *, stress: bool = False) -> Outcome:
    """The failure ``calculator_error`` of an exception raised while relaxing, named by the
    calculator output at fault where there is one (ASE and the optimizers raise unhelpful errors
    on such outputs: an empty AssertionError for a stress of shape (5,))."""
    why = str(exc) if isinstance(exc, BadOutput) else outputs_problem(work, stress=stress, finite=False)
    return Outcome.failed(CALCULATOR_ERROR, why or f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
