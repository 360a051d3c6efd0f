"""The torch device a model runs on, checked before any model is built: ``cpu``, ``cuda``,
``cuda:N`` or ``mps``. torch is imported only when an accelerator is asked for."""

from __future__ import annotations

import re

from surfbench.models.base import ModelLoadError

DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


class DeviceError(ModelLoadError):
    """An unknown device, or an accelerator this machine does not have."""


def check_device(device: str) -> str:
    """``device`` if this machine can run on it, else :class:`DeviceError` saying why."""
    if not DEVICE_PATTERN.match(device):
        raise DeviceError(f"unknown device {device!r}; use cpu, cuda, cuda:N (N: GPU index) or mps")
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError as exc:
        raise DeviceError(f"device {device!r} needs torch, which is not installed; use --device cpu") from exc
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("device 'mps' (Apple GPU) is not available on this machine; use --device cpu")
        return device
    if not torch.cuda.is_available():
        build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceError(f"device {device!r}: CUDA is not available on this machine (torch {torch.__version__}, "
                          f"{build}, no usable GPU or driver); use --device cpu")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                          f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device
