"""The lazy model registry: ``models.yaml`` names the models; a model's package is only
imported when the model is loaded (mlip-arena style)."""

from __future__ import annotations

import importlib
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from surfbench.models.base import LoadedModel, ModelBackend, ModelLoadError, ModelSpec

DEFAULT_MODEL = "chgnet-0.3.0"


ENV_EXTRA_REGISTRY = "SURFBENCH_REGISTRY_EXTRA"


def registry_entries() -> list[dict[str, Any]]:
    """Raw entries: the packaged ``models.yaml`` plus, if ``$SURFBENCH_REGISTRY_EXTRA``
    names YAML files (``os.pathsep``-separated), their entries (a list, or ``{models: [...]}``):
    a user's own models, same schema."""
    text = resources.files("surfbench.models").joinpath("models.yaml").read_text()
    entries = list(yaml.safe_load(text)["models"])
    for extra in filter(None, os.environ.get(ENV_EXTRA_REGISTRY, "").split(os.pathsep)):
        try:
            raw = yaml.safe_load(Path(extra).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ModelLoadError(f"{ENV_EXTRA_REGISTRY}: cannot read {extra}: {exc}") from exc
        entries += list(raw["models"] if isinstance(raw, dict) else raw)
    return entries


@lru_cache(maxsize=1)
def registry_schema() -> dict[str, Any]:
    return json.loads(resources.files("surfbench.models").joinpath("schema.json").read_text())


def validate_entries(entries: list[dict[str, Any]]) -> None:
    """Check registry entries against ``schema.json``; the error names the entry and field."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(registry_schema())
    for err in validator.iter_errors({"models": entries}):
        path = list(err.absolute_path)
        name = entries[path[1]].get("name", f"#{path[1]}") if len(path) > 1 and isinstance(entries[path[1]], dict) else "?"
        field = "/".join(str(p) for p in path[2:]) or "(entry)"
        raise ModelLoadError(f"model registry: entry {name!r}, field {field}: {err.message}")


@lru_cache(maxsize=8)
def _registry_for(extra: str) -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    entries = registry_entries()
    validate_entries(entries)
    for entry in entries:
        entry = dict(entry)
        if "elements" in entry and entry["elements"] is not None:
            entry["elements"] = tuple(entry["elements"])
        spec = ModelSpec(**entry)
        if spec.name in specs:
            raise ModelLoadError(f"model registry: model {spec.name!r} is listed twice")
        specs[spec.name] = spec
    return specs


def _registry() -> dict[str, ModelSpec]:
    return _registry_for(os.environ.get(ENV_EXTRA_REGISTRY, ""))


def list_specs() -> list[ModelSpec]:
    return list(_registry().values())


def get_spec(name: str) -> ModelSpec:
    try:
        return _registry()[name]
    except KeyError:
        raise ModelLoadError(
            f"unknown model {name!r}; known: {', '.join(_registry())}, "
            "or give any ASE calculator as 'package.module:factory'"
        ) from None


def resolve_model(name: str, kwargs: dict[str, Any] | None = None) -> ModelSpec:
    """A registry name, or an ad-hoc ``module:factory`` ASE calculator with kwargs."""
    if name in _registry():
        if kwargs:
            raise ModelLoadError(f"model {name!r} is a registry entry; extra keyword arguments are not accepted")
        return get_spec(name)
    if ":" in name:
        return ModelSpec(
            name=name,
            backend="surfbench.models.loaders.ase_factory:AseFactoryBackend",
            kwargs={"factory": name, "factory_kwargs": dict(kwargs or {})},
            family="ASE calculator",
        )
    return get_spec(name)  # raises with the list of known names


def backend_class(spec: ModelSpec) -> type[ModelBackend]:
    module_name, _, cls_name = spec.backend.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"model {spec.name}: backend {spec.backend!r} not found ({exc})") from exc
    return cls


def load_model(
    name: str,
    device: str = "cpu",
    kwargs: dict[str, Any] | None = None,
    *,
    dtype: str | None = None,
    weights: str | None = None,
) -> LoadedModel:
    """A :class:`LoadedModel` whose calculator is built on first use.

    ``dtype`` picks the precision where the backend supports several; ``weights`` is a local
    file or folder overriding the registry's weights source.
    """
    spec = resolve_model(name, kwargs)
    if spec.python:
        from surfbench.models.isolated import IsolatedBackend

        backend: ModelBackend = IsolatedBackend(spec, device=device, dtype=dtype, weights=weights, **spec.kwargs)
    else:
        backend = backend_class(spec)(spec, device=device, dtype=dtype, weights=weights, **spec.kwargs)
    return LoadedModel(spec, backend)
