"""The Materials Project elemental surface data set (Tran et al., Sci. Data 3, 160080, 2016).

``surfbench data build mp-surfaces`` fetches it with the official client (mp-api) and the
user's key (``MP_API_KEY``): every surface-properties document (``SurfacePropDoc``: the
bulk's conventional structure and, per surface, Miller index, surface energy, reconstruction
flag, area fraction and the slab structure) and, for each material, the GGA/GGA+U thermo
document with the bulk energy per atom. Documents are validated against the emmet-core models.

The MP surface documents carry no slab total energy. surfbench stores the slab with the
energy that reproduces MP's surface energy exactly with the MP bulk energy,
``E_slab = n e_bulk + 2 A gamma_MP`` (A from the slab's in-plane cell vectors), so the DFT
gamma of every record equals MP's value; a model's gamma uses its own bulk energy as always.
Slabs whose element has no GGA bulk energy keep NaN and are reported.

Output: one gzip-compressed JSON file per MP database version plus a manifest (counts, MP
database version, emmet-core and mp-api versions, date, sha256 of the data file). Loading
checks the sha256 and that every document carries the manifest's database version; a file
that mixes versions is refused.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from surfbench.data.errors import DataError
from surfbench.data.sources import BuiltFiles, read_manifest_json
from surfbench.records import BulkRecord, Dataset, SurfaceRecord, in_plane_area_a2
from surfbench.util import package_version, sha256_of

FORMAT_VERSION = 1
THERMO_TYPE = "GGA_GGA+U"
ENV_API_KEY = "MP_API_KEY"


class SurfaceSource(Protocol):
    """What the builder needs from the Materials Project (the real one is :class:`MPApiSource`)."""

    def db_version(self) -> str: ...

    def surface_docs(self, elements: Iterable[str] | None) -> list[Any]: ...

    def thermo_docs(self, material_ids: list[str]) -> list[Any]: ...


class MPApiSource:
    """The Materials Project through the official client ``mp_api.client.MPRester``."""

    def __init__(self, api_key: str | None = None):
        key = api_key or os.environ.get(ENV_API_KEY)
        if not key:
            raise DataError(f"no Materials Project API key: set {ENV_API_KEY} or pass --api-key")
        try:
            from mp_api.client import MPRester
        except ImportError as exc:
            raise DataError("building mp-surfaces needs the mp-api package: pip install mp-api") from exc
        try:
            self._mpr = MPRester(key, mute_progress_bars=True)
        except Exception as exc:  # mp-api checks the key and the connection here
            raise DataError(f"cannot connect to the Materials Project ({type(exc).__name__}: {exc}); "
                            "building mp-surfaces needs internet access") from exc

    def db_version(self) -> str:
        return str(self._mpr.db_version)

    def surface_docs(self, elements: Iterable[str] | None) -> list[Any]:
        docs = self._mpr.materials.surface_properties.search()
        if elements is not None:
            wanted = set(elements)
            docs = [d for d in docs if d.pretty_formula in wanted]
        return docs

    def thermo_docs(self, material_ids: list[str]) -> list[Any]:
        return self._mpr.materials.thermo.search(material_ids=material_ids, thermo_types=[THERMO_TYPE])


def _validate_surface_doc(raw: Any, where: str):
    from emmet.core.surface_properties import SurfacePropDoc

    try:
        return raw if isinstance(raw, SurfacePropDoc) else SurfacePropDoc.model_validate(raw)
    except Exception as exc:  # pydantic.ValidationError
        raise DataError(f"not a valid emmet-core SurfacePropDoc: {exc}", record=where) from None


def _validate_thermo_doc(raw: Any, where: str):
    from emmet.core.thermo import ThermoDoc

    try:
        return raw if isinstance(raw, ThermoDoc) else ThermoDoc.model_validate(raw)
    except Exception as exc:
        raise DataError(f"not a valid emmet-core ThermoDoc: {exc}", record=where) from None


def build(source: SurfaceSource, output_dir: str | os.PathLike, elements: Iterable[str] | None = None) -> BuiltFiles:
    """Fetch, validate and write the data set; returns the data file and its manifest."""
    db_version = source.db_version()
    surface_docs = [_validate_surface_doc(d, f"surface doc #{i}") for i, d in enumerate(source.surface_docs(elements))]
    ids = sorted({str(d.material_id) for d in surface_docs})
    thermo_docs = [_validate_thermo_doc(d, f"thermo doc #{i}") for i, d in enumerate(source.thermo_docs(ids))]
    payload = {
        "format": FORMAT_VERSION,
        "db_version": db_version,
        "thermo_type": THERMO_TYPE,
        "surface_docs": [{"db_version": db_version, **d.model_dump(mode="json")} for d in surface_docs],
        "thermo_docs": [{"db_version": db_version, **d.model_dump(mode="json")} for d in thermo_docs],
    }
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"mp-surfaces-{db_version}.json.gz"
    with gzip.open(data, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh)
    n_slabs = sum(len(d.surfaces or []) for d in surface_docs)
    manifest = {
        "name": "mp-surfaces",
        "format": FORMAT_VERSION,
        "db_version": db_version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "file": data.name,
        "sha256": sha256_of(data),
        "counts": {
            "materials": len(surface_docs),
            "slabs": n_slabs,
            "elements": len({d.pretty_formula for d in surface_docs}),
            "thermo_docs": len(thermo_docs),
        },
        "versions": {d: package_version(d) for d in ("surfbench", "emmet-core", "mp-api", "pymatgen")},
        "reference": "Tran et al., Sci. Data 3, 160080 (2016)",
        "licence": "CC BY 4.0 (Materials Project data)",
    }
    man = out / f"mp-surfaces-{db_version}.manifest.json"
    man.write_text(json.dumps(manifest, indent=2) + "\n")
    return BuiltFiles(data, man)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    return read_manifest_json(path, ("file", "sha256", "db_version", "counts"))


def load(manifest_path: str | os.PathLike, expected_sha256: str | None = None) -> Dataset:
    """Load a built data set from its manifest: sha256 and database version are checked."""
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    data = manifest_path.parent / manifest["file"]
    if not data.is_file():
        raise DataError(f"data file {manifest['file']} named by the manifest is missing", path=manifest_path)
    actual = sha256_of(data)
    for expected, what in ((manifest["sha256"], "the manifest's"), (expected_sha256, "the pinned")):
        if expected and actual != expected:
            raise DataError(f"sha256 {actual} differs from {what} {expected}: the file was changed or is "
                            "another version; rebuild or download it again", path=data)
    try:
        with gzip.open(data, "rt", encoding="utf-8") as fh:
            payload = json.load(fh)
    except (OSError, EOFError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot be read: {exc}", path=data) from None
    version = manifest["db_version"]
    versions = {payload.get("db_version")} | {d.get("db_version") for d in payload["surface_docs"] + payload["thermo_docs"]}
    if versions != {version}:
        raise DataError(f"mixes Materials Project database versions {sorted(map(str, versions))}; "
                        f"the manifest says {version}. Rebuild it in one go.", path=data)
    surface_docs = [_validate_surface_doc({k: v for k, v in d.items() if k != "db_version"}, f"{data} surface doc #{i}")
                    for i, d in enumerate(payload["surface_docs"])]
    thermo_docs = [_validate_thermo_doc({k: v for k, v in d.items() if k != "db_version"}, f"{data} thermo doc #{i}")
                   for i, d in enumerate(payload["thermo_docs"])]
    ds = to_dataset(surface_docs, thermo_docs, name=f"mp-surfaces-{version}")
    ds.provenance.update(manifest=str(manifest_path), db_version=str(version), sha256=actual)
    n = manifest["counts"]
    if len(ds.surfaces) != n["slabs"] or len(surface_docs) != n["materials"]:
        raise DataError(f"holds {len(surface_docs)} materials / {len(ds.surfaces)} slabs, the manifest says "
                        f"{n['materials']} / {n['slabs']}", path=data)
    return ds


def to_dataset(surface_docs: list[Any], thermo_docs: list[Any], name: str = "mp-surfaces") -> Dataset:
    """Records from validated emmet-core documents (see the module docs for the slab energy)."""
    e_bulk = {}
    for t in thermo_docs:
        value = t.uncorrected_energy_per_atom if t.uncorrected_energy_per_atom is not None else t.energy_per_atom
        e_bulk[str(t.material_id)] = float(value)
    bulks: dict[str, BulkRecord] = {}
    surfaces: list[SurfaceRecord] = []
    notes: list[str] = []
    for doc in surface_docs:
        mid = str(doc.material_id)
        element = doc.pretty_formula
        if doc.structure is None:
            raise DataError("surface document without the bulk structure", record=mid)
        bulk_atoms = AseAtomsAdaptor.get_atoms(Structure.from_dict(_as_dict(doc.structure)))
        energy = e_bulk.get(mid)
        bulk = None
        if energy is None:
            notes.append(f"{mid} ({element}): no {THERMO_TYPE} bulk energy; its slabs have no DFT gamma")
        else:
            bulk = BulkRecord(id=f"{mid}/bulk", element=element, atoms=bulk_atoms,
                              energy_ev=energy * len(bulk_atoms), source=f"{mid} thermo {THERMO_TYPE}")
            bulks[bulk.id] = bulk
        for j, s in enumerate(doc.surfaces or []):
            where = f"{mid} surface #{j}"
            if s.structure is None or s.miller_index is None:
                raise DataError("surface without a slab structure or Miller index", record=where)
            slab = AseAtomsAdaptor.get_atoms(Structure.from_dict(_as_dict(s.structure)))
            slab.pbc = True
            area = in_plane_area_a2(slab, 2)
            gamma = s.surface_energy_EV_PER_ANG2
            if gamma is None and s.surface_energy is not None:
                from surfbench.units import EV_PER_A2_IN_J_PER_M2

                gamma = s.surface_energy / EV_PER_A2_IN_J_PER_M2
            if gamma is None or bulk is None:
                slab_energy = math.nan
            else:
                slab_energy = len(slab) * bulk.energy_per_atom_ev + 2.0 * area * gamma
            hkl = tuple(int(i) for i in s.miller_index)
            label = "".join(str(i) for i in hkl) + ("-reconstructed" if s.is_reconstructed else "")
            surfaces.append(SurfaceRecord(
                id=f"{mid}/{label}/{j}", element=element, atoms=slab, energy_ev=slab_energy,
                bulk_id=bulk.id if bulk else None,
                bulk_energy_per_atom_ev=bulk.energy_per_atom_ev if bulk else None,
                miller=hkl, reconstructed=bool(s.is_reconstructed), label=label, source=where,
            ))
    return Dataset(name, bulks, surfaces, notes=notes)


def _as_dict(structure: Any) -> dict:
    return structure.as_dict() if hasattr(structure, "as_dict") else dict(structure)


def fetch_release(manifest_url: str, data_url: str, sha256: str, cache: str | os.PathLike | None = None) -> Dataset:
    """Download a published build (manifest + data file) from pinned URLs, check the data
    file's sha256 against the pinned value, and load it. For users without an MP API key."""
    import pooch

    from surfbench.data.sources import cache_dir

    folder = Path(cache) if cache else cache_dir() / "mp_surfaces"
    try:
        data = pooch.retrieve(data_url, known_hash=f"sha256:{sha256}", path=folder,
                              fname=data_url.rsplit("/", 1)[-1], progressbar=False)
        manifest = pooch.retrieve(manifest_url, known_hash=None, path=folder,
                                  fname=manifest_url.rsplit("/", 1)[-1], progressbar=False)
    except ValueError as exc:  # pooch: hash mismatch
        raise DataError(f"sha256 check failed: {exc}", path=data_url) from None
    except Exception as exc:
        raise DataError(f"download failed ({type(exc).__name__}: {exc}); offline, build the data set with an "
                        f"MP API key or pass the local manifest path", path=data_url) from exc
    if Path(data).name != read_manifest(manifest)["file"]:
        raise DataError(f"the manifest names {read_manifest(manifest)['file']}, not {Path(data).name}", path=manifest)
    return load(manifest, expected_sha256=sha256)
