"""Interatomic potentials: a lazy registry of named models (``models.yaml``) and loaders."""

from surfbench.models.base import Fingerprint, LoadedModel, ModelLoadError, ModelSpec
from surfbench.models.registry import get_spec, list_specs, load_model, resolve_model

__all__ = [
    "Fingerprint", "LoadedModel", "ModelLoadError", "ModelSpec",
    "get_spec", "list_specs", "load_model", "resolve_model",
]
