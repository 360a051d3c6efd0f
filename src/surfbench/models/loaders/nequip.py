"""NequIP (Batzner et al. 2022) and other NequIP-framework models (Allegro), through nequip's
ASE calculator, from a local model file given with ``--weights``.

nequip 0.19 needs e3nn >= 0.6, < 0.7, which the main environment cannot hold next to
mace-torch and MACE-MP-0 (e3nn <= 0.5.1), so the registry entry ``nequip-local`` runs the model
in its own environment: ``surfbench env create nequip`` makes it, and ``python: env:nequip``
in the entry sends the model to a worker process there (:mod:`surfbench.models.isolated`).

Three kinds of file are accepted; which one is read from the file's content (all are zip
archives), not from its name:

* a compiled model, ``nequip-compile --mode aotinductor --target ase`` (``*.nequip.pt2``):
  loaded with ``NequIPCalculator.from_compiled_model`` (nequip's recommended way). It must have
  been compiled for the device it runs on (``--device cpu`` for surfbench's default);
* a packaged model, ``nequip-package build`` (``*.nequip.zip``), and
* a training checkpoint (``*.ckpt``, as ``nequip-train`` writes it): both loaded with
  ``NequIPCalculator._from_saved_model`` (eager model, no compilation).

TorchScript files (``*.nequip.pth``) are refused: ``nequip-compile --mode torchscript`` is
unsupported with torch >= 2.10, and such files could not be tested here.

Checkpoints and packages are unpickled (torch.load / torch.package) when the model is built:
use only files you trust.

Precision: a NequIP model is trained and compiled in one precision (its ``model_dtype``,
float32 or float64); nequip evaluates it in that precision, whatever else is asked. The dtype is
therefore read from the file and recorded in the fingerprint; asking for another one
(``--dtype``) is refused with :class:`ModelLoadError`. It is read cheaply (no torch import)
from the compiled model's metadata, the package's config, or the checkpoint's hyper-parameters
(a restricted unpickler that builds no objects); where those do not name it (e.g. a fine-tuned
model whose config points at another file), the model is loaded to read it.

Species: the model knows atom *types* by name (``type_names``); ASE gives chemical species.
The calculator is given an explicit map species -> type: the identity, which requires every
type name to be an element symbol (refused otherwise), or the registry entry's
``kwargs: {species_map: {Cu: my_Cu, ...}}``. A structure holding a species the map lacks fails
in the calculator (recorded as a failed structure).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import pickle
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator
from ase.data import chemical_symbols

from surfbench.models.base import Fingerprint, ModelBackend, ModelLoadError, ModelSpec
from surfbench.models.weights import ENV_MODEL_DIR
from surfbench.util import package_version

#: the kinds of NequIP model file, and the file-name ending nequip's loaders dispatch on
COMPILED = "aotinductor"
PACKAGE = "package"
CHECKPOINT = "checkpoint"
TORCHSCRIPT = "torchscript"
_SUFFIX = {COMPILED: ".nequip.pt2", PACKAGE: ".nequip.zip", CHECKPOINT: ".ckpt"}

_ENV_HINT = (
    "nequip 0.19 needs e3nn >= 0.6, < 0.7 and so lives in its own environment: create it with "
    "'surfbench env create nequip' and use a registry entry with 'python: env:nequip' "
    "(as nequip-local has), which runs the model in that environment"
)


def detect_format(path: Path) -> str:
    """Which kind of NequIP model file ``path`` is, from its content."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelLoadError(
            f"{path} is not a NequIP model file (not a zip archive: {exc}); expected a compiled model "
            "(nequip-compile --mode aotinductor --target ase, *.nequip.pt2), a packaged model "
            "(nequip-package, *.nequip.zip) or a training checkpoint (*.ckpt)"
        ) from exc
    inner = {n.split("/", 1)[1] for n in names if "/" in n}
    if any(n.startswith("data/aotinductor/") for n in inner):
        return COMPILED
    if "model/package_metadata.txt" in inner and ".data/extern_modules" in inner:
        return PACKAGE
    if "constants.pkl" in inner and any(n.startswith("code/") for n in inner):
        return TORCHSCRIPT
    if "data.pkl" in inner:
        return CHECKPOINT
    raise ModelLoadError(
        f"{path} is a zip archive but not a NequIP model file known here (no AOTInductor model, "
        "no package metadata, no torch checkpoint inside)"
    )


class _Stub:
    """Stands for any torch object in a checkpoint read by :func:`_checkpoint_hparams`."""

    def __init__(self, *args: Any, **kwargs: Any):
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _HparamsUnpickler(pickle.Unpickler):
    """Reads a checkpoint's plain-data part without running anything: torch globals (tensor
    rebuilders, storages) become inert stubs, tensor data is not read, any other global stops
    the read (the caller then loads the model with nequip instead)."""

    _ALLOWED = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
                ("builtins", "slice"), ("builtins", "complex")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        if module == "torch" or module.startswith("torch."):
            return _Stub
        raise pickle.UnpicklingError(f"global {module}.{name} not read here")

    def persistent_load(self, pid: Any) -> None:
        return None


def _checkpoint_hparams(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.split("/", 1)[-1] == "data.pkl")
        ckpt = _HparamsUnpickler(io.BytesIO(z.read(name))).load()
    model = ckpt["hyper_parameters"]["model"]
    return {"model_dtype": model["model_dtype"], "type_names": list(model["type_names"])}


def _compiled_metadata(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            if "/data/aotinductor/" in n and n.endswith("_metadata.json"):
                meta = json.loads(z.read(n))
                if "model_dtype" in meta and "type_names" in meta:
                    return {"model_dtype": meta["model_dtype"], "type_names": meta["type_names"].split(" ")}
    raise KeyError("model_dtype")


def _package_config(path: Path) -> dict[str, Any]:
    import yaml

    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.split("/", 1)[-1] == "model/config.yaml")
        config = yaml.safe_load(z.read(name))
    model = config["training_module"]["model"]
    return {"model_dtype": model["model_dtype"], "type_names": list(model["type_names"])}


@contextlib.contextmanager
def _quiet_nequip() -> Iterator[None]:
    """Keep nequip's load chatter (e3nn / torch deprecation notes) off the log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*TorchScript.*")
        yield


class NequipBackend(ModelBackend):
    # the model's own precision decides; both exist (tutorial configs use float32, surfbench's
    # test model float64). Without --dtype the file's precision is used.
    supported_dtypes = ("float64", "float32")

    # NequIPCalculator returns stress in eV/Angstrom^3, ASE sign and Voigt order (checked
    # against strain derivatives of the energy in tests/test_nequip.py)
    stress_factor = 1.0

    def __init__(self, spec: ModelSpec, species_map: dict[str, str] | None = None, **kwargs: Any):
        requested = kwargs.get("dtype")
        super().__init__(spec, **kwargs)
        #: the dtype asked for (None: the model's own); self.dtype becomes the model's
        self.requested_dtype = requested
        if species_map is not None:
            bad = [s for s in species_map if s not in chemical_symbols[1:]]
            if bad or not all(isinstance(t, str) for t in species_map.values()):
                raise ModelLoadError(
                    f"model {spec.name}: species_map must map element symbols to the model's type names, "
                    f"got {species_map!r}"
                )
        self.species_map = dict(species_map) if species_map is not None else None
        self._links: tempfile.TemporaryDirectory | None = None

    # --- the file --------------------------------------------------------------------------

    def weight_files(self) -> list[Path]:
        # --weights (nequip-local), or a registry entry's model folder / cache / pinned download
        return [self.resolved_weights(
            "NequIP model file: a compiled model (nequip-compile --mode aotinductor --device cpu "
            "--target ase, *.nequip.pt2), a packaged model (*.nequip.zip) or a training checkpoint (*.ckpt)"
        )]

    @cached_property
    def path(self) -> Path:
        (path,) = self.weight_files()
        return path

    @cached_property
    def file_format(self) -> str:
        kind = detect_format(self.path)
        if kind == TORCHSCRIPT:
            raise ModelLoadError(
                f"model {self.spec.name}: {self.path} is a TorchScript-compiled NequIP model (*.nequip.pth), "
                "which is not supported here (nequip-compile --mode torchscript is unsupported with "
                "torch >= 2.10). Give the training checkpoint or packaged model, or compile with "
                "nequip-compile --mode aotinductor --device cpu --target ase"
            )
        return kind

    @cached_property
    def model_info(self) -> dict[str, Any]:
        """The model's ``model_dtype`` and ``type_names``, read from the file."""
        readers = {COMPILED: _compiled_metadata, PACKAGE: _package_config, CHECKPOINT: _checkpoint_hparams}
        try:
            info = readers[self.file_format](self.path)
        except ModelLoadError:
            raise
        except Exception:  # the config does not name them (fine-tuned model, ...): load it
            model_meta = self._load_metadata()
            info = {"model_dtype": model_meta["model_dtype"], "type_names": model_meta["type_names"]}
        if isinstance(info["type_names"], str):
            info["type_names"] = info["type_names"].split(" ")
        info["model_dtype"] = str(info["model_dtype"])
        return info

    def _load_metadata(self) -> dict[str, Any]:
        calc = self._build(species_map={})  # no species needed to read the metadata
        model = calc.model
        meta = getattr(model, "metadata", None)
        if meta is None:
            raise ModelLoadError(f"model {self.spec.name}: {self.path} holds no model metadata")
        return {"model_dtype": meta["model_dtype"], "type_names": str(meta["type_names"]).split(" ")}

    def _check_dtype(self) -> None:
        model_dtype = self.model_info["model_dtype"]
        if model_dtype not in self.supported_dtypes:
            raise ModelLoadError(
                f"model {self.spec.name}: {self.path} has model_dtype {model_dtype!r}, not supported here"
            )
        if self.requested_dtype is not None and self.requested_dtype != model_dtype:
            raise ModelLoadError(
                f"model {self.spec.name}: {self.path} is a {model_dtype} model (its model_dtype); a NequIP "
                f"model is evaluated in the precision it was trained in, so dtype {self.requested_dtype!r} "
                f"cannot be used. Leave --dtype out or give --dtype {model_dtype}"
            )
        self.dtype = model_dtype

    def chemical_species_map(self) -> dict[str, str]:
        """ASE chemical species -> the model's type names."""
        type_names = self.model_info["type_names"]
        if self.species_map is not None:
            unknown = sorted(set(self.species_map.values()) - set(type_names))
            if unknown:
                raise ModelLoadError(
                    f"model {self.spec.name}: species_map names types {unknown} that the model lacks; "
                    f"its types: {type_names}"
                )
            return dict(self.species_map)
        not_elements = [t for t in type_names if t not in chemical_symbols[1:]]
        if not_elements:
            raise ModelLoadError(
                f"model {self.spec.name}: the model's type names {type_names} are not all element symbols "
                f"({not_elements}); say which species each type stands for with a registry entry whose "
                "kwargs give species_map: {Element: type_name, ...}"
            )
        return {t: t for t in type_names}

    # --- fingerprint and calculator ---------------------------------------------------------

    def options(self) -> dict[str, Any]:
        return {"species_map": self.species_map} if self.species_map is not None else {}

    def fingerprint(self) -> Fingerprint:
        self._check_dtype()
        return super().fingerprint()

    def _named_link(self) -> Path:
        """The file under the name nequip's loaders dispatch on (they look at the ending)."""
        kind, path = self.file_format, self.path
        suffix = _SUFFIX[kind]
        if kind == CHECKPOINT:  # nequip takes anything not named *.nequip.zip for a checkpoint
            fits = not path.name.endswith((".nequip.zip", ".nequip.pt2", ".nequip.pth"))
        else:
            fits = path.name.endswith(suffix)
        if fits:
            return path
        if self._links is None:
            self._links = tempfile.TemporaryDirectory(prefix="surfbench-nequip-")
            atexit.register(self._links.cleanup)
        link = Path(self._links.name) / f"model{suffix}"
        if not link.exists():
            try:
                link.symlink_to(path.resolve())
            except OSError:
                shutil.copyfile(path, link)
        return link

    def _build(self, species_map: dict[str, str] | bool = True) -> Calculator:
        kind = self.file_format
        with _quiet_nequip():
            with self.package_needed("nequip", _ENV_HINT):
                from nequip.integrations.ase import NequIPCalculator
            try:
                if kind == COMPILED:
                    return NequIPCalculator.from_compiled_model(
                        str(self._named_link()), device=self.device,
                        chemical_species_to_atom_type_map=species_map,
                    )
                return NequIPCalculator._from_saved_model(
                    str(self._named_link()), device=self.device,
                    chemical_species_to_atom_type_map=species_map,
                )
            except Exception as exc:  # unpickling / AOTI loading raise anything
                raise ModelLoadError(
                    f"model {self.spec.name}: cannot load the NequIP {kind} file {self.path} "
                    f"({type(exc).__name__}: {exc}). Installed: nequip {package_version('nequip')}, "
                    f"e3nn {package_version('e3nn')}, torch {package_version('torch')}. A compiled model only runs "
                    f"on the device and torch version it was compiled for. Another copy can be given with "
                    f"--weights PATH or placed in ${ENV_MODEL_DIR}."
                ) from exc

    def calculator(self) -> Calculator:
        self._check_dtype()
        calc = self._build(self.chemical_species_map())
        meta = getattr(calc.model, "metadata", None)
        if meta is not None and "model_dtype" in meta and str(meta["model_dtype"]) != self.dtype:
            raise ModelLoadError(
                f"model {self.spec.name}: the loaded model is {meta['model_dtype']}, but {self.path} "
                f"was read as {self.dtype}"
            )
        return calc
