"""The ``records`` table's rows: a record's stored content, and which of its labels changed.

A record's stored row is its content: the structure hash and every label that enters a number
or a grouping (DFT energy, bulk id and the bulk's energy per atom, Miller index, split, area,
DFT gamma, ...; see :data:`RECORD_LABELS`). A record whose data set now gives another value for
any of them is updated (:meth:`surfbench.store.results.ResultStore.put_records` says which labels
changed); the model's results, which depend on the structure only, are kept, and every gamma is
derived from the records at analysis time, so it follows the update.
"""

from __future__ import annotations

import math

from surfbench.records import BulkRecord, SurfaceRecord

#: the columns of ``records``, in order
RECORD_COLUMNS = ("dataset", "record_id", "kind", "element", "split", "miller", "miller_source", "reconstructed",
                  "n_atoms", "area_a2", "dft_energy_ev", "bulk_id", "dft_bulk_energy_per_atom_ev",
                  "dft_gamma_j_per_m2", "content_hash", "source", "bulk_lattice", "spacegroup")
#: record column -> its name in messages: a stored record that differs in any of them is updated
RECORD_LABELS = {
    "content_hash": "structure", "kind": "kind", "element": "element", "n_atoms": "number of atoms",
    "dft_energy_ev": "dft energy", "bulk_id": "bulk id", "dft_bulk_energy_per_atom_ev": "bulk reference energy",
    "miller": "miller index", "miller_source": "miller source", "reconstructed": "reconstructed",
    "split": "split", "area_a2": "area", "dft_gamma_j_per_m2": "dft gamma",
}


def same(old: object, new: object) -> bool:
    """Stored and new value agree (NULL and NaN alike; reals to 1e-9 relative, so a store
    written on another machine is not rewritten for a last-bit difference)."""
    def missing(v: object) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    if missing(old) or missing(new):
        return missing(old) and missing(new)
    if isinstance(old, float) or isinstance(new, float):
        try:
            return math.isclose(float(old), float(new), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    return old == new


def changed_labels(old: dict, row: tuple) -> list[str]:
    """The names (:data:`RECORD_LABELS`) of the labels in which the new ``records`` row differs
    from the stored one ``old`` (a dict by column)."""
    new = dict(zip(RECORD_COLUMNS, row))
    return [label for col, label in RECORD_LABELS.items() if not same(old[col], new[col])]


def record_row(dataset: str, r: BulkRecord | SurfaceRecord, lattice: tuple | None = None) -> tuple:
    """The ``records`` row of a record; ``lattice``: a bulk's (conventional lattice JSON,
    space group) when already known (else the symmetry analysis is run)."""
    if isinstance(r, BulkRecord):
        from surfbench.data.geometry import bulk_lattice

        lattice_json, spacegroup = lattice if lattice is not None else bulk_lattice(r)
        return (dataset, r.id, "bulk", r.element, r.split, None, None, None, r.n_atoms, None,
                r.energy_ev, None, r.energy_per_atom_ev, None, r.content_hash, r.source,
                lattice_json, spacegroup)
    return (dataset, r.id, "slab", r.element, r.split, r.miller_str if r.miller else None,
            r.miller_source, None if r.reconstructed is None else int(r.reconstructed),
            r.n_atoms, r.area_a2, r.energy_ev, r.bulk_id, r.bulk_energy_per_atom_ev,
            r.dft_gamma_j_per_m2, r.content_hash, r.source, None, None)
