"""Evaluation protocols of trained models: what a model may be trained on, and the slabs it is
judged on. One implementation for every training method (readout, SNAP, MTP, deep networks).

* ``no-surfaces``: no slab frame at all in training; judged on every slab of its elements
  (``surfbench train``'s behaviour before protocols were named).
* ``mlearn-split``: the data's own split: training may use the training-split frames
  including their slabs; judged on the test-split slabs only. Every run checks (and prints)
  that no test-split Miller family of an element occurs among its training slabs.
* ``facet-cv``: per element, leave one facet (Miller family) out: each slab is predicted by a
  model that never saw its facet but saw the element's other facets (slabs of both splits)
  and all its non-slab training frames. One fold per (element, facet); every fold trains on
  that element's frames only, so each of the element's slabs gets exactly one prediction.

A *fold* is one training (per training-set size) with its leakage-safe split
(:func:`surfbench.training.splits.make_split`) and the record ids of the slabs it is judged on.
The leak checks stay structural: a frame whose structure equals a judged slab is never trained
on, and a slab frame that matches no known slab record is held out where slabs are trained on.

Miller families: symmetry-equivalent indices of the bulk (pymatgen's
``get_symmetrically_equivalent_miller_indices`` on the bulk record) are one facet, named by
the largest equivalent index (``(1, 1, 0)`` for (101), (011), ...).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from surfbench.data.errors import DataError
from surfbench.data.frames import Frame
from surfbench.records import Dataset, SurfaceRecord
from surfbench.training.splits import (
    SURFACES_ANY_SPLIT,
    SURFACES_TRAIN_SPLIT,
    SlabIndex,
    TrainingSplit,
    make_split,
)

NO_SURFACES = "no-surfaces"
MLEARN_SPLIT = "mlearn-split"
FACET_CV = "facet-cv"

#: protocol -> what it means (CLI help, docs, report)
PROTOCOLS: dict[str, str] = {
    NO_SURFACES: "no slab in training; judged on every slab of the elements",
    MLEARN_SPLIT: "the data's own split: training-split frames incl. their slabs; judged on the test-split slabs",
    FACET_CV: "leave one facet out per element: judged on each slab by a model that never saw its facet",
}

Echo = Callable[[str], None]

#: symmetry tolerance (Angstrom) of the bulk analysis behind the Miller families, as for the
#: Miller index inference of :mod:`surfbench.data.geometry`
MILLER_SYMPREC_A = 0.1


class ProtocolError(ValueError):
    """A protocol cannot be applied to these data (message says why and what to do)."""


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; use one of: {', '.join(PROTOCOLS)}")
    return protocol


@dataclass
class Fold:
    """One training of a protocol: its split and the slabs it is judged on."""

    protocol: str
    name: str  # "all" for one-fold protocols, "<El>(hkl)" for a facet-cv fold
    split: TrainingSplit
    judged: tuple[str, ...]  # record ids of the judged slabs
    elements: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        """The fold in a registry name: ``""`` or e.g. ``"mo-110"``."""
        if self.name == "all":
            return ""
        return self.name.lower().replace("(", "-").replace(")", "").replace(" ", "").replace(",", "")


@lru_cache(maxsize=64)
def _rotations(numbers: tuple, cell: tuple, positions: tuple) -> tuple[np.ndarray, ...]:
    """The point-group rotations of a bulk crystal in the fractional basis of its conventional
    standard cell (the frame of the Miller indices), with the inversion added (the two faces
    of a slab are one facet)."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    structure = Structure(Lattice(np.array(cell)), list(numbers), np.array(positions), coords_are_cartesian=True)
    conv = SpacegroupAnalyzer(structure, symprec=MILLER_SYMPREC_A).get_conventional_standard_structure()
    ops = SpacegroupAnalyzer(conv, symprec=MILLER_SYMPREC_A).get_symmetry_operations(cartesian=False)
    rots = {np.rint(op.rotation_matrix).astype(int).tobytes(): np.rint(op.rotation_matrix).astype(int) for op in ops}
    return tuple(sign * r for r in rots.values() for sign in (1, -1))


def facet_family(slab: SurfaceRecord, dataset: Dataset) -> tuple[int, ...]:
    """The Miller family of a slab: the largest index among ``h R`` over the rotations ``R`` of
    its bulk (conventional standard frame, as the data's Miller indices), e.g. ``(1, 1, 0)``
    for (101), (0-11), ...; the index as given where there is no bulk or no 3-index form."""
    if not slab.miller:
        raise ProtocolError(f"slab {slab.id} has no Miller index: facet-cv cannot tell its facet "
                            "(give the index in the data file, or use the mlearn-split / no-surfaces protocol)")
    hkl = np.array([int(i) for i in slab.miller])
    bulk = dataset.bulks.get(slab.bulk_id) if slab.bulk_id else None
    if bulk is None or hkl.size != 3:
        return tuple(int(i) for i in hkl)
    atoms = bulk.atoms
    rots = _rotations(tuple(int(z) for z in atoms.numbers), tuple(map(tuple, np.asarray(atoms.cell))),
                      tuple(map(tuple, atoms.positions)))
    return max(tuple(int(i) for i in hkl @ r) for r in rots)


def _name(element: str, family: tuple[int, ...]) -> str:
    sep = " " if any(abs(i) > 9 for i in family) else ""
    return f"{element}({sep.join(str(i) for i in family)})"


def miller_check(split: TrainingSplit, dataset: Dataset, judged: Sequence[SurfaceRecord]) -> tuple[bool, list[str]]:
    """Whether no judged slab's Miller family occurs among the slabs trained on (per element),
    and one line per element saying which families were judged and trained."""
    by_id = {s.id: s for s in dataset.surfaces}
    trained = defaultdict(set)
    for h in split.slab_frames:
        s = by_id.get(h.slab_id)
        if s is not None and s.miller:
            trained[s.element].add(facet_family(s, dataset))
    ok, lines = True, []
    for el in sorted({s.element for s in judged}):
        fams = sorted({facet_family(s, dataset) for s in judged if s.element == el and s.miller})
        overlap = sorted(set(fams) & trained[el])
        ok &= not overlap
        lines.append(f"{el}: judged facets {', '.join(_name(el, f) for f in fams) or '-'}; "
                     f"{len(trained[el])} facets among the training slabs; "
                     + (f"OVERLAP: {', '.join(_name(el, f) for f in overlap)} also trained on" if overlap
                        else "no judged facet among them"))
    return ok, lines


def make_folds(protocol: str, frames: Sequence[Frame], dataset: Dataset, elements: Sequence[str], *, seed: int = 0,
               valid_fraction: float = 0.1, max_valid: int | None = None, n_valid: int | None = None,
               include_surfaces: bool = False, echo: Echo = print) -> list[Fold]:
    """The folds of ``protocol`` for ``elements`` (module docs); each fold's split is made by
    :func:`~surfbench.training.splits.make_split` with the same seed rules, and its leak
    checks are printed through ``echo``."""
    check_protocol(protocol)
    elements = tuple(elements)
    slabs = [s for s in dataset.surfaces if s.element in set(elements)]
    kw = dict(seed=seed, valid_fraction=valid_fraction, max_valid=max_valid, n_valid=n_valid)
    if include_surfaces and protocol != NO_SURFACES:
        raise ProtocolError(f"--include-surfaces applies to the no-surfaces protocol only; {protocol} decides "
                            "itself which slabs are trained on")
    if protocol == NO_SURFACES:
        split = make_split(frames, dataset, elements, include_surfaces=include_surfaces, **kw)
        return [Fold(protocol, "all", split, tuple(s.id for s in slabs), elements)]
    if protocol == MLEARN_SPLIT:
        judged = [s for s in slabs if s.split == "test"]
        missing = sorted(set(elements) - {s.element for s in judged})
        if missing:
            raise ProtocolError(f"mlearn-split: no test-split slab of {', '.join(missing)} in {dataset.name} "
                                "(the data's split has none to judge on)")
        split = make_split(frames, dataset, elements, judged=judged, surfaces=SURFACES_TRAIN_SPLIT, **kw)
        ok, lines = miller_check(split, dataset, judged)
        fold = Fold(protocol, "all", split, tuple(s.id for s in judged), elements, lines)
        echo(f"mlearn-split: {len(judged)} test-split slabs judged, {len(split.slab_frames)} training-split slab "
             f"frames trained on; Miller check: {'passed' if ok else 'FAILED'}")
        for line in lines:
            echo(f"  {line}")
        return [fold]
    # facet-cv
    folds = []
    for el in elements:
        own = [s for s in slabs if s.element == el]
        families: dict[tuple[int, ...], list[SurfaceRecord]] = defaultdict(list)
        for s in own:
            families[facet_family(s, dataset)].append(s)
        if len(families) < 2:
            raise ProtocolError(f"facet-cv: {el} has {len(families)} facet(s) in {dataset.name}; leaving one out needs "
                                "at least two (use mlearn-split or no-surfaces)")
        el_frames = [f for f in frames if set(f.atoms.get_chemical_symbols()) == {el}]
        for fam in sorted(families):
            judged = families[fam]
            split = make_split(el_frames, own, (el,), judged=judged, surfaces=SURFACES_ANY_SPLIT, **kw)
            _check_fold(split, judged, dataset)
            folds.append(Fold(protocol, _name(el, fam), split, tuple(s.id for s in judged), (el,)))
        n_slab_frames = [len(f.split.slab_frames) for f in folds if f.elements == (el,)]
        echo(f"facet-cv {el}: {len(families)} folds (one per facet), {len(own)} slabs judged once each; "
             f"{min(n_slab_frames)}-{max(n_slab_frames)} slab frames of other facets trained per fold; "
             "no fold trains on a slab of its facet (checked by structure and by Miller family)")
    return folds


def _check_fold(split: TrainingSplit, judged: Sequence[SurfaceRecord], dataset: Dataset) -> None:
    """A facet-cv fold trains on no frame of its judged facet: structurally (no pool frame equals a
    judged slab) and by family (no trained slab has the judged facet). Raises on a violation
    (a bug, not a user error)."""
    index = SlabIndex(judged)
    bad = [f.source for f in [*split.pool, *split.valid] if index.match(f.atoms) is not None]
    fam = {facet_family(s, dataset) for s in judged}
    by_id = {s.id: s for s in dataset.surfaces}
    bad += [h.slab_id for h in split.slab_frames
            if h.slab_id in by_id and facet_family(by_id[h.slab_id], dataset) in fam]
    if bad:
        raise DataError(f"facet-cv: a fold would train on its judged facet ({', '.join(map(str, bad[:5]))})")
