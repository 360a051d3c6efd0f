"""Interatomic distances that no real structure has: overlapping and unusually close atoms.

Two thresholds, both on the minimum-image distance between two atoms (periodic images
included, so an atom closer than the limit to its own image counts too), both element-aware
(fractions of the sum of the two covalent radii of :data:`ase.data.covalent_radii`):

* **error** (:data:`ERROR_FRACTION` = 0.5 of that sum, and never less than
  :data:`MIN_DISTANCE_A` = 0.5 Angstrom): 1.32 Angstrom for Cu-Cu (bond 2.55), 1.28 for Li-Li
  (3.02), 1.11 for Si-Si (2.35). No solid has atoms this close (the shortest distances of the
  relaxed mlearn surfaces are 0.78 of the sum); such a record is an impossible structure: the
  loaders refuse it, ``surfbench data validate`` lists it as a problem and the evaluation
  protocols record it as the failure kind ``overlapping_atoms`` without calling the model (a
  potential still returns a finite energy there, which would enter the statistics as an "ok"
  gamma error: two Cu atoms 0.6 Angstrom apart give a "gamma" of 78 J/m^2);
* **warning** (:data:`SHORT_FRACTION` = 0.7 of the sum, e.g. 1.85 Angstrom for Cu-Cu):
  unusually short, most likely a badly placed atom. The record is kept, with a note.

The pairs come from ASE's neighbour list (:func:`ase.neighborlist.neighbor_list`), cutoffs per
atom, so the check is linear in the number of atoms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import covalent_radii

MIN_DISTANCE_A = 0.5
ERROR_FRACTION = 0.5
SHORT_FRACTION = 0.7


@dataclass(frozen=True)
class Contact:
    """The closest pair of atoms ``i`` and ``j`` (0-based) of a structure that is too close."""

    i: int
    j: int
    distance_a: float
    limit_a: float
    severity: str  # "error" (below ERROR_FRACTION x covalent sum or MIN_DISTANCE_A) or "warning" (SHORT_FRACTION)
    n_pairs: int  # pairs below the same limit

    @property
    def message(self) -> str:
        what = "overlap" if self.severity == "error" else "are unusually close"
        pair = f"atoms {self.i} and {self.j}" if self.i != self.j else f"atom {self.i} and its periodic image"
        more = f" ({self.n_pairs} such pairs)" if self.n_pairs > 1 else ""
        if self.severity == "error":
            rule = (f"< {self.limit_a:.2f} Angstrom, {ERROR_FRACTION} x the sum of their covalent radii"
                    if self.limit_a > MIN_DISTANCE_A else f"< {MIN_DISTANCE_A} Angstrom") + ": an impossible structure"
        else:
            rule = f"< {self.limit_a:.2f} Angstrom, {SHORT_FRACTION} x the sum of their covalent radii"
        return f"{pair} {what}: {self.distance_a:.3f} Angstrom apart ({rule}){more}"


def close_contact(atoms: Atoms) -> Contact | None:
    """The worst too-close pair of ``atoms`` (an error before a warning), or None."""
    n = len(atoms)
    if n == 0 or not np.all(np.isfinite(atoms.positions)) or not np.all(np.isfinite(atoms.cell.array)):
        return None
    radii = covalent_radii[atoms.numbers]
    cutoffs = np.maximum(SHORT_FRACTION * radii, MIN_DISTANCE_A / 2)
    # imported here: ASE's neighbour-list module costs 0.35 s, and a data set's records are
    # checked once, when it is built (the cache keeps the mark), not at every run
    from ase.geometry import minkowski_reduce
    from ase.neighborlist import neighbor_list

    work = atoms.copy()
    work.calc = None
    try:
        # the same lattice in its Minkowski-reduced basis (every distance unchanged): a skewed
        # cell would make the neighbour list search millions of images
        reduced, _ = minkowski_reduce(work.cell.array, work.pbc)
        lengths = np.linalg.norm(reduced, axis=1)[work.pbc]
        if lengths.size and lengths.min() < MIN_DISTANCE_A:  # every atom overlaps its own image
            return Contact(0, 0, float(lengths.min()), MIN_DISTANCE_A, "error", n)
        work.set_cell(reduced, scale_atoms=False)
        work.wrap()
        i, j, d, shift = neighbor_list("ijdS", work, cutoffs.tolist(), self_interaction=False)
    except Exception:  # a degenerate cell: the geometry checks report it
        return None
    # each pair is listed twice, (i, j, S) and (j, i, -S): keep i < j, and for an atom and its
    # own image the shift whose first non-zero component is positive
    first = np.array([next((int(v) for v in row if v), 0) for row in shift]) if len(shift) else np.zeros(0)
    keep = (i < j) | ((i == j) & (first > 0))
    i, j, d = i[keep], j[keep], d[keep]
    if d.size == 0:
        return None
    error_limit = np.maximum(ERROR_FRACTION * (radii[i] + radii[j]), MIN_DISTANCE_A)
    short_limit = SHORT_FRACTION * (radii[i] + radii[j])
    for severity, limits in (("error", error_limit), ("warning", short_limit)):
        mask = d < limits
        if mask.any():
            k = np.flatnonzero(mask)[np.argmin(d[mask])]
            return Contact(int(i[k]), int(j[k]), float(d[k]), float(limits[k]), severity, int(mask.sum()))
    return None


#: attribute of a record whose structure :func:`screen` found free of overlapping atoms: the
#: structure hash it had then (a record whose atoms were edited since is checked again)
CHECKED_ATTR = "_no_overlap_hash"


def mark_checked(record) -> None:
    """Note on ``record`` (a frozen dataclass; the note travels with it when pickled, e.g. to
    a Dask worker or the data set cache) that its current structure has no overlapping atoms."""
    object.__setattr__(record, CHECKED_ATTR, record.content_hash)


def already_checked(record) -> bool:
    """Whether :func:`screen` cleared ``record``'s current structure (saves the evaluation its
    own check: a neighbour list, milliseconds per structure, as long as a fast model's call)."""
    mark = getattr(record, CHECKED_ATTR, None)
    return mark is not None and mark == record.content_hash


def screen(dataset, path: object | None = None):
    """Check every record of a :class:`~surfbench.records.Dataset` (bulks and slabs): a
    record with overlapping atoms is a :class:`~surfbench.data.errors.DataError` naming the
    records (and ``path``, the data set's file or name); unusually close atoms become notes of
    the data set. Returns the data set."""
    from surfbench.data.errors import DataError

    bad = []
    for record in [*dataset.bulks.values(), *dataset.surfaces]:
        if getattr(record, "atoms", None) is None:  # a reference-value record without a structure
            continue
        contact = close_contact(record.atoms)
        if contact is None or contact.severity != "error":
            mark_checked(record)
        if contact is None:
            continue
        line = f"record {record.id}: {contact.message}"
        if contact.severity == "error":
            bad.append(line)
        elif line not in dataset.notes:
            dataset.notes.append(line)
    if bad:
        more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        raise DataError(f"{len(bad)} impossible structure(s): {'; '.join(bad[:20])}{more}",
                        path=path if path is not None else dataset.name)
    return dataset
