"""The Zuo et al. (2020) "mlearn" data (Ni, Cu, Li, Mo, Si, Ge) and the
``mlearn-surfaces`` data set built from it.

Sources (all BSD 3-Clause, Materials Virtual Lab):

* the JSON files of materialsvirtuallab/mlearn at a pinned commit
  (``mlearn/<El>/{training,test}.json``): energies, forces, virial stress, group labels;
* for the Ni and Cu training sets, whose JSON files could not be pinned here, the extxyz
  conversion of the same files in ACEsuit/ACEData (``ace_zuo2020/ZuoEtAl2020.tar.gz``): energies
  and forces only, no group labels, no stress. Their slabs are found from the cell (a vacuum
  gap along one lattice vector) and their Miller index inferred by matching the slab's
  in-plane lattice to the bulk (:func:`surfbench.data.miller.infer_miller_index`).

Bulk reference per element: the frame labelled "Ground state crystal"; where an element's
files have none (Ni, Cu: it sits in the unlabelled extxyz training set), the
lowest-energy-per-atom undistorted bulk frame (no vacuum, all forces <= 0.01 eV/Angstrom,
highest point-group order among such frames; :func:`surfbench.data.geometry.select_reference_bulk`).
For Li, Si and Ge that rule picks exactly the labelled frame (tested). For Mo it would pick
the relaxed 2-atom cell ("Mo 3x3x3 cell relaxed", -10.848578 eV/atom), not the labelled
54-atom "Ground state crystal" (-10.850177 eV/atom, atoms displaced, force components up to
0.45 eV/Angstrom); the label wins wherever it exists.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tarfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase import Atoms
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from surfbench.data import geometry, miller
from surfbench.data.errors import DataError
from surfbench.data.frames import Frame, vasp_kbar_to_ase_stress
from surfbench.data.sources import PinnedFile, fetch
from surfbench.records import BulkRecord, Dataset, SurfaceRecord

ELEMENTS = ("Ni", "Cu", "Li", "Mo", "Si", "Ge")
SPLITS = {"training": "train", "test": "test"}

MLEARN_COMMIT = "10c427a5480c6281c15c64efaf869b03be04818f"
MLEARN_URL = "https://raw.githubusercontent.com/materialsvirtuallab/mlearn/{commit}/data/{el}/{split}.json"
ACEDATA_COMMIT = "292aa09542d4bc6bdf67c710169bf486df1dd12a"
LICENCE = "BSD-3-Clause (Copyright (c) 2019, Materials Virtual Lab)"

_MLEARN_SHA256 = {
    ("Cu", "test"): "1805a315ce8d0ce4a18bb761df4c4f619909ce114d598d426015d0071edc98c2",
    ("Ni", "test"): "dccbfa14ddff5d1d35f658c48b68f6b431f95496a5261ef8b8f4d1d41e36008a",
    ("Li", "training"): "1cac01475c5a4fb85771ee1fd23366a6b8abfb9891e0c9e088b6e37228e147b3",
    ("Li", "test"): "554d0ce60b35a07b357be3a80bf04f68eb8fc97b5a88328caf08c860b5e9b260",
    ("Mo", "training"): "b13305fca0d0d2631ab080c8fcf13c743ee79a911712fb65a34ca88fadf09f9a",
    ("Mo", "test"): "68169e2927c2115daa2f504805fcb9548ee65daf2dd015428807ba92f8e13bb8",
    ("Si", "training"): "ae6d4b0a65b00e0fcf7ba0a6fad366716710d2f0d21d70199203089c6866b500",
    ("Si", "test"): "d452b30a89f23bff76f7cc529b7b6c2d159ea81ccd5a4599fb1a18207654fa91",
    ("Ge", "training"): "43dee02009a5167f94c7aafce19051222bcfc328c46181750cc2a2018187ca00",
    ("Ge", "test"): "737ea6159c9dd27ebee7fb8ffae22f15e20466884927771248ca4f5b2cd3f093",
}

ACEDATA_TARBALL = PinnedFile(
    relpath="ace_zuo2020/ZuoEtAl2020.tar.gz",
    url=(
        "https://raw.githubusercontent.com/ACEsuit/ACEData/"
        f"{ACEDATA_COMMIT}/minibenchmarks/ZuoEtAl2020.tar.gz"
    ),
    sha256="f77a80e2fb00534f42bce2ccf72833dfec316d48f2b756aa333687652dd6c589",
    licence=LICENCE,
)


def pinned_json(element: str, split: str) -> PinnedFile | None:
    """The pinned JSON file of an element and split ('training' or 'test'), if pinned."""
    sha = _MLEARN_SHA256.get((element, split))
    if sha is None:
        return None
    return PinnedFile(
        relpath=f"mlearn/{element}/{split}.json",
        url=MLEARN_URL.format(commit=MLEARN_COMMIT, el=element, split=split),
        sha256=sha,
        licence=LICENCE,
    )


# ----------------------------------------------------------------------------- parsing


def _finite(value: object, what: str, path: object, record: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{what} is not a number: {value!r}", path=path, record=record) from None
    if not math.isfinite(out):
        raise DataError(f"{what} is not finite: {out}", path=path, record=record)
    return out


def _plain_atoms(sd: object) -> Atoms | None:
    """Atoms straight from a pymatgen ``Structure.as_dict()`` with ordered sites and Cartesian
    ``xyz`` (10x faster than ``Structure.from_dict``); None when the dict is anything else."""
    try:
        cell = np.asarray(sd["lattice"]["matrix"], dtype=float)  # type: ignore[index]
        sites = sd["sites"]  # type: ignore[index]
        symbols, positions = [], []
        for site in sites:
            species = site["species"]
            if len(species) != 1 or float(species[0].get("occu", 1.0)) != 1.0:
                return None
            symbols.append(species[0]["element"])
            positions.append(site["xyz"])
        positions_a = np.asarray(positions, dtype=float)
        if cell.shape != (3, 3) or positions_a.shape != (len(symbols), 3):
            return None
        return Atoms(symbols=symbols, positions=positions_a, cell=cell, pbc=True)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None


def parse_mlearn_docs(docs: object, path: object, element: str, split: str) -> list[Frame]:
    """Validate and convert mlearn JSON documents (see module docs) to :class:`Frame` s."""
    if not isinstance(docs, list):
        raise DataError(f"expected a JSON list of frames, got {type(docs).__name__}", path=path)
    short = SPLITS.get(split, split)
    frames = []
    for i, doc in enumerate(docs):
        record = f"#{i}"
        if not isinstance(doc, dict):
            raise DataError(f"expected an object, got {type(doc).__name__}", path=path, record=record)
        description = str(doc.get("description", ""))
        if description:
            record = f"#{i} ({description})"
        outputs = doc.get("outputs")
        if not isinstance(outputs, dict) or "energy" not in outputs:
            raise DataError("no DFT energy (outputs.energy is missing)", path=path, record=record)
        energy = _finite(outputs["energy"], "outputs.energy", path, record)
        if "structure" not in doc:
            raise DataError("no structure", path=path, record=record)
        atoms = _plain_atoms(doc["structure"])
        if atoms is None:  # anything beyond ordered sites with Cartesian coordinates: pymatgen
            try:
                structure = Structure.from_dict(doc["structure"])
                atoms = AseAtomsAdaptor.get_atoms(structure)  # ValueError for disordered sites
            except Exception as exc:  # pymatgen raises KeyError/TypeError/ValueError on bad dicts
                raise DataError(
                    f"structure cannot be read: {type(exc).__name__}: {exc}", path=path, record=record
                ) from None
        atoms.pbc = True
        n = len(atoms)
        if n == 0:
            raise DataError("structure has no atoms", path=path, record=record)
        if "num_atoms" in doc and _finite(doc["num_atoms"], "num_atoms", path, record) != n:
            raise DataError(f"num_atoms={doc['num_atoms']} but the structure has {n} sites", path=path, record=record)
        symbols = set(atoms.get_chemical_symbols())
        if symbols != {element}:
            raise DataError(f"expected only {element}, found {sorted(symbols)}", path=path, record=record)
        forces = None
        if outputs.get("forces") is not None:
            try:
                forces = np.asarray(outputs["forces"], dtype=float)
            except (TypeError, ValueError) as exc:
                raise DataError(f"forces are not an {n}x3 array of numbers: {exc}", path=path, record=record) from None
            if forces.shape != (n, 3) or not np.all(np.isfinite(forces)):
                raise DataError(f"forces must be {n}x3 finite numbers, got shape {forces.shape}", path=path, record=record)
        stress = None
        if outputs.get("virial_stress") is not None:
            try:
                stress = vasp_kbar_to_ase_stress(outputs["virial_stress"])
            except (TypeError, ValueError) as exc:
                raise DataError(f"virial_stress: {exc}", path=path, record=record) from None
        frames.append(
            Frame(
                atoms=atoms, energy_ev=energy, element=element, split=short, index=i,
                source=f"{path}#{i}", group=doc.get("group"), description=description,
                forces_ev_per_a=forces, stress_ev_per_a3=stress,
            )
        )
    return frames


def read_mlearn_json(path: str | os.PathLike, element: str, split: str) -> list[Frame]:
    """Read one mlearn JSON file; errors name the file and the record. Parsed files are kept
    for the process (keyed by path, size and modification time), so loading the surface data
    set and the frames of the same files parses them once."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"cannot be read: {exc}", path=path) from None
    return list(_read_mlearn_json_cached(str(path), st.st_size, st.st_mtime_ns, element, split))


@lru_cache(maxsize=32)
def _read_mlearn_json_cached(path_str: str, size: int, mtime_ns: int, element: str, split: str) -> tuple[Frame, ...]:
    path = Path(path_str)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"cannot be read: {exc}", path=path) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"is not UTF-8 text (corrupt?): {exc}", path=path) from None
    try:
        docs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"is not valid JSON (truncated or corrupt?): {exc.msg} at line {exc.lineno}, column {exc.colno}",
            path=path,
        ) from None
    return tuple(parse_mlearn_docs(docs, path, element, split))


def read_zuo_extxyz(tarball: str | os.PathLike, element: str, split: str) -> list[Frame]:
    """Read ``ZuoEtAl2020/<El>_{train,test}.xyz`` from the ACEData tarball (energy and
    forces; no group labels, no stress). Kept for the process like :func:`read_mlearn_json`."""
    try:
        st = Path(tarball).stat()
    except OSError as exc:
        raise DataError(f"cannot be read: {exc}", path=tarball) from None
    return list(_read_zuo_cached(str(tarball), st.st_size, st.st_mtime_ns, element, split))


@lru_cache(maxsize=32)
def _read_zuo_cached(tarball: str, size: int, mtime_ns: int, element: str, split: str) -> tuple[Frame, ...]:
    from ase.io import read

    short = SPLITS.get(split, split)
    member = f"ZuoEtAl2020/{element}_{short}.xyz"
    where = f"{tarball}::{member}"
    try:
        with tarfile.open(tarball) as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise KeyError(member)
            text = fh.read().decode()
    except (OSError, tarfile.TarError, KeyError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {member}: {type(exc).__name__}: {exc}", path=tarball) from None
    try:
        images = read(io.StringIO(text), index=":", format="extxyz")
    except Exception as exc:  # ase raises many types on malformed extxyz
        raise DataError(f"malformed extxyz: {type(exc).__name__}: {exc}", path=where) from None
    frames = []
    for i, atoms in enumerate(images):
        record = f"#{i}"
        results = atoms.calc.results if atoms.calc is not None else {}
        energy = results.get("energy", atoms.info.get("energy"))
        if energy is None:
            raise DataError("no energy", path=where, record=record)
        energy = _finite(energy, "energy", where, record)
        forces = atoms.arrays.get("force", atoms.arrays.get("forces"))
        if forces is None and "forces" in results:
            forces = results["forces"]
        clean = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        symbols = set(clean.get_chemical_symbols())
        if symbols != {element}:
            raise DataError(f"expected only {element}, found {sorted(symbols)}", path=where, record=record)
        frames.append(
            Frame(
                atoms=clean, energy_ev=energy, element=element, split=short, index=i,
                source=f"{where}#{i}", group=None, description="",
                forces_ev_per_a=None if forces is None else np.asarray(forces, dtype=float),
            )
        )
    return tuple(frames)


def load_mlearn_frames(
    elements: Iterable[str] = ELEMENTS,
    splits: Iterable[str] = ("training", "test"),
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> list[Frame]:
    """All frames of the given elements and splits, from JSON where pinned, else from the
    extxyz tarball (Ni and Cu training)."""
    frames: list[Frame] = []
    for el in elements:
        if el not in ELEMENTS:
            raise DataError(f"unknown mlearn element {el!r}; choose from {', '.join(ELEMENTS)}")
        for split in splits:
            pinned = pinned_json(el, split)
            if pinned is not None:
                frames += read_mlearn_json(fetch(pinned, data_dir, download=download), el, split)
            else:
                tarball = fetch(ACEDATA_TARBALL, data_dir, download=download)
                frames += read_zuo_extxyz(tarball, el, split)
    return frames


# ------------------------------------------------------------------------ the data set

_DESCRIPTION = re.compile(
    r"^(?P<el>[A-Z][a-z]?)_surface_mp/(?P=el)_(?P<mpid>mp-\d+)_"
    r"\((?P<h>-?\d+)_(?P<k>-?\d+)_(?P<l>-?\d+)\)(?P<rec>_reconstructed)?$"
)


def parse_surface_description(description: str) -> tuple[str, str, tuple[int, int, int], bool]:
    """``"Mo_surface_mp/Mo_mp-129_(1_1_0)"`` -> ("Mo", "mp-129", (1, 1, 0), False)."""
    m = _DESCRIPTION.match(description)
    if m is None:
        raise ValueError(
            f"surface description {description!r} does not look like "
            "'<El>_surface_mp/<El>_mp-<id>_(h_k_l)[_reconstructed]'"
        )
    hkl = (int(m["h"]), int(m["k"]), int(m["l"]))
    return m["el"], m["mpid"], hkl, m["rec"] is not None


def _bulk_for_element(element: str, frames: list[Frame], notes: list[str]) -> BulkRecord | None:
    labelled = [f for f in frames if f.description == "Ground state crystal"]
    if labelled:
        f = labelled[0]
        return BulkRecord(
            id=f"{element}/{f.split}/bulk/ground_state_crystal", element=element,
            atoms=f.atoms, energy_ev=f.energy_ev, split=f.split, source=f.source,
            note='labelled "Ground state crystal"',
        )
    try:
        i = geometry.select_reference_bulk(
            [f.atoms for f in frames], [f.energy_ev for f in frames],
            forces=[f.forces_ev_per_a for f in frames],
        )
    except ValueError as exc:
        notes.append(f"{element}: no bulk reference ({exc}); its slabs have no DFT gamma")
        return None
    f = frames[i]
    notes.append(
        f"{element}: no frame labelled 'Ground state crystal'; bulk reference = lowest-energy "
        f"undistorted bulk frame {f.source} ({f.energy_per_atom_ev:.6f} eV/atom)"
    )
    return BulkRecord(
        id=f"{element}/{f.split}/bulk/frame{f.index:03d}", element=element, atoms=f.atoms,
        energy_ev=f.energy_ev, split=f.split, source=f.source,
        note="lowest-energy undistorted bulk frame (no label in source)",
    )


def build_surface_dataset(frames: list[Frame], name: str = "mlearn-surfaces") -> Dataset:
    """Bulk references and slabs of every element in ``frames`` (see module docs)."""
    notes: list[str] = []
    bulks: dict[str, BulkRecord] = {}
    surfaces: list[SurfaceRecord] = []
    by_element: dict[str, list[Frame]] = {}
    for f in frames:
        by_element.setdefault(f.element, []).append(f)
    for element, el_frames in by_element.items():
        bulk = _bulk_for_element(element, el_frames, notes)
        if bulk is not None:
            bulks[bulk.id] = bulk
        n_inferred = n_unmatched = 0
        for f in el_frames:
            if f.group == "Surface":
                try:
                    el, mpid, hkl, rec = parse_surface_description(f.description)
                except ValueError as exc:
                    raise DataError(str(exc), path=f.source.rsplit("#", 1)[0], record=f"#{f.index}") from None
                label, source_kind = f.description.split("/", 1)[1], "label"
                termination = None
            elif f.group is None:
                try:
                    axis = geometry.vacuum_axis(f.atoms)
                except ValueError:
                    axis = None
                if axis is None:
                    continue  # an unlabelled bulk frame, not a slab
                if bulk is None:
                    hkl, rec = None, None
                    n_unmatched += 1
                else:
                    match = miller.infer_miller_index(f.atoms, bulk.atoms)
                    hkl, rec = match.hkl, False
                    if hkl is None:
                        n_unmatched += 1
                        notes.append(
                            f"{f.source}: slab whose Miller index could not be inferred "
                            f"(candidates {list(match.candidates)}); kept with index 'unknown'"
                        )
                label = f"{element}_{f.split}_frame{f.index:03d}"
                source_kind, termination = "inferred", None
                n_inferred += 1
            else:
                continue
            surfaces.append(
                SurfaceRecord(
                    id=f"{element}/{f.split}/{label}", element=element, atoms=f.atoms,
                    energy_ev=f.energy_ev, bulk_id=bulk.id if bulk else None,
                    bulk_energy_per_atom_ev=bulk.energy_per_atom_ev if bulk else None,
                    miller=hkl, miller_source=source_kind, termination=termination,
                    reconstructed=rec, label=label, split=f.split, source=f.source,
                )
            )
        if n_inferred:
            notes.append(
                f"{element}: {n_inferred} slabs found by their vacuum gap in unlabelled frames, "
                f"Miller index inferred for {n_inferred - n_unmatched}"
            )
    return Dataset(name=name, bulks=bulks, surfaces=surfaces, notes=notes)


def load_mlearn_surfaces(
    data_dir: str | os.PathLike | None = None,
    elements: Iterable[str] = ELEMENTS,
    *,
    download: bool = True,
) -> Dataset:
    """The ``mlearn-surfaces`` data set: every "Surface" frame of the six elements'
    training and test sets with each element's bulk reference."""
    frames = load_mlearn_frames(elements, data_dir=data_dir, download=download)
    ds = build_surface_dataset(frames, name="mlearn-surfaces")
    ds.provenance = {
        "source": f"materialsvirtuallab/mlearn@{MLEARN_COMMIT}; Ni/Cu training: ACEsuit/ACEData@{ACEDATA_COMMIT}",
        "licence": LICENCE,
        "reference": "Zuo et al., J. Phys. Chem. A 124, 731 (2020)",
    }
    return ds
