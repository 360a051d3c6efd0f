"""Per-site descriptors of structures: SOAP (dscribe, model-independent) or a model's own
per-atom features, with a cache keyed by structure hash and descriptor settings.

One interface: :func:`site_descriptors` ``(atoms_list, method, model=None) -> list of
(n_sites, n_features) arrays``, one row per atom in the order of ``atoms``.

* ``method="soap"`` (default): dscribe's SOAP power spectrum, periodic, with the settings of
  :class:`DescriptorSettings` (cutoff ``r_cut`` in Angstrom, ``n_max``, ``l_max``, Gaussian
  width ``sigma`` in Angstrom). ``species_mode="agnostic"`` (default) describes the geometry
  alone (every atom taken as one species): environments of different elements with the same
  lattice are then close, and the map groups structures by lattice as well as by element
  (the distances of :mod:`surfbench.analysis.domain` compare a site only with reference sites
  of its own element, so chemistry still counts there). ``species_mode="element"``: one channel
  per element; the species list fixes the feature layout, must cover every structure and is
  part of the cache key; with the compression ``"mu1nu1"`` the features of an atom lie in the
  block of its own element, so sites of different elements are orthogonal and a map separates
  the elements only.
* ``method="model"``: the invariant per-atom features a potential computes before its energy
  read-out, from a loaded model (:class:`surfbench.models.base.LoadedModel`):

  - SevenNet, CHGNet and matgl's TensorNet / M3GNet: the input of the model's per-atom
    energy read-out, taken by :class:`surfbench.models.features.FeatureTap` from one
    energy-only forward pass, which also gives the model's energy (eV; cached beside the
    features, :func:`model_energies_and_features`); SevenNet: the node features after
    ``reduce_input_to_hidden`` (64 per atom), CHGNet: the atom features after the last atom
    convolution (64), TensorNet: the node features entering ``final_layer`` (128);
  - MACE: ``MACECalculator.get_descriptors(atoms, invariants_only=True)``, the invariant
    node features of every interaction layer, concatenated.

  Other families (MatterSim, MTP, NequIP, SNAP, ASE calculators) are not wired up here and
  raise :class:`DescriptorError` saying so.

Structures are evaluated as fully periodic cells (as surfbench evaluates energies): a slab's
vacuum separates its periodic images.

Cache: :class:`DescriptorCache` keeps one ``.npz`` per settings key in a folder (by default
``surfbench-descriptors/`` beside the result store), an array per structure hash
(:func:`surfbench.records.structure_hash`), in float32; a tapped model's energies (eV, float64)
lie beside them in ``<key>.energies.json``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import Atoms

from surfbench.records import structure_hash

METHODS = ("soap", "model")
#: "agnostic": SOAP of the geometry alone (every atom one species); "element": per-element channels
SPECIES_MODES = ("agnostic", "element")

#: folder of the cache beside the result store
CACHE_FOLDER = "surfbench-descriptors"


class DescriptorError(ValueError):
    """Descriptors cannot be computed (bad settings, a species not covered, a model family
    without per-site features)."""


@dataclass(frozen=True)
class DescriptorSettings:
    """What determines the descriptor values (and so the cache key).

    ``species``: element symbols of the SOAP feature layout (sorted; empty: taken from the
    structures at hand by :func:`site_descriptors`). ``r_cut`` and ``sigma`` in Angstrom.
    ``model``: the model fingerprint id for ``method="model"``.
    """

    method: str = "soap"
    species: tuple[str, ...] = ()
    r_cut: float = 5.0
    n_max: int = 6
    l_max: int = 4
    sigma: float = 0.5
    compression: str = "mu1nu1"
    model: str = ""
    species_mode: str = "agnostic"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DescriptorError(f"unknown descriptor method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.species_mode not in SPECIES_MODES:
            raise DescriptorError(f"unknown species mode {self.species_mode!r}; use one of {', '.join(SPECIES_MODES)}")
        if self.method == "soap":
            if not self.r_cut > 1.0:
                raise DescriptorError(f"SOAP r_cut must exceed 1 Angstrom, got {self.r_cut}")
            if self.n_max < 1 or self.l_max < 0 or not self.sigma > 0:
                raise DescriptorError(f"bad SOAP settings n_max={self.n_max}, l_max={self.l_max}, sigma={self.sigma}")
        object.__setattr__(self, "species", tuple(sorted(set(self.species))))

    @property
    def key(self) -> str:
        """A short hash of the settings (file name of the cache)."""
        payload = asdict(self)
        if self.method == "model":  # SOAP parameters do not apply; v2: the read-out input of a tapped model
            payload = {"method": "model", "model": self.model, "features": 2}
        text = json.dumps(payload, sort_keys=True)
        return f"{self.method}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def describe(self) -> str:
        if self.method == "model":
            return f"per-atom features of {self.model}"
        species = ("species-agnostic" if self.species_mode == "agnostic"
                   else f"compression {self.compression}, species {', '.join(self.species)}")
        return (f"SOAP (dscribe; r_cut {self.r_cut:g} Angstrom, n_max {self.n_max}, l_max {self.l_max}, "
                f"sigma {self.sigma:g} Angstrom, {species})")


# ---------------------------------------------------------------------------- cache
@dataclass
class DescriptorCache:
    """Descriptors on disk: ``<folder>/<settings.key>.npz`` with one float32 array per structure
    hash. Arrays are loaded on first use and written back when new ones were added."""

    folder: Path
    _loaded: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)

    def path(self, settings: DescriptorSettings) -> Path:
        return self.folder / f"{settings.key}.npz"

    def _arrays(self, settings: DescriptorSettings) -> dict[str, np.ndarray]:
        if settings.key not in self._loaded:
            path = self.path(settings)
            arrays: dict[str, np.ndarray] = {}
            if path.is_file():
                try:
                    with np.load(path) as npz:
                        arrays = {k: npz[k] for k in npz.files}
                except (OSError, ValueError) as exc:
                    raise DescriptorError(f"descriptor cache {path} cannot be read ({exc}); delete it") from exc
            self._loaded[settings.key] = arrays
        return self._loaded[settings.key]

    def get(self, settings: DescriptorSettings, hashes: Sequence[str]) -> list[np.ndarray | None]:
        arrays = self._arrays(settings)
        return [arrays.get(h) for h in hashes]

    def put(self, settings: DescriptorSettings, new: dict[str, np.ndarray]) -> None:
        if not new:
            return
        arrays = self._arrays(settings)
        arrays.update({h: np.asarray(a, dtype=np.float32) for h, a in new.items()})
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(settings)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        (self.folder / f"{settings.key}.json").write_text(json.dumps(asdict(settings), indent=1), encoding="utf-8")


    def _energies_path(self, settings: DescriptorSettings) -> Path:
        return self.folder / f"{settings.key}.energies.json"

    def get_energies(self, settings: DescriptorSettings, hashes: Sequence[str]) -> list[float | None]:
        """Energies (eV) stored with a tapped model's features, by structure hash (None: not stored)."""
        if f"{settings.key}.energies" not in self._loaded:
            path = self._energies_path(settings)
            try:
                data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            except (OSError, ValueError) as exc:
                raise DescriptorError(f"descriptor cache {path} cannot be read ({exc}); delete it") from exc
            self._loaded[f"{settings.key}.energies"] = data
        data = self._loaded[f"{settings.key}.energies"]
        return [data.get(h) for h in hashes]

    def put_energies(self, settings: DescriptorSettings, new: dict[str, float]) -> None:
        if not new:
            return
        self.get_energies(settings, [])
        data = self._loaded[f"{settings.key}.energies"]
        data.update({h: float(e) for h, e in new.items()})
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._energies_path(settings)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)

    def get_matrix(self, name: str) -> np.ndarray | None:
        """A derived array stored under ``name`` (e.g. a structure kernel), or None."""
        path = self.folder / f"{name}.npy"
        return np.load(path) if path.is_file() else None

    def put_matrix(self, name: str, array: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{name}.tmp.npy"
        np.save(tmp, np.asarray(array))
        tmp.replace(self.folder / f"{name}.npy")


# ---------------------------------------------------------------------------- SOAP
def _soap(atoms_list: Sequence[Atoms], settings: DescriptorSettings) -> list[np.ndarray]:
    from dscribe.descriptors import SOAP

    agnostic = settings.species_mode == "agnostic"
    species = set(settings.species)
    for i, atoms in enumerate(atoms_list):
        if agnostic:
            break
        extra = set(atoms.get_chemical_symbols()) - species
        if extra:
            raise DescriptorError(
                f"structure {i} ({atoms.get_chemical_formula()}) has species {sorted(extra)} outside the SOAP "
                f"species {list(settings.species)}")
    soap = SOAP(species=["H"] if agnostic else list(settings.species), r_cut=settings.r_cut, n_max=settings.n_max,
                l_max=settings.l_max, sigma=settings.sigma, periodic=True, sparse=False,
                compression={"mode": "off" if agnostic else settings.compression})
    out = []
    for atoms in atoms_list:
        work = atoms.copy()
        work.pbc = True
        if agnostic:  # one pseudo-species: the geometry alone
            work.numbers = np.ones(len(work), dtype=int)
        out.append(np.asarray(soap.create(work), dtype=float).reshape(len(work), -1))
    return out


# ---------------------------------------------------------------------------- model features
def _periodic(atoms: Atoms) -> Atoms:
    work = atoms.copy()
    work.pbc = True
    work.calc = None
    return work


def _mace_features(inner, atoms_list: Sequence[Atoms]) -> list[np.ndarray]:
    out = []
    for atoms in atoms_list:
        desc = inner.get_descriptors(_periodic(atoms), invariants_only=True, num_layers=-1)
        out.append(np.asarray(desc, dtype=float).reshape(len(atoms), -1))
    return out


def model_supports_features(model) -> bool:
    """Whether surfbench can take per-site features from this loaded model."""
    return _tapped(model) or type(model.backend).__name__ == "MaceBackend"


def _check_model(model) -> None:
    if model is None:
        raise DescriptorError("method 'model' needs a loaded model (model=load_model(name))")
    if not model_supports_features(model):
        from surfbench.models.features import tap_families

        kind = type(model.backend).__name__
        raise DescriptorError(
            f"model {model.name} ({model.spec.family or kind}) exposes no per-site features in surfbench; "
            f"per-site features are implemented for {tap_families()}, MACE. Use the SOAP descriptor (method 'soap') instead.")


def _tapped(model) -> bool:
    from surfbench.models.features import supports_readout

    return supports_readout(model)


def _model_features(model, atoms_list: Sequence[Atoms]) -> tuple[list[np.ndarray], list[float] | None]:
    """Features of each structure, and for a tapped family the model's energies (eV) of the same pass."""
    from surfbench.models.features import FeatureError, tap_for

    _check_model(model)
    if not _tapped(model):  # MACE
        return _mace_features(model.calculator.inner, atoms_list), None
    try:
        tap = tap_for(model)
        out = [tap.energy_and_features(a) for a in atoms_list]
    except FeatureError as exc:
        raise DescriptorError(f"model {model.name}: {exc}") from exc
    return [h for _, h, _ in out], [e for e, _, _ in out]


# ---------------------------------------------------------------------------- entry point
def settings_for(atoms_list: Sequence[Atoms], method: str = "soap", model=None, **soap) -> DescriptorSettings:
    """Settings for ``atoms_list``: for SOAP, the species of the structures unless given."""
    if method == "model":
        _check_model(model)
        return DescriptorSettings(method="model", model=model.fingerprint.id)
    if not soap.get("species") and soap.get("species_mode", "agnostic") == "element":
        soap["species"] = tuple(sorted({s for a in atoms_list for s in a.get_chemical_symbols()}))
    return DescriptorSettings(method=method, **soap)


def site_descriptors(
    atoms_list: Sequence[Atoms], method: str = "soap", model=None, *,
    settings: DescriptorSettings | None = None, cache: DescriptorCache | None = None,
) -> list[np.ndarray]:
    """Per-site descriptors, one ``(len(atoms), n_features)`` float array per structure.

    ``method``: ``"soap"`` or ``"model"`` (``model``: a :class:`LoadedModel` of a family with
    per-site features). ``settings`` overrides the defaults (for SOAP: its species must cover
    every structure); ``cache`` reuses and stores descriptors by structure hash.
    """
    atoms_list = list(atoms_list)
    if settings is None:
        settings = settings_for(atoms_list, method, model)
    elif settings.method != method:
        raise DescriptorError(f"settings are for method {settings.method!r}, not {method!r}")
    if method == "model":
        _check_model(model)
        if settings.model != model.fingerprint.id:
            settings = replace(settings, model=model.fingerprint.id)
    for i, atoms in enumerate(atoms_list):
        if len(atoms) == 0:
            raise DescriptorError(f"structure {i} has no atoms")
    if method == "model" and _tapped(model):  # features and energies of one pass, cached together
        return model_energies_and_features(model, atoms_list, cache=cache)[1]
    hashes = [structure_hash(a) for a in atoms_list]
    found = cache.get(settings, hashes) if cache is not None else [None] * len(atoms_list)
    todo = [i for i, f in enumerate(found) if f is None or len(f) != len(atoms_list[i])]
    if todo:
        batch = [atoms_list[i] for i in todo]
        computed = _soap(batch, settings) if method == "soap" else _model_features(model, batch)[0]
        for i, arr in zip(todo, computed):
            if not np.all(np.isfinite(arr)):
                raise DescriptorError(f"structure {i} ({atoms_list[i].get_chemical_formula()}): "
                                      "non-finite descriptor values")
            found[i] = arr.astype(np.float32)  # as stored in the cache: a rerun gives the same numbers
        if cache is not None:
            cache.put(settings, {hashes[i]: found[i] for i in todo})
    return [np.asarray(f, dtype=float) for f in found]


def model_energies_and_features(model, atoms_list: Sequence[Atoms], *,
                                cache: DescriptorCache | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """A tapped model's energies (eV, one per structure) and per-atom features of ``atoms_list``,
    both from one energy-only forward pass per structure not yet in ``cache`` (features in
    float32 precision as stored, energies float64)."""
    atoms_list = list(atoms_list)
    settings = settings_for(atoms_list, "model", model)
    if not _tapped(model):
        from surfbench.models.features import tap_families

        raise DescriptorError(f"model {model.name}: energies and features of one pass are implemented for "
                              f"{tap_families()}")
    hashes = [structure_hash(a) for a in atoms_list]
    n = len(atoms_list)
    feats = cache.get(settings, hashes) if cache is not None else [None] * n
    energies = cache.get_energies(settings, hashes) if cache is not None else [None] * n
    todo = [i for i in range(n) if feats[i] is None or energies[i] is None or len(feats[i]) != len(atoms_list[i])]
    if todo:
        computed, computed_e = _model_features(model, [atoms_list[i] for i in todo])
        for i, arr, e in zip(todo, computed, computed_e):
            feats[i], energies[i] = arr.astype(np.float32), float(e)
        if cache is not None:
            cache.put(settings, {hashes[i]: feats[i] for i in todo})
            cache.put_energies(settings, {hashes[i]: energies[i] for i in todo})
    return np.asarray(energies, dtype=float), [np.asarray(f, dtype=float) for f in feats]
