"""Train a model, register it, evaluate it on the held-out slabs and record what it cost.

:func:`train_curve` is ``surfbench train``: for each training-set size of a learning curve
(one size: one model) it

1. takes the nested subset of the leakage-safe split (:mod:`surfbench.training.splits`);
2. trains with the method's driver (:func:`surfbench.training.base.get_trainer`) in
   ``<store folder>/trained/<name>/``, unless the same training (same name and configuration
   hash, weights still there) is already recorded: a rerun is free;
3. writes the model's registry entry to ``<store folder>/trained-models.yaml`` (weights path
   relative to that file) and registers the file (:func:`surfbench.models.registry.use_project`),
   so ``load_model(name)`` works here and in any later ``surfbench run --workdir <folder>``;
4. evaluates it through the normal runner on the slabs of its elements in the surface data set
   (all held out from training unless ``include_surfaces``) into the store, and with single
   points on the test frames (:func:`surfbench.evaluation.frames.evaluate_frames`);
5. records the training in the store's ``trainings`` table (:mod:`surfbench.store.trainings`):
   method, mode, foundation, preset, settings, split summary (which frames were held out and why), the
   training frames and their structure hashes, wall time (s), peak RSS (MB), parameters,
   energy and force errors on the test frames, per-epoch history.

For fine-tuning from a registry model, the foundation itself is evaluated the same way (its
zero-shot point of the learning curve, n_train = 0).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surfbench.data.frames import Frame
from surfbench.records import Dataset, SurfaceRecord, structure_hash
from surfbench.store.results import ResultStore
from surfbench.store.trainings import get_training, put_training
from surfbench.training.base import (
    FINETUNE,
    SCRATCH,
    STOPPING_SETTINGS,
    TRAINERS,
    SlabFrame,
    TrainedModel,
    TrainingError,
    TrainJob,
    get_trainer,
)
from surfbench.training.protocols import FACET_CV, NO_SURFACES, Fold
from surfbench.training.splits import MLEARN, SlabIndex, TrainingSplit, frame_key

Echo = Callable[[str], None]

TRAINED_DIR = "trained"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- registry file


def registry_file(store_dir: Path) -> Path:
    from surfbench.models.registry import TRAINED_MODELS_FILE

    return Path(store_dir) / TRAINED_MODELS_FILE


def write_registry_entry(store_dir: Path, entry: dict[str, Any]) -> Path:
    """Add (or replace, by name) ``entry`` in the store folder's trained-models file, with a
    local weights path inside the folder written relative to it; validated against the schema."""
    from surfbench.models.registry import dump_yaml, load_yaml, use_project, validate_entries

    path = registry_file(store_dir)
    entry = dict(entry)
    w = dict(entry.get("weights") or {})
    if w.get("source") == "local" and w.get("path"):
        p = Path(w["path"]).resolve()
        if p.is_relative_to(path.parent.resolve()):
            w["path"] = p.relative_to(path.parent.resolve()).as_posix()
        entry["weights"] = w
    validate_entries([entry])
    models = []
    if path.is_file():
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
        models = list(raw.get("models", []) if isinstance(raw, dict) else raw)
    models = [m for m in models if m.get("name") != entry["name"]] + [entry]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text("# models trained by 'surfbench train' (registry entries, models/schema.json)\n"
                   + dump_yaml({"models": models}), encoding="utf-8")
    os.replace(tmp, path)
    use_project(path.parent)
    return path


# ---------------------------------------------------------------------------- names


_NAME_CHARS = re.compile(r"[^a-z0-9._-]+")


def _slug(text: str) -> str:
    return _NAME_CHARS.sub("-", text.lower()).strip("-.") or "x"


def foundation_tag(foundation: str | None) -> str:
    """Short name of a foundation: its registry name, or a file's / folder's name."""
    if not foundation:
        return ""
    p = Path(foundation)
    return _slug(p.stem if p.suffix else p.name) if (os.sep in foundation or p.exists()) else _slug(foundation)


def curve_id(method: str, mode: str, foundation: str | None, preset: str, elements: Sequence[str], seed: int,
             include_surfaces: bool, overrides: dict[str, Any] | None = None, protocol: str = NO_SURFACES) -> str:
    """Identifies one learning curve: everything but the training-set size (and the fold)."""
    tag = "scratch" if mode == SCRATCH else f"ft-{foundation_tag(foundation)}"
    parts = [method, tag, "-".join(e.lower() for e in elements), preset]
    if include_surfaces:
        parts.append("with-surfaces")
    if protocol != NO_SURFACES:  # no-surfaces curves keep the names they had before protocols
        parts.append(protocol)
    # a different cap or tolerance (STOPPING_SETTINGS) is the same model, continued or stopped elsewhere
    overrides = {k: v for k, v in (overrides or {}).items() if k not in STOPPING_SETTINGS}
    if overrides:
        parts.append("x" + hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:6])
    return "-".join(parts) + f"-s{seed}"


def model_name(curve: str, n_train: int, fold: str = "") -> str:
    """Registry name of one model of a curve: ``<curve>`` with the fold tag (facet-cv, e.g.
    ``mo-110``) and ``-n<size>`` before the seed."""
    head, _, seed = curve.rpartition("-s")
    return _slug(f"{head}{'-' + fold if fold else ''}-n{n_train}-s{seed}")


# ---------------------------------------------------------------------------- evaluation


def frameset_of(data: str) -> str:
    from surfbench.evaluation.frames import MLEARN_FRAMESET

    return MLEARN_FRAMESET if data == MLEARN else "frames:" + ",".join(Path(d).name for d in data.split(","))


def _frame_items(frames: Sequence[Frame]) -> list[tuple[str, Any]]:
    from surfbench.evaluation.frames import frame_id

    return [(frame_id(f), f.atoms) for f in frames]


def frame_metrics(store: ResultStore, frameset: str, fingerprint: str, frames: Sequence[Frame]) -> dict[str, Any]:
    """Energy-per-atom (eV/atom) and force-component (eV/A) errors of a model on ``frames``
    from the store's frame results: RMSE, MAE, counts (a failed frame is counted, not an error
    of 0)."""
    from surfbench.analysis.metrics import error_stats
    from surfbench.evaluation.frames import frame_id

    res = store.frame_results(frameset, fingerprint).set_index("frame_id")
    de, df_ = [], []
    for f in frames:
        fid = frame_id(f)
        if fid not in res.index or res.loc[fid, "status"] != "ok":
            de.append(math.nan)
            continue
        de.append((float(res.loc[fid, "energy_ev"]) - f.energy_ev) / f.n_atoms)
        forces = res.loc[fid, "forces_ev_per_a"]
        if f.forces_ev_per_a is not None and isinstance(forces, str):
            df_.append((np.asarray(json.loads(forces), dtype=float) - f.forces_ev_per_a).ravel())
    e = error_stats(de)
    fs = error_stats(np.concatenate(df_) if df_ else [])
    return {"n_frames": len(frames), "n_ok": e["n_ok"], "n_failed": e["n_failed"],
            "energy_rmse_ev_per_atom": e["rmse"], "energy_mae_ev_per_atom": e["mae"],
            "force_rmse_ev_per_a": fs["rmse"], "force_mae_ev_per_a": fs["mae"]}


def surface_metrics(store: ResultStore, dataset: str, fingerprint: str, elements: set[str] | None = None,
                    judged: Sequence[str] | None = None) -> dict[str, Any]:
    """gamma (J/m^2: RMSE, MAE, mean signed error, counts), slab and bulk energy per atom
    (eV/atom, RMSE) of one run on the slabs and bulks of ``elements`` (all when None), over
    the ``judged`` slabs only when given (a protocol's judged records)."""
    from surfbench.training.curves import predictions, surface_numbers

    bulks, slabs = predictions(store, dataset, fingerprint)
    if judged is not None and not slabs.empty:
        slabs = slabs[slabs["record_id"].isin(set(judged))]
    if slabs.empty:
        return {}
    return surface_numbers(bulks, slabs, set(slabs["element"]) if elements is None else set(elements))


def test_frames(split: TrainingSplit, settings: dict[str, Any]) -> list[Frame]:
    """The test frames evaluated: all, or a seeded choice of ``max_test_frames`` of them."""
    n = settings.get("max_test_frames")
    if n is None or n >= len(split.test):
        return list(split.test)
    keep = sorted(np.random.default_rng(split.seed).choice(len(split.test), size=int(n), replace=False))
    return [split.test[i] for i in keep]


def evaluate_model(store: ResultStore, name: str, dataset: Dataset, test: Sequence[Frame], frameset: str, *,
                   device: str = "cpu", threads: int | None = None, echo: Echo = print,
                   judged: Sequence[str] | None = None, keep_both: bool = False) -> tuple[str, dict, dict]:
    """Evaluate a registered model on the slabs and bulks of ``dataset`` (the normal runner)
    and on the ``test`` frames (single points); (fingerprint, surface metrics over the
    ``judged`` slabs (all when None), frame metrics). ``keep_both``: the name is stored with
    another fingerprint that this model replaces (a fit continued from its checkpoint): both are
    kept, apart by fingerprint (the trainings table names the current one)."""
    from surfbench.evaluation.frames import evaluate_frames
    from surfbench.execution.runner import run
    from surfbench.models import ModelLoadError, load_model

    try:
        model = load_model(name, device=device)
        summary = run(dataset, model, store, "static", threads=threads, keep_both_fingerprints=keep_both)
        if test:
            evaluate_frames(_frame_items(test), model, store, frameset, threads=threads, keep_both_fingerprints=keep_both)
    except ModelLoadError as exc:
        raise TrainingError(f"evaluating {name}: {exc}") from exc
    echo(f"  {name}: {summary.computed} structures computed, {summary.reused} reused, {summary.failed} failed")
    elements = {s.element for s in dataset.surfaces}
    return (summary.fingerprint, surface_metrics(store, dataset.name, summary.fingerprint, elements, judged),
            frame_metrics(store, frameset, summary.fingerprint, test))


# ---------------------------------------------------------------------------- one training


@dataclass
class TrainingResult:
    """One trained (or reused) model with its evaluation."""

    name: str
    fingerprint: str
    n_train: int
    reused: bool
    wall_s: float | None
    peak_rss_mb: float | None
    n_parameters: int | None
    surface: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    fold: str = "all"
    judged: tuple[str, ...] = ()
    converged: bool | None = None  # TrainedModel.converged: False marks a fit stopped before it converged
    state: str | None = None  # TrainedModel.state: how it ended (converged, epoch-cap, budget-stopped, ...)


def _config_hash(job: TrainJob, data: str) -> str:
    payload = {
        "method": job.method, "mode": job.mode, "foundation": job.foundation, "elements": list(job.elements),
        "seed": job.seed, "settings": job.settings, "data": data, "device": job.device,
        "train": [frame_key(f) for f in job.train], "valid": [frame_key(f) for f in job.valid],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def trained_on_entry(job: TrainJob, dataset: Dataset, data: str) -> dict[str, Any]:
    """The registry entry's ``trained_on`` (analysis/seen.py): the evaluated slabs of ``dataset``
    whose structure is among the training or validation frames (none unless surfaces were
    included), so that their metrics are reported apart from the unseen slabs'."""
    index = SlabIndex(dataset.surfaces)
    records = sorted({s.id for f in [*job.train, *job.valid] if (s := index.match(f.atoms)) is not None})
    return {
        "description": f"{data} {'-'.join(job.elements)}: {len(job.train)} training + {len(job.valid)} validation "
                       f"frames, {len(records)} of them slabs of {dataset.name}",
        "dataset": dataset.name,
        "records": records,
    }


def _entry_with_provenance(trained: TrainedModel, job: TrainJob, split: TrainingSplit, data: str,
                           dataset: Dataset) -> dict[str, Any]:
    entry = dict(trained.registry_entry)
    entry["trained_on"] = trained_on_entry(job, dataset, data)
    entry["name"] = job.name
    if trained.n_parameters:
        entry.setdefault("parameters", int(trained.n_parameters))
    els = "-".join(job.elements)
    entry.setdefault("training_set", f"{data} {els}: {len(job.train)} training + {len(job.valid)} validation frames")
    entry.setdefault("training_set_size", f"{len(job.train)} frames")
    if data == MLEARN:
        entry.setdefault("level_of_theory", "PBE (VASP), mlearn (Zuo et al. 2020)")
    held = ("surfaces included on request (--include-surfaces)" if split.include_surfaces
            else f"{len(split.held_out)} frames of evaluated slabs held out")
    how = f"fine-tuned from {job.foundation}" if job.mode == FINETUNE else "trained from scratch"
    entry.setdefault("note", f"{how} by 'surfbench train' (preset {job.settings.get('preset')}, seed {job.seed}); {held}")
    return entry


def judged_dataset(dataset: Dataset, judged: Sequence[str]) -> Dataset:
    """The judged slabs of ``dataset`` with the bulks they reference (what a fold is evaluated on)."""
    keep = set(judged)
    slabs = [x for x in dataset.surfaces if x.id in keep]
    used = {x.bulk_id for x in slabs}
    return Dataset(dataset.name, {k: b for k, b in dataset.bulks.items() if k in used}, slabs,
                   list(dataset.notes), dict(dataset.provenance))


def slab_frames_of(split: TrainingSplit, dataset: Dataset, frames: Sequence[Frame]) -> dict[str, SlabFrame]:
    """:class:`SlabFrame` by frame key for those of ``frames`` that the split knows as slabs of
    ``dataset``'s records (trained on by mlearn-split and facet-cv, or left in the pool by
    ``--include-surfaces``), where the record has its bulk and a DFT surface energy."""
    keys = {frame_key(f) for f in frames}
    records = {s.id: s for s in dataset.surfaces if isinstance(s, SurfaceRecord)}
    out: dict[str, SlabFrame] = {}
    for h in [*split.slab_frames, *split.leaked]:
        rec = records.get(h.slab_id) if h.slab_id else None
        key = frame_key(h.frame)
        if key not in keys or rec is None or rec.bulk_id not in dataset.bulks:
            continue
        gamma = rec.dft_gamma_j_per_m2
        if math.isfinite(gamma):
            out[key] = SlabFrame(rec.id, rec.area_a2, gamma, dataset.bulks[rec.bulk_id].atoms)
    return out


def train_one(
    store: ResultStore, fold: Fold, method: str, mode: str, settings: dict[str, Any], n_train: int,
    curve: str, *, size: str | None = None, foundation: str | None, data: str, dataset: Dataset, device: str = "cpu", seed: int = 0,
    threads: int | None = None, zero_shot: TrainingResult | None = None, echo: Echo = print,
    deadline: float | None = None, resume: bool = False,
) -> TrainingResult:
    """Train (or reuse), register, evaluate and record one model of a curve: one fold of its
    protocol, judged on the fold's slabs (facet-cv folds: on those slabs only, no test frames)."""
    split = fold.split
    store_dir = Path(store.path).parent
    name = model_name(curve, n_train, fold.tag)
    job = TrainJob(
        method=method, mode=mode, train=split.subset(n_train), valid=list(split.valid), elements=split.elements,
        settings=dict(settings), workdir=store_dir / TRAINED_DIR / name, name=name, device=device, seed=seed,
        foundation=foundation, deadline=deadline, echo=echo, resume=resume,
    )
    job.slab_frames = slab_frames_of(split, dataset, [*job.train, *job.valid])
    if threads:
        job.settings.setdefault("threads", threads)
    config_hash = _config_hash(job, data)
    previous = get_training(store, name)
    # a fit recorded as not converged (stopped at its budget or iteration cap) is continued, not reused
    reuse = (previous is not None and previous["config_hash"] == config_hash and previous.get("converged") != 0
             and (store_dir / previous["weights"]).exists() and registry_file(store_dir).is_file())
    quiet = fold.protocol == FACET_CV  # dozens of folds: one line each
    if reuse:
        if not quiet:
            echo(f"{name}: trained before (same configuration), reusing {previous['weights']}")
        from surfbench.models.registry import use_project

        use_project(store_dir)
        wall, cpu, rss, params = previous["wall_s"], previous["cpu_s"], previous["peak_rss_mb"], previous["n_parameters"]
        settings_used, history, weights, log = previous["settings"], previous["history"], previous["weights"], previous["log"]
        converged = None if previous.get("converged") is None or pd.isna(previous["converged"]) else bool(previous["converged"])
        state = previous.get("state") if isinstance(previous.get("state"), str) else None
    else:
        if not quiet:
            echo(f"{name}: training {method} ({mode}{' from ' + foundation if foundation else ''}) on "
                 f"{len(job.train)} frames, {len(job.valid)} validation frames, preset {settings.get('preset')}")
        trained = get_trainer(method).train(job)
        write_registry_entry(store_dir, _entry_with_provenance(trained, job, split, data, dataset))
        wall, cpu, rss, params = trained.wall_s, trained.cpu_s, trained.peak_rss_mb, trained.n_parameters
        settings_used, history, converged, state = job.settings, trained.history, trained.converged, trained.state
        weights = os.path.relpath(Path(trained.weights_path).resolve(), store_dir.resolve())
        log = os.path.relpath(Path(trained.log_path).resolve(), store_dir.resolve()) if trained.log_path else None
        if not quiet:
            echo(f"  trained in {wall:.0f} s (CPU {cpu or float('nan'):.0f} s), peak memory "
                 f"{rss or float('nan'):.0f} MB, {params or '?'} parameters"
                 + (f"; NOT CONVERGED{' (' + state + ')' if state else ''} (a rerun continues it)"
                    if converged is False else ""))
    test = [] if fold.protocol == FACET_CV else test_frames(split, settings)
    fingerprint, surface, frames = evaluate_model(
        store, name, judged_dataset(dataset, fold.judged), test, frameset_of(data), device=device,
        threads=threads, echo=(lambda _: None) if quiet else echo, judged=fold.judged,
        keep_both=previous is not None and not reuse)  # retrained under its name (a continued fit)
    if quiet:
        echo(f"  fold {fold.name}: {len(job.train)} frames ({len(split.slab_frames)} slabs of other facets), "
             f"{'reused' if reuse else f'trained in {wall:.1f} s'}; gamma error on "
             f"{len(fold.judged)} slab(s): {_fmt_gamma(surface)}")
    put_training(store, {
        "name": name, "fingerprint": fingerprint, "method": method, "mode": mode, "foundation": foundation,
        "preset": str(settings.get("preset")), "elements": ",".join(split.elements), "data": data,
        "dataset": dataset.name, "curve": curve, "seed": seed, "include_surfaces": int(split.include_surfaces),
        "n_train": len(job.train), "n_valid": len(job.valid), "n_test": int(frames.get("n_frames", 0)),
        "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss, "n_parameters": params, "device": device,
        "settings": settings_used, "split": split.summary(),
        "train_frames": [frame_key(f) for f in job.train], "train_hashes": [structure_hash(f.atoms) for f in job.train],
        "frame_metrics": frames, "history": history, "weights": weights, "log": log,
        "zero_shot": None if zero_shot is None else {"model": zero_shot.name, "fingerprint": zero_shot.fingerprint,
                                                     "frame_metrics": zero_shot.frames},
        "config_hash": config_hash, "created_at": previous["created_at"] if reuse else _now(),
        "protocol": fold.protocol, "fold": fold.name, "judged": list(fold.judged),
        "size": size or str(len(job.train)),
        "converged": None if converged is None else int(converged), "state": state,
    })
    return TrainingResult(name, fingerprint, len(job.train), reuse, wall, rss, params, surface, frames,
                          fold.name, tuple(fold.judged), converged, state)


def _fmt_gamma(surface: dict[str, Any]) -> str:
    mse = surface.get("gamma_mean_signed_error")
    return "-" if mse is None or not math.isfinite(mse) else f"{mse:+.3f} J/m^2 (mean signed)"


# ---------------------------------------------------------------------------- a curve


@dataclass
class CurveResult:
    curve: str
    split: TrainingSplit  # the first fold's split (the only one outside facet-cv)
    models: list[TrainingResult]
    zero_shot: TrainingResult | None = None
    protocol: str = NO_SURFACES
    folds: list[Fold] = field(default_factory=list)
    dataset: str = ""


def _sizes(sizes: Sequence[int | str] | None, split: TrainingSplit) -> list[tuple[str, int]]:
    """Training-set sizes as (label, frames): numbers of frames, ``"all"`` (the pool) or
    percentages of the pool (``"25%"``, rounded, at least 1); smallest first, one per size."""
    if not sizes:
        return [("all", len(split.pool))]
    out: dict[int, str] = {}
    for s in sizes:
        text = str(s).strip().lower()
        if text == "all":
            out[len(split.pool)] = "all"
        elif text.endswith("%"):
            try:
                pct = float(text[:-1])
            except ValueError:
                raise TrainingError(f"--sizes: {s!r} is not a percentage") from None
            if not 0 < pct <= 100:
                raise TrainingError(f"--sizes: {s!r} must be a percentage in (0, 100]")
            out.setdefault(max(1, int(round(pct / 100.0 * len(split.pool)))), f"{pct:g}%")
        else:
            try:
                out.setdefault(int(text), text)
            except ValueError:
                raise TrainingError(f"--sizes: {s!r} is neither a number of frames, a percentage nor 'all'") from None
    return [(label, n) for n, label in sorted(out.items())]


def train_curve(
    method: str,
    source: str = SCRATCH,
    *,
    elements: Sequence[str],
    store_dir: str | os.PathLike = ".",
    data: str = MLEARN,
    dataset: str | Dataset | None = None,
    preset: str = "cpu-quick",
    sizes: Sequence[int | str] | None = None,
    seed: int = 0,
    include_surfaces: bool = False,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    data_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    download: bool = True,
    echo: Echo = print,
    protocol: str = NO_SURFACES,
    max_minutes: float | None = None,
    resume: bool = False,
) -> CurveResult:
    """``surfbench train``: train ``method`` from scratch (``source="scratch"``) or fine-tuned
    from ``source`` (a registry name or a model file/folder) on nested subsets of the
    leakage-safe training frames of ``elements`` (one model per size in ``sizes``; all pool
    frames when None) under ``protocol`` (:mod:`surfbench.training.protocols`: one fold, or one
    per element and facet for facet-cv), each judged on its slabs of ``dataset`` (default
    ``mlearn-surfaces`` for the mlearn data) and recorded in the store of ``store_dir``.
    ``max_minutes``: the budget of the whole command's iterative fits (MTP, SevenNet): a fit still
    running then stops cleanly at its last checkpoint, is marked not converged (budget-stopped), and
    a rerun continues it. ``resume``: each fit must continue from its checkpoint (an error when
    there is none, or it is another training's); without it a checkpoint of the same training is
    continued all the same."""
    from surfbench.data.mlearn import ELEMENTS as MLEARN_ELEMENTS
    from surfbench.data.registry import load_dataset
    from surfbench.models.registry import use_project
    from surfbench.training.presets import resolve
    from surfbench.training.protocols import ProtocolError, check_protocol, make_folds
    from surfbench.training.splits import load_frames

    try:
        check_protocol(protocol)
    except ProtocolError as exc:
        raise TrainingError(str(exc)) from None
    if max_minutes is not None and not max_minutes > 0:
        raise TrainingError(f"--max-minutes must be positive, got {max_minutes}")
    deadline = None if max_minutes is None else time.time() + 60.0 * max_minutes
    mode = SCRATCH if source == SCRATCH else FINETUNE
    foundation = None if mode == SCRATCH else source
    elements = tuple(elements)
    if not elements:
        raise TrainingError("give at least one element (--elements Cu)")
    trainer = get_trainer(method)
    if max_minutes is not None and not trainer.checkpoints:
        echo(f"--max-minutes: {method} fits without checkpoints, in one step: the budget does not apply to it")
    if resume and not trainer.checkpoints:
        raise TrainingError(f"--resume: {method} fits in one step, without checkpoints; methods that resume: "
                            + ", ".join(m for m in TRAINERS if get_trainer(m).checkpoints))
    if mode not in trainer.modes:
        if mode == SCRATCH and trainer.modes == (FINETUNE,):
            raise TrainingError(f"{method} needs a model to start from: --from NAME")
        raise TrainingError(f"{method}: mode {mode!r} is not offered; offered: {', '.join(trainer.modes)}")
    if dataset is None:
        if data != MLEARN:
            raise TrainingError("with your own training frames, give the surface data set to evaluate on (--dataset FILE)")
        dataset = "mlearn-surfaces"
    settings = resolve(method, preset, mode, overrides)
    store_dir = Path(store_dir)
    use_project(store_dir)
    if isinstance(dataset, Dataset):
        ds = dataset.select(elements=set(elements))
    elif dataset == "mlearn-surfaces":  # only the elements trained on (the Miller index inference is not free)
        from surfbench.data.mlearn import load_mlearn_surfaces

        ds = load_mlearn_surfaces(data_dir, elements=[e for e in elements if e in MLEARN_ELEMENTS], download=download)
    else:
        ds = load_dataset(dataset, data_dir, download=download).select(elements=set(elements))
    if not ds.surfaces:
        raise TrainingError(f"data set {dataset!r} has no slab of {', '.join(elements)} to evaluate on")
    frames = load_frames(data, elements, data_dir, download=download)
    try:
        folds = make_folds(protocol, frames, ds, elements, seed=seed, include_surfaces=include_surfaces,
                           valid_fraction=float(settings.get("valid_fraction", 0.1)), max_valid=settings.get("max_valid"),
                           n_valid=settings.get("n_valid"), echo=echo)
    except ProtocolError as exc:
        raise TrainingError(str(exc)) from None
    split = folds[0].split
    if protocol != FACET_CV:
        s = split.summary()
        echo(f"{protocol}, {', '.join(elements)}: {s['n_pool'] + s['n_valid']} training-split frames usable "
             f"({s['n_valid']} for validation), {s['n_test']} test frames; "
             + (f"{s['n_leaked']} frames of evaluated slabs LEFT IN the training pool (--include-surfaces)"
                if include_surfaces else f"{s['n_held_out']} frames held out ({s['held_out_reasons']}); "
                f"judged on {len(folds[0].judged)} slabs"))
    curve = curve_id(method, mode, foundation, preset, elements, seed, include_surfaces, overrides, protocol)
    result = CurveResult(curve, split, [], protocol=protocol, folds=folds, dataset=ds.name)
    with ResultStore(store_dir) as store:
        if foundation is not None and not Path(foundation).exists():
            test = [] if protocol == FACET_CV else test_frames(split, settings)  # facet-cv folds have no test frames either
            echo(f"zero-shot {foundation} on the same slabs" + (" and test frames" if test else ""))
            fp, surface, fm = evaluate_model(store, foundation, ds, test, frameset_of(data), device=device,
                                             threads=threads, echo=echo)
            result.zero_shot = TrainingResult(foundation, fp, 0, True, None, None, None, surface, fm)
        for fold in folds:
            for label, n in _sizes(sizes, fold.split):
                result.models.append(train_one(
                    store, fold, method, mode, settings, n, curve, size=label, foundation=foundation, data=data, dataset=ds,
                    device=device, seed=seed, threads=threads, zero_shot=result.zero_shot, echo=echo,
                    deadline=deadline, resume=resume))
    return result
