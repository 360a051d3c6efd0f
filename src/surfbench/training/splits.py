"""Leakage-safe training data: which labelled frames a model may be trained on, the seeded
train/validation split and the nested random subsets of a learning curve.

A trained model is evaluated on the slabs of a surface data set (``mlearn-surfaces`` by
default). By default none of those slabs may be in its training data. A frame is *held out*
(never trained on, never validated on) when

* its group is "Surface" (the mlearn JSON files label them), or it carries no group label and
  its cell has a vacuum gap of at least 5 Angstrom along one lattice vector (the unlabelled
  Ni/Cu training frames of the ACEData extxyz: :func:`surfbench.analysis.softening.frame_group`,
  the rule :mod:`surfbench.data.mlearn` uses to find their slabs), or
* its structure equals an evaluated slab of the surface data set: same species, same cell
  (lengths within 1e-3 Angstrom, angles within 1e-2 degree) and every atom within 1e-3
  Angstrom of an atom of the slab after one common translation (atom order, wrapping into the
  cell and a rigid shift do not hide a copy).

``include_surfaces=True`` (``surfbench train --include-surfaces``) keeps such frames in the
training pool on request; the split then says how many frames of evaluated slabs were left in
(``leaked``), and the report prints it.

Frames of the data's *test* split are never trained on: the non-held-out ones are the test set
of the energy and force errors. The training pool (training split minus held-out frames) is
put in a fixed order (element, split, index), shuffled with ``numpy.random.default_rng(seed)``;
the first ``n_valid`` frames of the shuffle are the validation set (the same for every subset
size) and the training subsets are prefixes of the rest, so a larger subset always contains a
smaller one (the paper's Fig. S6/S7: a learning curve grows by adding frames).

Units as in :class:`surfbench.data.frames.Frame`: eV, eV/Angstrom, eV/Angstrom^3.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from surfbench.analysis.softening import frame_group
from surfbench.data.errors import DataError
from surfbench.data.frames import Frame
from surfbench.records import Dataset, SurfaceRecord, structure_hash

#: reasons a frame is held out
SURFACE_GROUP = "surface-group"  # labelled "Surface" by the data set
VACUUM_SLAB = "vacuum-slab"  # unlabelled, with a vacuum gap: a slab
EVALUATED_SLAB = "equals-evaluated-slab"  # the same structure as a slab that is evaluated

#: tolerances of the structure comparison (Angstrom, degrees)
POSITION_TOL_A = 1e-3
CELL_LENGTH_TOL_A = 1e-3
CELL_ANGLE_TOL_DEG = 1e-2

MLEARN = "mlearn"


# ---------------------------------------------------------------------------- frames


def frame_key(frame: Frame) -> str:
    """A stable id of a frame: ``<source file name>#<index>`` (e.g. ``Cu/test.json#3``)."""
    src = frame.source.rsplit("#", 1)[0]
    parts = Path(src.split("::")[-1]).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else src
    return f"{short}#{frame.index}"


def read_labelled_frames(path: str | os.PathLike, split: str = "train") -> list[Frame]:
    """Labelled frames of a user's extxyz (or any ASE-readable) file: total energy (eV) and
    forces (eV/Angstrom) from a single-point calculator or ``energy=`` / ``forces`` columns,
    stress (eV/Angstrom^3, ASE sign and Voigt order) if present; ``group`` (or ``config_type``)
    and ``split`` from ``atoms.info`` (default split: ``split``)."""
    from ase.io import read

    path = Path(path)
    try:
        images = read(path, index=":")
    except Exception as exc:  # ase raises many types on malformed files
        raise DataError(f"cannot be read: {type(exc).__name__}: {exc}", path=path) from None
    frames = []
    for i, atoms in enumerate(images):
        results = atoms.calc.results if atoms.calc is not None else {}
        energy = results.get("energy", atoms.info.get("energy"))
        if energy is None or not math.isfinite(float(energy)):
            raise DataError("no finite total energy (energy=...)", path=path, record=f"#{i}")
        forces = results.get("forces", atoms.arrays.get("forces", atoms.arrays.get("force")))
        stress = results.get("stress", atoms.info.get("stress"))
        if stress is not None:
            stress = np.asarray(stress, dtype=float)
            if stress.shape == (3, 3):
                stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        symbols = sorted(set(atoms.get_chemical_symbols()))
        clean = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        group = atoms.info.get("group", atoms.info.get("config_type"))
        frames.append(Frame(
            atoms=clean, energy_ev=float(energy), element="".join(symbols), split=str(atoms.info.get("split", split)),
            index=i, source=f"{path}#{i}", group=str(group) if group else None,
            description=str(atoms.info.get("description", "")),
            forces_ev_per_a=None if forces is None else np.asarray(forces, dtype=float),
            stress_ev_per_a3=stress,
        ))
    return frames


def load_frames(data: str | Sequence[str], elements: Iterable[str], data_dir: str | os.PathLike | None = None,
                *, download: bool = True) -> list[Frame]:
    """The labelled frames of ``elements``: ``"mlearn"`` (the mlearn training and test sets,
    :func:`surfbench.data.mlearn.load_mlearn_frames`) or extxyz file(s) (comma-separated);
    a frame of a file is kept when all its species are among ``elements``."""
    elements = tuple(elements)
    if isinstance(data, str):
        data = [d for d in data.split(",") if d.strip()] if data != MLEARN else [MLEARN]
    frames: list[Frame] = []
    for d in data:
        if d == MLEARN:
            from surfbench.data.mlearn import load_mlearn_frames

            frames += load_mlearn_frames(elements, data_dir=data_dir, download=download)
        else:
            wanted = set(elements)
            frames += [f for f in read_labelled_frames(d) if set(f.atoms.get_chemical_symbols()) <= wanted]
    if not frames:
        raise DataError(f"no labelled frame of {', '.join(elements)} in {', '.join(data)}")
    return frames


# ---------------------------------------------------------------------------- equal structures


def _signature(atoms: Atoms) -> tuple:
    return len(atoms), tuple(sorted(atoms.numbers.tolist()))


def same_structure(a: Atoms, b: Atoms, tol: float = POSITION_TOL_A) -> bool:
    """Whether two periodic structures are the same (see the module docs): equal species and
    cell parameters, and one common translation that brings every atom of ``a`` within ``tol``
    Angstrom of an atom of ``b`` of the same species (one-to-one)."""
    if _signature(a) != _signature(b):
        return False
    if structure_hash(a) == structure_hash(b):
        return True
    pa, pb = a.cell.cellpar(), b.cell.cellpar()
    if np.any(np.abs(pa[:3] - pb[:3]) > CELL_LENGTH_TOL_A) or np.any(np.abs(pa[3:] - pb[3:]) > CELL_ANGLE_TOL_DEG):
        return False
    fa, fb = a.get_scaled_positions(wrap=True), b.get_scaled_positions(wrap=True)
    na, nb = a.numbers, b.numbers
    cell = np.asarray(b.cell.array)
    for j in np.flatnonzero(nb == na[0]):
        shift = fb[j] - fa[0]
        d = (fa + shift)[:, None, :] - fb[None, :, :]
        d -= np.round(d)
        dist = np.linalg.norm(d @ cell, axis=2)
        dist[na[:, None] != nb[None, :]] = np.inf
        nearest = dist.argmin(axis=1)
        if np.all(dist[np.arange(len(na)), nearest] <= tol) and len(set(nearest.tolist())) == len(na):
            return True
    return False


class SlabIndex:
    """The evaluated slabs of a surface data set, looked up by structure."""

    def __init__(self, slabs: Iterable[SurfaceRecord]):
        self.by_signature: dict[tuple, list[SurfaceRecord]] = {}
        for s in slabs:
            self.by_signature.setdefault(_signature(s.atoms), []).append(s)

    def match(self, atoms: Atoms) -> SurfaceRecord | None:
        for s in self.by_signature.get(_signature(atoms), []):
            if same_structure(atoms, s.atoms):
                return s
        return None


# ---------------------------------------------------------------------------- the split


@dataclass(frozen=True)
class HeldOut:
    """A frame kept out of training, and why (one or more of the reasons above; for
    ``equals-evaluated-slab`` the record id of the slab)."""

    frame: Frame
    reasons: tuple[str, ...]
    slab_id: str | None = None


@dataclass
class TrainingSplit:
    """Frames for training, validation and testing, and what was held out."""

    pool: list[Frame]  # training frames in shuffled order (validation removed); subsets are prefixes
    valid: list[Frame]
    test: list[Frame]
    held_out: list[HeldOut]  # frames excluded (empty of slabs with include_surfaces)
    leaked: list[HeldOut] = field(default_factory=list)  # with include_surfaces: slab frames left in the pool
    elements: tuple[str, ...] = ()
    seed: int = 0
    include_surfaces: bool = False
    evaluated_slabs: tuple[str, ...] = ()  # record ids of the slabs the model is judged on
    #: slab frames of slabs that are not judged, in the pool on purpose (mlearn-split, facet-cv)
    slab_frames: list[HeldOut] = field(default_factory=list)

    def subset(self, n: int | None) -> list[Frame]:
        """The first ``n`` frames of the shuffled pool (all for None)."""
        if n is None:
            return list(self.pool)
        if n < 1:
            raise ValueError(f"a training subset needs at least 1 frame, got {n}")
        if n > len(self.pool):
            raise ValueError(
                f"a training subset of {n} frames was asked for, but the pool holds {len(self.pool)} "
                f"({', '.join(self.elements)}, after {len(self.held_out)} held-out and {len(self.valid)} validation frames)"
            )
        return list(self.pool[:n])

    def summary(self) -> dict:
        """Counts and ids of what was held out, for the store and the report."""
        reasons = Counter(r for h in self.held_out for r in h.reasons)
        return {
            "elements": list(self.elements), "seed": self.seed, "include_surfaces": self.include_surfaces,
            "n_pool": len(self.pool), "n_valid": len(self.valid), "n_test": len(self.test),
            "n_held_out": len(self.held_out), "held_out_reasons": dict(sorted(reasons.items())),
            "held_out": [{"frame": frame_key(h.frame), "reasons": list(h.reasons), "slab_id": h.slab_id}
                         for h in self.held_out],
            "n_leaked": len(self.leaked),
            "leaked": [{"frame": frame_key(h.frame), "reasons": list(h.reasons), "slab_id": h.slab_id}
                       for h in self.leaked],
            "n_evaluated_slabs": len(self.evaluated_slabs),
            "evaluated_slabs": list(self.evaluated_slabs),
            "n_slab_frames_trained": len(self.slab_frames),
            "slab_frames_trained": [{"frame": frame_key(h.frame), "slab_id": h.slab_id} for h in self.slab_frames],
        }


def held_out_reasons(frame: Frame, slabs: SlabIndex) -> tuple[tuple[str, ...], str | None]:
    """Why ``frame`` must not be trained on (empty: it may), and the id of the evaluated slab it
    equals, if any."""
    reasons = []
    if frame.group == "Surface":
        reasons.append(SURFACE_GROUP)
    elif frame.group is None and frame_group(frame) == "Surface":
        reasons.append(VACUUM_SLAB)
    match = slabs.match(frame.atoms)
    if match is not None:
        reasons.append(EVALUATED_SLAB)
    return tuple(reasons), (match.id if match is not None else None)


def n_valid_for(n_pool: int, fraction: float, maximum: int | None = None, minimum: int = 1) -> int:
    """Validation frames taken from a pool of ``n_pool``: ``round(fraction * n_pool)``, at
    least ``minimum`` and at most ``maximum``, always leaving one training frame."""
    n = max(minimum, int(round(fraction * n_pool)))
    if maximum is not None:
        n = min(n, int(maximum))
    return max(0, min(n, n_pool - 1))


#: which slab frames a split may train on (the protocols of :mod:`surfbench.training.protocols`)
SURFACES_NONE = "none"  # no slab frame at all (no-surfaces)
SURFACES_TRAIN_SPLIT = "train-split"  # slab frames of the training split, unless judged (mlearn-split)
SURFACES_ANY_SPLIT = "any-split"  # slab frames of either split, unless judged (facet-cv)
SURFACE_POLICIES = (SURFACES_NONE, SURFACES_TRAIN_SPLIT, SURFACES_ANY_SPLIT)
#: a slab frame of no known slab record, held out where slabs are trained on by facet
UNKNOWN_SLAB = "slab-of-unknown-facet"


def make_split(
    frames: Sequence[Frame],
    evaluated: Dataset | Iterable[SurfaceRecord],
    elements: Iterable[str],
    *,
    seed: int = 0,
    include_surfaces: bool = False,
    valid_fraction: float = 0.1,
    max_valid: int | None = None,
    n_valid: int | None = None,
    judged: Iterable[SurfaceRecord] | None = None,
    surfaces: str = SURFACES_NONE,
) -> TrainingSplit:
    """Split labelled frames of ``elements`` into a training pool, validation and test frames,
    holding out every frame of a judged slab (module docs).

    ``evaluated``: the surface data set (or its slabs) of the trained model; only slabs of
    ``elements`` count. ``judged``: the slabs the model is judged on (default: all of
    ``evaluated``); a frame whose structure equals one is never trained on. ``surfaces``: which
    other slab frames may be trained on (:data:`SURFACE_POLICIES`; ``"none"`` holds every slab
    frame out, as before); with ``"train-split"`` or ``"any-split"`` a slab frame must equal a
    known slab of ``evaluated`` that is not judged, else it is held out (``slab-of-unknown-facet``),
    so that a slab of the judged facet cannot hide under another label. ``n_valid`` (a number
    of frames) overrides ``valid_fraction`` / ``max_valid``.
    """
    if surfaces not in SURFACE_POLICIES:
        raise ValueError(f"unknown surfaces policy {surfaces!r}; use one of {', '.join(SURFACE_POLICIES)}")
    if include_surfaces and surfaces != SURFACES_NONE:
        raise ValueError("include_surfaces applies to the no-surfaces protocol only")
    elements = tuple(elements)
    wanted = set(elements)
    slabs = evaluated.surfaces if isinstance(evaluated, Dataset) else list(evaluated)
    slabs = [s for s in slabs if set(s.atoms.get_chemical_symbols()) <= wanted]
    judged_slabs = slabs if judged is None else [s for s in judged if set(s.atoms.get_chemical_symbols()) <= wanted]
    judged_ids = {s.id for s in judged_slabs}
    index = SlabIndex(judged_slabs)
    known = SlabIndex([s for s in slabs if s.id not in judged_ids]) if surfaces != SURFACES_NONE else None
    pool, test, held, leaked, trained_slabs = [], [], [], [], []
    for f in frames:
        if not set(f.atoms.get_chemical_symbols()) <= wanted:
            continue
        reasons, slab_id = held_out_reasons(f, index)
        if reasons and known is not None and EVALUATED_SLAB not in reasons:  # a slab frame, not of a judged slab
            may = surfaces == SURFACES_ANY_SPLIT or f.split != "test"
            other = known.match(f.atoms)
            if other is None:
                held.append(HeldOut(f, (*reasons, UNKNOWN_SLAB), None))
            elif may:
                pool.append(f)
                trained_slabs.append(HeldOut(f, reasons, other.id))
            else:  # a test-split slab of another facet under mlearn-split: neither trained nor a test frame
                held.append(HeldOut(f, reasons, other.id))
            continue
        if reasons and not (include_surfaces and f.split != "test"):
            held.append(HeldOut(f, reasons, slab_id))
            continue
        if f.split == "test":
            test.append(f)
            continue
        if reasons:
            leaked.append(HeldOut(f, reasons, slab_id))
        pool.append(f)
    if not pool:
        raise DataError(f"no training frame of {', '.join(elements)} left after holding out {len(held)} slab frames")
    pool.sort(key=lambda f: (f.element, f.split, f.source.rsplit("#", 1)[0], f.index))
    order = np.random.default_rng(seed).permutation(len(pool))
    shuffled = [pool[i] for i in order]
    nv = n_valid_for(len(shuffled), valid_fraction, max_valid) if n_valid is None else max(0, min(int(n_valid), len(shuffled) - 1))
    return TrainingSplit(
        pool=shuffled[nv:], valid=shuffled[:nv], test=test, held_out=held, leaked=leaked,
        elements=elements, seed=seed, include_surfaces=include_surfaces,
        evaluated_slabs=tuple(s.id for s in judged_slabs), slab_frames=trained_slabs,
    )


def nested_subsets(split: TrainingSplit, sizes: Sequence[int]) -> list[list[Frame]]:
    """The training subsets of a learning curve, smallest first: each contains the previous."""
    return [split.subset(n) for n in sorted(set(int(s) for s in sizes))]
