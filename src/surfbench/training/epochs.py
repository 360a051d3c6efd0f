"""Epoch loops that stop cleanly and continue: the bookkeeping shared by the deep drivers.

A deep training (fine-tuning SevenNet, ...) runs epochs until its **convergence rule** says
stop: early stopping on the validation loss, *converged* when ``patience`` epochs in a row did
not lower the best validation loss. Anything else that ends it is recorded as such, never as
converged:

* ``converged``: the rule was met (the model kept is the best validation epoch's);
* ``epoch-cap``: the ``epochs`` cap came first (no ``patience``, or still improving);
* ``budget-stopped``: the wall-clock budget (``surfbench train --max-minutes``) would have
  been passed by the next epoch, or was passed during one (that epoch is discarded);
* ``killed``: the process died (SIGKILL, power, a cluster's wall time) after its last
  checkpoint; this state is seen from outside (:func:`run_states`: the run's folder says
  ``running`` but no such process is alive).

After every epoch the loop writes ``resume.pt`` (:func:`torch.save`: the model's, optimiser's
and scheduler's state dicts, the epoch count, best validation loss and epoch, the per-epoch
history, and the RNG states of Python, NumPy and torch, so that a continued run draws the same
shuffles an uninterrupted one would) and ``run-state.json`` (the same bookkeeping without the
tensors, plus the process id and host), each replaced atomically. Both carry a key: the hash
of what defines the training (frames, foundation, settings but those that only say when to
stop, seed). The next ``surfbench train`` of the same model continues from the checkpoint;
``--resume`` insists on it (an error when there is none, or when it belongs to another
training).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from surfbench.training.base import (
    BUDGET_STOPPED,
    CONVERGED,
    EPOCH_CAP,
    KILLED,
    RUNNING,
    TrainedModel,
    TrainingError,
    TrainJob,
    registry_facts,
)
from surfbench.training.resources import peak_rss_self_mb

#: the states a finished run can have, and whether each is converged
FINISHED = {CONVERGED: True, EPOCH_CAP: False, BUDGET_STOPPED: False}

CHECKPOINT_FILE = "resume.pt"
STATE_FILE = "run-state.json"

#: settings of a deep training that only say when it stops or how fast it runs: not part of the
#: checkpoint's key (a run continued with a larger cap, another budget or thread count is the
#: same training)
RESUME_IGNORED = frozenset({"epochs", "patience", "threads", "timeout_s", "max_minutes", "torchscript"})


def resume_key(method: str, foundation: str | None, seed: int, settings: dict[str, Any], frames: list[str],
               ignored: frozenset[str] = RESUME_IGNORED) -> str:
    """The identity of a training for its checkpoint (module docs); ``ignored``: the settings
    that are not part of it (a driver whose learning-rate schedule spans ``epochs`` keeps it)."""
    payload = {"method": method, "foundation": foundation, "seed": int(seed), "frames": frames,
               "settings": {k: v for k, v in sorted(settings.items()) if k not in ignored}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class LoopState:
    """Where an epoch loop stands (``run-state.json`` without pid and host)."""

    key: str
    epochs_done: int = 0
    best_loss: float = float("inf")
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    state: str = RUNNING
    reason: str = ""
    wall_s: float = 0.0  # training wall time over every session of this run (s)

    @property
    def converged(self) -> bool:
        return self.state == CONVERGED


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _replace(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class EpochRun:
    """The checkpoint and the convergence rule of one deep training in ``workdir``."""

    def __init__(self, workdir: Path, key: str, *, name: str, epochs: int, patience: int | None,
                 deadline: float | None = None, resume: bool = False, echo=None) -> None:
        self.workdir, self.name, self.key = Path(workdir), name, key
        self.epochs = int(epochs)
        self.patience = int(patience) if patience else None
        self.deadline, self.echo = deadline, echo
        self.resume_required = resume
        self.session_start = time.time()
        self.epoch_times: list[float] = []

    # ------------------------------------------------------------------ checkpoint
    @property
    def checkpoint(self) -> Path:
        return self.workdir / CHECKPOINT_FILE

    def start(self) -> tuple[LoopState, dict[str, Any] | None]:
        """The state to start from, with the checkpoint's tensors (None: a fresh start).
        Errors: ``--resume`` without a checkpoint, or with one of another training."""
        saved = read_state(self.workdir)
        if saved is None or not self.checkpoint.is_file():
            if self.resume_required:
                raise TrainingError(f"{self.name}: --resume, but there is no checkpoint of this training in "
                                    f"{self.workdir} (it never ran, or finished before checkpoints were kept)")
            return LoopState(self.key), None
        if saved.get("key") != self.key:
            if self.resume_required:
                raise TrainingError(
                    f"{self.name}: --resume, but the checkpoint in {self.workdir} belongs to another training (other "
                    "training frames, foundation, seed or settings); run without --resume to start this one over")
            if self.echo:
                self.echo(f"  {self.name}: the checkpoint in {self.workdir} is of another training: starting over")
            return LoopState(self.key), None
        import torch

        blob = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        st = LoopState(**{k: v for k, v in saved.items() if k in LoopState.__dataclass_fields__})
        st.state, st.reason = RUNNING, ""
        if self.echo:
            self.echo(f"  {self.name}: continuing from its checkpoint after {st.epochs_done} epochs "
                      f"(best validation loss {st.best_loss:.6g} at epoch {st.best_epoch}; was {saved.get('state')}"
                      f"{' ' + saved['reason'] if saved.get('reason') else ''})")
        restore_rng(blob.get("rng") or {})
        self._judge(st)  # a run at its cap (or converged) before this session: no further epoch
        return st, blob

    def save(self, st: LoopState, tensors: dict[str, Any]) -> None:
        """Write the checkpoint (``tensors``: state dicts, to torch.save) and the state file."""
        import torch

        self.workdir.mkdir(parents=True, exist_ok=True)
        _replace(self.checkpoint, lambda p: torch.save({**tensors, "key": self.key, "rng": rng_state()}, p))
        self.write_state(st)

    def write_state(self, st: LoopState) -> None:
        data = {**asdict(st), "pid": os.getpid(), "host": socket.gethostname(), "updated_at": _now()}
        _replace(self.workdir / STATE_FILE, lambda p: p.write_text(json.dumps(data, indent=1), encoding="utf-8"))

    # ------------------------------------------------------------------ the rule and the budget
    def time_left_for_epoch(self) -> bool:
        """Whether another epoch fits in the budget (its length: the slowest of this session's)."""
        if self.deadline is None or not self.epoch_times:
            return True
        return time.time() + max(self.epoch_times) <= self.deadline

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.time() > self.deadline

    def budget_below_one_epoch(self, st: LoopState, done: int, total: int, elapsed_s: float) -> TrainingError:
        """The error for a budget spent inside the first epoch of a session (``done`` of
        ``total`` batches in ``elapsed_s``; a driver that cannot stop inside an epoch gives
        ``done == total`` after it, its checkpoint written)."""
        per_epoch = elapsed_s / max(done, 1) * total
        budget = (self.deadline - self.session_start) / 60.0 if self.deadline else float("nan")
        return TrainingError(
            f"{self.name}: the time left of --max-minutes ({budget:.3g} min when this training started) is below "
            f"one epoch: {done} of {total} batches in "
            f"{elapsed_s:.0f} s (one epoch takes about {per_epoch / 60:.1f} min here); give at least "
            f"{per_epoch / 60 * 1.2:.1f} minutes" + (f" (the run keeps its checkpoint after {st.epochs_done} epochs)"
                                                    if st.epochs_done else ""))

    def first_epoch_overran(self) -> bool:
        """Whether the session's only finished epoch ended past the budget (drivers whose epoch
        cannot stop inside: the budget was below one epoch)."""
        return len(self.epoch_times) == 1 and self.past_deadline()

    def after_epoch(self, st: LoopState, row: dict[str, float], val_loss: float, epoch_s: float) -> bool:
        """Record an epoch (``row``: its losses); whether it is the best so far. Sets
        ``st.state`` when the loop should stop (converged, epoch cap, budget)."""
        if val_loss != val_loss:
            raise TrainingError(f"{self.name}: the validation loss became NaN in epoch {st.epochs_done + 1}; lower lr")
        st.epochs_done += 1
        self.epoch_times.append(epoch_s)
        st.wall_s += epoch_s
        row = {**row, "epoch": st.epochs_done, "epoch_s": epoch_s, "val_loss": val_loss}
        st.history.append(row)
        best = val_loss < st.best_loss
        if best:
            st.best_loss, st.best_epoch = val_loss, st.epochs_done
        self._judge(st)
        if st.state == RUNNING and not self.time_left_for_epoch():
            st.state = BUDGET_STOPPED
            st.reason = f"the time budget left no room for epoch {st.epochs_done + 1}"
        if self.echo:
            self.echo(f"  {self.name}: epoch {st.epochs_done}/{self.epochs} in {epoch_s:.1f} s, validation loss "
                      f"{val_loss:.6g}{' (best)' if best else f', best {st.best_loss:.6g} at {st.best_epoch}'}"
                      + (f"; {st.state}: {st.reason}" if st.state != RUNNING else ""))
        return best

    def _judge(self, st: LoopState) -> None:
        """The convergence rule, then the epoch cap."""
        if self.patience and st.epochs_done - st.best_epoch >= self.patience:
            st.state = CONVERGED
            st.reason = (f"{self.patience} epochs without a lower validation loss (best {st.best_loss:.6g} at epoch "
                         f"{st.best_epoch})")
        elif st.epochs_done >= self.epochs:
            st.state = EPOCH_CAP
            st.reason = (f"reached the cap of {self.epochs} epochs " + (
                f"with the validation loss still falling within the patience of {self.patience}" if self.patience
                else "(no patience: no convergence rule)"))

    def stop_at_budget(self, st: LoopState) -> None:
        st.state = BUDGET_STOPPED
        st.reason = f"the time budget ran out during epoch {st.epochs_done + 1} (discarded)"
        self.write_state(st)
        if self.echo:
            self.echo(f"  {self.name}: budget-stopped: {st.reason}; the checkpoint after {st.epochs_done} epochs is kept")


def registry_note(st: LoopState, what: str) -> str:
    """A trained model's registry note: ``what`` (how it was trained) with how the training
    ended, led by ``NOT CONVERGED (<state>: <reason>)`` unless it converged."""
    ended = f"{st.epochs_done} epochs, the best validation epoch {st.best_epoch} kept"
    if st.converged:
        return f"{what}; {ended}: {st.reason}"
    return f"NOT CONVERGED ({st.state}: {st.reason}); {what}; {ended}"


def trained_entry(job: TrainJob, st: LoopState, like: str, weights: dict[str, Any], n_parameters: int, *,
                  licence: str, what: str, citation: str | None = None) -> dict[str, Any]:
    """The registry entry of a deep model trained by ``job`` from (or in the form of) the
    packaged models.yaml entry ``like``: ``like``'s family, backend, package range and version,
    the local ``weights`` (path, files), the parameter count, the training set, ``licence``, the
    citation (``like``'s unless given) and the note: how it was trained (``what``) and how the
    training ended (:func:`registry_note`)."""
    return {
        "name": job.name,
        **registry_facts(like, "family", "backend", "package", "version"),
        "weights": {"source": "local", **weights},
        "parameters": int(n_parameters),
        "training_set": f"{len(job.train)} training + {len(job.valid)} validation frames of {'-'.join(job.elements)}",
        "training_set_size": f"{len(job.train)} structures",
        "licence": licence,
        "citation": citation or registry_facts(like, "citation")["citation"],
        "note": registry_note(st, what),
    }


def epoch_result(st: LoopState, weights_path: Path, entry: dict[str, Any], n_parameters: int, *,
                 cpu_start: float, log_path: Path, history: list[dict[str, Any]]) -> TrainedModel:
    """The :class:`TrainedModel` of an epoch loop that ended in ``st`` (wall time summed over its
    sessions; CPU time since ``cpu_start``, a :func:`time.process_time`; this process's peak RSS)."""
    return TrainedModel(weights_path=weights_path, registry_entry=entry, n_parameters=n_parameters,
                        wall_s=st.wall_s, cpu_s=time.process_time() - cpu_start, peak_rss_mb=peak_rss_self_mb(),
                        log_path=log_path, history=history, converged=FINISHED[st.state], state=st.state)


# ---------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------- seen from outside


def read_state(workdir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(workdir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def observed_state(data: dict[str, Any]) -> str:
    """A run's state as seen now: ``running`` only while its process lives on this host; a
    ``running`` run whose process is gone was ``killed``."""
    state = data.get("state", RUNNING)
    if state == RUNNING and not (data.get("host") == socket.gethostname() and _alive(data.get("pid"))):
        return KILLED
    return state


def run_states(trained_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every deep training with a checkpoint in a folder of ``trained_dir`` (a store folder's
    ``trained/``): name, state (:func:`observed_state`), epochs done, best validation loss and
    epoch, reason, wall time and when it last wrote."""
    out = []
    for path in sorted(Path(trained_dir).glob(f"*/{STATE_FILE}")):
        data = read_state(path.parent)
        if data is None:
            continue
        out.append({"name": path.parent.name, "state": observed_state(data), "epochs_done": data.get("epochs_done"),
                    "best_loss": data.get("best_loss"), "best_epoch": data.get("best_epoch"),
                    "reason": data.get("reason", ""), "wall_s": data.get("wall_s"), "updated_at": data.get("updated_at")})
    return out


def unfinished_runs(trained_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of :func:`run_states` that are ``running`` or ``killed``: their last checkpoint
    is not a recorded model (one recorded by an earlier session of the run may be)."""
    return [r for r in run_states(trained_dir) if r["state"] in (RUNNING, KILLED)]
