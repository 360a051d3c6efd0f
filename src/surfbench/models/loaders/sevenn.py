"""SevenNet (Park et al. 2024). The checkpoints of SevenNet-0, SevenNet-l3i5 and SevenNet-MF-0
ship inside the sevenn wheel (0.13.0); other named SevenNet models download at run time and
are not handled here (give them with ``--weights``).

Fingerprinting finds the checkpoint inside the installed package without importing sevenn
(which imports torch), from the same relative paths as ``sevenn._const``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator

from surfbench.models.base import ModelBackend, ModelLoadError, ModelSpec, package_dir
from surfbench.models.registry import wheel_checkpoints

#: this backend as models.yaml names it; the models and their checkpoints inside the sevenn wheel
#: (as in sevenn._const / sevenn.util.pretrained_name_to_path) are the weights.path of its
#: packaged entries
BACKEND = f"{__name__}:SevenNetBackend"
# fidelities of the multi-fidelity checkpoint (its config's _modal_map)
_MODALS = {"7net-mf-0": ("PBE", "R2SCAN")}


@contextlib.contextmanager
def quiet_build() -> Iterator[None]:
    """Silence the warnings every SevenNet import/build repeats (dozens of lines): torch's
    deprecation of torch.jit.script, TorchScript's notes on e3nn modules, and the advice to
    install a tensor-product accelerator (cuEquivariance, FlashTP). The SevenNet training driver
    (``surfbench.training.sevenn``) builds under it too."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
        warnings.filterwarnings("ignore", message="The TorchScript type system")
        warnings.filterwarnings("ignore", message="No tensor product accelerator")
        yield


class SevenNetBackend(ModelBackend):
    # the released checkpoints are single precision (config dtype 'single')
    supported_dtypes = ("float32",)
    # SevenNetCalculator's stress is in eV/Angstrom^3 with ASE's sign and Voigt order
    # (checked against strain derivatives of the energy in tests/test_sevenn_mattersim.py)
    stress_factor = 1.0

    def __init__(
        self, spec: ModelSpec, model: str = "7net-0", modal: str | None = None, weights: str | Path | None = None,
        **kwargs: Any,
    ):
        # a trained model's entry (surfbench train) names its own checkpoint: weights {source: local, path}
        w = spec.weights or {}
        if weights is None and w.get("source") == "local" and w.get("path"):
            weights = w["path"]
        super().__init__(spec, weights=weights, **kwargs)
        known = wheel_checkpoints(BACKEND, "model")
        if model not in known:
            raise ModelLoadError(
                f"{spec.name}: unknown SevenNet model {model!r}; shipped in the wheel: {list(known)}"
            )
        modals = _MODALS.get(model)
        if modals and modal not in modals and self.weights is None:
            raise ModelLoadError(f"{spec.name}: {model} is multi-fidelity; give modal, one of {list(modals)}")
        if not modals and modal is not None and self.weights is None:
            raise ModelLoadError(f"{spec.name}: {model} has a single fidelity; modal={modal!r} is not accepted")
        self.model = model
        self.modal = modal

    def weight_files(self) -> list[Path]:
        user = self.user_weights_file()
        if user is not None:
            return [user]
        path = package_dir("sevenn", self.spec).parent / self.checkpoint()
        if not path.is_file():
            raise ModelLoadError(
                f"{self.spec.name}: checkpoint {path} is missing from the sevenn package "
                f"(this sevenn version may not ship it; {self.spec.install_hint})"
            )
        return [path]

    def checkpoint(self) -> str:
        """The model's checkpoint relative to site-packages: the entry's own ``weights.path``
        (``source: wheel``), else that of the packaged entry of the model (models.yaml)."""
        w = self.spec.weights or {}
        if w.get("source") == "wheel" and w.get("path"):
            return w["path"]
        return wheel_checkpoints(BACKEND, "model")[self.model]

    def options(self) -> dict[str, Any]:
        return {"model": self.model, "modal": self.modal}

    def calculator(self) -> Calculator:
        (checkpoint,) = self.weight_files()
        with self.package_needed("sevenn"), quiet_build():
            from sevenn.calculator import SevenNetCalculator
        # always build from the hashed file, so the fingerprint names what is evaluated
        try:
            with quiet_build():
                return SevenNetCalculator(model=str(checkpoint), modal=self.modal, device=self.device)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"model {self.spec.name}: sevenn cannot load {checkpoint}: {exc}") from exc
