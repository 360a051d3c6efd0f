"""MACE from scratch and fine-tuned from a MACE model file, with ``mace_run_train``
(mace-torch, the main environment).

* scratch: a ``MACE`` model of the preset's size (``num_channels``, ``max_L``,
  ``num_interactions``, ``correlation``, ``max_ell``, ``num_radial_basis``, ``cutoff_a`` as
  ``--r_max``);
* fine-tuning: ``--foundation_model FILE --multiheads_finetuning False`` (naive fine-tuning:
  every weight is trained, the architecture and cut-off are the foundation's). The foundation
  is a registry name of a MACE model (``mace-mp-0-medium``, ``mace-mp-0-l2``: their files are
  resolved as for evaluation: ``$SURFBENCH_MODEL_DIR``, the cache, the pinned URL) or the path
  of any MACE ``.model`` file. Multihead fine-tuning with MP replay data needs a download and
  is not offered.

Loss (mace ``weighted``, or ``stress`` when stress is used): ``energy_weight`` x MSE of the
energy per atom ((eV/atom)^2) + ``force_weight`` x MSE of the force components ((eV/A)^2)
[+ ``stress_weight`` x MSE of the stress components ((eV/A^3)^2)]. Labels are written as
``REF_energy`` (eV), ``REF_forces`` (eV/A), ``REF_stress`` (eV/A^3, ASE sign, Voigt order);
mace reads ASE's stress convention. Atomic reference energies: ``E0s`` (``average``: a least-
squares fit to the training energies). ``patience``: mace's early stopping on the validation
loss (epochs of no improvement); the model written is the best validation checkpoint.

Checkpoints, budget, resume: mace's own. Every run passes ``--restart_latest``, so a killed or
budget-stopped training continues from mace's latest checkpoint (mace writes one when the
validation loss improves: a continued run repeats the epochs after the best one, and mace's
patience counter starts again in each session; that is mace's resume, not an exact
continuation). ``--max-minutes`` stops ``mace_run_train`` at the budget; the model is then
written from the best checkpoint (a second call with ``--max_num_epochs`` at that epoch trains
nothing) and marked budget-stopped. The state (:mod:`surfbench.training.epochs`): converged when
mace's log says it stopped for ``patience``, epoch-cap otherwise; ``run-state.json`` says
running while it runs (a killed run is seen as killed); each session's output is kept as
``train-session-NNN.log`` and the history is read from all of them.

The result is ``<workdir>/<name>.model``, loaded by the ``mace-local`` backend
(:class:`surfbench.models.loaders.mace.MaceBackend`).
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

from surfbench.training.base import (
    BUDGET_STOPPED,
    CONVERGED,
    EPOCH_CAP,
    FINETUNE,
    SCRATCH,
    TrainedModel,
    Trainer,
    TrainingError,
    TrainJob,
    registry_facts,
)
from surfbench.training.epochs import FINISHED, EpochRun, LoopState, read_state, registry_note, resume_key
from surfbench.training.io import REF_ENERGY, REF_FORCES, REF_STRESS, has_stress, write_extxyz
from surfbench.training.resources import run_command, thread_env

#: the registry entry whose family, backend, package and version range a trained MACE model shares
GENERIC_ENTRY = "mace-local"
_EPOCH = re.compile(r"Epoch (\d+): .*?loss=\s*([-\d.eE+]+), RMSE_E_per_atom=\s*([-\d.eE+]+) meV, RMSE_F=\s*([-\d.eE+]+) meV")


def _executable(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.is_file():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        raise TrainingError(f"mace: {name} not found; install mace-torch ('surfbench env install universal')")
    return found


def foundation_file(foundation: str) -> Path:
    """The MACE file of a registry name or a path."""
    path = Path(foundation).expanduser()
    if path.is_file():
        return path
    from surfbench.models import ModelLoadError, get_spec, load_model

    try:
        spec = get_spec(foundation)
        if spec.family != "MACE":
            raise TrainingError(f"mace: foundation {foundation!r} is a {spec.family} model, not a MACE model")
        (file,) = load_model(foundation).backend.weight_files()
    except ModelLoadError as exc:
        raise TrainingError(f"mace: foundation {foundation!r}: {exc}") from exc
    return file


def count_parameters(model_file: Path) -> int:
    """Trainable parameters of a saved MACE model (the whole pickled module)."""
    import torch

    from surfbench.models.loaders.mace import quiet_mace_load

    with quiet_mace_load():
        import mace  # noqa: F401 - the pickle needs mace's classes

        model = torch.load(model_file, map_location="cpu", weights_only=False)
    return int(sum(p.numel() for p in model.parameters()))


def history(log_text: str) -> list[dict[str, float]]:
    """Per-epoch validation loss and errors from mace's log (meV -> eV)."""
    out = []
    for m in _EPOCH.finditer(log_text):
        out.append({"epoch": int(m[1]), "valid_loss": float(m[2]), "valid_rmse_e_per_atom_ev": float(m[3]) / 1000,
                    "valid_rmse_f_ev_per_a": float(m[4]) / 1000})
    return out


class MaceTrainer(Trainer):
    method = "mace"
    modes = (SCRATCH, FINETUNE)
    checkpoints = True

    def command(self, job: TrainJob, train_file: Path, valid_file: Path | None, use_stress: bool) -> list[str]:
        s = job.settings
        cmd = [
            _executable("mace_run_train"), "--name", job.name, "--seed", str(job.seed),
            "--work_dir", str(job.workdir), "--train_file", str(train_file),
            "--energy_key", REF_ENERGY, "--forces_key", REF_FORCES,
            "--E0s", str(s.get("E0s", "average")),
            # mace drops an incomplete last batch: never more than the frames there are
            "--batch_size", str(min(int(s["batch_size"]), len(job.train))),
            "--valid_batch_size", str(max(1, min(int(s["batch_size"]), len(job.valid)))),
            "--max_num_epochs", str(int(s["epochs"])), "--lr", str(s["lr"]),
            "--energy_weight", str(s["energy_weight"]), "--forces_weight", str(s["force_weight"]),
            "--device", job.device, "--default_dtype", str(s.get("dtype", "float64")),
            "--eval_interval", "1", "--num_workers", "0", "--pin_memory", "False",
            # no error table over the training set at the end: surfbench evaluates the model itself
            "--skip_evaluate_heads", "Default,pt_head",
        ]
        cmd += ["--patience", str(int(s["patience"]) if s.get("patience") else int(s["epochs"]) + 1)]
        if valid_file is not None:
            cmd += ["--valid_file", str(valid_file)]
        if use_stress:
            cmd += ["--stress_key", REF_STRESS, "--loss", "stress", "--stress_weight", str(s["stress_weight"]),
                    "--compute_stress", "True"]
        else:
            cmd += ["--loss", "weighted"]
        if s.get("ema"):
            cmd += ["--ema", "--ema_decay", str(s.get("ema_decay", 0.99))]
        if job.mode == FINETUNE:
            if not job.foundation:
                raise TrainingError("mace: fine-tuning needs a foundation model (--from NAME or FILE)")
            cmd += ["--foundation_model", str(foundation_file(job.foundation)), "--multiheads_finetuning", "False"]
        else:
            cmd += [
                "--model", "MACE", "--r_max", str(s["cutoff_a"]), "--num_channels", str(s["num_channels"]),
                "--max_L", str(s["max_L"]), "--num_interactions", str(s["num_interactions"]),
                "--correlation", str(s["correlation"]), "--max_ell", str(s.get("max_ell", 3)),
                "--num_radial_basis", str(s.get("num_radial_basis", 8)),
            ]
        return cmd

    def train(self, job: TrainJob) -> TrainedModel:
        if job.mode not in self.modes:
            raise TrainingError(f"mace: unknown mode {job.mode!r}")
        work = Path(job.workdir)
        work.mkdir(parents=True, exist_ok=True)
        use_stress = bool(job.settings.get("stress_weight")) and has_stress(list(job.train) + list(job.valid))
        job.settings["use_stress"] = use_stress
        train_file = write_extxyz(job.train, work / "train.xyz", "ref", stress=use_stress)
        valid_file = write_extxyz(job.valid, work / "valid.xyz", "ref", stress=use_stress) if job.valid else None
        cmd = self.command(job, train_file, valid_file, use_stress) + ["--restart_latest"]
        st, run, logs = self._session(job, work)
        result, budget_stopped = self._run(job, cmd, work, logs[-1], run, st)
        model_file = work / f"{job.name}.model"
        if not model_file.is_file():
            raise TrainingError(f"mace ({job.name}): mace_run_train finished but wrote no {model_file.name}; log {result.log_path}")
        # a continued session repeats the epochs after mace's best checkpoint: the last of each counts
        text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in logs if p.is_file())
        epochs_log = sorted({r["epoch"]: r for r in history(text)}.values(), key=lambda r: r["epoch"])
        st.epochs_done = max((r["epoch"] for r in epochs_log), default=-1) + 1
        best = min(epochs_log, key=lambda r: r["valid_loss"], default=None)
        st.best_epoch, st.best_loss = (best["epoch"] + 1, best["valid_loss"]) if best else (0, float("inf"))
        st.history, st.wall_s = epochs_log, st.wall_s + result.wall_s
        if budget_stopped:
            st.state, st.reason = BUDGET_STOPPED, "the time budget ran out (mace stopped; its best checkpoint kept)"
        elif "Stopping optimization after" in logs[-1].read_text(encoding="utf-8", errors="replace"):
            st.state, st.reason = CONVERGED, f"{job.settings.get('patience')} epochs without a lower validation loss (mace's early stopping)"
        else:
            st.state = EPOCH_CAP
            st.reason = f"reached the cap of {job.settings['epochs']} epochs" + (
                "" if job.settings.get("patience") else " (no patience: no convergence rule)")
        run.write_state(st)
        entry = {
            "name": job.name,
            **registry_facts(GENERIC_ENTRY, "family", "backend", "package", "version"),
            "weights": {"source": "local", "path": str(model_file)},
            "licence": "MIT (mace-torch code; weights trained here"
                       + (f", fine-tuned from {job.foundation}: its licence applies too)" if job.mode == FINETUNE else ")"),
            "citation": "Batatia et al., NeurIPS 35 (2022), arXiv:2206.07697 (MACE)",
        }
        entry["note"] = registry_note(st, "trained with mace_run_train")
        return TrainedModel(
            weights_path=model_file, registry_entry=entry, n_parameters=count_parameters(model_file),
            wall_s=st.wall_s, peak_rss_mb=result.peak_rss_mb, log_path=result.log_path, cpu_s=result.cpu_s,
            history=st.history, converged=FINISHED[st.state], state=st.state,
        )

    def _session(self, job: TrainJob, work: Path):
        """This run's state (``running``, with pid and host: a killed run is seen as killed), its
        :class:`EpochRun` and the logs of every session of the training, this one's last. A
        checkpoint of another training is removed (or, under ``--resume``, refused)."""
        from surfbench.training.splits import frame_key

        key = resume_key("mace", job.foundation, job.seed, job.settings,
                         [frame_key(f) for f in job.train] + ["valid"] + [frame_key(f) for f in job.valid])
        run = EpochRun(work, key, name=job.name, epochs=int(job.settings["epochs"]), patience=job.settings.get("patience"),
                       deadline=job.deadline, resume=job.resume, echo=job.echo)
        saved = read_state(work)
        checkpoints = sorted((work / "checkpoints").glob(f"{job.name}_run-{job.seed}_epoch-*.pt"))
        logs = sorted(work.glob("train-session-*.log"))
        if checkpoints and saved is not None and saved.get("key") == key:
            if job.echo:
                job.echo(f"  {job.name}: continuing from mace's checkpoint {checkpoints[-1].name} (was {saved.get('state')})")
        else:
            if job.resume:
                raise TrainingError(f"{job.name}: --resume, but there is no checkpoint of this training in {work}" if not checkpoints
                                    else f"{job.name}: --resume, but the checkpoint in {work} belongs to another training")
            shutil.rmtree(work / "checkpoints", ignore_errors=True)
            for old in logs:
                old.unlink()
            logs = []
        st = LoopState(key)
        if saved is not None and saved.get("key") == key:
            st.wall_s = float(saved.get("wall_s") or 0.0)
        run.write_state(st)
        return st, run, [*logs, work / f"train-session-{len(logs):03d}.log"]

    def _run(self, job: TrainJob, cmd: list[str], work: Path, log: Path, run: EpochRun, st: LoopState):
        """mace_run_train within the budget; (result, whether the budget stopped it). A run cut
        at its budget is finished from its latest checkpoint (``--max_num_epochs`` = that epoch:
        mace trains no further and writes the model of its best checkpoint)."""
        limits = [x for x in (job.settings.get("timeout_s"), None if job.deadline is None else job.deadline - time.time())
                  if x is not None]
        env = thread_env(job.settings.get("threads"))
        try:
            result = run_command(cmd, log, cwd=work, env=env, timeout_s=max(min(limits), 1.0) if limits else None,
                                 what=f"mace ({job.name})")
            shutil.copyfile(log, work / "train.log")
            return result, False
        except TrainingError:
            if job.deadline is None or time.time() < job.deadline:
                raise
        epochs = sorted(int(p.stem.rsplit("-", 1)[1]) for p in (work / "checkpoints").glob(
            f"{job.name}_run-{job.seed}_epoch-*.pt"))
        if not epochs:
            raise TrainingError(f"{job.name}: the time left of --max-minutes ({(job.deadline - run.session_start) / 60:.3g} "
                                f"min when this training started) is below one epoch: mace wrote no checkpoint in it; "
                                f"log {log}")
        finish = [*cmd[:cmd.index("--max_num_epochs") + 1], str(epochs[-1]), *cmd[cmd.index("--max_num_epochs") + 2:]]
        result = run_command(finish, work / "train-finish.log", cwd=work, env=env, what=f"mace ({job.name}), writing the model")
        shutil.copyfile(log, work / "train.log")
        return result, True
