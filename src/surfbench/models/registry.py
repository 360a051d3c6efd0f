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


#: the registry file of models trained by ``surfbench train`` in a project folder
TRAINED_MODELS_FILE = "trained-models.yaml"

#: the trained-models file of the project folder in use (`use_project`), if any
_project_file: Path | None = None


def use_project(workdir: str | os.PathLike | None) -> Path | None:
    """Merge the models trained in a project folder (``<workdir>/trained-models.yaml``, written
    by ``surfbench train``) into the registry from now on in this process, instead of another
    folder's; ``None`` stops. The file may be written to later: it is reread when it changes.
    Returns the file, or None when the folder has none (yet)."""
    global _project_file
    _project_file = None if workdir is None else (Path(workdir) / TRAINED_MODELS_FILE).resolve()
    return _project_file if _project_file is not None and _project_file.is_file() else None


def extra_registry_files() -> list[Path]:
    """The extra registry files in use: ``$SURFBENCH_REGISTRY_EXTRA`` (``os.pathsep``-separated)
    then the project's trained models ([`use_project`][surfbench.models.registry.use_project])
    if that file exists, each once."""
    files: list[Path] = []
    project = [_project_file] if _project_file is not None and _project_file.is_file() else []
    for extra in [*filter(None, os.environ.get(ENV_EXTRA_REGISTRY, "").split(os.pathsep)), *project]:
        path = Path(extra)
        if all(path.resolve() != f.resolve() for f in files):
            files.append(path)
    return files


def _local_paths_from(entry: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A ``weights: {source: local, path: ...}`` given relative to its registry file's folder,
    made absolute."""
    w = entry.get("weights")
    if isinstance(w, dict) and w.get("source") == "local" and w.get("path") and not Path(w["path"]).is_absolute():
        entry = {**entry, "weights": {**w, "path": str(folder / w["path"])}}
    return entry


#: libyaml's loader and dumper where PyYAML was built with it (5-10x faster: a project's
#: trained-models file holds one entry per fold of every training)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_yaml(text: str) -> Any:
    """YAML text parsed safely (libyaml where available)."""
    return yaml.load(text, Loader=_LOADER)


def dump_yaml(data: Any) -> str:
    """``data`` as YAML in its own key order (libyaml where available)."""
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)


@lru_cache(maxsize=1)
def _packaged_file() -> dict[str, Any]:
    """The packaged ``models.yaml``, parsed (checked against ``schema.json`` by the test suite,
    ``tests/test_registry.py``, so not again at every start: the check and its jsonschema import
    cost a run of a cheap potential 0.05-0.1 s)."""
    return load_yaml(resources.files("surfbench.models").joinpath("models.yaml").read_text())


def packages() -> dict[str, dict[str, Any]]:
    """The ``packages:`` section of the packaged ``models.yaml``, the one source of the packages'
    version ranges: per package (its name on PyPI) ``version`` (a PEP 440 range) and optionally
    ``pin`` (the exact release the environment presets install) and ``extras``."""
    return _packaged_file().get("packages") or {}


def package_range(package: str) -> str:
    """The version range (PEP 440) surfbench supports of ``package`` (its name on PyPI, e.g.
    ``"chgnet"``), from ``models.yaml``; a KeyError for a package it does not name."""
    return packages()[package]["version"]


def requirement(package: str, *, pinned: bool = False) -> str:
    """The pip requirement of ``package`` from ``models.yaml``: ``name[extras]range``, or with
    ``pinned`` ``name[extras]==release`` where the environment presets install a pinned release."""
    p = packages()[package]
    extras = f"[{','.join(p['extras'])}]" if p.get("extras") else ""
    return f"{package}{extras}{p['pin'] if pinned and p.get('pin') else p['version']}"


def _with_range(entry: dict[str, Any]) -> dict[str, Any]:
    """A packaged entry with its package's range as ``version`` (right after ``package``)."""
    if "version" in entry or entry.get("package") not in packages():
        return entry
    out: dict[str, Any] = {}
    for key, value in entry.items():
        out[key] = value
        if key == "package":
            out["version"] = package_range(value)
    return out


@lru_cache(maxsize=1)
def packaged_entries() -> tuple[dict[str, Any], ...]:
    """The model entries of the packaged ``models.yaml``, each with its package's version range
    (``packages:``) as ``version``."""
    return tuple(_with_range(e) for e in _packaged_file()["models"])


def packaged_entry(name: str) -> dict[str, Any]:
    """The packaged ``models.yaml`` entry ``name`` (with its ``version``); a KeyError if none."""
    for entry in packaged_entries():
        if entry["name"] == name:
            return entry
    raise KeyError(name)


def wheel_checkpoints(backend: str, option: str) -> dict[str, str]:
    """The checkpoints that ship inside a package's wheel, by the backend option that names one:
    ``{kwargs[option]: weights.path}`` of the packaged entries of ``backend`` (``"module:Class"``)
    whose weights are ``{source: wheel}``, in file order. A path is relative to the folder that
    holds the package (site-packages), e.g. ``chgnet/pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar``."""
    return {e["kwargs"][option]: e["weights"]["path"] for e in packaged_entries()
            if e["backend"] == backend and e["weights"].get("source") == "wheel" and option in e.get("kwargs", {})}


def registry_entries() -> list[dict[str, Any]]:
    """Raw entries: the packaged ``models.yaml`` plus the entries (a list, or ``{models: [...]}``)
    of the extra registry files ([`extra_registry_files`][surfbench.models.registry.extra_registry_files]):
    a user's own models and models
    trained by ``surfbench train``, same schema. A local weights path relative to its file is
    made absolute."""
    entries = list(packaged_entries())
    for extra in extra_registry_files():
        try:
            raw = load_yaml(Path(extra).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ModelLoadError(f"{ENV_EXTRA_REGISTRY}: cannot read {extra}: {exc}") from exc
        entries += [_local_paths_from(e, Path(extra).resolve().parent) if isinstance(e, dict) else e
                    for e in (raw["models"] if isinstance(raw, dict) else raw or [])]
    return entries


@lru_cache(maxsize=1)
def registry_schema() -> dict[str, Any]:
    return json.loads(resources.files("surfbench.models").joinpath("schema.json").read_text())


#: canonical JSON of entries already found valid in this process
_VALID: set[str] = set()


def validate_entries(entries: list[dict[str, Any]]) -> None:
    """Check registry entries against ``schema.json``; the error names the entry and field.
    An entry already found valid in this process is not checked again."""
    keys = [json.dumps(e, sort_keys=True, default=str) for e in entries]
    if all(k in _VALID for k in keys):
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(registry_schema())
    for err in validator.iter_errors({"models": entries}):
        path = list(err.absolute_path)
        name = entries[path[1]].get("name", f"#{path[1]}") if len(path) > 1 and isinstance(entries[path[1]], dict) else "?"
        field = "/".join(str(p) for p in path[2:]) or "(entry)"
        raise ModelLoadError(f"model registry: entry {name!r}, field {field}: {err.message}")
    _VALID.update(keys)


@lru_cache(maxsize=8)
def _registry_for(extra: tuple) -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    entries = registry_entries()
    validate_entries(entries[len(packaged_entries()):])  # the user's and the trained-models files
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
    # keyed by the extra files and their modification times: a file written since is reread
    key = []
    for f in extra_registry_files():
        try:
            st = f.stat()
            key.append((str(f.resolve()), st.st_mtime_ns, st.st_size))
        except OSError:
            key.append((str(f), None, None))
    return _registry_for(tuple(key))


def list_specs() -> list[ModelSpec]:
    return list(_registry().values())


def get_spec(name: str) -> ModelSpec:
    try:
        return _registry()[name]
    except KeyError:
        from surfbench.names import did_you_mean

        raise ModelLoadError(
            f"unknown model {name!r}{did_you_mean(name, _registry())}; known: {', '.join(_registry())}, "
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
    """A model by name, its calculator built on first use.

    Parameters
    ----------
    name : str
        A registry name (`surfbench models`) or `"package.module:factory"`.
    device : str
        cpu, cuda, cuda:N or mps, checked here.
    kwargs : dict or None
        Keyword arguments of a `module:factory` model (refused for a registry entry).
    dtype : str or None
        The precision where the backend supports several (float32, float64).
    weights : str or None
        A local file or folder overriding the registry's weights source. An entry whose
        weights are `{source: local, path: P}` (a model trained by `surfbench train`) uses P
        unless `weights` is given.

    Returns
    -------
    LoadedModel
        The model (`surfbench.models.base.LoadedModel`): its fingerprint is computed
        without loading it, its calculator on first use.

    Raises
    ------
    ModelLoadError
        For an unknown name (with the names it may have meant) or a bad entry.
    DeviceError
        For an unknown device or a missing GPU (`surfbench.models.device.DeviceError`).
    """
    from surfbench.models.device import check_device

    check_device(device)  # before anything is built: an unknown device or a missing GPU is a clear error
    spec = resolve_model(name, kwargs)
    w = spec.weights or {}
    if weights is None and w.get("source") == "local" and w.get("path"):
        weights = str(w["path"])
    if spec.python:
        from surfbench.models.isolated import IsolatedBackend

        backend: ModelBackend = IsolatedBackend(spec, device=device, dtype=dtype, weights=weights, **spec.kwargs)
    else:
        backend = backend_class(spec)(spec, device=device, dtype=dtype, weights=weights, **spec.kwargs)
    return LoadedModel(spec, backend)
