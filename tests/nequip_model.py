"""A tiny NequIP model for tests, trained with ``nequip-train`` in the nequip environment.

Training data: 6 Cu frames (among them the two Cu slabs) and 2 Ni frames of the mlearn test
sets (``shared/data/mlearn/{Cu,Ni}/test.json``) with their DFT energies and forces, written as
extxyz; where those files are absent, 8 rattled Cu/Ni cells labelled with ASE's EMT. Two
species, so that the species -> type mapping is exercised (type names ``[Cu, Ni]``: not in
atomic-number order).

Model: NequIPGNNModel, r_max 4, 2 layers, l_max 1, 8 features, no parity, float64: about 1.7k
parameters; 2 epochs, energy + force loss, CPU. ``nequip-train`` writes ``last.ckpt``.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

TYPE_NAMES = ("Cu", "Ni")

CONFIG = """\
run: [train]
cutoff_radius: 4.0
model_type_names: [Cu, Ni]

data:
  _target_: nequip.data.datamodule.ASEDataModule
  seed: 1
  train_file_path: {xyz}
  val_file_path: {xyz}
  transforms:
    - _target_: nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper
      model_type_names: ${{model_type_names}}
      chemical_species_to_atom_type_map: {{Cu: Cu, Ni: Ni}}
    - _target_: nequip.data.transforms.NeighborListTransform
      r_max: ${{cutoff_radius}}
  train_dataloader:
    _target_: torch.utils.data.DataLoader
    batch_size: 4
    shuffle: true
  val_dataloader:
    _target_: torch.utils.data.DataLoader
    batch_size: 8
  stats_manager:
    _target_: nequip.data.CommonDataStatisticsManager
    dataloader_kwargs:
      batch_size: 8
    type_names: ${{model_type_names}}

trainer:
  _target_: lightning.Trainer
  accelerator: cpu
  devices: 1
  max_epochs: {epochs}
  enable_checkpointing: true
  enable_progress_bar: false
  enable_model_summary: false
  logger: false
  callbacks:
    - _target_: lightning.pytorch.callbacks.ModelCheckpoint
      dirpath: ${{hydra:runtime.output_dir}}
      save_last: true

training_module:
  _target_: nequip.train.NequIPLightningModule
  loss:
    _target_: nequip.train.EnergyForceLoss
    per_atom_energy: true
    coeffs:
      total_energy: 1.0
      forces: 1.0
  val_metrics:
    _target_: nequip.train.EnergyForceMetrics
    coeffs:
      total_energy_mae: 1.0
      forces_mae: 1.0
  optimizer:
    _target_: torch.optim.Adam
    lr: 0.01
  model:
    _target_: nequip.model.NequIPGNNModel
    seed: 1
    model_dtype: {dtype}
    type_names: ${{model_type_names}}
    r_max: ${{cutoff_radius}}
    num_bessels: 4
    num_layers: 2
    l_max: 1
    parity: false
    num_features: 8
    radial_mlp_depth: 1
    radial_mlp_width: 16
    avg_num_neighbors: ${{training_data_stats:num_neighbors_mean}}
    per_type_energy_scales: ${{training_data_stats:per_type_forces_rms}}
    per_type_energy_shifts: ${{training_data_stats:per_atom_energy_mean}}

global_options:
  allow_tf32: false
"""


def training_frames(data_dir: Path | None) -> list:
    """Cu and Ni frames with energy and forces (SinglePointCalculator)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    if data_dir is not None and all((data_dir / "mlearn" / el / "test.json").is_file() for el in TYPE_NAMES):
        from surfbench.data.mlearn import read_mlearn_json

        cu = read_mlearn_json(data_dir / "mlearn" / "Cu" / "test.json", "Cu", "test")
        ni = read_mlearn_json(data_dir / "mlearn" / "Ni" / "test.json", "Ni", "test")
        slabs = [f for f in cu if f.group == "Surface"]
        others = [f for f in cu if f.group != "Surface"]
        for f in slabs[:2] + others[:4] + ni[:2]:
            a = f.atoms.copy()
            a.calc = SinglePointCalculator(a, energy=f.energy_ev, forces=f.forces_ev_per_a)
            frames.append(a)
        return frames
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(0)
    for i in range(8):
        el, a0 = ("Cu", 3.61) if i < 6 else ("Ni", 3.52)
        atoms = bulk(el, "fcc", a=a0 * (0.98 + 0.01 * (i % 5)), cubic=True) * (2, 2, 2)
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        frames.append(atoms)
    return frames


def train_tiny_model(python: Path, folder: Path, data_dir: Path | None, *, epochs: int = 2,
                     dtype: str = "float64", threads: int = 2) -> tuple[Path, float]:
    """Train in ``folder`` with the environment's ``nequip-train``; (checkpoint, seconds)."""
    import ase.io

    folder.mkdir(parents=True, exist_ok=True)
    xyz = folder / "train.xyz"
    ase.io.write(xyz, training_frames(data_dir), format="extxyz")
    conf = folder / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "tiny.yaml").write_text(CONFIG.format(xyz=xyz.resolve(), epochs=int(epochs), dtype=dtype))
    out = folder / "run"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.run(
        [str(python.parent / "nequip-train"), "-cp", str(conf.resolve()), "-cn", "tiny",
         f"hydra.run.dir={out.resolve()}"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600,
    )
    seconds = time.perf_counter() - start
    ckpt = out / "last.ckpt"
    if proc.returncode != 0 or not ckpt.is_file():
        raise RuntimeError(f"nequip-train failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return ckpt, seconds


def run_tool(python: Path, tool: str, *args: str, timeout: int = 600) -> float:
    """Run one of the environment's nequip command-line tools; seconds taken."""
    start = time.perf_counter()
    proc = subprocess.run([str(python.parent / tool), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start
