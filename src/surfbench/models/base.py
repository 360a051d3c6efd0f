"""The model interface: a registry entry (:class:`ModelSpec`), a backend that knows how to
fingerprint and build one kind of calculator, and :class:`LoadedModel` tying them together.

A fingerprint is cheap (hashes of weight files, package version, dtype; nothing imported),
so the evaluation can look results up in the store before paying for loading the model.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator

from surfbench.util import package_version


class ModelLoadError(RuntimeError):
    """A model cannot be loaded (missing package, weights not available, bad spec)."""


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the model registry (``models.yaml``)."""

    name: str
    backend: str  # "module:Class" of a ModelBackend subclass
    kwargs: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    package: str = ""  # distribution name on PyPI
    version: str = ""  # version range of the package
    weights: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    training_set: str = ""
    training_set_size: str = ""
    level_of_theory: str = ""
    licence: str = ""
    citation: str = ""
    elements: tuple[str, ...] | None = None
    python: str | None = None  # interpreter of an isolated environment (path or env:NAME)
    #: the evaluated records the model saw in training (schema.json, ``trained_on``), or None
    trained_on: dict[str, Any] | None = None
    note: str = ""

    @property
    def install_hint(self) -> str:
        if not self.package:
            return ""
        return f"pip install torch==2.13.0 '{self.package}{self.version}'"


@dataclass(frozen=True)
class Fingerprint:
    """What identifies the numbers a model produces: weights, package version, dtype."""

    model: str
    package: str
    package_version: str
    weights_sha256: str
    dtype: str
    options: str = ""  # canonical JSON of options that change results

    @property
    def digest(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

    @property
    def id(self) -> str:
        """Short, readable key used in the result store, e.g. ``chgnet-0.3.0@1a2b3c4d5e6f``."""
        return f"{self.model}@{self.digest[:12]}"


def sha256_files(paths: list[Path]) -> str:
    """One sha256 over the (name, content) of several files, in sorted name order."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda q: q.name):
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def package_dir(import_name: str, spec: ModelSpec) -> Path:
    """Folder of an installed package, found without importing it (no torch import)."""
    found = find_spec(import_name)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"model {spec.name} needs the '{import_name}' package; install it with: {spec.install_hint}"
        )
    return Path(list(found.submodule_search_locations)[0])


class ModelBackend(ABC):
    """How one family of potentials is fingerprinted and turned into an ASE calculator."""

    #: dtypes the backend can evaluate in; the first is the default
    supported_dtypes: tuple[str, ...] = ("float64",)

    def __init__(
        self,
        spec: ModelSpec,
        device: str = "cpu",
        dtype: str | None = None,
        weights: str | Path | None = None,
        **kwargs: Any,
    ):
        self.spec = spec
        self.device = device
        dtype = dtype or self.supported_dtypes[0]
        if dtype not in self.supported_dtypes:
            raise ModelLoadError(
                f"model {spec.name}: dtype {dtype!r} is not supported; use one of {list(self.supported_dtypes)}"
            )
        self.dtype = dtype
        #: a user-given path of the weights (``--weights``), overriding the registry's source
        self.weights = weights
        if kwargs:
            raise ModelLoadError(f"model {spec.name}: unknown options {sorted(kwargs)} for {type(self).__name__}")

    @contextmanager
    def package_needed(self, package: str, hint: str | None = None) -> Iterator[None]:
        """Imports inside this block that fail raise :class:`ModelLoadError`: the model needs
        ``package``, installed with ``hint`` (default: the pip command of the entry's range)."""
        try:
            yield
        except ImportError as exc:
            raise ModelLoadError(f"model {self.spec.name} needs the {package!r} package ({exc}); "
                                 + (hint or f"install it with: {self.spec.install_hint}")) from exc

    @abstractmethod
    def weight_files(self) -> list[Path]:
        """Files holding the parameters (raise ModelLoadError when unavailable)."""

    @abstractmethod
    def calculator(self) -> Calculator:
        """Build the ASE calculator (the expensive part)."""

    def user_weights_file(self) -> Path | None:
        """The file given with ``--weights`` (checked), or None."""
        if self.weights is None:
            return None
        path = Path(self.weights).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"{self.spec.name}: --weights {path} is not a file")
        return path

    def resolved_weights(self, what: str) -> Path:
        """``--weights``, or the registry's source (model folder, cache, pinned download). An
        entry without a source stands for any local ``what`` and needs ``--weights``."""
        from surfbench.models.weights import resolve_weights

        w = self.spec.weights or {}
        if self.weights is None and not w.get("url") and not w.get("relpath"):
            raise ModelLoadError(
                f"model {self.spec.name} stands for any local {what}: give the file with "
                f"--weights PATH (load_model({self.spec.name!r}, weights=PATH))"
            )
        return resolve_weights(self.spec, self.weights)

    #: factor that turns the calculator's stress into eV/Angstrom^3 (1 for ASE convention)
    stress_factor: float = 1.0

    def package_version(self) -> str:
        return package_version(self.spec.package) if self.spec.package else ""

    def options(self) -> dict[str, Any]:
        """Options other than the weights that change the numbers."""
        return {}

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(
            model=self.spec.name,
            package=self.spec.package,
            package_version=self.package_version(),
            weights_sha256=sha256_files(self.weight_files()),
            dtype=self.dtype,
            options=json.dumps(self.options(), sort_keys=True),
        )


class LoadedModel:
    """A named model: fingerprint on demand, calculator built once on first use."""

    def __init__(self, spec: ModelSpec, backend: ModelBackend):
        self.spec = spec
        self.backend = backend

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def device(self) -> str:
        return self.backend.device

    @cached_property
    def fingerprint(self) -> Fingerprint:
        return self.backend.fingerprint()

    @cached_property
    def calculator(self) -> Calculator:
        """The backend's calculator behind :class:`PeriodicCalculator`: every structure is
        evaluated as a fully periodic cell and stress comes back in eV/Angstrom^3."""
        from surfbench.models.wrapper import PeriodicCalculator

        return PeriodicCalculator(self.backend.calculator(), stress_factor=self.backend.stress_factor)


def owned_results(res: dict[str, Any]) -> dict[str, Any]:
    """An inner calculator's results as this calculator's own: ``energy`` and ``free_energy``
    (eV, both the energy), per-atom ``energies`` (eV), ``forces`` (eV/Angstrom) and, where the
    inner one computed it, ``stress`` (eV/Angstrom^3), copied into new float arrays."""
    import numpy as np

    out = {
        "energy": float(res["energy"]),
        "free_energy": float(res["energy"]),
        "energies": np.array(res["energies"], dtype=float),
        "forces": np.array(res["forces"], dtype=float),
    }
    if "stress" in res:
        out["stress"] = np.array(res["stress"], dtype=float)
    return out
