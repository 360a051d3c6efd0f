"""MACE (Batatia et al.), through mace-torch's ASE calculator.

* ``mace-mp-0-medium`` and ``mace-mp-0-l2``: the MACE-MP-0 files of the ACEsuit release, from
  the same GitHub URLs mace-torch's ``mace_mp()`` downloads. surfbench fetches them itself
  (:func:`surfbench.models.weights.resolve_weights`: ``--weights``, then
  ``$SURFBENCH_MODEL_DIR/<relpath>``, then its cache, then a pooch download into the cache), so
  the fingerprint can hash the file and an offline machine gets an error naming the URL and
  both ways to give a local copy.
* ``mace-local``: any local MACE model file, given with ``--weights``.

A ``.model`` file is a whole pickled ``torch.nn.Module`` (``torch.save(model, path)``, as
``mace_run_train`` writes it); loading it runs the pickle, so use only files you trust.
MACE-MP-0 files were saved under e3nn 0.4.4 and load under e3nn 0.4.4 to 0.5.1, not 0.5.2+.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator

from surfbench.models.base import ModelBackend, ModelLoadError, ModelSpec
from surfbench.models.weights import ENV_MODEL_DIR
from surfbench.util import package_version


@contextlib.contextmanager
def quiet_mace_load() -> Iterator[None]:
    """Keep mace's import/unpickle chatter off the log: TorchScript annotation warnings from
    e3nn's code generation and torch's notice that weights_only is off.

    Importing mace-torch sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole process
    (mace/__init__.py), so that torch >= 2.6 unpickles its whole-module .model files. It is left
    as mace sets it: unsetting it afterwards would break mace's own loaders (mace_mp(),
    MACECalculator) for the rest of the process, since mace is imported only once. The MACE
    training driver (``surfbench.training.mace``) reads model files under it too.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.*")
        warnings.filterwarnings("ignore", message="The TorchScript type system doesn't support")
        yield


class MaceBackend(ModelBackend):
    # mace_mp() defaults to default_dtype="float32" and says so: "faster but less accurate.
    # Recommended for MD. Use float64 for geometry optimization." surfbench relaxes slabs and
    # takes small energy differences (surface energies), so float64 comes first (the default);
    # float32 stays selectable with --dtype float32. MACECalculator converts the loaded model to
    # the dtype asked for, whatever dtype the file was saved in.
    supported_dtypes = ("float64", "float32")

    # MACECalculator returns stress in ASE's convention (eV/Angstrom^3, Voigt order)
    stress_factor = 1.0

    def __init__(self, spec: ModelSpec, **kwargs: Any):
        super().__init__(spec, **kwargs)

    def weight_files(self) -> list[Path]:
        # --weights, $SURFBENCH_MODEL_DIR/cache, or the pinned download (offline, the error names
        # the URL, --weights and $SURFBENCH_MODEL_DIR); mace-local needs --weights
        return [self.resolved_weights("MACE model file (named MACE-MP-0 models: mace-mp-0-medium, mace-mp-0-l2)")]

    def calculator(self) -> Calculator:
        (path,) = self.weight_files()
        with quiet_mace_load():
            with self.package_needed("mace-torch"):
                from mace.calculators import MACECalculator
            try:
                # a one-element list, not a string: a string is passed through glob(), and a
                # path holding [ ] * ? would then match nothing or another file
                return MACECalculator(model_paths=[str(path)], device=self.device, default_dtype=self.dtype)
            except Exception as exc:  # unpickling raises anything (AttributeError, RuntimeError, ...)
                raise ModelLoadError(
                    f"model {self.spec.name}: cannot load the MACE model file {path} "
                    f"({type(exc).__name__}: {exc}). Is it a MACE .model file (a torch.save'd module)? "
                    f"Installed: mace-torch {package_version('mace-torch')}, e3nn {package_version('e3nn')}, "
                    f"torch {package_version('torch')}; MACE-MP-0 files load under e3nn 0.4.4 to 0.5.1 only. "
                    f"Another copy can be given with --weights PATH or placed in ${ENV_MODEL_DIR}."
                ) from exc
