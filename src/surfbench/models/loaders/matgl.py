"""matgl 4.x potentials (M3GNet, TensorNet, ...) from a model folder holding ``model.json``,
``model.pt`` and ``state.pt`` (the layout of matgl's ``pretrained_models/<name>/``).

The folder is found by :func:`surfbench.models.weights.resolve_weights` (``--weights``,
``$SURFBENCH_MODEL_DIR/<relpath>``, the cache, then the pinned download) and always handed
to ``matgl.load_model`` as a complete local path, so matgl never looks a name up on the
Hugging Face Hub.

Only float32: ``matgl.set_default_dtype('float', 64)`` changes torch's process-wide default
dtype, and with matgl 4.1.2 both M3GNet and TensorNet then fail in the forward pass
(``expected scalar type Float but found Double``).

matgl treats a cell that is not periodic in all three directions as a molecule; the
:class:`~surfbench.models.wrapper.PeriodicCalculator` around every backend evaluates slabs as
fully periodic cells. Stress is requested in eV/Angstrom^3 (matgl's default is GPa).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator

from surfbench.models.base import ModelBackend, ModelLoadError, ModelSpec
from surfbench.models.weights import resolve_weights

#: the files of a matgl model folder
MODEL_FILES = ("model.json", "model.pt", "state.pt")


class MatglBackend(ModelBackend):
    supported_dtypes = ("float32",)

    def __init__(self, spec: ModelSpec, weights: str | os.PathLike | None = None, **kwargs: Any):
        # a trained model's entry (surfbench train) names its own folder: weights {source: local, path}
        w = spec.weights or {}
        if weights is None and w.get("source") == "local" and w.get("path"):
            weights = w["path"]
        super().__init__(spec, weights=weights, **kwargs)
        self._folder: Path | None = None

    def folder(self) -> Path:
        """The local model folder (resolved, and for registry weights hash-checked, once)."""
        if self._folder is None:
            files = list((self.spec.weights or {}).get("files") or [])
            if sorted(files) != sorted(MODEL_FILES):
                raise ModelLoadError(
                    f"model {self.spec.name}: a matgl registry entry needs weights.files: {list(MODEL_FILES)}"
                )
            folder = resolve_weights(self.spec, self.weights)
            missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
            if missing:
                raise ModelLoadError(f"model {self.spec.name}: {folder} is not a matgl model folder (no {missing})")
            self._folder = folder
        return self._folder

    def weight_files(self) -> list[Path]:
        folder = self.folder()
        return [folder / f for f in MODEL_FILES]

    def calculator(self) -> Calculator:
        folder = self.folder()  # before importing matgl: a missing folder gives our error
        with hub_offline():
            return self._load(folder)

    def _load(self, folder: Path) -> Calculator:
        with self.package_needed("matgl"):
            import matgl
            import torch
            from matgl.ext.ase import PESCalculator
        major = str(getattr(matgl, "__version__", "0")).split(".")[0]
        if major.isdigit() and int(major) < 4:
            raise ModelLoadError(
                f"model {self.spec.name} needs matgl >= 4 (found {matgl.__version__}); "
                f"install it with: {self.spec.install_hint}"
            )
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ModelLoadError(f"model {self.spec.name}: bad device {self.device!r} ({exc})") from exc
        try:
            potential = matgl.load_model(folder)
        except Exception as exc:  # matgl wraps everything in ValueError/RuntimeError
            cause = exc.__cause__ or exc
            raise ModelLoadError(
                f"model {self.spec.name}: matgl could not load {folder} ({type(cause).__name__}: {cause})"
            ) from exc
        if not getattr(potential, "calc_stresses", False):
            potential.calc_stresses = True  # surfbench may ask for stress (cell relaxations)
        # Potential.forward moves each graph to the device of its parameters
        try:
            potential = potential.to(device).eval()
        except (RuntimeError, AssertionError) as exc:  # e.g. "Torch not compiled with CUDA enabled"
            raise ModelLoadError(f"model {self.spec.name}: cannot use device {self.device!r} ({exc})") from exc
        # ASE's conventions: stress in eV/Angstrom^3, Voigt order (xx, yy, zz, yz, xz, xy)
        return PESCalculator(potential, stress_unit="eV/A3", use_voigt=True)


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` while matgl is imported and loads (unless the user set it).

    matgl looks a model it cannot find locally up on the Hugging Face Hub and, offline,
    retries for about 46 s. The folder given is local and complete, so this only guards
    against that; huggingface_hub reads the variable when it is first imported. The matgl
    training driver (``surfbench.training.matgl``) wraps its import and load in it too.
    """
    if "HF_HUB_OFFLINE" in os.environ:
        yield
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        os.environ.pop("HF_HUB_OFFLINE", None)
