"""Users' own DFT surface data: one extxyz (or ASE database) file of slabs and bulks.

Format (one frame / row per structure):

=================  ========  ===================================================================
key (atoms.info /  required  meaning
ASE db key)
=================  ========  ===================================================================
``kind``           yes       ``bulk`` or ``slab``
``name``           yes       unique record id (text; ``id`` is reserved in ASE databases)
energy             yes       total DFT energy in eV: ``energy=`` in the extxyz comment line (or a
                             single-point calculator energy / the db row's energy)
``bulk_id``        slabs     id of the slab's bulk reference; may be left out when the file
                             has exactly one bulk of the slab's element
``miller``         no        Miller index as ``"1 1 0"``, ``"110"`` or ``"(1,1,0)"``
``termination``    no        free text (e.g. ``"O-terminated"``)
``reconstructed``  no        true/false
``split``          no        e.g. ``train`` / ``test``
=================  ========  ===================================================================

Slabs are elemental (gamma = (E_slab - n e_bulk)/(2A) needs the bulk's stoichiometry), fully
periodic cells with a vacuum gap of at least ``min_vacuum`` Angstrom along one lattice vector;
A is the area spanned by the other two. No two atoms may be closer than half the sum of their
covalent radii (and 0.5 Angstrom; periodic images included); closer than 0.7 x that sum is a
warning (see :mod:`surfbench.data.contacts`). A slab's DFT surface energy may not be negative;
outside 0.05-6 J/m^2 it is a warning. These are the rules of every data set
(:mod:`surfbench.data.checks`). A file needs at least one slab. ``surfbench data validate
FILE`` lists every problem per record; loading refuses a file with problems (errors), naming
them, and keeps warnings as notes of the data set.

The data set is named by the file's resolved path: two files with the same name in different
folders are different data sets in a result store.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from surfbench.data import contacts, geometry
from surfbench.data.checks import record_problems
from surfbench.data.contacts import mark_checked
from surfbench.data.errors import DataError
from surfbench.records import BulkRecord, Dataset, SurfaceRecord

_MILLER = re.compile(r"^\(?\s*(-?\d+)[\s,_]+(-?\d+)[\s,_]+(-?\d+)\s*\)?$")


@dataclass(frozen=True)
class Problem:
    record: str  # "#index (id)", or "file" for a problem of the whole file
    message: str
    severity: str = "error"  # "error" (the file is refused) or "warning" (kept, with a note)


def _whole(value: object, whole: object) -> int:
    """One index of a Miller index given as a sequence: a whole number (1, 1.0, "1"), never a
    fraction (1.5), a boolean or NaN."""
    import numbers

    shown = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise ValueError(f"miller={whole!r} is not a Miller index: {shown} is not a whole number")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError(f"miller={whole!r} is not a Miller index: {shown} is not a whole number")


def parse_miller(value: object) -> tuple[int, int, int]:
    """``"1 1 0"``, ``"(1,1,0)"``, ``"1_1_0"``, ``"110"`` (single digits) or a sequence of three
    whole numbers; (0 0 0), which is no plane, and fractional indices (1.5 0 0) are refused
    (ValueError)."""
    hkl = None
    if isinstance(value, list | tuple) or hasattr(value, "__len__") and not isinstance(value, str):
        items = list(value)  # type: ignore[call-overload]
        if len(items) == 3:
            hkl = tuple(_whole(v, value) for v in items)
    else:
        text = str(value).strip()
        m = _MILLER.match(text)
        if m:
            hkl = (int(m[1]), int(m[2]), int(m[3]))
        elif re.fullmatch(r"-?\d-?\d-?\d", text):
            digits = re.findall(r"-?\d", text)
            hkl = (int(digits[0]), int(digits[1]), int(digits[2]))
    if hkl is None:
        raise ValueError(f"miller={value!r} is not a Miller index like '1 1 0'")
    if not any(hkl):
        raise ValueError(f"miller={value!r}: (0 0 0) is not a Miller index of any plane")
    return hkl  # type: ignore[return-value]


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "t", "1", "yes"}:
        return True
    if text in {"false", "f", "0", "no"}:
        return False
    raise ValueError(f"reconstructed={value!r} is not true/false")


def read_structures(path: str | os.PathLike) -> list[Atoms]:
    """Read every frame of an extxyz file or every row of an ASE database (.db)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("does not exist", path=path)
    try:
        if path.suffix == ".db":
            import ase.db

            images = []
            with ase.db.connect(path) as db:
                for row in db.select():
                    atoms = row.toatoms(add_additional_information=False)
                    atoms.info.update(row.key_value_pairs)
                    if row.get("energy") is not None:
                        atoms.info.setdefault("energy", row.energy)
                    images.append(atoms)
            return images
        from ase.io import read

        return list(read(path, index=":", format="extxyz"))
    except DataError:
        raise
    except Exception as exc:  # ase raises many types on malformed files
        raise DataError(f"cannot be read as {'an ASE database' if path.suffix == '.db' else 'extxyz'}: "
                        f"{type(exc).__name__}: {exc}", path=path) from None


def _raw_energy(atoms: Atoms) -> object:
    """The energy as the file holds it (comment line / db key, or a single-point calculator)."""
    value = atoms.info.get("energy")
    if value is None and atoms.calc is not None:
        value = atoms.calc.results.get("energy")
    return value


def check(images: list[Atoms], min_vacuum: float = geometry.MIN_VACUUM_A) -> tuple[list[Problem], list[dict]]:
    """Every problem of every record, and the parsed records (for :func:`load_user_dataset`)."""
    problems: list[Problem] = []
    parsed: list[dict] = []
    seen: dict[str, int] = {}
    for i, atoms in enumerate(images):
        rid = str(atoms.info.get("name", "")).strip()
        where = f"#{i}" + (f" ({rid})" if rid else "")

        def bad(msg: str, where: str = where) -> None:
            problems.append(Problem(where, msg))

        kind = str(atoms.info.get("kind", "")).strip().lower()
        if kind not in {"bulk", "slab"}:
            bad(f"kind must be 'bulk' or 'slab', got {atoms.info.get('kind')!r}")
        if not rid:
            bad("no name (the record id)")
        elif rid in seen:
            bad(f"duplicate name (also record #{seen[rid]})")
        else:
            seen[rid] = i
        raw = _raw_energy(atoms)
        try:
            if isinstance(raw, bool) or type(raw).__name__ == "bool_":  # energy=T in a comment line
                raise TypeError(raw)
            energy = None if raw is None else float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            energy = None
            bad(f"energy {raw!r} is not a number (total DFT energy in eV)")
        else:
            if energy is None:
                bad("missing energy (total DFT energy in eV)")
            elif not math.isfinite(energy):
                bad(f"energy is {energy}")
        if len(atoms) == 0:
            bad("no atoms")
            continue
        symbols = sorted(set(atoms.get_chemical_symbols()))
        if len(symbols) != 1:
            bad(f"not elemental ({'/'.join(symbols)}); gamma needs a stoichiometric reference")
        try:
            axis = geometry.vacuum_axis(atoms, min_vacuum)
        except ValueError as exc:
            bad(f"not a slab or bulk cell: {exc}")
            continue
        contact = contacts.close_contact(atoms)
        if contact is not None:
            problems.append(Problem(where, contact.message, contact.severity))
        rec = {"i": i, "id": rid, "kind": kind, "atoms": atoms, "energy": energy, "element": symbols[0]}
        if kind == "slab":
            if axis is None:
                bad(f"non-slab cell: no vacuum gap of {min_vacuum} Angstrom along any lattice vector")
            else:
                area = geometry.surface_area(atoms, axis)
                if not area > 1e-6:
                    bad(f"zero area ({area} Angstrom^2)")
                rec["axis"] = axis
            for key, conv in (("miller", parse_miller), ("reconstructed", _as_bool)):
                if key in atoms.info:
                    try:
                        rec[key] = conv(atoms.info[key])
                    except ValueError as exc:
                        bad(str(exc))
            rec["bulk_id"] = str(atoms.info["bulk_id"]).strip() if "bulk_id" in atoms.info else None
        elif kind == "bulk" and axis is not None:
            bad(f"a bulk with a vacuum gap along lattice vector {axis} (a slab?)")
        rec["termination"] = atoms.info.get("termination")
        rec["split"] = atoms.info.get("split")
        parsed.append(rec)
    if not images:
        problems.append(Problem("file", "no records: a data set needs slabs and their bulks"))
    elif not any(str(a.info.get("kind", "")).strip().lower() == "slab" for a in images):
        problems.append(Problem("file", f"no slab records ({len(images)} record(s), none of kind 'slab'): "
                                        "a data set needs at least one slab"))
    bulks = {r["id"]: r for r in parsed if r["kind"] == "bulk"}
    by_element: dict[str, list[str]] = {}
    for b in bulks.values():
        by_element.setdefault(b["element"], []).append(b["id"])
    for r in parsed:
        if r["kind"] != "slab":
            continue
        where = f"#{r['i']} ({r['id']})"
        if r["bulk_id"] is None:
            candidates = by_element.get(r["element"], [])
            if len(candidates) == 1:
                r["bulk_id"] = candidates[0]
            elif not candidates:
                problems.append(Problem(where, f"no bulk for element {r['element']} in the file"))
            else:
                problems.append(Problem(where, f"several {r['element']} bulks ({', '.join(candidates)}): give bulk_id"))
        elif r["bulk_id"] not in bulks:
            problems.append(Problem(where, f"bulk_id {r['bulk_id']!r} is not a bulk record of the file"))
        elif bulks[r["bulk_id"]]["element"] != r["element"]:
            problems.append(Problem(where, f"bulk_id {r['bulk_id']!r} is {bulks[r['bulk_id']]['element']}, the slab {r['element']}"))
    # the rules every data set obeys (surfbench.data.checks), on the records this file makes (those
    # without a problem so far): they add what only the records show, e.g. the DFT surface energy
    faulty = {p.record for p in problems if p.severity == "error"}
    record_bulks, record_slabs = _records(
        [r for r in parsed if f"#{r['i']} ({r['id']})" not in faulty and f"#{r['i']}" not in faulty], "")
    for rec in [*record_bulks.values(), *record_slabs]:
        where = next(f"#{r['i']} ({r['id']})" for r in parsed if r["id"] == rec.id)
        for severity, message in record_problems(rec, record_bulks, min_vacuum=min_vacuum, contacts=False):
            problems.append(Problem(where, message, severity))
    return problems, parsed


def _records(parsed: list[dict], path: object) -> tuple[dict[str, BulkRecord], list[SurfaceRecord]]:
    """The bulk and slab records of parsed frames (slabs whose bulk is not among them left out)."""
    bulks = {
        r["id"]: BulkRecord(id=r["id"], element=r["element"], atoms=_clean(r["atoms"]), energy_ev=r["energy"],
                            split=r["split"], source=f"{path}#{r['i']}")
        for r in parsed if r["kind"] == "bulk"
    }
    surfaces = []
    for r in parsed:
        if r["kind"] != "slab" or r.get("bulk_id") not in bulks:
            continue
        bulk = bulks[r["bulk_id"]]
        surfaces.append(SurfaceRecord(
            id=r["id"], element=r["element"], atoms=_clean(r["atoms"]), energy_ev=r["energy"], bulk_id=bulk.id,
            bulk_energy_per_atom_ev=bulk.energy_per_atom_ev, miller=r.get("miller"), miller_source="label",
            termination=r.get("termination"), reconstructed=r.get("reconstructed"), label=r["id"],
            split=r["split"], source=f"{path}#{r['i']}", vacuum_axis=r["axis"],
        ))
    return bulks, surfaces


def validate(path: str | os.PathLike, min_vacuum: float = geometry.MIN_VACUUM_A) -> list[Problem]:
    """Problems of a user data file (empty: the file is fine)."""
    problems, _ = check(read_structures(path), min_vacuum)
    return problems


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems that refuse a file (not the warnings)."""
    return [p for p in problems if p.severity == "error"]


def dataset_name(path: str | os.PathLike) -> str:
    """The name a user file's data set is stored under: its resolved path (never the bare file
    stem, which two files in different folders share)."""
    return str(Path(path).expanduser().resolve())


def load_user_dataset(path: str | os.PathLike, name: str | None = None, min_vacuum: float = geometry.MIN_VACUUM_A) -> Dataset:
    """A :class:`Dataset` from a user file, named by its resolved path unless ``name`` is given;
    a file with problems (errors) is refused, naming them; warnings become notes."""
    path = Path(path)
    problems, parsed = check(read_structures(path), min_vacuum)
    warnings = [p for p in problems if p.severity != "error"]
    problems = errors(problems)
    if problems:
        listing = "; ".join(p.message if p.record == "file" else f"record {p.record}: {p.message}"
                            for p in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise DataError(f"{len(problems)} problem(s): {listing}{more}", path=path)
    bulks, surfaces = _records(parsed, path)
    for record in [*bulks.values(), *surfaces]:  # check() looked for overlapping atoms in each
        mark_checked(record)
    notes = [f"record {p.record}: {p.message}" for p in warnings]
    return Dataset(name or dataset_name(path), bulks, surfaces, notes=notes, provenance={"source": str(path)})


def _clean(atoms: Atoms) -> Atoms:
    return Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)


def write_user_dataset(dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write a data set in the documented extxyz format (round-trips through the loader)."""
    from ase.io import write

    images = []
    for b in dataset.bulks.values():
        a = _clean(b.atoms)
        a.info.update(kind="bulk", name=b.id, energy=b.energy_ev, **({"split": b.split} if b.split else {}))
        images.append(a)
    for s in dataset.surfaces:
        a = _clean(s.atoms)
        a.info.update(kind="slab", name=s.id, energy=s.energy_ev, bulk_id=s.bulk_id or "")
        if s.miller:
            a.info["miller"] = " ".join(str(i) for i in s.miller)
        for key in ("termination", "split"):
            if getattr(s, key):
                a.info[key] = getattr(s, key)
        if s.reconstructed is not None:
            a.info["reconstructed"] = bool(s.reconstructed)
        images.append(a)
    path = Path(path)
    write(path, images, format="extxyz")
    return path
