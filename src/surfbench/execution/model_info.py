"""Facts about a built calculator and the torch threads in use (light: no pandas, so that
worker and guard processes start fast)."""

from __future__ import annotations

__all__ = ["count_parameters", "torch_threads"]


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


def torch_threads(threads: int | None) -> int | None:
    """Set torch's intra-op thread count if given; return the count in use (None without torch)."""
    try:
        import torch
    except ImportError:
        return threads
    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()
