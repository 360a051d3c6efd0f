"""The lazy model registry: ``models.yaml`` names the models; a model's package is only
imported when the model is loaded (mlip-arena style)."""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from surfbench.models.base import LoadedModel, ModelBackend, ModelLoadError, ModelSpec

DEFAULT_MODEL = "chgnet-0.3.0"


@lru_cache(maxsize=1)
def _registry() -> dict[str, ModelSpec]:
    text = resources.files("surfbench.models").joinpath("models.yaml").read_text()
    raw = yaml.safe_load(text)
    specs: dict[str, ModelSpec] = {}
    for entry in raw["models"]:
        entry = dict(entry)
        if "elements" in entry and entry["elements"] is not None:
            entry["elements"] = tuple(entry["elements"])
        spec = ModelSpec(**entry)
        if spec.name in specs:
            raise ModelLoadError(f"models.yaml: model {spec.name!r} is listed twice")
        specs[spec.name] = spec
    return specs


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


def _backend_class(spec: ModelSpec) -> type[ModelBackend]:
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
    backend = _backend_class(spec)(spec, device=device, dtype=dtype, weights=weights, **spec.kwargs)
    return LoadedModel(spec, backend)
