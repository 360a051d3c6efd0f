"""CHGNet (Deng et al. 2023). Weights ship inside the chgnet wheel (0.3.0, 0.2.0)."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator

from surfbench.models.base import ModelBackend, ModelLoadError, ModelSpec, package_dir
from surfbench.models.registry import wheel_checkpoints

#: this backend as models.yaml names it; the variants and their files inside the chgnet wheel (as
#: in chgnet.model.model.CHGNet.load) are the weights.path of its packaged entries
BACKEND = f"{__name__}:ChgnetBackend"


class ChgnetBackend(ModelBackend):
    supported_dtypes = ("float32",)

    def __init__(self, spec: ModelSpec, variant: str = "0.3.0", weights: str | Path | None = None, **kwargs: Any):
        # a trained model's entry (surfbench train) names its own file: weights {source: local, path}
        w = spec.weights or {}
        if weights is None and w.get("source") == "local" and w.get("path"):
            weights = w["path"]
        super().__init__(spec, weights=weights, **kwargs)
        known = wheel_checkpoints(BACKEND, "variant")
        if variant not in known:
            raise ModelLoadError(f"{spec.name}: unknown CHGNet variant {variant!r}; known: {list(known)}")
        self.variant = variant

    def weight_files(self) -> list[Path]:
        user = self.user_weights_file()
        if user is not None:
            return [user]
        path = package_dir("chgnet", self.spec).parent / self.checkpoint()
        if not path.is_file():
            raise ModelLoadError(f"{self.spec.name}: weight file {path} is missing from the chgnet package")
        return [path]

    def checkpoint(self) -> str:
        """The variant's file relative to site-packages: the entry's own ``weights.path`` (``source:
        wheel``), else that of the packaged entry of the variant (models.yaml)."""
        w = self.spec.weights or {}
        if w.get("source") == "wheel" and w.get("path"):
            return w["path"]
        return wheel_checkpoints(BACKEND, "variant")[self.variant]

    def options(self) -> dict[str, Any]:
        return {"variant": self.variant}

    def calculator(self) -> Calculator:
        with self.package_needed("chgnet"):
            from chgnet.model import CHGNet
            from chgnet.model.dynamics import CHGNetCalculator
        # chgnet prints its device and parameter count; keep the console for progress
        with contextlib.redirect_stdout(io.StringIO()):
            if self.weights is not None:
                model = CHGNet.from_file(str(self.weight_files()[0]))
                model = model.to(self.device)
            else:
                model = CHGNet.load(model_name=self.variant, use_device=self.device, verbose=False)
            calc = CHGNetCalculator(model=model, use_device=self.device)
        # chgnet 0.4 converts a grad-tracking tensor to a scalar for every structure
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
        return calc
