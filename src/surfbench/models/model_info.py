"""Facts about a loaded model and its built calculator (stored with its results), and the threads
of this process's numerical libraries (light: no pandas, and torch is never imported here, so
that worker and guard processes, and runs of models that do not use torch, start fast)."""

from __future__ import annotations

import os
import platform
import sys
from typing import TYPE_CHECKING

from surfbench.util import package_version

if TYPE_CHECKING:
    from surfbench.models.base import LoadedModel

__all__ = ["THREAD_ENV", "cap_threads", "count_parameters", "model_details", "passive_openmp", "threads_in_use"]

#: environment variables read by OpenMP, MKL and OpenBLAS when they are loaded (after a cap:
#: libraries loaded later and child processes start with it)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def count_parameters(calculator: object) -> int | None:
    """Number of trainable parameters of a torch-based calculator, if it exposes its model."""
    inner = getattr(calculator, "inner", None)  # surfbench's PeriodicCalculator wrapper
    if inner is not None and not any(hasattr(calculator, a) for a in ("model", "models", "potential")):
        calculator = inner
    for attr in ("model", "models", "potential"):
        obj = getattr(calculator, attr, None)
        if isinstance(obj, list | tuple) and obj:
            obj = obj[0]
        if obj is not None and hasattr(obj, "parameters"):
            try:
                return int(sum(p.numel() for p in obj.parameters()))
            except Exception:  # not a torch module after all
                return None
    return None


def model_details(model: LoadedModel, calculator: object | None = None) -> dict:
    """What the store records about a model besides its fingerprint: family, package, device,
    nominal parameters, training set, the Python, torch and ASE versions, the evaluated records
    it saw in training and, given its built ``calculator``, its trainable parameters."""
    spec = model.spec
    details = {
        "family": spec.family, "package": spec.package, "device": model.device,
        "nominal_parameters": spec.parameters, "training_set": spec.training_set,
        "python": platform.python_version(), "torch": package_version("torch"),
        "ase": package_version("ase"),
        # the evaluated records the model saw in training (analysis/seen.py)
        "trained_on": spec.trained_on,
    }
    if calculator is not None:
        details["parameters"] = count_parameters(calculator)
    return details


def passive_openmp() -> bool:
    """Make OpenMP threads that wait for work sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``)
    unless the user chose a policy; True if set here. Only a runtime loaded afterwards reads it
    (call it before torch is imported). Spinning threads fight every other process for the
    cores: ``surfbench run`` (CHGNet, mlearn-surfaces, 2 threads) took 148 s while another job
    kept the 2 cores busy (load average 3-4), 17.6 s with passive waiting and 18.8 s with
    ``--threads 1``."""
    if "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def threads_in_use() -> int | None:
    """The threads a calculator of this process computes with: torch's intra-op count when
    torch is loaded (a torch model), else the largest BLAS pool (numpy's, for ASE and numpy
    calculators); None when neither can be told."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return int(torch.get_num_threads())
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # an isolated environment without threadpoolctl
        return None
    counts = [int(p["num_threads"]) for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts) if counts else None


def cap_threads(threads: int | None) -> int | None:
    """Cap every thread pool of this process at ``threads`` (None: leave the packages'
    defaults); return the count in use (:func:`threads_in_use`).

    The cap covers torch's intra-op threads (when torch is loaded: it is never imported here,
    so a model that does not use torch does not pay for it), and, through threadpoolctl, every
    BLAS and OpenMP pool loaded now (numpy's OpenBLAS, MKL, the OpenMP runtime of torch or
    LAMMPS); ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` are set too,
    for libraries loaded later and child processes. Call it after the calculator is built (its
    libraries are loaded by then). Without a cap, OpenBLAS's threads wait for each other on a
    machine whose cores are busy: ASE's cell filter and optimizers, small matrices, ran 5x
    slower on 2 loaded cores (``benchmarks/fixed_cost.py``)."""
    if threads:
        n = int(threads)
        for name in THREAD_ENV:
            os.environ[name] = str(n)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # an isolated environment without threadpoolctl: torch and the variables only
            pass
        else:
            threadpool_limits(limits=n)
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(torch, "set_num_threads"):
            torch.set_num_threads(n)
    return threads_in_use()

