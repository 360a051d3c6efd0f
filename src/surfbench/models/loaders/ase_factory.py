"""Any ASE calculator given as ``module:factory`` plus keyword arguments.

The fingerprint hashes the source file of the factory's module (for potentials whose
parameters live in code, such as ASE's EMT) and any files named in ``weight_files``.
"""

from __future__ import annotations

import importlib
import inspect
import re
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


def _normal(name: str) -> str:
    """A distribution or module name in PEP 503's normal form (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _site_and_path(module: ModuleType, source: Path) -> tuple[Path, str] | None:
    """(the folder the module's top-level package is installed in, the module's file relative
    to it, as written in a wheel's RECORD), or None when the path does not follow the module's
    dotted name (a module loaded from elsewhere)."""
    parts = module.__name__.split(".")
    depth = len(parts) - 1 + (source.name == "__init__.py")
    if depth >= len(source.parents):
        return None
    site = source.parents[depth]
    rel = source.relative_to(site).as_posix()
    top = parts[0]
    if not (rel.startswith(f"{top}/") or rel == f"{top}.py" or rel.startswith(f"{top}.")):
        return None
    return site, rel


@lru_cache(maxsize=256)
def _owner(site: Path, rel: str) -> str | None:
    """``"<distribution> <version>"`` of the installed distribution in ``site`` whose RECORD
    lists the file ``rel``, or None. The distributions named like the file's top-level
    package are read first (``ase`` for ``ase/...``; usually the only read); only if none holds
    it are the other RECORDs of that one folder searched, as bytes: one module's distribution
    without parsing every installed distribution's file list (what
    ``importlib.metadata.packages_distributions`` does, 1-3 s in a venv of ML packages)."""
    top = _normal(rel.split("/")[0].removesuffix(".py"))
    try:
        infos = [p for p in site.iterdir() if p.name.endswith(".dist-info")]
    except OSError:
        return None

    def likely(info: Path) -> int:
        name = _normal(info.name.removesuffix(".dist-info").split("-")[0])
        return 0 if name == top else 1 if top in name or name in top else 2

    needle = (rel + ",").encode()
    for info in sorted(infos, key=lambda p: (likely(p), p.name)):
        try:
            record = (info / "RECORD").read_bytes()
        except OSError:
            continue
        if record.startswith(needle) or b"\n" + needle in record:
            dist = metadata.PathDistribution(info)
            return f"{dist.metadata['Name']} {dist.version}"
    return None


def module_distribution(module: ModuleType) -> str:
    """``"<distribution> <version>"`` of the installed distribution that really holds
    ``module`` (the one whose RECORD lists the module's file: a top-level name such as
    ``tests`` can belong to several installed distributions, or to none), else
    ``"unversioned (<source file>)"`` (a local module, a notebook, an editable install)."""
    source = module_source(module)
    where = _site_and_path(module, source) if source is not None else None
    owner = _owner(*where) if where is not None else None
    return owner or f"unversioned ({source or module.__name__})"


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
