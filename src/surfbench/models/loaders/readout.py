"""A frozen universal model plus a per-element linear read-out on its own per-atom features
(:class:`surfbench.models.features.Readout`), as made by ``surfbench train --method readout``.

Registry entry (written by the training pipeline)::

    - name: readout-sevennet-0-mo-...
      family: readout on SevenNet
      backend: surfbench.models.loaders.readout:ReadoutBackend
      kwargs: {base: sevennet-0}          # the frozen model, a registry name
      weights: {source: local, path: trained/<name>/readout.json}

The calculator is the base model's own calculator with the read-out active inside its network
(:class:`surfbench.models.features.ReadoutCalculator`): forces and stress are exact derivatives
of the corrected energy. Several read-outs on the same base model in one process share one
copy of the base network (the facet-cv folds of one training evaluate one after another).

The fingerprint is the base model's fingerprint plus the sha256 of the read-out file: a
read-out with other coefficients, or on other base weights, is another model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator

from surfbench.models.base import Fingerprint, LoadedModel, ModelBackend, ModelLoadError, ModelSpec, sha256_files

#: (base fingerprint id, device) -> the loaded base model, shared by read-outs in this process
_BASES: dict[tuple[str, str], LoadedModel] = {}


#: (name, device, dtype) -> the same, so that the base weights are hashed once per process
_BY_NAME: dict[tuple[str, str, str | None], LoadedModel] = {}


def shared_base(name: str, device: str = "cpu", dtype: str | None = None) -> LoadedModel:
    """The registry model ``name`` as loaded once in this process for every read-out on it (its
    calculator, with the feature tap, is built on first use)."""
    from surfbench.models.registry import load_model

    key = (name, device, dtype)
    if key not in _BY_NAME:
        model = load_model(name, device=device, dtype=dtype)
        _BY_NAME[key] = _BASES.setdefault((model.fingerprint.id, device), model)
    return _BY_NAME[key]


class ReadoutBackend(ModelBackend):

    def __init__(self, spec: ModelSpec, base: str = "", device: str = "cpu", weights: str | Path | None = None,
                 dtype: str | None = None, **kwargs: Any):
        w = spec.weights or {}
        if weights is None and w.get("source") == "local" and w.get("path"):
            weights = w["path"]
        if not base:
            raise ModelLoadError(f"model {spec.name}: a readout entry needs kwargs.base (the frozen model's name)")
        self.base = shared_base(base, device=device, dtype=dtype)  # checks the dtype against the base's
        self.supported_dtypes = (self.base.backend.dtype,)
        super().__init__(spec, device=device, dtype=self.base.backend.dtype, weights=weights, **kwargs)
        self.base_name = base
        self.stress_factor = self.base.backend.stress_factor

    def readout_file(self) -> Path:
        if self.weights is None:
            raise ModelLoadError(f"model {self.spec.name}: no readout file (weights: {{source: local, path: ...}})")
        path = Path(self.weights).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"model {self.spec.name}: readout file {path} is missing")
        return path

    def weight_files(self) -> list[Path]:
        return [*self.base.backend.weight_files(), self.readout_file()]

    def package_version(self) -> str:
        return self.base.backend.package_version()

    def options(self) -> dict[str, Any]:
        return {"readout_of": self.base.fingerprint.id}

    def fingerprint(self) -> Fingerprint:
        base = self.base.fingerprint
        return Fingerprint(
            model=self.spec.name, package=base.package, package_version=base.package_version,
            weights_sha256=_combined_sha(base.weights_sha256, self.readout_file()),
            dtype=base.dtype, options=json.dumps({"readout_of": base.id, "base_options": base.options}, sort_keys=True),
        )

    def calculator(self) -> Calculator:
        from surfbench.models.features import FeatureError, Readout, ReadoutCalculator, tap_for

        try:
            readout = Readout.load(self.readout_file())
        except FeatureError as exc:
            raise ModelLoadError(f"model {self.spec.name}: {exc}") from exc
        base = self.base
        if readout.base_fingerprint and readout.base_fingerprint != base.fingerprint.id:
            raise ModelLoadError(
                f"model {self.spec.name}: the readout was fitted on the features of {readout.base_fingerprint}, "
                f"but {self.base_name} is now {base.fingerprint.id} (other weights or package version): refit it")
        try:
            tap = tap_for(base)
        except FeatureError as exc:
            raise ModelLoadError(f"model {self.spec.name}: {exc}") from exc
        return ReadoutCalculator(tap, readout)


def _combined_sha(base_sha256: str, readout_file: Path) -> str:
    """sha256 over the base weights' sha256 and the read-out file."""
    import hashlib

    h = hashlib.sha256(base_sha256.encode())
    h.update(sha256_files([readout_file]).encode())
    return h.hexdigest()
