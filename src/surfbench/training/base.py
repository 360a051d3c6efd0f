"""The training interface shared by every driver (fine-tuning and from-scratch).

A driver turns a :class:`TrainJob` (labelled frames already split, resolved preset settings,
a work folder) into a :class:`TrainedModel`: a weights file plus the registry entry
(``models.yaml`` form) that loads it through the normal model pipeline, so a trained model is
fingerprinted, stored and evaluated exactly like a universal one.

Drivers are looked up lazily by method name (:data:`TRAINERS`); a driver module imports its
training package only inside :meth:`Trainer.train`.

Units: energies eV, forces eV/Angstrom, stress eV/Angstrom^3 (ASE sign and Voigt order), as in
:class:`surfbench.data.frames.Frame`. A driver converts to its package's conventions itself
(e.g. matgl wants GPa) and says so in its docstring.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from surfbench.data.frames import Frame

SCRATCH = "scratch"
FINETUNE = "finetune"


#: how a training ended (``TrainedModel.state``, the trainings table, the tables' marks); only
#: ``converged`` is converged. ``killed`` and ``running`` are seen from outside a run
#: (:func:`surfbench.training.epochs.run_states`).
CONVERGED = "converged"
EPOCH_CAP = "epoch-cap"  # deep trainings: the epoch cap came before the convergence rule
ITERATION_CAP = "iteration-cap"  # iterative fits (MTP): maxiter came before the convergence criterion
BUDGET_STOPPED = "budget-stopped"  # --max-minutes
KILLED = "killed"
RUNNING = "running"


class TrainingError(RuntimeError):
    """A training run cannot be set up or failed (message names the method and the cause)."""


@dataclass(frozen=True)
class SlabFrame:
    """A training or validation frame that is the structure of a known slab record: what a fit
    needs to compute that slab's surface energy with its own model (``weight_choice=slab-cv`` of
    :mod:`surfbench.training.snap`)."""

    record_id: str
    area_a2: float  # one face (Angstrom^2)
    dft_gamma_j_per_m2: float  # the record's DFT surface energy (J/m^2)
    bulk: Atoms  # the record's bulk structure (the model's bulk energy per atom comes from it)


@dataclass
class TrainJob:
    """Everything a driver needs for one training run."""

    method: str  # "mace" | "nequip" | "m3gnet" | "mtp" | "chgnet" | "sevennet" | "readout" | "snap" | "qsnap"
    mode: str  # SCRATCH | FINETUNE
    train: list[Frame]
    valid: list[Frame]
    elements: tuple[str, ...]
    settings: dict[str, Any]  # the preset resolved for this method (epochs, lr, loss weights, cutoffs, sizes)
    workdir: Path
    name: str  # registry name of the model produced, e.g. "mace-scratch-Cu-cpu-quick-n50-s0"
    device: str = "cpu"
    seed: int = 0
    foundation: str | None = None  # registry name or file of the model fine-tuned from
    #: wall-clock time (``time.time()``, s) by which an iterative fit stops cleanly with what it
    #: has (``surfbench train --max-minutes``); not part of the configuration (a resumed fit with
    #: another budget is the same fit). Only drivers that checkpoint honour it (MTP, SevenNet).
    deadline: float | None = None
    #: where a long fit reports its progress (a line per checkpoint), or None
    echo: Callable[[str], None] | None = None
    #: ``surfbench train --resume``: the training must continue from its checkpoint (an error if
    #: there is none or it is another training's); without it, a checkpoint of the same training
    #: is continued all the same and anything else starts over (:mod:`surfbench.training.epochs`)
    resume: bool = False
    #: frame key (:func:`surfbench.training.splits.frame_key`) -> :class:`SlabFrame`, for the
    #: training and validation frames that are slabs of the judged data set's records (none under
    #: no-surfaces); derived from the frames, hence not part of a training's configuration
    slab_frames: dict[str, SlabFrame] = field(default_factory=dict)


#: settings that only say when an iterative fit stops (its cap, its tolerance, a timeout): a fit
#: that differs from another only in these is the same fit, stopped elsewhere; it keeps its name
#: (:func:`surfbench.training.pipeline.curve_id`) and continues from its checkpoint (MTP)
STOPPING_SETTINGS = frozenset({"maxiter", "rel_tol", "timeout_s"})


@dataclass
class TrainedModel:
    """A trained model and how to load it."""

    weights_path: Path
    registry_entry: dict[str, Any]  # a models.yaml entry; weights {source: local, path: ...}
    n_parameters: int | None
    wall_s: float
    peak_rss_mb: float | None = None
    log_path: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # per-epoch losses/errors, if known
    cpu_s: float | None = None  # CPU time (user + system, s) of the training, where measured
    #: did the fit reach its convergence criterion? True for closed-form fits and for iterative
    #: fits that met theirs; False when it stopped at its budget or iteration cap (the model is
    #: usable and marked "not converged" in the registry and every table); None: not known (deep
    #: trainings stopped by their epoch count or early stopping)
    converged: bool | None = None
    #: how it ended (CONVERGED, EPOCH_CAP, ITERATION_CAP, BUDGET_STOPPED), where the driver keeps a
    #: convergence rule; None otherwise
    state: str | None = None


class Trainer(ABC):
    """One training package (MACE, NequIP, matgl, motep, CHGNet, SevenNet)."""

    method: str
    modes: tuple[str, ...] = (SCRATCH,)
    #: whether the driver keeps checkpoints that a later run continues (``--resume``, ``--max-minutes``)
    checkpoints: bool = False

    @abstractmethod
    def train(self, job: TrainJob) -> TrainedModel:
        """Train (blocking); raise :class:`TrainingError` with the cause on failure."""


#: method -> "module:Class"; imported only when used
TRAINERS: dict[str, str] = {
    "mace": "surfbench.training.mace:MaceTrainer",
    "nequip": "surfbench.training.nequip:NequipTrainer",
    "mtp": "surfbench.training.mtp:MtpTrainer",
    "m3gnet": "surfbench.training.matgl:M3gnetTrainer",
    "chgnet": "surfbench.training.chgnet:ChgnetTrainer",
    "sevennet": "surfbench.training.sevenn:SevennetTrainer",
    "readout": "surfbench.training.readout:ReadoutTrainer",
    "snap": "surfbench.training.snap:SnapTrainer",
    "qsnap": "surfbench.training.snap:QSnapTrainer",
}


def registry_facts(model: str, *fields: str) -> dict[str, Any]:
    """``fields`` (e.g. family, backend, package, version) of the packaged ``models.yaml`` entry
    ``model``, in that order, for the registry entry of a model trained from or like it: the
    package's version range and the other facts keep one source, models.yaml."""
    from surfbench.models.registry import packaged_entry

    entry = packaged_entry(model)
    return {f: entry[f] for f in fields}


@contextmanager
def package_needed(method: str, package: str, what: str = "") -> Iterator[None]:
    """Imports inside this block that fail raise :class:`TrainingError`: ``method`` needs
    ``package`` (``what`` says which release, e.g. ``matgl >= 4.1``), with the pip command of
    the range models.yaml declares."""
    from surfbench.models.registry import requirement

    try:
        yield
    except ImportError as exc:
        raise TrainingError(f"{method} needs {what or f'the {package!r} package'} ({exc}); "
                            f"pip install torch==2.13.0 '{requirement(package)}'") from exc


def check_name(job: TrainJob) -> None:
    """Fail before training if ``job.name`` cannot be a registry name (models/schema.json)."""
    import re

    from surfbench.models.registry import registry_schema

    pattern = registry_schema()["$defs"]["model"]["properties"]["name"]["pattern"]
    if not re.fullmatch(pattern, job.name):
        raise TrainingError(f"{job.method} ({job.name}): not a valid registry name (pattern {pattern})")


def check_job(job: TrainJob, modes: tuple[str, ...], why_forces: str = "") -> list[Frame]:
    """Checks every force-trained driver makes before training: the mode is offered, the name
    can be registered, there are training frames and every frame has forces. Returns the
    training + validation frames."""
    if job.mode not in modes:
        raise TrainingError(f"{job.method}: only fine-tuning is offered (mode {FINETUNE!r}), not {job.mode!r}"
                            if modes == (FINETUNE,) else f"{job.method}: unknown mode {job.mode!r}; known: {', '.join(modes)}")
    check_name(job)
    if not job.train:
        raise TrainingError(f"{job.method} ({job.name}): no training frames")
    frames = list(job.train) + list(job.valid)
    missing = next((f for f in frames if f.forces_ev_per_a is None), None)
    if missing is not None:
        raise TrainingError(f"{job.method} ({job.name}): frame {missing.source} has no forces{why_forces}")
    return frames


def get_trainer(method: str) -> Trainer:
    try:
        target = TRAINERS[method]
    except KeyError:
        raise TrainingError(f"unknown training method {method!r}; known: {', '.join(TRAINERS)}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()
