"""An ASE calculator *instance* (a model already in memory, e.g. one just fine-tuned in a
notebook) as a model backend, so that the runner, the result store and its caching treat it
like any registry model.

Such a model has no registry entry and no weight files. It is stored under the name its user
gives (``name=``), and its fingerprint is built from what can be hashed in memory:

* the name;
* the calculator's class (``module.qualname``), the installed distribution that holds the
  class's module and its version (``unversioned`` for a class of a local module or of a
  notebook), and the sha256 of that module's source file where it has one;
* the JSON-able part of ``calculator.parameters`` (ASE's record of the keyword arguments a
  calculator was built with; numpy arrays as lists). Keys whose values cannot be written as
  JSON are listed in the fingerprint's options, but their values are not hashed;
* for torch models, every entry of the ``state_dict`` (name, dtype, shape and bytes) of each
  ``torch.nn.Module`` found as an attribute of the calculator (``.model``, ``.models``,
  ``.potential``, ...; also inside lists, tuples and dicts, and one level down, e.g.
  ``.predictor.model``); the dtypes of their floating tensors are the fingerprint's ``dtype``.
  torch is never imported for this: a calculator can only hold torch modules when torch is
  already imported.

Detected as another model (a new fingerprint): another name, class, package version, a change
of the class's module source, other parameters, weights changed in place (fine-tuning in the
same session changes the ``state_dict``), weights cast to another dtype. Not detected: a change
of any other attribute (a setting kept as a plain attribute instead of in ``parameters``, a
model that is not a ``torch.nn.Module``, e.g. JAX or TensorFlow weights, or a torch module
deeper than one level), a change of code outside the class's module. As for every model, the
store refuses a name it holds with another fingerprint unless both are kept
(``keep_both_fingerprints``): give a changed model a new name.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from ase.calculators.calculator import BaseCalculator

from surfbench.models.base import Fingerprint, LoadedModel, ModelBackend, ModelLoadError, ModelSpec

#: the dtype of a calculator instance without torch modules: whatever it was built with
AS_BUILT = "as-built"
BACKEND = "surfbench.models.instance:InstanceBackend"


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (numpy arrays and scalars converted); raises TypeError
    for anything else."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(type(value).__name__)


def hashable_parameters(calculator: BaseCalculator) -> tuple[dict[str, Any], list[str]]:
    """The JSON-able part of ``calculator.parameters`` and the keys left out."""
    kept, left_out = {}, []
    for key, value in sorted(dict(getattr(calculator, "parameters", None) or {}).items(), key=lambda kv: str(kv[0])):
        try:
            kept[str(key)] = _jsonable(value)
        except TypeError:
            left_out.append(str(key))
    return kept, left_out


def torch_modules(calculator: object) -> Iterator[tuple[str, Any]]:
    """``(attribute path, module)`` for every ``torch.nn.Module`` among the calculator's
    attributes (in lists, tuples and dicts too) and their attributes' attributes, each module
    once, in a stable order; nothing when torch is not imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    seen: set[int] = set()

    def members(obj: object, path: str, depth: int) -> Iterator[tuple[str, Any]]:
        if isinstance(obj, torch.nn.Module):
            if id(obj) not in seen:
                seen.add(id(obj))
                yield path, obj
        elif isinstance(obj, list | tuple):
            for i, item in enumerate(obj):
                yield from members(item, f"{path}[{i}]", depth)
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                yield from members(obj[key], f"{path}[{key!r}]", depth)
        elif depth < 2 and hasattr(obj, "__dict__") and not isinstance(obj, type | np.ndarray):
            for name in sorted(vars(obj)):
                yield from members(vars(obj)[name], f"{path}.{name}" if path else name, depth + 1)

    yield from members(calculator, "", 0)


def _tensor_bytes(tensor: Any) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    try:
        return flat.view(sys.modules["torch"].uint8).numpy().tobytes()
    except Exception:  # quantized or sparse tensors: their values as text
        return repr(flat.tolist()).encode()


def state_dict_digest(calculator: object) -> tuple[str, list[str]]:
    """sha256 over the ``state_dict`` of every torch module of `torch_modules` (empty
    string when there is none) and the dtypes of their floating-point tensors."""
    h = hashlib.sha256()
    dtypes: set[str] = set()
    found = False
    for path, module in torch_modules(calculator):
        found = True
        h.update(f"module {path}\n".encode())
        for key, value in module.state_dict().items():
            h.update(f"{key}\n".encode())
            if hasattr(value, "dtype") and hasattr(value, "shape"):
                h.update(f"{value.dtype} {tuple(value.shape)}\n".encode())
                h.update(_tensor_bytes(value))
                if value.is_floating_point():
                    dtypes.add(str(value.dtype).removeprefix("torch."))
            else:  # extra state
                h.update(repr(value).encode())
    return (h.hexdigest() if found else ""), sorted(dtypes)


def class_distribution(calculator: object) -> str:
    """``"<distribution> <version>"`` holding the calculator's class, or ``"unversioned (...)"``
    (`surfbench.models.loaders.ase_factory.module_distribution`)."""
    from surfbench.models.loaders.ase_factory import module_distribution

    return module_distribution(sys.modules[type(calculator).__module__])


class InstanceBackend(ModelBackend):
    """A calculator object given by its user (see the module docs for its fingerprint)."""

    supported_dtypes = (AS_BUILT,)

    def __init__(self, spec: ModelSpec, calculator: BaseCalculator | None = None, **kwargs: Any):
        if not isinstance(calculator, BaseCalculator):
            raise ModelLoadError(f"model {spec.name}: expected an ASE calculator object, got {type(calculator).__name__}")
        if kwargs.get("dtype") not in (None, AS_BUILT):
            raise ModelLoadError(f"model {spec.name}: the dtype of a calculator object cannot be chosen here "
                                 f"(dtype={kwargs['dtype']!r}); build the calculator in the precision you want")
        if kwargs.get("weights") is not None:
            raise ModelLoadError(f"model {spec.name}: a calculator object carries its own weights; weights= is "
                                 "for registry models")
        kwargs.pop("dtype", None)
        super().__init__(spec, **kwargs)
        self.instance = calculator

    @property
    def class_name(self) -> str:
        cls = type(self.instance)
        return f"{cls.__module__}.{cls.__qualname__}"

    def weight_files(self) -> list:
        return []  # the weights are in memory: see fingerprint()

    def package_version(self) -> str:
        return class_distribution(self.instance)

    def options(self) -> dict[str, Any]:
        parameters, left_out = hashable_parameters(self.instance)
        return {"class": self.class_name, "parameters": parameters, "unhashed_parameters": left_out}

    def fingerprint(self) -> Fingerprint:
        from surfbench.models.loaders.ase_factory import module_source

        source = module_source(sys.modules[type(self.instance).__module__])
        weights, dtypes = state_dict_digest(self.instance)
        h = hashlib.sha256(f"state_dict {weights}\n".encode())
        if source is not None:
            h.update(source.read_bytes())
        return Fingerprint(
            model=self.spec.name, package=self.spec.package, package_version=self.package_version(),
            weights_sha256=h.hexdigest(), dtype=",".join(dtypes) or AS_BUILT,
            options=json.dumps(self.options(), sort_keys=True),
        )

    def calculator(self) -> BaseCalculator:
        return self.instance


def instance_model(calculator: BaseCalculator, name: str | None, device: str = "cpu",
                   dtype: str | None = None) -> LoadedModel:
    """A `LoadedModel` around a calculator object, stored as ``name`` (required: a
    registry name or ``module:factory`` names itself, an object does not). ``device`` is
    recorded with its results; the calculator runs where its user put it, in the precision it
    was built with (``dtype`` must be None)."""
    from surfbench.models.registry import list_specs

    if not isinstance(calculator, BaseCalculator):
        raise ModelLoadError(f"expected an ASE calculator object, a registry name or 'module:factory', "
                             f"got {type(calculator).__name__}")
    if not isinstance(name, str) or not name.strip():
        raise ModelLoadError(f"a calculator object ({type(calculator).__name__}) needs a name to be stored under: "
                             "give name='my-model' (e.g. evaluate(calc, name='my-model'))")
    if name in {s.name for s in list_specs()}:
        raise ModelLoadError(f"name {name!r} is a registry model's; give your calculator object another name")
    if "@" in name:
        raise ModelLoadError(f"name {name!r}: '@' separates a name from its fingerprint in the store; leave it out")
    held_by = class_distribution(calculator)
    package = "" if held_by.startswith("unversioned") else held_by.split(" ")[0]
    spec = ModelSpec(name=name, backend=BACKEND, family=f"ASE calculator object ({type(calculator).__qualname__})",
                     package=package)
    return LoadedModel(spec, InstanceBackend(spec, calculator, device=device, dtype=dtype))
