"""MatterSim v1.0.0 (Yang et al. 2024), an M3GNet-architecture potential from Microsoft.

The weights are not in the wheel: mattersim downloads them at run time. Here they come from
the registry's pinned URL through :func:`surfbench.models.weights.resolve_weights` (or from
``--weights`` / ``$SURFBENCH_MODEL_DIR``), and the calculator is always built from that local
file, so mattersim never downloads anything itself.
"""

from __future__ import annotations

import warnings
from pathlib import Path

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
        with self.package_needed("mattersim"), warnings.catch_warnings():
            # torch's deprecation of torch.jit.script, once per scripted function
            warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
            import torch
            from mattersim.forcefield.m3gnet.m3gnet import M3Gnet
            from mattersim.forcefield.potential import MatterSimCalculator, Potential
        # What Potential.from_checkpoint(path, load_training_state=False) does, minus its side
        # effects: it creates ~/.local/mattersim/pretrained_models even for a local file (and
        # fails where the home folder is read-only) and would download for mattersim's own
        # model names. Only the model's weights are read; the optimiser/EMA state is not.
        try:
            checkpoint = torch.load(str(path), map_location=self.device)
            if not isinstance(checkpoint, dict) or checkpoint.get("model_name") != "m3gnet":
                found = checkpoint.get("model_name") if isinstance(checkpoint, dict) else type(checkpoint).__name__
                raise ValueError(f"not a MatterSim M3GNet checkpoint (model_name {found!r})")
            model = M3Gnet(device=self.device, **checkpoint["model_args"]).to(self.device)
            # strict=False as in mattersim's own loader
            missing = model.load_state_dict(checkpoint["model"], strict=False).missing_keys
        except Exception as exc:  # torch.load / state-dict errors: a wrong or damaged file
            raise ModelLoadError(
                f"model {self.spec.name}: mattersim cannot load {path} ({type(exc).__name__}: {exc})"
            ) from exc
        if missing:
            warnings.warn(f"model {self.spec.name}: {path} lacks {len(missing)} weights of the model: {missing[:5]}",
                          stacklevel=2)
        model.eval()
        potential = Potential(model, device=self.device)
        return MatterSimCalculator(potential=potential, device=self.device)
