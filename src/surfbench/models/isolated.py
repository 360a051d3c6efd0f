"""Models that live in their own Python environment.

Potential packages pin incompatible versions of shared dependencies (mace-torch pins e3nn
0.4.4, SevenNet and MatterSim need e3nn >= 0.5, NequIP >= 0.6). A registry entry may name the
interpreter of its own environment (``python: /path/to/bin/python`` or ``python: env:NAME``
for an environment made by ``surfbench env create NAME``). The model is then built and run in a
worker subprocess of that interpreter (``python -m surfbench.models.worker``), which must have
surfbench installed; structures go to it and energies, forces and stresses come back over
pipes (JSON lines), so results land in the same store as in-process models.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from platformdirs import user_data_dir

from surfbench.models.base import Fingerprint, ModelBackend, ModelLoadError, ModelSpec

ENV_ENVS_DIR = "SURFBENCH_ENV_DIR"


def envs_dir() -> Path:
    """Where ``surfbench env create`` puts environments."""
    env = os.environ.get(ENV_ENVS_DIR)
    return Path(env) if env else Path(user_data_dir("surfbench")) / "envs"


def resolve_python(python: str) -> Path:
    if python.startswith("env:"):
        name = python[4:]
        path = envs_dir() / name / "bin" / "python"
        if not path.exists():
            raise ModelLoadError(
                f"environment {name!r} not found at {path.parent.parent}; create it with 'surfbench env create {name}'"
            )
        return path
    path = Path(python).expanduser()
    if not path.exists():
        raise ModelLoadError(f"python interpreter {path} not found")
    return path


class WorkerClient:
    """One worker subprocess speaking JSON lines on stdin/stdout."""

    def __init__(self, python: Path, init: dict[str, Any], threads: int | None = None):
        env = dict(os.environ)
        if threads:
            env["SURFBENCH_TORCH_THREADS"] = str(threads)
        self.python = python
        self.proc = subprocess.Popen(
            [str(python), "-m", "surfbench.models.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1, env=env,
        )
        atexit.register(self.close)
        self.request({"op": "init", **init})

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise ModelLoadError(f"worker {self.python} exited ({self.proc.returncode}): {self._stderr()}")
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as exc:
            raise ModelLoadError(f"worker {self.python} failed: {exc}; {self._stderr()}") from exc
        if not line:
            self.proc.wait(timeout=10)
            raise ModelLoadError(f"worker {self.python} exited ({self.proc.returncode}): {self._stderr()}")
        reply = json.loads(line)
        if reply.get("fatal"):
            raise ModelLoadError(f"worker {self.python}: {reply['fatal']}")
        return reply

    def _stderr(self) -> str:
        try:
            return (self.proc.stderr.read() or "")[-2000:]
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "close"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()


class WorkerCalculator(Calculator):
    """ASE calculator that evaluates in the worker."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, client: WorkerClient, **kwargs):
        super().__init__(**kwargs)
        self.client = client

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        reply = self.client.request({
            "op": "calculate",
            "numbers": self.atoms.numbers.tolist(),
            "positions": self.atoms.positions.tolist(),
            "cell": np.asarray(self.atoms.cell).tolist(),
            "pbc": [bool(p) for p in self.atoms.pbc],
            "properties": list(properties),
        })
        if "error" in reply:
            raise RuntimeError(f"in worker: {reply['error']}")
        self.results["energy"] = self.results["free_energy"] = float(reply["energy"])
        if "forces" in reply:
            self.results["forces"] = np.array(reply["forces"], dtype=float)
        if "stress" in reply:
            self.results["stress"] = np.array(reply["stress"], dtype=float)


class IsolatedBackend(ModelBackend):
    """Runs another backend in the interpreter named by ``spec.python``."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", dtype: str | None = None,
                 weights: str | Path | None = None, **kwargs: Any):
        self.spec = spec
        self.device = device
        self.dtype = dtype or ""
        self.weights = weights
        self.inner_kwargs = kwargs
        self._client: WorkerClient | None = None

    def _worker(self) -> WorkerClient:
        if self._client is None:
            # the worker computes with this process's torch thread count (never imported here
            # for it: a cap set by --threads is in OMP_NUM_THREADS when torch is not loaded)
            torch = sys.modules.get("torch")
            omp = os.environ.get("OMP_NUM_THREADS", "")
            threads = torch.get_num_threads() if torch is not None else (int(omp) if omp.isdigit() else None)
            inner = {**asdict(self.spec), "python": None}
            # bookkeeping the worker never needs; left out so that an environment made by an older
            # surfbench (whose ModelSpec lacks the field) still starts
            inner.pop("trained_on", None)
            inner["elements"] = list(inner["elements"]) if inner["elements"] else None
            self._client = WorkerClient(
                resolve_python(self.spec.python or ""),
                {"spec": inner, "device": self.device, "dtype": self.dtype or None,
                 "weights": str(self.weights) if self.weights else None},
                threads=threads,
            )
        return self._client

    def weight_files(self) -> list[Path]:  # the worker hashes them
        return []

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(**self._worker().request({"op": "fingerprint"})["fingerprint"])

    def calculator(self) -> Calculator:
        self._worker().request({"op": "build"})
        return WorkerCalculator(self._worker())
