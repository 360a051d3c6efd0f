"""Typed records of a surface data set: bulk references and slabs.

The surface energy of an elemental slab with two equivalent faces is

```text
gamma = (E_slab - n_slab * e_bulk) / (2 A)
```

with E_slab the slab's total energy (eV), n_slab its number of atoms, e_bulk the bulk
energy per atom (eV/atom) and A the area of one face (Angstrom^2), the norm of the cross
product of the two in-plane cell vectors.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from surfbench.units import ev_per_a2_to_j_per_m2

Miller = tuple[int, int, int]


def surface_energy_ev_per_a2(
    slab_energy_ev: float, n_slab: int, bulk_energy_per_atom_ev: float, area_a2: float
) -> float:
    """Surface energy gamma = (E_slab - n_slab * e_bulk) / (2 A) of a slab with two equivalent faces.

    Parameters
    ----------
    slab_energy_ev : float
        The slab's total energy E_slab (eV).
    n_slab : int
        Its number of atoms.
    bulk_energy_per_atom_ev : float
        The bulk energy per atom e_bulk (eV/atom).
    area_a2 : float
        The area A of one face (Angstrom^2).

    Returns
    -------
    float
        gamma in eV/Angstrom^2 (`surfbench.units.ev_per_a2_to_j_per_m2` gives J/m^2).

    Raises
    ------
    ValueError
        For an area that is not positive.
    """
    if not area_a2 > 0:
        raise ValueError(f"surface area must be positive, got {area_a2!r} Angstrom^2")
    return (slab_energy_ev - n_slab * bulk_energy_per_atom_ev) / (2.0 * area_a2)


def in_plane_area_a2(atoms: Atoms, vacuum_axis: int = 2) -> float:
    """Area of the cell face spanned by the two lattice vectors other than `vacuum_axis`.

    Parameters
    ----------
    atoms : ase.Atoms
        The slab.
    vacuum_axis : int
        The cell vector (0, 1 or 2) along the slab's normal, across the vacuum.

    Returns
    -------
    float
        The area in Angstrom^2.
    """
    j, k = (i for i in range(3) if i != vacuum_axis)
    cell = np.asarray(atoms.cell)
    return float(np.linalg.norm(np.cross(cell[j], cell[k])))


def structure_hash(atoms: Atoms) -> str:
    """A sha256 of species, positions, cell and pbc (rounded to 1e-6 Angstrom).

    Used to notice when a record under an old id changed.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure.

    Returns
    -------
    str
        The hex digest.
    """
    h = hashlib.sha256()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.positions, dtype=float), 6).tobytes())
    h.update(np.round(np.asarray(atoms.cell, dtype=float), 6).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    return h.hexdigest()


class _StructureRecord:
    """Properties shared by records holding ``atoms`` and a DFT total energy ``energy_ev``."""

    atoms: Atoms
    energy_ev: float

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    @property
    def energy_per_atom_ev(self) -> float:
        """DFT energy per atom (eV/atom)."""
        return self.energy_ev / self.n_atoms

    @property
    def content_hash(self) -> str:
        """sha256 of the structure (see [`structure_hash`][surfbench.records.structure_hash])."""
        return structure_hash(self.atoms)


@dataclass(frozen=True)
class BulkRecord(_StructureRecord):
    """A bulk reference: DFT total energy (eV) of a periodic crystal."""

    id: str
    element: str
    atoms: Atoms = field(repr=False, compare=False)
    energy_ev: float
    split: str | None = None
    source: str = ""
    note: str = ""



@dataclass(frozen=True)
class SurfaceRecord(_StructureRecord):
    """A slab with its DFT total energy and the bulk record it is referenced to.

    ``bulk_energy_per_atom_ev`` is copied from the referenced bulk at load time so that the
    DFT surface energy is a property of the record; it is ``None`` when the data set has no
    bulk for the slab's element (the DFT gamma is then NaN and evaluations record the
    failure kind ``no_bulk_reference``).
    """

    id: str
    element: str
    atoms: Atoms = field(repr=False, compare=False)
    energy_ev: float
    bulk_id: str | None
    bulk_energy_per_atom_ev: float | None
    miller: Miller | None = None
    miller_source: str = "label"  # "label" (from the data set) or "inferred" (from geometry)
    termination: str | None = None
    reconstructed: bool | None = None
    label: str = ""
    split: str | None = None
    source: str = ""
    vacuum_axis: int = 2


    @property
    def area_a2(self) -> float:
        """Area of one face (Angstrom^2) from the in-plane cell vectors."""
        return in_plane_area_a2(self.atoms, self.vacuum_axis)

    @property
    def miller_str(self) -> str:
        """"110", "1-10"; with an index beyond 9 space-separated ("10 1 0"), so that it stays
        unambiguous; "unknown" without an index."""
        if not self.miller:
            return "unknown"
        sep = " " if any(abs(i) > 9 for i in self.miller) else ""
        return sep.join(str(i) for i in self.miller)

    def gamma_ev_per_a2(self, bulk_energy_per_atom_ev: float) -> float:
        """Surface energy of this slab (its DFT energy) against a given bulk energy per atom.

        Parameters
        ----------
        bulk_energy_per_atom_ev : float
            The bulk energy per atom (eV/atom).

        Returns
        -------
        float
            gamma in eV/Angstrom^2.
        """
        return surface_energy_ev_per_a2(
            self.energy_ev, self.n_atoms, bulk_energy_per_atom_ev, self.area_a2
        )

    @property
    def dft_gamma_ev_per_a2(self) -> float:
        """DFT surface energy (eV/Angstrom^2); NaN without a bulk reference."""
        if self.bulk_energy_per_atom_ev is None:
            return math.nan
        return self.gamma_ev_per_a2(self.bulk_energy_per_atom_ev)

    @property
    def dft_gamma_j_per_m2(self) -> float:
        """DFT surface energy (J/m^2); NaN without a bulk reference."""
        return ev_per_a2_to_j_per_m2(self.dft_gamma_ev_per_a2)


@dataclass(frozen=True)
class ReferenceSurfaceRecord:
    """A facet with reference surface energies (J/m^2) and no DFT energies or structures to
    evaluate: the model builds and relaxes its own bulk and slab
    (`surfbench.evaluation.model_built`).

    ``crystal`` is the bulk structure type as ASE's `ase.build.bulk` names it
    (``fcc``, ``bcc``, ...); ``miller`` refers to its conventional cubic cell. ``atoms`` is
    the data set's own slab when it ships one (kept for reference; the protocol does not read
    it). ``gamma_exp_j_per_m2`` is NaN where the data set has no experimental value.
    """

    id: str
    element: str
    crystal: str
    miller: Miller
    gamma_pbe_j_per_m2: float
    gamma_exp_j_per_m2: float
    reference: str = ""
    atoms: Atoms | None = field(default=None, repr=False, compare=False)
    source: str = ""
    # what Dataset.select/summary read of every record: no split, no bulk record
    split: str | None = None
    bulk_id: str | None = None
    reconstructed: bool | None = None

    @property
    def miller_str(self) -> str:
        return "".join(str(i) for i in self.miller)

    @property
    def content_hash(self) -> str:
        """sha256 of what the protocol reads: element, crystal type and Miller index."""
        return hashlib.sha256(f"{self.element}|{self.crystal}|{self.miller_str}".encode()).hexdigest()


#: a split selection by name -> the slab splits it keeps (None: every slab), as ``--split`` and
#: ``surfbench.evaluate(split=...)`` take it
SPLIT_CHOICES: dict[str, frozenset[str] | None] = {"all": None, "train": frozenset({"train"}), "test": frozenset({"test"})}


@dataclass
class Dataset:
    """A named set of bulk and surface records, with notes on how it was built.

    ``members``: the ids of every record of the whole data set this one is (a selection of),
    as its loader found them; None where that is not known (a selection built by hand). A run
    on a data set whose members are known marks the stored records of that name that are no
    longer members as stale: kept in the store, left out of what is reported (see
    `surfbench.store.results.ResultStore.mark_members`)."""

    name: str
    bulks: dict[str, BulkRecord]
    surfaces: list[SurfaceRecord | ReferenceSurfaceRecord]
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)
    members: frozenset[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        ids = [s.id for s in self.surfaces] + list(self.bulks)
        dup = [i for i, c in Counter(ids).items() if c > 1]
        if dup:
            raise ValueError(f"data set {self.name!r}: duplicate record ids {dup[:5]}")

    def select(self, splits: set[str] | None = None, elements: set[str] | None = None) -> Dataset:
        """The slabs of the given splits and elements, with the bulks they reference.

        Parameters
        ----------
        splits : set of str or None
            Keep the slabs of these splits (`train`, `test`; None: every slab). A bulk
            reference is kept whatever its split.
        elements : set of str or None
            Keep the slabs of these elements (None: every element).

        Returns
        -------
        Dataset
            A new data set with the same name, notes and members.
        """
        surfaces = [
            s for s in self.surfaces
            if (splits is None or s.split in splits) and (elements is None or s.element in elements)
        ]
        used = {s.bulk_id for s in surfaces}
        bulks = {k: b for k, b in self.bulks.items() if k in used}
        return Dataset(self.name, bulks, surfaces, list(self.notes), dict(self.provenance), self.members)

    def as_whole(self) -> Dataset:
        """This data set, its records declared to be every member of the data set (what a loader
        returns): ``members`` = the ids of its bulks and slabs."""
        self.members = frozenset([*self.bulks, *(s.id for s in self.surfaces)])
        return self

    @property
    def elements(self) -> list[str]:
        return sorted({s.element for s in self.surfaces} | {b.element for b in self.bulks.values()})

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "slabs": len(self.surfaces),
            "bulks": len(self.bulks),
            "elements": self.elements,
            "miller_indices": len({s.miller for s in self.surfaces if s.miller}),
            "reconstructed": sum(1 for s in self.surfaces if s.reconstructed),
            "slabs_without_bulk": sum(1 for s in self.surfaces if s.bulk_id is None),
        }
