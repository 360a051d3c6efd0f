"""The rules every data set's records obey, however the data enter surfbench: a named data set
(:func:`surfbench.data.registry.load_dataset`), a user's file (:mod:`surfbench.data.userdata`,
record by record in :func:`~surfbench.data.userdata.check`) or a :class:`~surfbench.records.Dataset`
built in Python and given to :func:`surfbench.evaluate`. One function, :func:`record_problems`,
states them; :func:`validate_dataset` applies it to a whole data set.

Errors (the data set is refused, every problem named with its record):

* a record without atoms; a structure that is not elemental (gamma needs the bulk's
  stoichiometry), or whose atoms are not the record's element;
* a total energy that is not a finite number (a bool, a text or NaN is not an energy);
* a bulk with a vacuum gap of :data:`~surfbench.data.geometry.MIN_VACUUM_A` along a lattice
  vector (a slab?);
* a slab without such a gap, or whose gap is not along its ``vacuum_axis`` (the area A of
  gamma = (E_slab - n e_bulk) / (2A) would be spanned by the wrong cell vectors); a zero area;
* a slab whose bulk record is missing or of another element, or whose bulk energy per atom
  (copied into the slab record) is not its bulk record's;
* a Miller index that is not three whole numbers, or is (0 0 0);
* a negative DFT surface energy: no stable crystal releases energy when it is cleaved;
* overlapping atoms (:mod:`surfbench.data.contacts`: closer than half the sum of their
  covalent radii, or 0.5 Angstrom).

Warnings (the record is kept, with a note of the data set that ``run`` and ``data validate``
print): unusually close atoms, and a DFT surface energy outside
[:data:`GAMMA_MIN_J_PER_M2`, :data:`GAMMA_MAX_J_PER_M2`] J/m^2. That window is what elemental
surfaces span: the lowest are those of the heavy alkali metals (Rb(110): 0.081 J/m^2 in PBE,
the lowest value of mSE21), the highest those of the refractory transition metals (W(110):
3.47 J/m^2 measured, 3.33 in PBE; their high-index facets are higher, still below 6 J/m^2 in
PBE databases such as that of Tran et al., Sci. Data 3, 160080 (2016)). A value outside it is
most likely a wrong energy (a bulk energy per atom of another cell or functional, a slab energy
of a different structure, eV read as Hartree) rather than physics; a reconstruction or an
unusual reference can legitimately fall outside, hence a warning, not a refusal.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

from ase.data import chemical_symbols

from surfbench.data.errors import DataError
from surfbench.data.geometry import MIN_VACUUM_A
from surfbench.records import BulkRecord, Dataset, ReferenceSurfaceRecord, SurfaceRecord

#: DFT surface energies (J/m^2) outside this window are a warning (see the module docstring)
GAMMA_MIN_J_PER_M2 = 0.05
GAMMA_MAX_J_PER_M2 = 6.0

ERROR, WARNING = "error", "warning"


def energy_problem(value: object, what: str = "energy") -> str | None:
    """Why ``value`` is not a total energy in eV (None: it is one): a real, finite number; a
    bool or a text that reads as a number is not one."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return f"{what} {value!r} is a boolean, not a number (total DFT energy in eV)"
    if not isinstance(value, numbers.Real):
        return f"{what} {value!r} is not a number (total DFT energy in eV)"
    if not math.isfinite(float(value)):
        return f"{what} is {float(value)}"
    return None


def gamma_problem(gamma_j_per_m2: float) -> tuple[str, str] | None:
    """(severity, message) for an impossible (negative: error) or implausible (outside the
    window: warning) DFT surface energy; None for a plausible one or NaN (no bulk reference)."""
    if not math.isfinite(gamma_j_per_m2):
        return None
    if gamma_j_per_m2 < 0:
        return ERROR, (f"negative DFT surface energy {gamma_j_per_m2:.4g} J/m^2: impossible for a stable crystal; "
                       "check the slab and bulk energies and the bulk reference")
    if not GAMMA_MIN_J_PER_M2 <= gamma_j_per_m2 <= GAMMA_MAX_J_PER_M2:
        return WARNING, (f"DFT surface energy {gamma_j_per_m2:.4g} J/m^2 is outside {GAMMA_MIN_J_PER_M2}-"
                         f"{GAMMA_MAX_J_PER_M2:g} J/m^2, the range of elemental surfaces: check the slab and bulk "
                         "energies and the bulk reference")
    return None


def _structure_problems(record, *, bulk: bool, min_vacuum: float) -> list[tuple[str, str]]:
    from surfbench.data import geometry

    atoms = getattr(record, "atoms", None)
    if atoms is None or len(atoms) == 0:
        return [(ERROR, "no atoms")]
    out = []
    symbols = sorted(set(atoms.get_chemical_symbols()))
    if len(symbols) != 1:
        out.append((ERROR, f"not elemental ({'/'.join(symbols)}); gamma needs a stoichiometric reference"))
    elif symbols[0] != record.element:
        out.append((ERROR, f"the atoms are {symbols[0]}, but the record says element {record.element}"))
    try:
        axis = geometry.vacuum_axis(atoms, min_vacuum)
    except Exception as exc:  # noqa: BLE001 - a degenerate cell (LinAlgError), a wire or a cluster
        return [*out, (ERROR, f"not a slab or bulk cell: {exc}")]
    if bulk:
        if axis is not None:
            out.append((ERROR, f"a bulk with a vacuum gap of at least {min_vacuum:g} Angstrom along lattice vector "
                               f"{axis} (a slab?)"))
        return out
    if axis is None:
        out.append((ERROR, f"non-slab cell: no vacuum gap of {min_vacuum:g} Angstrom along any lattice vector"))
    elif axis != record.vacuum_axis:
        out.append((ERROR, f"vacuum_axis is {record.vacuum_axis}, but the vacuum gap is along lattice vector {axis}: "
                           "the surface area would be spanned by the wrong cell vectors"))
    elif not geometry.surface_area(atoms, axis) > 1e-6:
        out.append((ERROR, f"zero area ({geometry.surface_area(atoms, axis)} Angstrom^2)"))
    return out


def _miller_problem(miller: object) -> str | None:
    from surfbench.data.userdata import parse_miller

    if miller is None:
        return None
    try:
        parse_miller(miller)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def record_problems(record, bulks: Mapping[str, BulkRecord], *, min_vacuum: float = MIN_VACUUM_A,
                    contacts: bool = True, reference: str = "DFT") -> list[tuple[str, str]]:
    """Every (severity, message) of one record under the rules of the module docstring;
    ``bulks``: the data set's bulk records (a slab's reference is looked up there);
    ``contacts``: also look for overlapping and unusually close atoms. ``reference``: what the
    energies are; anything but "DFT" (the stand-in energies of a SYNTHETIC set, which measure
    cost, not accuracy) makes a negative surface energy a warning, not an error."""
    from surfbench.data.contacts import already_checked, close_contact

    if isinstance(record, ReferenceSurfaceRecord):
        out = []
        if record.element not in chemical_symbols[1:]:
            out.append((ERROR, f"element {record.element!r} is not a chemical symbol"))
        if (why := _miller_problem(record.miller)) is not None:
            out.append((ERROR, why))
        for name in ("gamma_pbe_j_per_m2",):
            value = getattr(record, name)
            if (why := energy_problem(value, name)) is not None:
                out.append((ERROR, why.replace(" (total DFT energy in eV)", " (J/m^2)")))
            elif (found := gamma_problem(float(value))) is not None:
                out.append(found)
        return out
    bulk = isinstance(record, BulkRecord)
    if not bulk and not isinstance(record, SurfaceRecord):
        return [(ERROR, f"a {type(record).__name__}, not a BulkRecord or SurfaceRecord")]
    out = []
    if (why := energy_problem(record.energy_ev, "energy_ev")) is not None:
        out.append((ERROR, why))
    out += _structure_problems(record, bulk=bulk, min_vacuum=min_vacuum)
    if contacts and getattr(record, "atoms", None) is not None and len(record.atoms) and not already_checked(record):
        contact = close_contact(record.atoms)
        if contact is not None:
            out.append((contact.severity, contact.message))
    if bulk:
        return out
    if (why := _miller_problem(record.miller)) is not None:
        out.append((ERROR, why))
    if record.bulk_id is None:
        if record.bulk_energy_per_atom_ev is not None:
            out.append((ERROR, "a bulk energy per atom but no bulk_id: name the bulk record it comes from"))
        return out
    ref = bulks.get(record.bulk_id)
    if ref is None:
        out.append((ERROR, f"bulk_id {record.bulk_id!r} is not a bulk record of the data set"))
        return out
    if ref.element != record.element:
        out.append((ERROR, f"bulk_id {record.bulk_id!r} is {ref.element}, the slab {record.element}"))
    if energy_problem(ref.energy_ev) is not None or ref.n_atoms == 0:
        return out  # the bulk's own problem is listed with the bulk
    expected = ref.energy_per_atom_ev
    given = record.bulk_energy_per_atom_ev
    if given is None or energy_problem(given) is not None or not math.isclose(
            float(given), expected, rel_tol=1e-9, abs_tol=1e-9):
        out.append((ERROR, f"bulk_energy_per_atom_ev {given!r} is not the energy per atom of its bulk record "
                           f"{record.bulk_id!r} ({expected:.6f} eV/atom)"))
        return out
    if not any(sev == ERROR for sev, _ in out):
        found = gamma_problem(record.dft_gamma_j_per_m2)
        if found is not None and reference != "DFT":
            found = (WARNING, found[1].replace("DFT surface energy", f"surface energy ({reference} energies)"))
        if found is not None:
            out.append(found)
    return out


def dataset_problems(ds: Dataset, *, min_vacuum: float = MIN_VACUUM_A) -> list[tuple[str, str, str]]:
    """(record id, severity, message) of every problem of a data set's records, bulks first."""
    from surfbench.data.synthetic import is_synthetic

    reference = "SYNTHETIC stand-in" if is_synthetic(ds.name) else "DFT"
    out = []
    for record in [*ds.bulks.values(), *ds.surfaces]:
        out += [(str(getattr(record, "id", "?")), sev, msg)
                for sev, msg in record_problems(record, ds.bulks, min_vacuum=min_vacuum, reference=reference)]
    return out


def validate_dataset(ds: Dataset, path: object | None = None, *, min_vacuum: float = MIN_VACUUM_A) -> Dataset:
    """Apply :func:`record_problems` to every record of ``ds``: errors raise a
    :class:`~surfbench.data.errors.DataError` naming each record (and ``path``, the data set's
    file, or else the data set's name); warnings become notes of the data set. Records found
    free of overlapping atoms are marked so that the protocols need not look again. Returns
    ``ds``."""
    from surfbench.data.contacts import already_checked, mark_checked

    problems = dataset_problems(ds, min_vacuum=min_vacuum)
    bad = [f"record {rid}: {msg}" for rid, sev, msg in problems if sev == ERROR]
    if bad:
        more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        where = f"file {path}" if path is not None else f"data set {ds.name!r}"
        raise DataError(f"{where}: {len(bad)} problem(s): {'; '.join(bad[:20])}{more}")
    for rid, _severity, msg in problems:
        line = f"record {rid}: {msg}"
        if line not in ds.notes:
            ds.notes.append(line)
    for record in [*ds.bulks.values(), *ds.surfaces]:
        if getattr(record, "atoms", None) is not None and not already_checked(record):
            mark_checked(record)
    return ds


def out_of_range(ds: Dataset) -> list[str]:
    """Lines naming the slabs of ``ds`` whose DFT surface energy is outside the plausible
    window (the warnings of :func:`gamma_problem`), for the summary of a run."""
    lines = []
    for s in ds.surfaces:
        if isinstance(s, SurfaceRecord) and s.bulk_energy_per_atom_ev is not None:
            found = gamma_problem(s.dft_gamma_j_per_m2)
            if found is not None and found[0] == WARNING:
                lines.append(f"{s.id}: {s.dft_gamma_j_per_m2:.4g} J/m^2")
    return lines


def range_warning(ds: Dataset) -> str | None:
    """One sentence for the summary of a run on ``ds``: its slabs with an implausible DFT
    surface energy (None when there are none)."""
    lines = out_of_range(ds)
    if not lines:
        return None
    more = f" (and {len(lines) - 10} more)" if len(lines) > 10 else ""
    return (f"{len(lines)} slab(s) of {ds.name} have a DFT surface energy outside {GAMMA_MIN_J_PER_M2}-"
            f"{GAMMA_MAX_J_PER_M2:g} J/m^2, the range of elemental surfaces; their errors are in the tables above, "
            f"but check their energies and bulk references: {'; '.join(lines[:10])}{more}")
