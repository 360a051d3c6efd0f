"""SevenNet-0 fine-tuning with sevenn's own training code (sevenn 0.13), offline.

The run follows what ``sevenn input.yaml`` does (``sevenn.main.sevenn.run`` -> ``train_v2``),
in this process, from sevenn's ``fine_tune`` preset (``sevenn preset fine_tune``): the model
block is SevenNet-0's, ``continue.checkpoint`` is the foundation (default ``7net-0``: the
checkpoint shipped in the sevenn wheel, so nothing is downloaded) with optimiser, scheduler and
epoch counter reset; shift, scale and the convolution denominators are the checkpoint's and are
not trained. Every other weight is trained. The epoch loop is sevenn's ``processing_epoch_v2``
(``Trainer.run_one_epoch`` on the training and validation sets, ``ErrorRecorder``) with early
stopping added. From-scratch training is not offered.

The foundation (``--from``) is ``7net-0`` / a registry name of a single-fidelity SevenNet
model (sevennet-0, sevennet-l3i5: its checkpoint file) or the path of a SevenNet checkpoint
(``.pth``); a multi-fidelity checkpoint (sevennet-mf-0) is refused.

Data: the frames are written to extended XYZ with ASE's single-point results (energy eV,
forces eV/Angstrom, stress eV/Angstrom^3 with ASE's sign), which sevenn reads itself
(``sevenn.train.dataload``: it flips the stress sign and reorders the Voigt components to its
own convention). Every cell is made fully periodic (pbc=True).

Loss (sevenn): L(energy per atom, eV/atom) + ``force_weight`` x L(force components,
eV/Angstrom) + ``stress_weight`` x L(stress components, kbar), L = ``loss`` (``huber`` with
``huber_delta`` [0.01], sevenn's fine-tuning choice, or ``mse``). sevenn has no energy weight:
``energy_weight`` e != 1 is applied by dividing the force and stress weights by e (the same
minimum; Adam is insensitive to the overall scale). Stress enters only when every training
and validation frame has one (``settings["use_stress"]``).

Settings read (defaults in brackets): ``epochs`` [10], ``patience`` [None], ``batch_size`` [4],
``lr`` [1e-4], ``lr_decay`` [0.99 per epoch, exponential], ``loss`` [huber], ``huber_delta``,
``energy_weight`` [1], ``force_weight`` [1], ``stress_weight`` [0.01], ``threads`` [torch's
default], ``torchscript`` [true: e3nn compiles its tensor products with TorchScript, its
default; false turns that off while training, see ``_no_fx_script``]. ``dtype`` is ignored
(the checkpoints are single precision).

Where an epoch goes (``benchmarks/finetune_epoch.py``; SevenNet-0 on the 175 Mo training frames
of mlearn-split, batch 4, 2 CPU threads, nothing else running): 142 s with TorchScript off, of
which the backward pass (through the forces' own gradient, built with ``create_graph``) 102 s,
the forward pass with forces and stress 36 s, batch loading 0.1 s (sevenn builds the neighbour
graphs once, when it reads the frames, and keeps them), the validation epoch 3.4 s; 127 s with
TorchScript on, the same losses to five digits. Each epoch's stage times are in its history
row (``load_s``, ``forward_s``, ``loss_s``, ``backward_s``, ``step_s``).

Early stopping and the model kept: sevenn's validation ``TotalLoss`` after each epoch; the
checkpoint of the lowest is ``<workdir>/checkpoint_best.pth`` (sevenn's own format and name),
loaded by :class:`surfbench.models.loaders.sevenn.SevenNetBackend`. Training stops after
``patience`` epochs without a lower one. Without validation frames the training frames stand in.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import time
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

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
from surfbench.training.epochs import EpochRun, LoopState, epoch_result, resume_key, trained_entry
from surfbench.training.io import has_stress, write_extxyz

DEFAULT_FOUNDATION = "7net-0"
#: the registry entry of the default foundation (family, backend, package, version, citation of a fine-tuned model)
FOUNDATION_ENTRY = "sevennet-0"
_LOSSES = {"huber": "Huber", "mse": "MSE"}

#: presets for this driver (the shared vocabulary of :mod:`surfbench.training.presets`)
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    # sevenn's fine_tune preset (Huber, delta 0.01, force 1, stress 0.01 on kbar, batch 4,
    # exponential decay 0.99/epoch) with a fine-tuning lr of 1e-4; 200 epochs, patience 50
    "paper": {
        "epochs": 200, "patience": 50, "batch_size": 4, "lr": 1e-4, "lr_decay": 0.99, "loss": "huber",
        "huber_delta": 0.01, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.01,
    },
    "cpu-quick": {
        "epochs": 5, "patience": 3, "batch_size": 4, "lr": 1e-4, "lr_decay": 0.99, "loss": "huber",
        "huber_delta": 0.01, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.01, "threads": 2,
    },
}


def foundation_checkpoint(foundation: str | None) -> str:
    """A checkpoint sevenn can load: ``7net-0`` (sevenn resolves it inside its wheel), a
    registry name of a SevenNet model (its checkpoint file) or a file."""
    foundation = foundation or DEFAULT_FOUNDATION
    if foundation == DEFAULT_FOUNDATION:
        return foundation
    path = Path(foundation).expanduser()
    if path.is_file():
        return str(path)
    from surfbench.models import ModelLoadError, get_spec, load_model
    from surfbench.models.loaders.sevenn import SevenNetBackend

    try:
        spec = get_spec(foundation)
        backend = load_model(foundation).backend
        if not isinstance(backend, SevenNetBackend):
            raise TrainingError(f"sevennet: foundation {foundation!r} is a {spec.family} model, not a SevenNet model")
        if backend.modal is not None:
            raise TrainingError(f"sevennet: foundation {foundation!r} is multi-fidelity; fine-tuning it is not offered")
        (file,) = backend.weight_files()
    except ModelLoadError as exc:
        raise TrainingError(f"sevennet: foundation {foundation!r}: {exc}") from exc
    return str(file)


def input_config(job: TrainJob, s: dict[str, Any], checkpoint: str, train_file: Path, valid_file: Path) -> dict:
    """sevenn's fine_tune preset with the job's data, loss weights and optimiser settings."""
    import yaml

    cfg = yaml.safe_load(resources.files("sevenn").joinpath("presets", "fine_tune.yaml").read_text())
    e = float(s.get("energy_weight", 1.0))
    if e <= 0:
        raise TrainingError(f"sevennet ({job.name}): energy_weight must be > 0, got {e}")
    loss = str(s.get("loss", "huber")).lower()
    if loss not in _LOSSES:
        raise TrainingError(f"sevennet ({job.name}): loss {loss!r} is not one of {sorted(_LOSSES)}")
    train = cfg["train"]
    train.update(
        random_seed=int(job.seed), is_train_stress=bool(s["use_stress"]), epoch=int(s.get("epochs", 10)),
        loss=_LOSSES[loss], optimizer="adam", optim_param={"lr": float(s.get("lr", 1e-4))},
        scheduler="exponentiallr", scheduler_param={"gamma": float(s.get("lr_decay", 0.99))},
        force_loss_weight=float(s.get("force_weight", 1.0)) / e,
        stress_loss_weight=float(s.get("stress_weight", 0.01)) / e, per_epoch=10**9, device=str(job.device),
    )
    if loss == "huber":
        train["loss_param"] = {"delta": float(s.get("huber_delta", 0.01))}
    else:
        train.pop("loss_param", None)
    if not s["use_stress"]:
        train["error_record"] = [r for r in train["error_record"] if r[0] != "Stress"]
    train["continue"] = {"reset_optimizer": True, "reset_scheduler": True, "reset_epoch": True, "checkpoint": checkpoint}
    data = cfg["data"]
    data.pop("load_testset_path", None)
    data.pop("data_divide_ratio", None)
    data.update(batch_size=int(s.get("batch_size", 4)), load_trainset_path=[str(train_file)],
                load_validset_path=[str(valid_file)])
    return cfg


@contextlib.contextmanager
def _no_fx_script() -> Iterator[None]:
    """e3nn without TorchScript-compiled tensor products while training (``torchscript:
    false``): every batch has another number of edges, and TorchScript's profiling executor
    re-specialises on new shapes, which can cost more than it saves in a run of a few small
    batches (one measurement on a loaded 2-core machine, tiny run: 24 s instead of 52 s for its
    second epoch). For a real training scripting pays (Mo split, 44 batches: 127 instead of 142 s
    an epoch), so it is on by default. The setting is process-wide in e3nn, so it is restored
    afterwards; it does not change the numbers."""
    from e3nn import get_optimization_defaults, set_optimization_defaults

    saved = get_optimization_defaults()
    set_optimization_defaults(jit_script_fx=False)
    try:
        yield
    finally:
        set_optimization_defaults(**saved)


class SevennetTrainer(Trainer):
    method = "sevennet"
    modes = (FINETUNE,)
    checkpoints = True

    def train(self, job: TrainJob) -> TrainedModel:
        frames = check_job(job, self.modes)
        s = dict(job.settings)
        use_stress = bool(s.get("stress_weight", 0.01)) and has_stress(frames)
        job.settings["use_stress"] = s["use_stress"] = use_stress
        checkpoint = foundation_checkpoint(job.foundation)
        work = Path(job.workdir)
        work.mkdir(parents=True, exist_ok=True)
        train_file = write_extxyz(job.train, work / "train.extxyz", "calc", stress=use_stress)
        valid_file = write_extxyz(job.valid or job.train, work / "valid.extxyz", "calc", stress=use_stress)
        cfg = input_config(job, s, checkpoint, train_file, valid_file)
        import yaml

        input_yaml = work / "input.yaml"
        input_yaml.write_text(yaml.safe_dump(cfg, sort_keys=False))
        cpu_start = time.process_time()
        history, n_parameters, st = self._fit(job, s, input_yaml, work)
        best = work / "checkpoint_best.pth"
        if not best.is_file():
            raise TrainingError(f"sevennet ({job.name}): no checkpoint was written; log {work / 'log.sevenn'}")
        (work / "history.json").write_text(json.dumps(history, indent=1))
        entry = trained_entry(
            job, st, FOUNDATION_ENTRY, {"path": str(best.resolve())}, n_parameters,
            licence="MIT (sevenn >= 0.12 code and SevenNet-0 weights); fine-tuned locally by surfbench",
            what=(f"SevenNet fine-tuned from {job.foundation or DEFAULT_FOUNDATION} with surfbench train (seed "
                  f"{job.seed}, preset {s.get('preset', '-')}, stress {'used' if use_stress else 'not used'})"))
        return epoch_result(st, best, entry, n_parameters, cpu_start=cpu_start, log_path=work / "log.sevenn",
                            history=history)

    def _fit(self, job: TrainJob, s: dict[str, Any], input_yaml: Path, work: Path) -> tuple[list[dict], int, LoopState]:
        from surfbench.models.loaders.sevenn import quiet_build

        with quiet_build(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unexpected .* keys")
            with package_needed("sevennet", "sevenn"):
                import sevenn._keys as KEY
                import sevenn.train.graph_dataset as graph_dataset
                import torch
                from sevenn.error_recorder import ErrorRecorder
                from sevenn.logger import Logger
                from sevenn.main.sevenn import global_config
                from sevenn.model_build import build_E3_equivariant_model
                from sevenn.parse_input import read_config_yaml
                from sevenn.scripts.processing_continue import processing_continue_v2
                from sevenn.scripts.train import loader_from_config
                from sevenn.train.trainer import Trainer as SevennLoop

            if s.get("threads"):
                torch.set_num_threads(int(s["threads"]))
            # sevenn's Logger is a process-wide singleton: point it at this run's log (a second
            # run in the same process, e.g. a learning curve, would otherwise reuse the first's)
            logger = Logger(filename=str(work / "log.sevenn"), screen=False, rank=0)
            logger.switch_file(str(work / "log.sevenn"))
            with (contextlib.nullcontext() if s.get("torchscript", True) else _no_fx_script()), logger as log:
                log.greeting()
                model_cfg, train_cfg, data_cfg = read_config_yaml(str(input_yaml))
                train_cfg.update({KEY.IS_DDP: False, KEY.DDP_BACKEND: "nccl", KEY.LOCAL_RANK: 0, KEY.RANK: 0,
                                  KEY.WORLD_SIZE: 1})
                config = {**global_config, **model_cfg, **train_cfg, **data_cfg}
                random.seed(job.seed)
                torch.manual_seed(job.seed)
                try:
                    state_dicts, _ = processing_continue_v2(config)
                    datasets = graph_dataset.from_config(config, str(work))
                    loaders = {k: loader_from_config(config, v, is_train=(k == "trainset")) for k, v in datasets.items()}
                    model = build_E3_equivariant_model(config)
                    loop = SevennLoop.from_config(model, config)
                    loop.load_state_dicts(*state_dicts, strict=False)
                    return self._epochs(job, s, config, loop, loaders, ErrorRecorder, work, log)
                except TrainingError:
                    raise
                except (RuntimeError, ValueError, KeyError, FileNotFoundError) as exc:
                    raise TrainingError(f"sevennet ({job.name}): {type(exc).__name__}: {exc}; log {work / 'log.sevenn'}") from exc

    @staticmethod
    def _epochs(job, s, config, loop, loaders, ErrorRecorder, work: Path, log) -> tuple[list[dict], int, LoopState]:
        """sevenn's processing_epoch_v2 with the convergence rule, the budget and a checkpoint
        after every epoch (:mod:`surfbench.training.epochs`)."""
        from surfbench.training.splits import frame_key

        key = resume_key("sevennet", job.foundation or DEFAULT_FOUNDATION, job.seed, s,
                         [frame_key(f) for f in job.train] + ["valid"] + [frame_key(f) for f in job.valid])
        run = EpochRun(work, key, name=job.name, epochs=int(s.get("epochs", 10)), patience=s.get("patience"),
                       deadline=job.deadline, resume=job.resume, echo=job.echo)
        st, blob = run.start()
        if blob is not None:
            loop.load_state_dicts(blob["model"], blob["optimizer"], blob["scheduler"])
        recorder = ErrorRecorder.from_config(config, loop.loss_functions)
        best_key = recorder.get_key_str("TotalLoss")
        best_file = work / "checkpoint_best.pth"
        while st.state == RUNNING:
            t0 = time.perf_counter()
            row: dict[str, float] = {"lr": loop.get_lr()}
            rec = copy.deepcopy(recorder)
            stages = _train_epoch(loop, loaders["trainset"], rec, run)
            if stages is None:  # the budget ran out inside the epoch
                if not run.epoch_times:
                    raise run.budget_below_one_epoch(st, *_progress(loop), time.perf_counter() - t0)
                run.stop_at_budget(st)
                break
            errors = {"trainset": rec.epoch_forward()}
            rec = copy.deepcopy(recorder)
            loop.run_one_epoch(loaders["validset"], False, rec)
            errors["validset"] = rec.epoch_forward()
            for key_, errs in errors.items():
                prefix = "train" if key_ == "trainset" else "val"
                for name, value in errs.items():
                    row[f"{prefix}_{name.split(' (')[0].lower()}"] = float(value)
            row.update({f"{k}_s": v for k, v in stages.items()})
            log.write_full_table(list(errors.values()), list(errors))
            loop.scheduler_step(st.best_loss)
            if run.after_epoch(st, row, float(errors["validset"][best_key]), time.perf_counter() - t0):
                loop.write_checkpoint(str(best_file), config=config, epoch=st.epochs_done)
            run.save(st, {"model": loop.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
                          "scheduler": loop.scheduler.state_dict() if loop.scheduler is not None else None})
        history = [{**row, "kept": float(row["epoch"] == st.best_epoch)} for row in st.history]
        return history, int(sum(p.numel() for p in loop.model.parameters() if p.requires_grad)), st


def _progress(loop) -> tuple[int, int]:
    return getattr(loop, "_batches_done", 0), getattr(loop, "_batches_total", 0)


def _train_epoch(loop, loader, recorder, run: EpochRun) -> dict[str, float] | None:
    """One training epoch, as sevenn's ``Trainer.run_one_epoch(loader, is_train=True)`` does it,
    with the seconds spent in each stage (batch loading, forward with forces and stress, loss,
    backward, optimiser step); None when the budget ran out before its end."""
    import torch

    stages = dict.fromkeys(("load", "forward", "loss", "backward", "step"), 0.0)
    loop.model.train()
    loop._batches_total, loop._batches_done = len(loader), 0
    it = iter(loader)
    while True:
        t = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return stages
        loop.optimizer.zero_grad()
        batch = batch.to(loop.device, non_blocking=True)
        t1 = time.perf_counter()
        output = loop.model(batch)
        recorder.update(output)
        t2 = time.perf_counter()
        total_loss = torch.tensor([0.0], device=loop.device)
        for loss_def, w in loop.loss_functions:
            indv_loss = loss_def.get_loss(output, loop.model)
            if indv_loss is not None:
                total_loss += indv_loss * w
        t3 = time.perf_counter()
        total_loss.backward()
        t4 = time.perf_counter()
        loop.optimizer.step()
        t5 = time.perf_counter()
        for k, a, b in (("load", t, t1), ("forward", t1, t2), ("loss", t2, t3), ("backward", t3, t4), ("step", t4, t5)):
            stages[k] += b - a
        loop._batches_done += 1
        if loop._batches_done < loop._batches_total and run.past_deadline():
            return None
