"""NequIP from scratch with ``nequip-train`` (nequip 0.19), in the ``nequip`` environment.

nequip needs e3nn >= 0.6, which the main environment cannot hold next to mace-torch, so
training runs the environment's own ``nequip-train`` (``surfbench env create nequip`` makes
it; ``$SURFBENCH_ENV_DIR`` says where) as a subprocess, and the trained checkpoint is
evaluated through the ``env:nequip`` worker like ``nequip-local``
(:class:`surfbench.models.loaders.nequip.NequipBackend`).

The run folder holds ``train.xyz`` / ``valid.xyz`` (energy eV, forces eV/A and, when every
frame has one, stress eV/A^3 as ASE single-point results, which nequip reads without a sign
change), the Hydra config ``conf/train.yaml`` and nequip's output: ``best.ckpt`` (lowest
validation ``weighted_sum``, the model registered), ``last.ckpt`` and ``metrics.csv``
(lightning's CSV logger: the per-epoch history).

Settings: ``num_layers``, ``l_max``, ``num_features``, ``num_bessels``, ``radial_mlp_depth``,
``radial_mlp_width``, ``parity``, ``cutoff_a`` (r_max, Angstrom), ``dtype`` (model_dtype).
Loss (nequip's ``EnergyForceLoss`` / ``EnergyForceStressLoss``, ``per_atom_energy: true``):
``energy_weight`` x MSE of the energy per atom ((eV/atom)^2) + ``force_weight`` x MSE of the
force components ((eV/A)^2) [+ ``stress_weight`` x MSE of the stress components
((eV/A^3)^2)]. Validation metric (early stopping with ``patience``, best checkpoint): the
weighted sum ``energy_weight`` x RMSE(E/atom) + ``force_weight`` x RMSE(F). Per-type energy
shifts and scales come from the training frames (mean energy per atom, RMS force).
Optimiser: Adam with ``lr``. Fine-tuning is not offered (no universal NequIP model here).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import yaml

from surfbench.models import ModelLoadError
from surfbench.training.base import SCRATCH, TrainedModel, Trainer, TrainingError, TrainJob, registry_facts
from surfbench.training.io import has_stress, write_extxyz
from surfbench.training.resources import run_command, thread_env

#: runs nequip-train's main in the environment, then counts the trainable parameters of the
#: checkpoint in the same process (a second interpreter would import nequip again, ~10 s)
_TRAIN_SCRIPT = """\
import os, sys
from nequip.scripts.train import main
try:
    main()
except SystemExit as exc:
    if exc.code not in (None, 0):
        raise
from nequip.model.saved_models.checkpoint import ModelFromCheckpoint
out = os.environ["SURFBENCH_NEQUIP_OUT"]
ckpt = os.path.join(out, "best.ckpt")
if not os.path.isfile(ckpt):
    ckpt = os.path.join(out, "last.ckpt")
model = ModelFromCheckpoint(ckpt)
print("surfbench: trainable parameters", sum(p.numel() for p in model.parameters() if p.requires_grad), flush=True)
"""
#: the registry entry whose family, backend, package, version range, environment and citation a
#: trained NequIP model shares
GENERIC_ENTRY = "nequip-local"
_PARAMETERS = re.compile(r"^surfbench: trainable parameters (\d+)$", re.MULTILINE)


def nequip_python() -> Path:
    from surfbench.models.isolated import resolve_python

    try:
        return resolve_python("env:nequip")
    except ModelLoadError as exc:
        raise TrainingError(f"nequip: {exc}") from exc


def config(job: TrainJob, train_file: Path, valid_file: Path, use_stress: bool) -> dict:
    """The Hydra config of ``nequip-train`` for this job."""
    s = job.settings
    types = list(job.elements)
    coeffs = {"total_energy": float(s["energy_weight"]), "forces": float(s["force_weight"])}
    if use_stress:
        coeffs["stress"] = float(s["stress_weight"])
    callbacks = [
        {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "monitor": "val0_epoch/weighted_sum",
         "mode": "min", "dirpath": "${hydra:runtime.output_dir}", "filename": "best", "save_top_k": 1,
         "save_last": True},
    ]
    if s.get("patience"):
        callbacks.append({"_target_": "lightning.pytorch.callbacks.EarlyStopping", "monitor": "val0_epoch/weighted_sum",
                          "mode": "min", "patience": int(s["patience"])})
    accelerator = "gpu" if str(job.device).startswith("cuda") else "cpu"
    return {
        "run": ["train"],
        "cutoff_radius": float(s["cutoff_a"]),
        "model_type_names": types,
        "data": {
            "_target_": "nequip.data.datamodule.ASEDataModule",
            "seed": int(job.seed),
            "train_file_path": str(train_file),
            "val_file_path": str(valid_file),
            "transforms": [
                {"_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                 "model_type_names": "${model_type_names}",
                 "chemical_species_to_atom_type_map": {t: t for t in types}},
                {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": "${cutoff_radius}"},
            ],
            "train_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": int(s["batch_size"]),
                                 "shuffle": True},
            "val_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": int(s["batch_size"])},
            "stats_manager": {"_target_": "nequip.data.CommonDataStatisticsManager",
                              "dataloader_kwargs": {"batch_size": int(s["batch_size"])},
                              "type_names": "${model_type_names}"},
        },
        "trainer": {
            "_target_": "lightning.Trainer", "accelerator": accelerator, "devices": 1,
            "max_epochs": int(s["epochs"]), "check_val_every_n_epoch": 1, "log_every_n_steps": 1,
            "enable_checkpointing": True, "enable_progress_bar": False, "enable_model_summary": False,
            "logger": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "${hydra:runtime.output_dir}",
                       "name": "", "version": ""},
            "callbacks": callbacks,
        },
        "training_module": {
            "_target_": "nequip.train.NequIPLightningModule",
            "loss": {"_target_": "nequip.train.EnergyForceStressLoss" if use_stress else "nequip.train.EnergyForceLoss",
                     "per_atom_energy": True, "coeffs": coeffs},
            "val_metrics": {"_target_": "nequip.train.EnergyForceMetrics",
                            "coeffs": {"per_atom_energy_rmse": float(s["energy_weight"]),
                                       "forces_rmse": float(s["force_weight"]),
                                       "total_energy_rmse": None}},
            "optimizer": {"_target_": "torch.optim.Adam", "lr": float(s["lr"])},
            "model": {
                "_target_": "nequip.model.NequIPGNNModel",
                "seed": int(job.seed),
                "model_dtype": str(s.get("dtype", "float64")),
                "type_names": "${model_type_names}",
                "r_max": "${cutoff_radius}",
                "num_bessels": int(s["num_bessels"]),
                "num_layers": int(s["num_layers"]),
                "l_max": int(s["l_max"]),
                "parity": bool(s["parity"]),
                "num_features": int(s["num_features"]),
                "radial_mlp_depth": int(s["radial_mlp_depth"]),
                "radial_mlp_width": int(s["radial_mlp_width"]),
                "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
                "per_type_energy_scales": "${training_data_stats:per_type_forces_rms}",
                "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
            },
        },
        "global_options": {"allow_tf32": False},
    }


def history(metrics_csv: Path) -> list[dict[str, float]]:
    """Per-epoch validation errors from lightning's CSV log (eV/atom, eV/A)."""
    if not metrics_csv.is_file():
        return []
    out: dict[int, dict[str, float]] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            e, f = row.get("val0_epoch/per_atom_energy_rmse"), row.get("val0_epoch/forces_rmse")
            if row.get("epoch") in (None, "") or not e:
                continue
            entry = out.setdefault(int(float(row["epoch"])), {"epoch": int(float(row["epoch"]))})
            entry["valid_rmse_e_per_atom_ev"] = float(e)
            if f:
                entry["valid_rmse_f_ev_per_a"] = float(f)
            if row.get("val0_epoch/weighted_sum"):
                entry["valid_loss"] = float(row["val0_epoch/weighted_sum"])
    return [out[k] for k in sorted(out) if all(math.isfinite(v) for v in out[k].values())]


class NequipTrainer(Trainer):
    method = "nequip"
    modes = (SCRATCH,)

    def train(self, job: TrainJob) -> TrainedModel:
        if job.mode != SCRATCH:
            raise TrainingError("nequip: only training from scratch is offered (no universal NequIP model here)")
        if not job.valid:
            raise TrainingError("nequip: needs at least one validation frame")
        python = nequip_python()
        work = Path(job.workdir).resolve()
        work.mkdir(parents=True, exist_ok=True)
        use_stress = bool(job.settings.get("stress_weight")) and has_stress(list(job.train) + list(job.valid))
        job.settings["use_stress"] = use_stress
        train_file = write_extxyz(job.train, work / "train.xyz", "calc", stress=use_stress)
        valid_file = write_extxyz(job.valid, work / "valid.xyz", "calc", stress=use_stress)
        conf = work / "conf"
        conf.mkdir(exist_ok=True)
        (conf / "train.yaml").write_text(yaml.safe_dump(config(job, train_file, valid_file, use_stress), sort_keys=False),
                                         encoding="utf-8")
        out = work / "run"
        script = work / "nequip_train.py"
        script.write_text(_TRAIN_SCRIPT, encoding="utf-8")
        result = run_command(
            [python, str(script), "-cp", str(conf), "-cn", "train", f"hydra.run.dir={out}"],
            work / "train.log", cwd=work,
            env=thread_env(job.settings.get("threads"), {"PYTHONWARNINGS": "ignore", "SURFBENCH_NEQUIP_OUT": str(out)}),
            timeout_s=job.settings.get("timeout_s"), what=f"nequip ({job.name})",
        )
        ckpt = out / "best.ckpt"
        if not ckpt.is_file():
            ckpt = out / "last.ckpt"
        if not ckpt.is_file():
            raise TrainingError(f"nequip ({job.name}): nequip-train wrote no checkpoint in {out}; log {result.log_path}")
        entry = {
            "name": job.name,
            **registry_facts(GENERIC_ENTRY, "family", "backend", "package", "version", "python"),
            "weights": {"source": "local", "path": str(ckpt)},
            "licence": "MIT (nequip code; model trained here)",
            **registry_facts(GENERIC_ENTRY, "citation"),
        }
        counted = _PARAMETERS.search(result.log_path.read_text(encoding="utf-8", errors="replace"))
        return TrainedModel(
            weights_path=ckpt, registry_entry=entry, n_parameters=int(counted.group(1)) if counted else None,
            wall_s=result.wall_s, peak_rss_mb=result.peak_rss_mb, log_path=result.log_path, cpu_s=result.cpu_s,
            history=history(out / "metrics.csv"),
        )
