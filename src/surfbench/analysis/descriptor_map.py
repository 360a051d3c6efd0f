"""The descriptor map of a data set and each structure's distance from a reference set.

:func:`build_map` computes, for every record of a data set (bulks and slabs): its bulk
lattice (fcc, bcc, hcp, diamond, other; a slab takes its bulk record's), its kernel-PCA
coordinates from the structure kernel of its site descriptors, and its out-of-domain distance
from a reference set (:mod:`surfbench.analysis.domain`). The result is model-independent; the
errors of the models are joined later from the result store.

Reference sets (``reference``):

* ``"bulk"``: the bulk records of the data set itself;
* ``"mlearn-train"``: the mlearn training frames (Zuo et al. 2020) of the data set's elements
  without any slab: frames labelled "Surface" and, for the unlabelled Ni/Cu extxyz frames,
  every frame with a vacuum gap of >= 5 Angstrom;
* a path: every frame of an extxyz (or any ASE-readable) file, e.g. a user's training set.

:func:`save_map` writes the table with its settings as JSON into the descriptor folder beside
the result store (``surfbench-descriptors/<data set>--<reference>.map.json``), where the HTML
report finds it (:func:`load_maps`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from surfbench.analysis.descriptors import CACHE_FOLDER, DescriptorCache, DescriptorSettings, site_descriptors
from surfbench.analysis.domain import REDUCE, SITES, reduce_distance, select_sites, site_distances
from surfbench.analysis.kernels import KERNELS, kernel_pca, structure_kernel
from surfbench.analysis.lattice import lattice_type
from surfbench.records import SurfaceRecord

BUILTIN_REFERENCES = ("bulk", "mlearn-train")
MAP_SUFFIX = ".map.json"


@dataclass(frozen=True)
class MapSettings:
    """How the map and the distances are made (stored with the map).

    ``kernel``: "rematch" or "average" (``alpha``: REMatch entropy regularisation);
    ``sites``: "all" or "surface" (``surface_layers`` outermost layers per face);
    ``k``: neighbours of the k-NN distance; ``reduce``: "mean" or "max" over a slab's sites.
    """

    descriptor: DescriptorSettings = field(default_factory=DescriptorSettings)
    kernel: str = "rematch"
    alpha: float = 1.0
    sites: str = "all"
    surface_layers: int = 2
    k: int = 5
    reduce: str = "mean"
    reference: str = "bulk"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; use one of {', '.join(KERNELS)}")
        if self.sites not in SITES:
            raise ValueError(f"unknown site selection {self.sites!r}; use one of {', '.join(SITES)}")
        if self.reduce not in REDUCE:
            raise ValueError(f"unknown reduction {self.reduce!r}; use one of {', '.join(REDUCE)}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")

    @property
    def reference_name(self) -> str:
        if self.reference in BUILTIN_REFERENCES:
            return self.reference
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.reference).name)


@dataclass
class DescriptorMap:
    """One row per record (``table``) plus the settings and timings (s)."""

    dataset: str
    settings: MapSettings
    table: pd.DataFrame
    n_reference_structures: int
    n_reference_sites: int
    timings_s: dict[str, float]
    created_utc: str = ""

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset, "created_utc": self.created_utc,
            "settings": asdict(self.settings), "descriptor": self.settings.descriptor.describe(),
            "reference": self.settings.reference, "reference_name": self.settings.reference_name,
            "n_reference_structures": self.n_reference_structures, "n_reference_sites": self.n_reference_sites,
            "timings_s": self.timings_s,
            "rows": json.loads(self.table.to_json(orient="records")),
        }

    @classmethod
    def from_json(cls, payload: dict) -> DescriptorMap:
        s = dict(payload["settings"])
        desc = dict(s.pop("descriptor"))
        desc["species"] = tuple(desc.get("species", ()))
        settings = MapSettings(descriptor=DescriptorSettings(**desc), **s)
        return cls(payload["dataset"], settings, pd.DataFrame(payload["rows"]), payload["n_reference_structures"],
                   payload["n_reference_sites"], payload.get("timings_s", {}), payload.get("created_utc", ""))


# ---------------------------------------------------------------------------- reference sets
def mlearn_training_structures(elements, data_dir=None, *, download: bool = False,
                               min_vacuum_a: float = 5.0) -> list[Atoms]:
    """The mlearn training frames of ``elements`` without slabs ("Surface" frames, and the
    unlabelled frames with a vacuum gap of at least ``min_vacuum_a`` Angstrom)."""
    from surfbench.data.geometry import vacuum_axis
    from surfbench.data.mlearn import ELEMENTS, load_mlearn_frames

    elements = [e for e in sorted(set(elements)) if e in ELEMENTS]
    if not elements:
        raise ValueError(f"the mlearn training set has none of these elements (it has {', '.join(ELEMENTS)})")
    frames = load_mlearn_frames(elements, ("training",), data_dir, download=download)
    out = []
    for f in frames:
        if f.group == "Surface":
            continue
        if f.group is None and vacuum_axis(f.atoms, min_vacuum_a) is not None:
            continue
        out.append(f.atoms)
    return out


def reference_structures(reference: str, dataset, data_dir=None) -> list[Atoms]:
    """The structures of a reference set (see the module docstring)."""
    if reference == "bulk":
        atoms = [b.atoms for b in dataset.bulks.values()]
        if not atoms:
            raise ValueError(f"data set {dataset.name} has no bulk records to use as the reference set")
        return atoms
    if reference == "mlearn-train":
        return mlearn_training_structures(dataset.elements, data_dir)
    from ase.io import read

    path = Path(reference)
    if not path.is_file():
        raise ValueError(f"reference set {reference!r}: no such file (or use one of {', '.join(BUILTIN_REFERENCES)})")
    try:
        frames = read(path, ":")
    except Exception as exc:  # ASE raises many kinds for unreadable files
        raise ValueError(f"reference set {path}: cannot read it with ASE ({type(exc).__name__}: {exc})") from exc
    frames = frames if isinstance(frames, list) else [frames]
    empty = [i for i, a in enumerate(frames) if len(a) == 0]
    if not frames or empty:
        raise ValueError(f"reference set {path}: {'no frames' if not frames else f'frames {empty} have no atoms'}")
    return frames


# ---------------------------------------------------------------------------- the map
def _lattices(dataset) -> dict[str, str]:
    out = {}
    for bid, b in dataset.bulks.items():
        try:
            out[bid] = lattice_type(b.atoms)
        except ValueError:
            out[bid] = "other"
    return out


def build_map(dataset, settings: MapSettings, *, reference_atoms: list[Atoms] | None = None, data_dir=None,
              cache: DescriptorCache | None = None, model=None, progress=None) -> DescriptorMap:
    """The descriptor map of ``dataset`` (a :class:`surfbench.records.Dataset`).

    ``reference_atoms`` overrides the reference set named in ``settings``; ``model``: the
    loaded model for ``settings.descriptor.method == "model"``; ``progress(text)`` is called
    before each step.
    """
    say = progress or (lambda text: None)
    timings: dict[str, float] = {}
    records = [*dataset.bulks.values(), *dataset.surfaces]
    if len(records) < 2:
        raise ValueError(f"data set {dataset.name} has {len(records)} record(s); a map needs at least 2")
    if reference_atoms is None:
        say(f"reading the reference set {settings.reference}")
        reference_atoms = reference_structures(settings.reference, dataset, data_dir)
    desc = settings.descriptor
    if desc.method == "soap" and desc.species_mode == "element":
        species = {s for r in records for s in r.atoms.get_chemical_symbols()}
        species |= {s for a in reference_atoms for s in a.get_chemical_symbols()}
        if not set(desc.species) >= species:
            from dataclasses import replace

            desc = replace(desc, species=tuple(sorted(species | set(desc.species))))
            settings = MapSettings(**{**asdict(settings), "descriptor": desc})
    elif model is not None and desc.model != model.fingerprint.id:
        from dataclasses import replace

        desc = replace(desc, model=model.fingerprint.id)
        settings = MapSettings(**{**asdict(settings), "descriptor": desc})

    t0 = time.perf_counter()
    say(f"descriptors of {len(records)} records")
    rec_desc = site_descriptors([r.atoms for r in records], desc.method, model, settings=desc, cache=cache)
    t1 = time.perf_counter()
    say(f"descriptors of {len(reference_atoms)} reference structures")
    ref_desc = site_descriptors(reference_atoms, desc.method, model, settings=desc, cache=cache)
    t2 = time.perf_counter()
    timings["descriptors_records"], timings["descriptors_reference"] = t1 - t0, t2 - t1

    chosen = [select_sites(r.atoms, settings.sites, n_layers=settings.surface_layers) for r in records]
    used = [d[idx] for d, idx in zip(rec_desc, chosen)]
    kernel_key = hashlib.sha256(json.dumps(
        [desc.key, settings.kernel, settings.alpha, settings.sites, settings.surface_layers,
         [r.content_hash for r in records]]).encode()).hexdigest()[:16]
    kernel = cache.get_matrix(f"kernel-{kernel_key}") if cache is not None else None
    if kernel is None or kernel.shape != (len(records), len(records)):
        say(f"{settings.kernel} kernel of {len(records)} records")
        kernel = structure_kernel(used, settings.kernel, alpha=settings.alpha)
        if cache is not None:
            cache.put_matrix(f"kernel-{kernel_key}", kernel)
    t3 = time.perf_counter()
    emb = kernel_pca(kernel, 2)
    t4 = time.perf_counter()
    say(f"k-NN distances to {sum(len(d) for d in ref_desc)} reference sites")
    symbols = [np.asarray(r.atoms.get_chemical_symbols(), dtype=object)[idx] for r, idx in zip(records, chosen)]
    per_site = site_distances(used, ref_desc, settings.k, query_species=symbols,
                              reference_species=[a.get_chemical_symbols() for a in reference_atoms])
    t5 = time.perf_counter()
    timings.update(kernel=t3 - t2, kpca=t4 - t3, distances=t5 - t4)

    lattices = _lattices(dataset)
    rows = []
    for i, r in enumerate(records):
        is_slab = isinstance(r, SurfaceRecord)
        bulk_id = getattr(r, "bulk_id", None) if is_slab else r.id
        rows.append({
            "record_id": r.id, "kind": "slab" if is_slab else "bulk", "element": r.element,
            "miller": (r.miller_str if getattr(r, "miller", None) else None) if is_slab else None,
            "bulk_id": bulk_id, "lattice": lattices.get(bulk_id, "other") if bulk_id else "other",
            "content_hash": r.content_hash, "n_atoms": r.n_atoms, "n_sites": int(len(chosen[i])),
            "pc1": float(emb[i, 0]), "pc2": float(emb[i, 1]) if emb.shape[1] > 1 else 0.0,
            "distance": reduce_distance(per_site[i], settings.reduce),
            "distance_site_max": float(np.max(per_site[i])) if len(per_site[i]) else float("nan"),
        })
    return DescriptorMap(dataset.name, settings, pd.DataFrame(rows), len(reference_atoms),
                         int(sum(len(d) for d in ref_desc)), timings,
                         datetime.now(UTC).isoformat(timespec="seconds"))


# ---------------------------------------------------------------------------- files
def map_folder(store_path: str | Path) -> Path:
    """The descriptor folder beside a result store (file or folder)."""
    p = Path(store_path)
    return (p.parent if p.suffix == ".sqlite" else p) / CACHE_FOLDER


def _dataset_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def save_map(dmap: DescriptorMap, store_path: str | Path) -> Path:
    folder = map_folder(store_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_dataset_slug(dmap.dataset)}--{dmap.settings.reference_name}{MAP_SUFFIX}"
    path.write_text(json.dumps(dmap.to_json(), indent=1), encoding="utf-8")
    return path


def load_maps(store_path: str | Path, dataset: str) -> list[tuple[Path, DescriptorMap]]:
    """The saved maps of ``dataset`` beside a store, the "bulk" reference first."""
    folder = map_folder(store_path)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob(f"{_dataset_slug(dataset)}--*{MAP_SUFFIX}")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload.get("dataset") != dataset:
            continue
        out.append((path, DescriptorMap.from_json(payload)))
    out.sort(key=lambda pm: (pm[1].settings.reference_name != "bulk", pm[1].settings.reference_name))
    return out
