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
default]. ``dtype`` is ignored (the checkpoints are single precision).

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

from surfbench.training.base import FINETUNE, TrainedModel, Trainer, TrainingError, TrainJob, check_job
from surfbench.training.io import has_stress, write_extxyz
from surfbench.training.resources import peak_rss_self_mb

DEFAULT_FOUNDATION = "7net-0"
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
    """e3nn without TorchScript-compiled tensor products while training: every batch has
    another number of edges, and TorchScript's profiling executor re-specialises on each new
    shape (one measurement on a loaded 2-core machine: 24 s instead of 52 s for the second
    epoch of a tiny run). The setting is process-wide in e3nn, so it is restored afterwards; it
    does not change the numbers."""
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
        start, cpu_start = time.perf_counter(), time.process_time()
        history, n_parameters = self._fit(job, s, input_yaml, work)
        best = work / "checkpoint_best.pth"
        if not best.is_file():
            raise TrainingError(f"sevennet ({job.name}): no checkpoint was written; log {work / 'log.sevenn'}")
        (work / "history.json").write_text(json.dumps(history, indent=1))
        entry = {
            "name": job.name,
            "family": "SevenNet",
            "backend": "surfbench.models.loaders.sevenn:SevenNetBackend",
            "package": "sevenn",
            "version": ">=0.13,<0.14",
            "weights": {"source": "local", "path": str(best.resolve())},
            "parameters": n_parameters,
            "training_set": f"{len(job.train)} training + {len(job.valid)} validation frames of {'-'.join(job.elements)}",
            "training_set_size": f"{len(job.train)} structures",
            "licence": "MIT (sevenn >= 0.12 code and SevenNet-0 weights); fine-tuned locally by surfbench",
            "citation": "Park et al., J. Chem. Theory Comput. 20, 4857 (2024)",
            "note": (f"SevenNet fine-tuned from {job.foundation or DEFAULT_FOUNDATION} with surfbench train (seed "
                     f"{job.seed}, preset {s.get('preset', '-')}, stress {'used' if use_stress else 'not used'})"),
        }
        return TrainedModel(weights_path=best, registry_entry=entry, n_parameters=n_parameters,
                            wall_s=time.perf_counter() - start, cpu_s=time.process_time() - cpu_start,
                            peak_rss_mb=peak_rss_self_mb(),
                            log_path=work / "log.sevenn", history=history)

    def _fit(self, job: TrainJob, s: dict[str, Any], input_yaml: Path, work: Path) -> tuple[list[dict], int]:
        from surfbench.models.loaders.sevenn import _quiet_build

        with _quiet_build(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unexpected .* keys")
            try:
                import torch
                import sevenn._keys as KEY
                import sevenn.train.graph_dataset as graph_dataset
                from sevenn.error_recorder import ErrorRecorder
                from sevenn.logger import Logger
                from sevenn.main.sevenn import global_config
                from sevenn.model_build import build_E3_equivariant_model
                from sevenn.parse_input import read_config_yaml
                from sevenn.scripts.processing_continue import processing_continue_v2
                from sevenn.scripts.train import loader_from_config
                from sevenn.train.trainer import Trainer as SevennLoop
            except ImportError as exc:
                raise TrainingError(f"sevennet needs the 'sevenn' package ({exc}); pip install torch==2.13.0 'sevenn>=0.13,<0.14'") from exc

            if s.get("threads"):
                torch.set_num_threads(int(s["threads"]))
            # sevenn's Logger is a process-wide singleton: point it at this run's log (a second
            # run in the same process, e.g. a learning curve, would otherwise reuse the first's)
            logger = Logger(filename=str(work / "log.sevenn"), screen=False, rank=0)
            logger.switch_file(str(work / "log.sevenn"))
            with _no_fx_script(), logger as log:
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
    def _epochs(job, s, config, loop, loaders, ErrorRecorder, work: Path, log) -> tuple[list[dict], int]:
        """sevenn's processing_epoch_v2, with early stopping on the validation TotalLoss."""
        recorder = ErrorRecorder.from_config(config, loop.loss_functions)
        best_key = recorder.get_key_str("TotalLoss")
        epochs, patience = int(s.get("epochs", 10)), s.get("patience")
        history: list[dict[str, float]] = []
        best_loss, best_epoch = float("inf"), 0
        for epoch in range(1, epochs + 1):
            row: dict[str, float] = {"epoch": epoch, "lr": loop.get_lr()}
            errors = {}
            for key in ("trainset", "validset"):
                rec = copy.deepcopy(recorder)
                loop.run_one_epoch(loaders[key], key == "trainset", rec)
                errors[key] = rec.epoch_forward()
                prefix = "train" if key == "trainset" else "val"
                for name, value in errors[key].items():
                    row[f"{prefix}_{name.split(' (')[0].lower()}"] = float(value)
            log.write_full_table(list(errors.values()), list(errors))
            loop.scheduler_step(best_loss)
            history.append(row)
            val = float(errors["validset"][best_key])
            if val != val:
                raise TrainingError(f"sevennet ({job.name}): the validation loss became NaN in epoch {epoch}; lower lr")
            if val < best_loss:
                best_loss, best_epoch = val, epoch
                loop.write_checkpoint(str(work / "checkpoint_best.pth"), config=config, epoch=epoch)
            elif patience and epoch - best_epoch >= int(patience):
                break
        for row in history:
            row["kept"] = float(row["epoch"] == best_epoch)
        return history, int(sum(p.numel() for p in loop.model.parameters() if p.requires_grad))
