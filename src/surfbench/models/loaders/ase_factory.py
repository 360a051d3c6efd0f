"""Any ASE calculator given as ``module:factory`` plus keyword arguments.

The fingerprint hashes the source file of the factory's module (for potentials whose
parameters live in code, such as ASE's EMT) and any files named in ``weight_files``.
"""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata
from pathlib import Path
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
        """The distribution that really holds the factory's module (a top-level name such as
        ``tests`` can belong to several installed distributions, or to none)."""
        module, _ = _import_factory(self.factory, self.spec.name)
        source = Path(inspect.getsourcefile(module) or "").resolve()
        top = self.factory.split(":")[0].split(".")[0]
        for name in metadata.packages_distributions().get(top, []):
            try:
                root = Path(metadata.distribution(name).locate_file(top)).resolve()
            except metadata.PackageNotFoundError:
                continue
            if source.is_relative_to(root):
                return f"{name} {metadata.version(name)}"
        return f"unversioned ({source})"

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
