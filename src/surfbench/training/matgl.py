"""M3GNet through matgl 4.x (PyTorch Lightning): fine-tuning a matgl PES model folder, or
training a new M3GNet from scratch.

* fine-tuning (``--from``, default :data:`DEFAULT_FOUNDATION`): the foundation is a registry
  name of a matgl model (its folder is resolved as for evaluation: ``$SURFBENCH_MODEL_DIR``,
  the cache, the pinned download) or the path of a matgl model folder (``model.json``,
  ``model.pt``, ``state.pt``). Every weight is trained; the architecture, cut-offs, element
  reference energies and ``data_std`` / ``data_mean`` are the foundation's, so before the
  first optimiser step the model gives exactly the foundation's energies.
* scratch: ``M3GNet(element_types=job.elements, is_intensive=False)`` of the preset's size;
  the element reference energies (eV/atom) are a least-squares fit to the training energies
  (``matgl.utils.training.fit_element_refs``) and ``data_std`` is the RMS of the training
  force components (eV/Angstrom), matgl's recipe.

Units and signs. matgl's ``Potential`` returns stress in GPa with ASE's sign (its stress is
``+(1/V) dE/d(strain)``, negative for a compressed cell) as a 3x3 tensor; surfbench frames
hold ASE's Voigt stress in eV/Angstrom^3, so a label is ``voigt_6_to_full_3x3_stress(s) /
ase.units.GPa`` (no sign change). Energies are total energies in eV (matgl divides by the
number of atoms in the loss), forces eV/Angstrom. Every cell is made fully periodic
(pbc=True): matgl treats any other cell as a molecule.

Loss (matgl ``PotentialLightningModule``): ``energy_weight`` x L(energy per atom, eV/atom) +
``force_weight`` x L(force components, eV/Angstrom) + ``stress_weight`` x L(stress
components, GPa), L = ``loss`` (``mse_loss`` default, or ``huber_loss``, ``smooth_l1_loss``,
``l1_loss``). Stress enters only when every training and validation frame has one
(``settings["use_stress"]`` records the decision; otherwise ``stress_weight`` is 0).

Settings read (defaults in brackets): ``epochs`` [10], ``patience`` [None: no early
stopping] on ``val_Total_Loss``, ``batch_size`` [4], ``lr`` [1e-3 scratch, 1e-4 fine-tune],
``decay_alpha`` [0.01] (cosine schedule to ``lr * decay_alpha`` over the run), ``loss``
[mse_loss], ``energy_weight`` [1], ``force_weight`` [1], ``stress_weight`` [0.1], ``threads``
[torch's default]; scratch only: ``cutoff_a`` [5.0], ``threebody_cutoff_a`` [4.0], ``units``
[64], ``nblocks`` [3], ``max_n`` [3], ``max_l`` [3]. ``dtype`` is ignored: matgl trains in
float32 here (see :mod:`surfbench.models.loaders.matgl`).

The model kept is the one of the epoch with the lowest validation loss (the last epoch when
there are no validation frames). Early stopping, checkpoints and the budget are those of
:mod:`surfbench.training.epochs` (``patience`` on the validation total loss): each epoch is one
Lightning ``fit`` that continues Lightning's own checkpoint of the previous one
(``lightning-epochNNNN.ckpt``: optimiser, scheduler, counters), the best weights and the
shuffling generator's state are in ``resume.pt``; an epoch is not stopped inside, so
``--max-minutes`` is judged between epochs. It is written with ``Potential.save`` to
``<workdir>/model/`` and loaded by :class:`surfbench.models.loaders.matgl.MatglBackend`.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from surfbench.data.frames import Frame
from surfbench.training.base import (
    FINETUNE,
    RUNNING,
    SCRATCH,
    TrainedModel,
    Trainer,
    TrainingError,
    TrainJob,
    check_job,
    package_needed,
)
from surfbench.training.epochs import RESUME_IGNORED, EpochRun, LoopState, epoch_result, resume_key, trained_entry
from surfbench.training.io import has_stress

DEFAULT_FOUNDATION = "m3gnet-mp-2021.2.8-pes"
MODEL_FILES = ("model.json", "model.pt", "state.pt")

#: presets for this driver (the shared vocabulary of :mod:`surfbench.training.presets`)
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    # M3GNet paper (Chen & Ong 2022): loss weights energy:force:stress = 1:1:0.1, cut-offs
    # 5 A (graph) and 4 A (three-body), 64 units, 3 blocks; 200 epochs, patience 50
    "paper": {
        "epochs": 200, "patience": 50, "batch_size": 8, "lr": 1e-3, "decay_alpha": 0.01, "loss": "mse_loss",
        "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1,
        "cutoff_a": 5.0, "threebody_cutoff_a": 4.0, "units": 64, "nblocks": 3, "max_n": 3, "max_l": 3,
        FINETUNE: {"lr": 1e-4},
    },
    # a small model and few epochs for 2 CPU cores
    "cpu-quick": {
        "epochs": 10, "patience": 5, "batch_size": 4, "lr": 1e-3, "decay_alpha": 0.01, "loss": "mse_loss",
        "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1, "threads": 2,
        "cutoff_a": 5.0, "threebody_cutoff_a": 4.0, "units": 32, "nblocks": 2, "max_n": 3, "max_l": 3,
        FINETUNE: {"lr": 1e-4, "epochs": 2},
    },
}

_HISTORY_KEYS = ("Total_Loss", "Energy_RMSE", "Force_RMSE", "Stress_RMSE")


def stress_label_gpa(frame: Frame) -> list[list[float]]:
    """The frame's stress as matgl wants it: 3x3, GPa, ASE sign (eV/Angstrom^3 / ase.units.GPa)."""
    from ase.stress import voigt_6_to_full_3x3_stress
    from ase.units import GPa

    return (voigt_6_to_full_3x3_stress(np.asarray(frame.stress_ev_per_a3, dtype=float)) / GPa).tolist()


def _structure(frame: Frame):
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = frame.atoms.copy()
    atoms.pbc = True  # matgl: a cell not periodic in all directions is a molecule
    atoms.calc = None
    return AseAtomsAdaptor.get_structure(atoms)


def foundation_folder(foundation: str | None) -> Path:
    """The matgl model folder of a registry name or a path (default :data:`DEFAULT_FOUNDATION`)."""
    foundation = foundation or DEFAULT_FOUNDATION
    path = Path(foundation).expanduser()
    if path.is_dir():
        missing = [f for f in MODEL_FILES if not (path / f).is_file()]
        if missing:
            raise TrainingError(f"m3gnet: foundation folder {path} is not a matgl model folder (no {missing})")
        return path
    from surfbench.models import ModelLoadError, get_spec, load_model
    from surfbench.models.loaders.matgl import MatglBackend

    try:
        spec = get_spec(foundation)
        backend = load_model(foundation).backend
        if not isinstance(backend, MatglBackend):
            raise TrainingError(f"m3gnet: foundation {foundation!r} is a {spec.family} model, not a matgl model")
        return backend.folder()
    except ModelLoadError as exc:
        raise TrainingError(f"m3gnet: foundation {foundation!r}: {exc}") from exc


def registry_entry(job: TrainJob, st: LoopState, folder: Path, n_parameters: int,
                   settings: dict[str, Any]) -> dict[str, Any]:
    finetuned = job.mode == FINETUNE
    origin = f"fine-tuned from {job.foundation or DEFAULT_FOUNDATION}" if finetuned else "trained from scratch"
    entry = trained_entry(
        job, st, DEFAULT_FOUNDATION, {"path": str(folder.resolve()), "files": list(MODEL_FILES)}, n_parameters,
        licence="BSD-3-Clause (matgl code); weights trained locally by surfbench"
                + (" from BSD-3-Clause foundation weights" if finetuned else ""),
        citation="Chen & Ong, Nat. Comput. Sci. 2, 718 (2022) (M3GNet); matgl 4.x",
        what=(f"M3GNet {origin} with surfbench train (seed {job.seed}, preset {settings.get('preset', '-')}, "
              f"{settings['epochs']} epochs max, stress {'used' if settings['use_stress'] else 'not used'})"))
    if not finetuned:
        entry["elements"] = list(job.elements)
    return entry


class M3gnetTrainer(Trainer):
    method = "m3gnet"
    modes = (SCRATCH, FINETUNE)
    checkpoints = True

    def train(self, job: TrainJob) -> TrainedModel:
        check_job(job, self.modes, "; matgl trains on forces")
        work = Path(job.workdir)
        work.mkdir(parents=True, exist_ok=True)
        s = dict(job.settings)
        finetune = job.mode == FINETUNE
        s.setdefault("epochs", 10)
        use_stress = bool(s.get("stress_weight", 0.1)) and has_stress(list(job.train) + list(job.valid))
        job.settings["use_stress"] = s["use_stress"] = use_stress
        folder = foundation_folder(job.foundation) if finetune else None
        cpu_start = time.process_time()

        from surfbench.models.loaders.matgl import hub_offline

        with hub_offline():
            lit, history, st = self._fit(job, s, folder, work)
        out = work / "model"
        lit.model.save(str(out), metadata={"surfbench": {"name": job.name, "mode": job.mode, "seed": job.seed,
                                                         "settings": {k: v for k, v in s.items() if not isinstance(v, dict)}}})
        n_parameters = int(sum(p.numel() for p in lit.model.parameters()))
        log_path = work / "history.json"
        log_path.write_text(json.dumps(history, indent=1))
        entry = registry_entry(job, st, out, n_parameters, s)
        return epoch_result(st, out, entry, n_parameters, cpu_start=cpu_start, log_path=log_path, history=history)

    def _fit(self, job: TrainJob, s: dict[str, Any], folder: Path | None, work: Path):
        with package_needed("m3gnet", "matgl", "matgl >= 4.1"):
            import lightning as pl
            import matgl
            import torch
            from lightning.pytorch.callbacks import Callback
            from matgl.ext.pymatgen import Structure2Graph
            from matgl.graph.data import MGLDataLoader, MGLDataset
            from matgl.utils.training import PotentialLightningModule

        if s.get("threads"):
            torch.set_num_threads(int(s["threads"]))
        pl.seed_everything(job.seed, workers=True, verbose=False)
        train_structs = [_structure(f) for f in job.train]
        valid_structs = [_structure(f) for f in job.valid]

        if folder is not None:
            try:
                foundation = matgl.load_model(folder)
            except Exception as exc:
                raise TrainingError(f"m3gnet ({job.name}): matgl cannot load {folder}: {exc}") from exc
            model = foundation.model
            element_refs = foundation.element_refs.property_offset.detach().cpu().numpy() if foundation.element_refs is not None else None
            data_mean, data_std = foundation.data_mean.detach().cpu(), foundation.data_std.detach().cpu()
            lr = float(s.get("lr", 1e-4))
        else:
            from matgl.models import M3GNet
            from matgl.utils.training import fit_element_refs

            model = M3GNet(
                element_types=tuple(job.elements), is_intensive=False,
                cutoff=float(s.get("cutoff_a", 5.0)), threebody_cutoff=float(s.get("threebody_cutoff_a", 4.0)),
                units=int(s.get("units", 64)), dim_node_embedding=int(s.get("units", 64)),
                dim_edge_embedding=int(s.get("units", 64)), nblocks=int(s.get("nblocks", 3)),
                max_n=int(s.get("max_n", 3)), max_l=int(s.get("max_l", 3)),
            )
            element_refs = fit_element_refs(train_structs, [f.energy_ev for f in job.train], model.element_types)
            forces = np.concatenate([np.asarray(f.forces_ev_per_a, dtype=float).ravel() for f in job.train])
            data_mean, data_std = 0.0, float(np.sqrt(np.mean(forces**2))) or 1.0
            lr = float(s.get("lr", 1e-3))

        converter = Structure2Graph(element_types=model.element_types, cutoff=model.cutoff)

        def dataset(structs, frames, root):
            labels: dict[str, list] = {
                "energies": [float(f.energy_ev) for f in frames],
                "forces": [np.asarray(f.forces_ev_per_a, dtype=float).tolist() for f in frames],
            }
            if s["use_stress"]:
                labels["stresses"] = [stress_label_gpa(f) for f in frames]
            return MGLDataset(structures=structs, converter=converter, labels=labels, save_cache=False,
                              root=str(work / root))

        train_ds = dataset(train_structs, job.train, "graphs-train")
        valid_ds = dataset(valid_structs, job.valid, "graphs-valid") if job.valid else None
        batch_size = int(s.get("batch_size", 4))
        loaders = MGLDataLoader(train_data=train_ds, val_data=valid_ds if valid_ds is not None else train_ds,
                                batch_size=batch_size, num_workers=0,
                                generator=torch.Generator().manual_seed(job.seed))
        train_loader, valid_loader = loaders[0], loaders[1] if valid_ds is not None else None
        epochs = int(s["epochs"])
        lit = PotentialLightningModule(
            model=model, element_refs=element_refs, data_mean=data_mean, data_std=data_std,
            energy_weight=float(s.get("energy_weight", 1.0)), force_weight=float(s.get("force_weight", 1.0)),
            stress_weight=float(s.get("stress_weight", 0.1)) if s["use_stress"] else 0.0,
            loss=str(s.get("loss", "mse_loss")), lr=lr, decay_steps=max(1, epochs),  # Lightning steps it per epoch
            decay_alpha=float(s.get("decay_alpha", 0.01)),
        )

        from surfbench.training.splits import frame_key

        # the cosine schedule spans ``epochs``: the cap is part of the training's identity
        key = resume_key("m3gnet", job.foundation if job.mode == FINETUNE else None, job.seed, s,
                         [frame_key(f) for f in job.train] + ["valid"] + [frame_key(f) for f in job.valid],
                         ignored=RESUME_IGNORED - {"epochs"})
        run = EpochRun(work, key, name=job.name, epochs=epochs,
                       patience=s.get("patience") if valid_loader is not None else None,
                       deadline=job.deadline, resume=job.resume, echo=job.echo)
        st, blob = run.start()
        best_state, lightning_ckpt = None, None
        if blob is not None:
            best_state, lightning_ckpt = blob["best_state"], work / blob["lightning_checkpoint"]
            train_loader.generator.set_state(blob["loader_rng"])
        metrics: dict[str, float] = {}

        class _Record(Callback):
            def on_train_epoch_end(self, trainer, module):
                metrics.clear()
                metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

        accelerator = "gpu" if str(job.device).startswith("cuda") else "cpu"
        while st.state == RUNNING:
            t0 = time.perf_counter()
            # one epoch per fit, continuing Lightning's own end-of-fit checkpoint (optimiser,
            # scheduler, epoch counters): the pattern Lightning supports for "train more epochs"
            trainer = pl.Trainer(
                max_epochs=st.epochs_done + 1, accelerator=accelerator, devices=1, logger=False,
                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                inference_mode=False, num_sanity_val_steps=0, callbacks=[_Record()],
                limit_val_batches=1.0 if valid_loader is not None else 0, default_root_dir=str(work),
            )
            try:
                trainer.fit(lit, train_dataloaders=train_loader, val_dataloaders=valid_loader,
                            ckpt_path=str(lightning_ckpt) if lightning_ckpt is not None else None)
            except (RuntimeError, ValueError) as exc:
                raise TrainingError(f"m3gnet ({job.name}): training failed: {type(exc).__name__}: {exc}") from exc
            row: dict[str, float] = {}
            for split in ("train", "val"):
                for k in _HISTORY_KEYS:
                    if f"{split}_{k}" in metrics:
                        row[f"{split}_{k.lower()}"] = metrics[f"{split}_{k}"]
            score = row.get("val_total_loss", row.get("train_total_loss", float("nan")))
            if run.after_epoch(st, row, score, time.perf_counter() - t0) or best_state is None:
                best_state = copy.deepcopy(lit.model.state_dict())
            previous, lightning_ckpt = lightning_ckpt, work / f"lightning-epoch{st.epochs_done:04d}.ckpt"
            trainer.save_checkpoint(str(lightning_ckpt))
            run.save(st, {"best_state": best_state, "loader_rng": train_loader.generator.get_state(),
                          "lightning_checkpoint": lightning_ckpt.name})
            if previous is not None and previous != lightning_ckpt:
                previous.unlink(missing_ok=True)  # the state now names the newer one
            if run.first_epoch_overran():  # an epoch is not stopped inside: judged after it
                n = len(train_loader)
                raise run.budget_below_one_epoch(st, n, n, run.epoch_times[0])
        lit.model.load_state_dict(best_state)
        history = [{**row, "kept": float(row["epoch"] == st.best_epoch)} for row in st.history]
        return lit, history, st
