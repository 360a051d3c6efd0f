"""Any ASE calculator given as ``module:factory`` plus keyword arguments.

The fingerprint hashes the source file of the factory's module (for potentials whose
parameters live in code, such as ASE's EMT) and any files named in ``weight_files``.
"""

from __future__ import annotations

import importlib
import inspect
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from ase.calculators.calculator import Calculator

from surfbench.models.base import ModelBackend, ModelLoadError, ModelSpec


def _import_factory(target: str, model: str):
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ModelLoadError(f"{model}: factory must look like 'package.module:callable', got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"{model}: cannot import {module_name!r} ({exc})") from exc
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ModelLoadError(f"{model}: {module_name!r} has no attribute {attr!r}") from None
    return module, obj


def module_source(module: ModuleType) -> Path | None:
    """The source file of a module, or None (a notebook's ``__main__``, a built-in or compiled module)."""
    try:
        source = inspect.getsourcefile(module)
    except TypeError:  # built-in module
        return None
    return Path(source).resolve() if source and Path(source).is_file() else None


@lru_cache(maxsize=1)
def _distributions_of_top_level_names() -> dict[str, list[str]]:
    """:func:`importlib.metadata.packages_distributions` (scans every installed distribution:
    about a second; once per process)."""
    return metadata.packages_distributions()


def module_distribution(module: ModuleType) -> str:
    """``"<distribution> <version>"`` of the installed distribution that really holds
    ``module`` (a top-level name such as ``tests`` can belong to several installed
    distributions, or to none), else ``"unversioned (<source file>)"``."""
    source = module_source(module)
    top = module.__name__.split(".")[0]
    for name in _distributions_of_top_level_names().get(top, []) if source is not None else []:
        try:
            root = Path(metadata.distribution(name).locate_file(top)).resolve()
        except metadata.PackageNotFoundError:
            continue
        if source.is_relative_to(root):
            return f"{name} {metadata.version(name)}"
    return f"unversioned ({source or module.__name__})"


class AseFactoryBackend(ModelBackend):
    def __init__(
        self,
        spec: ModelSpec,
        factory: str = "",
        factory_kwargs: dict[str, Any] | None = None,
        weight_files: list[str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(spec, **kwargs)
        self.factory = factory
        self.factory_kwargs = dict(factory_kwargs or {})
        self._weight_files = [Path(p).expanduser() for p in (weight_files or [])]

    def package_version(self) -> str:
        """The distribution that really holds the factory's module (:func:`module_distribution`)."""
        module, _ = _import_factory(self.factory, self.spec.name)
        return module_distribution(module)

    def weight_files(self) -> list[Path]:
        module, _ = _import_factory(self.factory, self.spec.name)
        files = list(self._weight_files) + ([Path(self.weights).expanduser()] if self.weights else [])
        source = inspect.getsourcefile(module)
        if source:
            files.append(Path(source))
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise ModelLoadError(f"{self.spec.name}: missing file(s) {missing}")
        return files

    def options(self) -> dict[str, Any]:
        return {"factory": self.factory, "kwargs": self.factory_kwargs}

    def calculator(self) -> Calculator:
        _, factory = _import_factory(self.factory, self.spec.name)
        try:
            return factory(**self.factory_kwargs)
        except Exception as exc:
            raise ModelLoadError(f"{self.spec.name}: {self.factory}(**{self.factory_kwargs}) failed: {exc}") from exc
