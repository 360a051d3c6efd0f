"""A SYNTHETIC paper-sized surface data set for rehearsals at scale (not DFT data).

``surfbench data build synthetic-paper-scale`` makes a data set shaped like Tran et al.'s
Materials Project set (about 1500 slabs of about 70 elements) to rehearse the store, the
analysis, the report and Dask at the size of the paper without the MP API. Nothing in it is
DFT: the "reference" energies come from a cheap stand-in model, recorded per element.

* Bulks: every element whose reference crystal in ``ase.data.reference_states`` ``ase.build.bulk``
  can build (molecular and noble-gas-atom states are skipped), at ASE's reference lattice
  constants; for every hcp element also an fcc polymorph at the same volume per atom (the MP set
  likewise holds several polymorphs per element: 138 bulks for 73 elements).
* Slabs: every symmetrically distinct slab up to Miller index 3 for cubic and 2 for other
  lattices (Tran et al.), cut from the conventional standard cell with pymatgen's
  ``generate_all_slabs`` (10 Angstrom slab, 10 Angstrom vacuum, centred, primitive in-plane
  cell, LLL-reduced), so several terminations of one Miller index can appear.
* Energies: ASE's EMT for the metals it has parameters for (Al, Ni, Cu, Pd, Ag, Pt, Au), a fast
  universal model (default ``m3gnet-mp-2021.2.8-pes``) for the rest; the stand-in of each
  element and its weights' fingerprint are in the manifest and in each record's ``source``.
  A model evaluated on this set against its own stand-in elements has zero error by
  construction: the set measures cost and scaling, never accuracy.

The build is deterministic (no random step: ``seed`` is recorded as ``null``); the manifest
holds the settings, the package versions, the counts and the sha256 of the data file.
Everything that shows this data set says so: its name starts with ``synthetic-``, its records'
ids with ``SYNTHETIC/``, and its notes, tables and report carry :data:`BANNER`.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from surfbench.data.errors import DataError
from surfbench.data.sources import BuiltFiles, cache_dir, read_manifest_json, require_keys, search_path
from surfbench.records import BulkRecord, Dataset, SurfaceRecord, in_plane_area_a2
from surfbench.util import package_version, sha256_of

NAME = "synthetic-paper-scale"
FORMAT_VERSION = 1
SUBDIR = "synthetic"
#: the words every table and report on this data set carries
BANNER = "SYNTHETIC data set: reference energies from stand-in models (EMT / a universal MLIP), not DFT"
#: metals with EMT parameters whose ASE reference state EMT describes (fcc)
EMT_ELEMENTS = ("Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au")
DEFAULT_STAND_IN = "m3gnet-mp-2021.2.8-pes"
SKIPPED_STATES = ("diatom", "atom")
#: slab settings of Tran et al. (Angstrom)
MIN_SLAB_A = 10.0
MIN_VACUUM_A = 10.0


def is_synthetic(name: str | None) -> bool:
    """Whether a data set (by its stored name) is the synthetic rehearsal set (a user's own
    file that happens to be called synthetic-something is not)."""
    return str(name) == NAME


def candidate_elements() -> list[str]:
    """Elements whose ASE reference state is a crystal (not a molecule or an atom)."""
    from ase.data import chemical_symbols, reference_states

    return [chemical_symbols[z] for z, rs in enumerate(reference_states)
            if z > 0 and rs is not None and rs.get("symmetry") not in SKIPPED_STATES]


def reference_bulks(element: str) -> list[tuple[str, Atoms]]:
    """(crystal label, primitive cell) of an element: its ASE reference crystal, plus an fcc
    polymorph at the same volume per atom when the reference is hcp. A :class:`DataError`
    when ``ase.build.bulk`` cannot build the reference crystal (e.g. it needs an atomic basis
    that ASE does not hold)."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states

    state = reference_states[atomic_numbers[element]]
    try:
        ref = bulk(element)
    except (ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise DataError(f"{element}: ase.build.bulk cannot build its {state.get('symmetry')} reference crystal "
                        f"({exc})") from None
    out = [(state["symmetry"], ref)]
    if state["symmetry"] == "hcp":
        volume = ref.get_volume() / len(ref)
        out.append(("fcc", bulk(element, "fcc", a=(4.0 * volume) ** (1.0 / 3.0))))
    return out


def cut_slabs(bulk_atoms: Atoms) -> list[tuple[tuple[int, ...], float, Atoms]]:
    """(Miller index, termination shift, slab) of every distinct slab (see module docs)."""
    from pymatgen.core.surface import generate_all_slabs
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    sga = SpacegroupAnalyzer(AseAtomsAdaptor.get_structure(bulk_atoms))
    conventional = sga.get_conventional_standard_structure()
    max_index = 3 if sga.get_crystal_system() == "cubic" else 2
    slabs = generate_all_slabs(conventional, max_index, MIN_SLAB_A, MIN_VACUUM_A, center_slab=True,
                               primitive=True, lll_reduce=True)
    out = []
    for s in slabs:
        atoms = AseAtomsAdaptor.get_atoms(s)
        atoms.pbc = True
        out.append((tuple(int(i) for i in s.miller_index), round(float(s.shift), 4), atoms))
    return out


class StandIns:
    """The calculators that give the synthetic "reference" energies, loaded on first use."""

    def __init__(self, model: str = DEFAULT_STAND_IN, device: str = "cpu"):
        self.model_name = model
        self.device = device
        self._model = None
        self._emt = None

    def name_for(self, element: str) -> str:
        return "emt" if element in EMT_ELEMENTS else self.model_name

    def calculator(self, element: str):
        if element in EMT_ELEMENTS:
            if self._emt is None:
                from ase.calculators.emt import EMT

                self._emt = EMT()
            return self._emt
        if self._model is None:
            from surfbench.models import load_model

            self._model = load_model(self.model_name, device=self.device)
        return self._model.calculator

    def fingerprint(self) -> str:
        """The universal stand-in's weights fingerprint (loads it)."""
        if self._model is None:
            from surfbench.models import load_model

            self._model = load_model(self.model_name, device=self.device)
        return self._model.fingerprint.id

    def fingerprints(self) -> dict[str, str]:
        out = {"emt": f"ase {metadata.version('ase')}"}
        if self._model is not None:
            out[self.model_name] = self._model.fingerprint.id
        return out


def _atoms_dict(atoms: Atoms) -> dict[str, Any]:
    return {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
            "cell": np.asarray(atoms.cell).tolist()}


def _atoms(d: dict[str, Any]) -> Atoms:
    return Atoms(numbers=d["numbers"], positions=d["positions"], cell=d["cell"], pbc=True)


def _energy(atoms: Atoms, calculator) -> float:
    atoms = atoms.copy()
    atoms.calc = calculator
    return float(atoms.get_potential_energy())


#: changes whenever the cut or the settings change: per-element parts of older builds are redone
SETTINGS_VERSION = 1


def _read_part(path: Path, stand_in_id: str) -> dict | None:
    """A finished element of an earlier (killed) build with the same stand-in and settings."""
    try:
        done = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if done.get("stand_in") != stand_in_id or done.get("settings") != SETTINGS_VERSION:
        return None
    return done


def _build_element(element: str, models: StandIns) -> dict[str, Any]:
    """Bulks and slabs of one element with their stand-in energies; a :class:`DataError` says
    why an element cannot be built (no crystal from ASE, the stand-in cannot evaluate it)."""
    crystals = reference_bulks(element)
    calc = models.calculator(element)
    source = f"SYNTHETIC stand-in {models.name_for(element)}"
    bulks, slabs = [], []
    try:
        for crystal, bulk_atoms in crystals:
            bulk_id = f"SYNTHETIC/{element}/{crystal}/bulk"
            bulks.append({"id": bulk_id, "element": element, "crystal": crystal, "atoms": _atoms_dict(bulk_atoms),
                          "energy_ev": _energy(bulk_atoms, calc), "source": source})
            counter: dict[str, int] = {}
            for hkl, shift, slab in cut_slabs(bulk_atoms):
                label = "".join(str(i) for i in hkl)
                k = counter[label] = counter.get(label, -1) + 1
                slabs.append({"id": f"SYNTHETIC/{element}/{crystal}/{label}/{k}", "element": element,
                              "crystal": crystal, "miller": list(hkl), "shift": shift, "label": label,
                              "bulk_id": bulk_id, "atoms": _atoms_dict(slab),
                              "energy_ev": _energy(slab, calc), "source": source})
    except Exception as exc:  # the stand-in has no parameters for the element, or fails on it
        raise DataError(f"{element}: stand-in {models.name_for(element)} failed: {type(exc).__name__}: {exc}") from None
    energies = [r["energy_ev"] for r in bulks + slabs]
    if not all(math.isfinite(e) for e in energies):
        raise DataError(f"{element}: stand-in {models.name_for(element)} gave a non-finite energy")
    return {"bulks": bulks, "slabs": slabs}


def build(
    output_dir: str | os.PathLike | None = None, elements: Iterable[str] | None = None, *,
    stand_in: str = DEFAULT_STAND_IN, device: str = "cpu",
    progress: Callable[[str, int, float], None] | None = None,
) -> BuiltFiles:
    """Build the synthetic set (all candidate elements, or ``elements``) into ``output_dir``
    (default ``<cache>/synthetic``); ``progress(element, slabs, seconds)`` after each element."""
    wanted = candidate_elements() if elements is None else list(elements)
    unknown = sorted(set(wanted) - set(candidate_elements()))
    if unknown:
        raise DataError(f"no crystalline ASE reference state for {', '.join(unknown)}")
    models = StandIns(stand_in, device)
    if any(el not in EMT_ELEMENTS for el in wanted):
        models.calculator(next(el for el in wanted if el not in EMT_ELEMENTS))  # a missing stand-in fails first
    out = Path(output_dir) if output_dir else cache_dir() / SUBDIR
    parts = out / "parts"  # one file per element: a killed build keeps what it finished
    parts.mkdir(parents=True, exist_ok=True)
    bulks, slabs, skipped, seconds = [], [], {}, {}
    for element in wanted:
        stand_in_id = (f"emt@ase {metadata.version('ase')}" if element in EMT_ELEMENTS
                       else f"{stand_in}@{models.fingerprint()}")
        part = parts / f"{element}.json"
        done = _read_part(part, stand_in_id)
        if done is None:
            t0 = time.perf_counter()
            try:
                done = _build_element(element, models)
            except DataError as exc:
                skipped[element] = str(exc)
                continue
            done.update(stand_in=stand_in_id, settings=SETTINGS_VERSION, seconds=round(time.perf_counter() - t0, 2))
            tmp = part.with_suffix(".tmp")
            tmp.write_text(json.dumps(done))
            os.replace(tmp, part)
        bulks += done["bulks"]
        slabs += done["slabs"]
        seconds[element] = done["seconds"]
        if progress is not None:
            progress(element, len(done["slabs"]), done["seconds"])
    if not slabs:
        raise DataError(f"no slab could be built for {', '.join(wanted)}")
    data = out / f"{NAME}.json.gz"
    payload = {"format": FORMAT_VERSION, "name": NAME, "synthetic": True, "banner": BANNER,
               "bulks": bulks, "slabs": slabs}
    with gzip.GzipFile(data, "wb", mtime=0) as fh:  # mtime 0: the same build gives the same bytes
        fh.write(json.dumps(payload).encode())
    built_elements = sorted({b["element"] for b in bulks})
    manifest = {
        "name": NAME,
        "synthetic": True,
        "banner": BANNER,
        "format": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "file": data.name,
        "sha256": sha256_of(data),
        "seed": None,
        "deterministic": "no random step; the same versions give the same file",
        "settings": {"max_index_cubic": 3, "max_index_other": 2, "min_slab_angstrom": MIN_SLAB_A,
                     "min_vacuum_angstrom": MIN_VACUUM_A, "generator": "pymatgen generate_all_slabs "
                     "(conventional standard cell, center_slab, primitive, lll_reduce)",
                     "bulks": "ASE reference_states + an fcc polymorph at equal volume per atom for hcp"},
        "stand_ins": {el: models.name_for(el) for el in built_elements},
        "skipped_reason": "elements listed under 'skipped' are left out; the reason is given per element",
        "stand_in_fingerprints": models.fingerprints(),
        "counts": {"elements": len(built_elements), "bulks": len(bulks), "slabs": len(slabs),
                   "atoms_in_slabs": sum(len(s["atoms"]["numbers"]) for s in slabs)},
        "skipped": skipped,
        "seconds_per_element": seconds,
        "versions": {d: package_version(d) for d in ("surfbench", "ase", "pymatgen", "spglib", "numpy", "torch", "matgl")},
    }
    man = out / f"{NAME}.manifest.json"
    man.write_text(json.dumps(manifest, indent=2) + "\n")
    return BuiltFiles(data, man)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    manifest = read_manifest_json(path, ())
    if manifest.get("synthetic") is not True or not is_synthetic(manifest.get("name")):
        raise DataError(f"not a synthetic data set's manifest ('synthetic': true and the name {NAME!r} are "
                        "required)", path=path)
    return require_keys(manifest, ("file", "sha256", "counts", "stand_ins"), path)


def is_synthetic_manifest(path: str | os.PathLike) -> bool:
    try:
        return json.loads(Path(path).read_text()).get("synthetic") is True
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def load(manifest_path: str | os.PathLike) -> Dataset:
    """Load a built synthetic set from its manifest (sha256 and counts checked)."""
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    data = manifest_path.parent / manifest["file"]
    if not data.is_file():
        raise DataError(f"data file {manifest['file']} named by the manifest is missing", path=manifest_path)
    if sha256_of(data) != manifest["sha256"]:
        raise DataError("sha256 differs from the manifest's: the file was changed; build it again", path=data)
    try:
        with gzip.open(data, "rt", encoding="utf-8") as fh:
            payload = json.load(fh)
    except (OSError, EOFError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot be read: {exc}", path=data) from None
    if payload.get("synthetic") is not True:
        raise DataError("the data file is not marked synthetic", path=data)
    bulks: dict[str, BulkRecord] = {}
    for b in payload["bulks"]:
        bulks[b["id"]] = BulkRecord(id=b["id"], element=b["element"], atoms=_atoms(b["atoms"]),
                                    energy_ev=float(b["energy_ev"]), source=b["source"])
    surfaces = []
    for s in payload["slabs"]:
        bulk = bulks.get(s["bulk_id"])
        if bulk is None:
            raise DataError(f"names bulk {s['bulk_id']!r}, which the file does not hold", path=data, record=s["id"])
        atoms = _atoms(s["atoms"])
        if not math.isfinite(s["energy_ev"]) or in_plane_area_a2(atoms, 2) <= 0:
            raise DataError("slab without a finite energy or in-plane area", path=data, record=s["id"])
        surfaces.append(SurfaceRecord(
            id=s["id"], element=s["element"], atoms=atoms, energy_ev=float(s["energy_ev"]), bulk_id=bulk.id,
            bulk_energy_per_atom_ev=bulk.energy_per_atom_ev, miller=tuple(s["miller"]), termination=f"shift {s['shift']}",
            reconstructed=False, label=s["label"], source=s["source"]))
    n = manifest["counts"]
    if len(surfaces) != n["slabs"] or len(bulks) != n["bulks"]:
        raise DataError(f"holds {len(bulks)} bulks / {len(surfaces)} slabs, the manifest says "
                        f"{n['bulks']} / {n['slabs']}", path=data)
    stand = ", ".join(f"{m} ({sum(v == m for v in manifest['stand_ins'].values())} elements)"
                      for m in sorted(set(manifest["stand_ins"].values())))
    ds = Dataset(manifest["name"], bulks, surfaces,
                 notes=[f"{BANNER}. Stand-ins: {stand}. A model has zero error by construction on its own "
                        "stand-in elements: use this set for cost and scaling only."])
    ds.provenance.update(manifest=str(manifest_path), sha256=manifest["sha256"], synthetic="true", banner=BANNER)
    return ds


def find_manifest(data_dir: str | os.PathLike | None = None) -> Path:
    """The synthetic set's manifest in the data folders (``synthetic/`` under each)."""
    for folder in search_path(data_dir):
        candidate = folder / SUBDIR / f"{NAME}.manifest.json"
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(f / SUBDIR) for f in search_path(data_dir))
    raise DataError(f"no build of {NAME} found (searched {searched}). Build it with 'surfbench data build {NAME}' "
                    "(about 11 minutes on 2 CPU cores; --elements for a few)")
