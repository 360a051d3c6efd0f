"""Single points (energy in eV, forces in eV/Angstrom) of a model on labelled DFT frames,
written to the store's ``frame_results`` table as they are computed.

Keyed by (frame set, frame id, model fingerprint, protocol ``single-point``) with the frame's
structure hash, so a rerun computes only what is missing. A failing frame is recorded with its
failure kind (calculator error, non-finite energy or forces), never dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms

from surfbench.data.frames import Frame
from surfbench.evaluation.protocols import (
    CALCULATOR_ERROR,
    NON_FINITE,
    UNSUPPORTED_ELEMENT,
    BadOutput,
    Outcome,
    checked_energy,
)
from surfbench.models.base import LoadedModel
from surfbench.models.model_info import cap_threads, model_details
from surfbench.records import structure_hash
from surfbench.store.results import ResultStore

PROTOCOL = "single-point"
MLEARN_FRAMESET = "mlearn-frames"


def frame_id(frame: Frame) -> str:
    """Stable id of an mlearn frame: ``<element>/<split>/<index in its file>``."""
    return f"{frame.element}/{frame.split}/{frame.index}"


def single_point(atoms: Atoms, calculator) -> tuple[Outcome, np.ndarray | None]:
    """Energy (eV) and forces (eV/Angstrom) on a fully periodic copy; a failure is an Outcome."""
    work = atoms.copy()
    work.pbc = True
    work.calc = calculator
    t0 = time.perf_counter()
    try:
        energy = checked_energy(work.get_potential_energy())
        forces = np.asarray(work.get_forces(), dtype=float)
        if forces.shape != (len(work), 3):
            raise BadOutput(f"the calculator's forces have shape {forces.shape}, expected ({len(work)}, 3)")
    except BadOutput as exc:
        return Outcome.failed(CALCULATOR_ERROR, str(exc), time.perf_counter() - t0), None
    except Exception as exc:  # recorded, not raised
        return Outcome.failed(CALCULATOR_ERROR, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0), None
    wall = time.perf_counter() - t0
    if not math.isfinite(energy) or not np.all(np.isfinite(forces)):
        return Outcome.failed(NON_FINITE, f"energy {energy}, finite forces: {bool(np.all(np.isfinite(forces)))}", wall), None
    return Outcome(status="ok", energy_ev=energy, wall_s=wall), forces


def evaluate_frames(
    items: Sequence[tuple[str, Atoms]],
    model: LoadedModel,
    store: ResultStore,
    frameset: str = MLEARN_FRAMESET,
    *,
    threads: int | None = None,
    progress: Callable[[str, Outcome], None] | None = None,
    keep_both_fingerprints: bool = False,
) -> tuple[int, int]:
    """Evaluate the (id, structure) items missing from the store; return (computed, reused).
    ``keep_both_fingerprints``: as for :func:`surfbench.execution.runner.run`."""
    fp = model.fingerprint
    done = store.frames_done(frameset, fp.id, PROTOCOL)
    todo = [(fid, atoms, structure_hash(atoms)) for fid, atoms in items]
    todo = [t for t in todo if done.get(t[0]) != t[2]]
    if not todo:
        return 0, len(items)
    calculator = model.calculator
    n_threads = cap_threads(threads)  # after the build: the model's libraries are loaded
    store.put_model(fp, {**model_details(model, calculator), "threads": n_threads}, keep_both=keep_both_fingerprints)
    supported = set(model.spec.elements) if model.spec.elements else None
    for fid, atoms, chash in todo:
        missing = supported is not None and not set(atoms.get_chemical_symbols()) <= supported
        if missing:
            outcome, forces = Outcome.failed(UNSUPPORTED_ELEMENT, f"{model.name} has no parameters for {fid}"), None
        else:
            outcome, forces = single_point(atoms, calculator)
        store.put_frame_result(frameset, fid, fp.id, PROTOCOL, chash, outcome, forces)
        if progress is not None:
            progress(fid, outcome)
    return len(todo), len(items) - len(todo)
