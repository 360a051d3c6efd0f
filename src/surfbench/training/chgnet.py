"""CHGNet fine-tuning with chgnet's own trainer (``chgnet.trainer.Trainer``,
``chgnet.data.dataset.StructureData``).

The foundation (``--from``, default :data:`DEFAULT_FOUNDATION`) is a registry name of a CHGNet
model (chgnet-0.3.0, chgnet-0.2.0: built as for evaluation) or the path of a CHGNet file
(``CHGNet.from_file``). Every weight except the composition model (the per-element reference
energies, frozen as chgnet does by default; ``train_composition_model: true`` trains them) is
trained from the foundation's values. From-scratch training is not offered.

Magnetic moments: the mlearn frames (and most user data) carry none, so the magmom head is not
trained: the targets are ``efs`` (``ef`` without stress), i.e. no ``m``, magmoms are passed
as None and the magmom loss ratio is 0. The head's weights stay the foundation's; CHGNet still
predicts (untrained) magmoms.

Units and signs, as ``StructureData`` expects them: energies in eV/atom (CHGNet 0.3.0 is
intensive), forces eV/Angstrom, stresses 3x3 in VASP's convention, kBar with compression
positive: chgnet multiplies them by -0.1 to get its own GPa stress with ASE's sign. A surfbench
frame's ASE stress ``s`` (eV/Angstrom^3) is therefore passed as ``-10 * s / ase.units.GPa``.
Every cell is made fully periodic (pbc=True), as surfbench evaluates slabs.

Loss (chgnet ``CombinedLoss``): ``energy_weight`` x L(energy per atom, eV/atom) +
``force_weight`` x L(force components, eV/Angstrom) + ``stress_weight`` x L(stress components,
GPa), L = ``loss`` (``mse`` default, or ``huber``, ``mae``). Stress enters only when every
training and validation frame has one (``settings["use_stress"]``).

Settings read (defaults in brackets): ``epochs`` [10], ``patience`` [None], ``batch_size`` [4],
``lr`` [1e-4], ``loss`` [mse], ``energy_weight`` [1], ``force_weight`` [1], ``stress_weight``
[0.1], ``magmom_weight`` (must be 0: there are no magmom labels), ``train_composition_model``
[False], ``threads`` [torch's default]. ``dtype`` is ignored (CHGNet trains in float32).
Optimiser Adam, cosine learning-rate decay to lr/100 over the run (chgnet's defaults).

Early stopping and the model kept: after each epoch the validation score is
``energy_weight x MAE_e + force_weight x MAE_f (+ stress_weight x MAE_s)`` (chgnet reports
MAEs); the weights of the lowest score are kept, and training stops after ``patience`` epochs
without a lower one (the convergence rule of :mod:`surfbench.training.epochs`, which also keeps
the checkpoint after every epoch: model, optimiser, scheduler, chgnet's history, the shuffling
generator's state and the best weights; a killed or budget-stopped run continues from it). An
epoch of chgnet's loop cannot stop inside, so ``--max-minutes`` is judged between epochs (a
budget that ends inside the first epoch is an error, after that epoch's checkpoint). Without
validation frames the training frames stand in. The model is
written with chgnet's ``Trainer.save`` to ``<workdir>/<name>.pth.tar`` and loaded by
:class:`surfbench.models.loaders.chgnet.ChgnetBackend` (``CHGNet.from_file``).
"""

from __future__ import annotations

import contextlib
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
    TrainedModel,
    Trainer,
    TrainingError,
    TrainJob,
    check_job,
    package_needed,
)
from surfbench.training.epochs import RESUME_IGNORED, EpochRun, epoch_result, resume_key, trained_entry
from surfbench.training.io import has_stress

DEFAULT_FOUNDATION = "chgnet-0.3.0"

#: presets for this driver (the shared vocabulary of :mod:`surfbench.training.presets`)
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    # CHGNet paper (Deng et al. 2023): energy:force:stress(:magmom) = 1:1:0.1(:0.1); magmom 0
    # here (no labels); fine-tuning lr 1e-4; 200 epochs, patience 50
    "paper": {
        "epochs": 200, "patience": 50, "batch_size": 8, "lr": 1e-4, "loss": "mse",
        "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1, "magmom_weight": 0.0,
        "train_composition_model": False,
    },
    "cpu-quick": {
        "epochs": 5, "patience": 3, "batch_size": 4, "lr": 1e-4, "loss": "mse",
        "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1, "magmom_weight": 0.0,
        "train_composition_model": False, "threads": 2,
    },
}

_LOSSES = {"mse": "MSE", "huber": "Huber", "mae": "MAE", "l1": "MAE"}


def stress_label_kbar(frame: Frame) -> list[list[float]]:
    """The frame's stress as ``StructureData`` wants it: 3x3, kBar, VASP sign (compression > 0)."""
    from ase.stress import voigt_6_to_full_3x3_stress
    from ase.units import GPa

    full = voigt_6_to_full_3x3_stress(np.asarray(frame.stress_ev_per_a3, dtype=float))
    return (-10.0 * full / GPa).tolist()


def _structure(frame: Frame):
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = frame.atoms.copy()
    atoms.pbc = True
    atoms.calc = None
    return AseAtomsAdaptor.get_structure(atoms)


def load_foundation(foundation: str | None):
    """(CHGNet model, weights file) of a registry name or a file (default chgnet-0.3.0)."""
    from chgnet.model import CHGNet

    foundation = foundation or DEFAULT_FOUNDATION
    path = Path(foundation).expanduser()
    if path.is_file():
        try:
            return CHGNet.from_file(str(path)), path
        except Exception as exc:  # torch unpickling / missing keys
            raise TrainingError(f"chgnet: cannot load the foundation file {path}: {type(exc).__name__}: {exc}") from exc
    from surfbench.models import ModelLoadError, get_spec, load_model
    from surfbench.models.loaders.chgnet import ChgnetBackend

    try:
        spec = get_spec(foundation)
        backend = load_model(foundation).backend
        if not isinstance(backend, ChgnetBackend):
            raise TrainingError(f"chgnet: foundation {foundation!r} is a {spec.family} model, not a CHGNet model")
        (file,) = backend.weight_files()
    except ModelLoadError as exc:
        raise TrainingError(f"chgnet: foundation {foundation!r}: {exc}") from exc
    if backend.weights is not None:
        return CHGNet.from_file(str(file)), file
    return CHGNet.load(model_name=backend.variant, use_device="cpu", verbose=False), file


class ChgnetTrainer(Trainer):
    method = "chgnet"
    modes = (FINETUNE,)
    checkpoints = True

    def train(self, job: TrainJob) -> TrainedModel:
        frames = check_job(job, self.modes)
        s = dict(job.settings)
        if s.get("magmom_weight"):
            raise TrainingError(f"chgnet ({job.name}): magmom_weight must be 0: the frames carry no magnetic moments")
        loss = str(s.get("loss", "mse")).lower()
        if loss not in _LOSSES:
            raise TrainingError(f"chgnet ({job.name}): loss {loss!r} is not one of {sorted(_LOSSES)}")
        use_stress = bool(s.get("stress_weight", 0.1)) and has_stress(frames)
        job.settings["use_stress"] = s["use_stress"] = use_stress
        work = Path(job.workdir)
        work.mkdir(parents=True, exist_ok=True)
        cpu_start = time.process_time()
        log_path = work / "train.log"
        with open(log_path, "w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
            model, trainer, history, foundation_file, st = self._fit(job, s, work)
        out = work / f"{job.name}.pth.tar"
        trainer.save(str(out))
        n_parameters = int(sum(p.numel() for p in model.parameters()))
        (work / "history.json").write_text(json.dumps(history, indent=1))
        entry = trained_entry(
            job, st, DEFAULT_FOUNDATION, {"path": str(out.resolve())}, n_parameters,
            licence="BSD-3-Clause (chgnet code and foundation weights); fine-tuned locally by surfbench",
            what=(f"CHGNet fine-tuned from {job.foundation or DEFAULT_FOUNDATION} ({foundation_file.name}) with "
                  f"surfbench train (seed {job.seed}, preset {s.get('preset', '-')}, targets "
                  f"{'efs' if use_stress else 'ef'}, no magmom loss: the frames have no magnetic moments)"))
        return epoch_result(st, out, entry, n_parameters, cpu_start=cpu_start, log_path=log_path, history=history)

    def _fit(self, job: TrainJob, s: dict[str, Any], work: Path):
        with package_needed("chgnet", "chgnet"):
            import torch
            from chgnet.data.dataset import StructureData, collate_graphs
            from chgnet.trainer import Trainer as ChgnetLoop
            from torch.utils.data import DataLoader

        if s.get("threads"):
            torch.set_num_threads(int(s["threads"]))
        torch.manual_seed(job.seed)
        model, foundation_file = load_foundation(job.foundation)
        use_stress = s["use_stress"]

        def dataset(frames: list[Frame]) -> StructureData:
            return StructureData(
                structures=[_structure(f) for f in frames],
                energies=[f.energy_ev / f.n_atoms for f in frames],  # eV/atom
                forces=[np.asarray(f.forces_ev_per_a, dtype=float).tolist() for f in frames],
                stresses=[stress_label_kbar(f) for f in frames] if use_stress else None,
                magmoms=None,  # no magnetic moments in the data: no magmom loss
                structure_ids=[f.source for f in frames],
                graph_converter=model.graph_converter, shuffle=False,
            )

        batch_size = int(s.get("batch_size", 4))
        train_loader = DataLoader(dataset(list(job.train)), batch_size=batch_size, shuffle=True,
                                  collate_fn=collate_graphs, num_workers=0,
                                  generator=torch.Generator().manual_seed(job.seed))
        valid_frames = list(job.valid) or list(job.train)
        valid_loader = DataLoader(dataset(valid_frames), batch_size=batch_size, shuffle=False,
                                  collate_fn=collate_graphs, num_workers=0)
        epochs = int(s.get("epochs", 10))
        weights = {"e": float(s.get("energy_weight", 1.0)), "f": float(s.get("force_weight", 1.0)),
                   "s": float(s.get("stress_weight", 0.1)) if use_stress else 0.0}
        loop = ChgnetLoop(
            model=model, targets="efs" if use_stress else "ef",
            energy_loss_ratio=weights["e"], force_loss_ratio=weights["f"], stress_loss_ratio=weights["s"],
            mag_loss_ratio=0.0, optimizer="Adam", scheduler="CosLR", criterion=_LOSSES[str(s.get("loss", "mse")).lower()],
            epochs=epochs, learning_rate=float(s.get("lr", 1e-4)), use_device=job.device, torch_seed=job.seed,
            print_freq=10_000,
        )
        from surfbench.training.splits import frame_key

        # chgnet's cosine schedule spans 10 x epochs steps: the cap is part of the training's identity
        key = resume_key("chgnet", job.foundation or DEFAULT_FOUNDATION, job.seed, s,
                         [frame_key(f) for f in job.train] + ["valid"] + [frame_key(f) for f in job.valid],
                         ignored=RESUME_IGNORED - {"epochs"})
        run = EpochRun(work, key, name=job.name, epochs=epochs, patience=s.get("patience"), deadline=job.deadline,
                       resume=job.resume, echo=job.echo)
        st, blob = run.start()
        best_state = None
        if blob is not None:
            model.load_state_dict(blob["model"])
            loop.optimizer.load_state_dict(blob["optimizer"])
            loop.scheduler.load_state_dict(blob["scheduler"])
            loop.training_history = blob["training_history"]
            train_loader.generator.set_state(blob["loader_rng"])
            best_state = blob["best_state"]
        ckpt = work / "checkpoints"
        while st.state == RUNNING:
            t0 = time.perf_counter()
            epoch = st.epochs_done
            loop.starting_epoch, loop.epochs = epoch, epoch + 1  # one epoch of chgnet's own loop
            try:
                loop.train(train_loader, valid_loader, save_dir=str(ckpt),
                           train_composition_model=bool(s.get("train_composition_model", False)))
            except (RuntimeError, ValueError) as exc:
                raise TrainingError(f"chgnet ({job.name}): training failed in epoch {epoch + 1}: {exc}") from exc
            h = loop.training_history
            row: dict[str, float] = {}
            for k in loop.targets:
                row[f"train_{k}_mae"] = float(h[k]["train"][-1])
                row[f"val_{k}_mae"] = float(h[k]["val"][-1])
            if not all(np.isfinite(v) for v in row.values()):
                raise TrainingError(f"chgnet ({job.name}): the loss became NaN in epoch {epoch + 1}; lower lr")
            row["val_score"] = sum(weights[k] * row[f"val_{k}_mae"] for k in loop.targets)
            if run.after_epoch(st, row, row["val_score"], time.perf_counter() - t0):
                best_state = copy.deepcopy(model.state_dict())
            run.save(st, {"model": model.state_dict(), "optimizer": loop.optimizer.state_dict(),
                          "scheduler": loop.scheduler.state_dict(), "training_history": loop.training_history,
                          "loader_rng": train_loader.generator.get_state(), "best_state": best_state})
            if run.first_epoch_overran():  # chgnet's epoch cannot stop inside: judged after it
                n = len(train_loader)
                raise run.budget_below_one_epoch(st, n, n, run.epoch_times[0])
        model.load_state_dict(best_state)
        history = [{**row, "kept": float(row["epoch"] == st.best_epoch)} for row in st.history]
        return model, loop, history, foundation_file, st
