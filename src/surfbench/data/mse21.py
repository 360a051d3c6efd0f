"""mSE21: surface energies of the close-packed facet of 21 metals, PBE and experiment.

bcc (110) of Li, Na, K, Rb, Ba, Nb, Ta, Mo, W, Fe and fcc (111) of Ca, Sr, Al, Ni, Cu, Rh, Pd,
Ag, Ir, Pt, Au: the 21-metal set of Tran et al., Phys. Rev. B 93, 235162 (2016), as packaged in a
public data repository of an ml-peg author (benshi97/ml-peg-transition-metal-data) at its pinned
commit (ml-peg itself has no surface-energy benchmark). There are no DFT slab or bulk energies:
the records are :class:`~surfbench.records.ReferenceSurfaceRecord` s, evaluated with the
``model-built`` protocol (:mod:`surfbench.evaluation.model_built`).

Source: ``mSE21.zip`` of benshi97/ml-peg-transition-metal-data at a pinned commit, with
two members: ``mSE21.csv`` (UTF-8 with a byte-order mark; columns ``sysnames`` (element +
facet, e.g. ``Cu111``), ``cell_type`` (bcc/fcc), ``Exp_SE``, ``PBE_SE`` in J/m^2) and
``mSE21_structures.extxyz`` (one 4-layer 1x1 slab per row, ``sys_label`` such as ``Cu_111``).
Each member is read from an extracted copy in a data folder (``mse21/mSE21.csv``) or else from
the zip (local or downloaded); either way its sha256 is checked against the pinned value.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
import zipfile
from dataclasses import replace

from ase.data import atomic_numbers
from ase.io import read

from surfbench.data.errors import DataError
from surfbench.data.sources import PinnedFile, fetch, find_local, search_path, verify
from surfbench.records import Dataset, ReferenceSurfaceRecord

NAME = "mse21"
COMMIT = "f77d7242557647dc294754a15f4fa899041ec864"
REFERENCE = ("Tran et al., Phys. Rev. B 93, 235162 (2016): the 21-metal set (mSE21) as packaged in benshi97/ml-peg-transition-metal-data")
LICENCE = "no licence file in the source repository; cite the paper"
_BASE = f"https://raw.githubusercontent.com/benshi97/ml-peg-transition-metal-data/{COMMIT}"

ZIP = PinnedFile(
    relpath="mse21/mSE21.zip", url=f"{_BASE}/mSE21.zip",
    sha256="2b71719b384db71ef2a32559054cf6b2bb3cf665e6368627709c0bdf051de076", licence=LICENCE,
)
CSV = PinnedFile(
    relpath="mse21/mSE21.csv", url=f"{ZIP.url}#mSE21.csv",
    sha256="87358e13eead48cb4cf4cd1493f0e6a87042520fc42b5999e3986a0d921fe027", licence=LICENCE,
)
STRUCTURES = PinnedFile(
    relpath="mse21/mSE21_structures.extxyz", url=f"{ZIP.url}#mSE21_structures.extxyz",
    sha256="1ed5c385380f376a55a0b55f80553a633c8a197f692fba6c812bc0ab13841a1a", licence=LICENCE,
)
COLUMNS = ("sysnames", "cell_type", "Exp_SE", "PBE_SE")
CRYSTALS = ("bcc", "fcc")
N_ROWS = 21
_SYSNAME = re.compile(r"^([A-Z][a-z]?)(\d)(\d)(\d)$")


def member_bytes(member: PinnedFile, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> bytes:
    """The bytes of one member of the zip: an extracted copy if a data folder holds one, else
    read from the (local or downloaded) zip; checked against the member's pinned sha256."""
    local = find_local(member.relpath, search_path(data_dir))
    if local is not None:
        return verify(local, member).read_bytes()
    archive = fetch(ZIP, data_dir, download=download)
    name = member.relpath.rsplit("/", 1)[-1]
    try:
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(name)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"cannot read member {name}: {exc}", path=archive) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != member.sha256:
        raise DataError(f"member {name} has sha256 {actual}, not the pinned {member.sha256}", path=archive)
    return data


def parse_csv(text: str, where: object) -> list[ReferenceSurfaceRecord]:
    """Records from the csv text (byte-order mark already removed); errors name ``where``."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise DataError(f"expected the columns {', '.join(COLUMNS)}, found {', '.join(rows[0]) if rows else 'none'}",
                        path=where)
    records = []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        name = (row["sysnames"] or "").strip()
        m = _SYSNAME.match(name)
        if m is None or m.group(1) not in atomic_numbers:
            raise DataError(f"sysnames {name!r} is not an element symbol followed by a Miller index",
                            path=where, record=f"line {i}")
        crystal = (row["cell_type"] or "").strip()
        if crystal not in CRYSTALS:
            raise DataError(f"cell_type {crystal!r} is not one of {', '.join(CRYSTALS)}", path=where, record=name)
        values = {}
        for column in ("PBE_SE", "Exp_SE"):
            try:
                values[column] = float(row[column])
            except (TypeError, ValueError):
                raise DataError(f"{column} {row[column]!r} is not a number (J/m^2)", path=where, record=name) from None
            if not (math.isfinite(values[column]) and values[column] > 0):
                raise DataError(f"{column} {values[column]} J/m^2 is not a positive surface energy",
                                path=where, record=name)
        records.append(ReferenceSurfaceRecord(
            id=name, element=m.group(1), crystal=crystal, miller=tuple(int(g) for g in m.groups()[1:]),
            gamma_pbe_j_per_m2=values["PBE_SE"], gamma_exp_j_per_m2=values["Exp_SE"],
            reference=REFERENCE, source=f"{CSV.relpath} line {i}",
        ))
    return records


def load_mse21(data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """The mSE21 data set: 21 reference records, each with the data set's 4-layer slab."""
    text = member_bytes(CSV, data_dir, download=download).decode("utf-8-sig")
    records = parse_csv(text, CSV.relpath)
    if len(records) != N_ROWS:
        raise DataError(f"{len(records)} rows, expected {N_ROWS}", path=CSV.relpath)
    raw = member_bytes(STRUCTURES, data_dir, download=download).decode("utf-8")
    try:
        frames = read(io.StringIO(raw), index=":", format="extxyz")
    except Exception as exc:  # ASE's extxyz parser raises several types
        raise DataError(f"cannot be parsed as extxyz: {type(exc).__name__}: {exc}", path=STRUCTURES.relpath) from None
    slabs = {str(a.info.get("sys_label", "")).replace("_", ""): a for a in frames}
    out = []
    for r in records:
        atoms = slabs.get(r.id)
        if atoms is None:
            raise DataError(f"no slab with sys_label {r.element}_{r.miller_str}", path=STRUCTURES.relpath, record=r.id)
        if set(atoms.get_chemical_symbols()) != {r.element}:
            raise DataError(f"slab holds {sorted(set(atoms.get_chemical_symbols()))}, not {r.element}",
                            path=STRUCTURES.relpath, record=r.id)
        out.append(replace(r, atoms=atoms))
    ds = Dataset(NAME, {}, out, notes=[
        "reference values only (no DFT energies): evaluate with --protocol model-built",
    ])
    ds.provenance.update(reference=REFERENCE, repository="benshi97/ml-peg-transition-metal-data", commit=COMMIT,
                         csv_sha256=CSV.sha256, structures_sha256=STRUCTURES.sha256)
    return ds

