"""MatterSim v1.0.0 (Yang et al. 2024), an M3GNet-architecture potential from Microsoft.

The weights are not in the wheel: mattersim downloads them at run time. Here they come from
the registry's pinned URL through :func:`surfbench.models.weights.resolve_weights` (or from
``--weights`` / ``$SURFBENCH_MODEL_DIR``), and the calculator is always built from that local
file, so mattersim never downloads anything itself.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator

from surfbench.models.base import ModelBackend, ModelLoadError
from surfbench.models.weights import resolve_weights


class MatterSimBackend(ModelBackend):
    # mattersim builds and evaluates its M3GNet in float32
    supported_dtypes = ("float32",)
    # MatterSimCalculator multiplies its GPa stress by stress_weight=ase.units.GPa, giving
    # eV/Angstrom^3 (ASE convention); checked against a finite-difference strain derivative
    # in tests/test_sevenn_mattersim.py with a small random-weight checkpoint
    stress_factor = 1.0

    def weight_files(self) -> list[Path]:
        return [resolve_weights(self.spec, self.weights)]

    def calculator(self) -> Calculator:
        (path,) = self.weight_files()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecation noise of its dependencies on import
                from mattersim.forcefield.potential import MatterSimCalculator, Potential
        except ImportError as exc:
            raise ModelLoadError(
                f"model {self.spec.name} needs the 'mattersim' package ({exc}); "
                f"install it with: {self.spec.install_hint}"
            ) from exc
        try:
            # a load_path that is not one of mattersim's own names ('mattersim-v1.0.0-1M')
            # is read as a local file: no download. The optimiser/EMA state is not needed.
            with contextlib.redirect_stdout(io.StringIO()):
                potential = Potential.from_checkpoint(
                    load_path=str(path.resolve()), device=self.device, load_training_state=False
                )
        except Exception as exc:  # torch.load / state-dict errors: a wrong or damaged file
            raise ModelLoadError(
                f"model {self.spec.name}: mattersim cannot load {path} ({type(exc).__name__}: {exc})"
            ) from exc
        return MatterSimCalculator(potential=potential, device=self.device)

    def options(self) -> dict[str, Any]:
        return {}
