"""Moment tensor potentials from scratch with motep (``motep train``), the paper's MTP [Ong21].

motep fits an untrained MTP definition (``levelNN-initial.mtp``: level, Chebyshev radial
basis of size 8) to the training frames. The file is looked for, by its path
``mtp/levelNN-initial.mtp`` inside a model folder, in ``settings["initial_mtp"]`` (a file),
then ``$SURFBENCH_MODEL_DIR`` (on this project's machines ``../shared/models``), then the
model cache; it is copied into the run folder with ``min_dist`` / ``max_dist`` set from the
preset (``min_dist_a``, ``cutoff_a``, Angstrom) and ``species_count`` set to the number of
elements. Settings:

* ``level``: the MTP level (the paper's MTPs: 16 to 24, cut-offs 4.0 to 5.7 Angstrom);
* ``init``: ``lls`` (every preset): the first chunk starts with motep's linear pre-fits, a
  level-2 MTP by least squares for the radial and species coefficients, then linear least
  squares for the moment coefficients (:data:`INIT_STEPS`), before L-BFGS-B; ``random``: L-BFGS-B
  from motep's random start. Measured (level 10, 60 Mo frames, one core): the pre-fits take 5 s
  and start L-BFGS-B at a loss of 0.0018, where 150 iterations from the random start (1.5e6)
  reach 0.013;
* ``maxiter``: the cap on L-BFGS-B iterations of the whole fit (motep has no epochs, no
  validation-based early stopping: ``epochs`` and ``patience`` do not apply);
* ``chunk_iter``, ``rel_tol``: the fit runs as chunks of at most ``chunk_iter`` iterations, each
  a ``motep train`` that starts from the previous chunk's parameters (the checkpoint); it has
  *converged* when L-BFGS-B stops on its own criterion inside a chunk (scipy's relative
  reduction of the loss, ``ftol``, or the projected gradient, ``gtol``) or when a whole chunk
  lowers the loss by a relative ``rel_tol`` or less. A fit that reaches ``maxiter`` first, or
  the budget of ``surfbench train --max-minutes`` (:attr:`TrainJob.deadline`), keeps its last
  checkpoint as the model and is marked *not converged* (registry note, trainings table, every
  table of trained models); a later run with the same configuration continues it;
* loss weights, motep's (and MLIP-2's) convention: ``energy_weight`` x squared error of the
  energy per atom ((eV/atom)^2) + ``force_weight`` x squared error of the force components
  ((eV/A)^2) + ``stress_weight`` x squared error of stress x volume (eV^2), each averaged per
  configuration. Stress is written (eV/Angstrom^3, ASE convention, which motep reads through
  ASE) only when every training frame has one; otherwise ``stress_weight`` is set to 0.

Checkpoints and resume: after every chunk the parameters go to ``checkpoint.mtp`` and the loss
history to ``fit-state.json`` (both replaced atomically) in the model's folder, so a fit killed at
any point (SIGKILL included) loses at most one chunk: the next ``surfbench train`` with the same
configuration finds the state (keyed by the training frames and settings) and continues from the
checkpoint. Each chunk's motep output is kept as ``chunk-NNN.log``.

The result ``final.mtp`` lies beside the ``motep.toml`` it was trained with, whose
``[common] species`` names the elements; the registry entry also gives them
(``kwargs: {species: [...]}``) to the ``mtp-local`` backend
(:class:`surfbench.models.loaders.mtp.MtpBackend`). Training runs on the CPU whatever the
device.

Cores: motep's engine is serial, but its loss splits the frames over MPI ranks (mpi4py). A fit
runs ``mpiexec -n N motep train`` with N = ``threads`` (``surfbench train --threads``), or every
core this process may use when not given, one BLAS thread per rank; without mpi4py and an
``mpiexec`` (``pip install mpi4py mpich``; the ``universal`` environment has both) it runs on one
core and says so. The rank count changes only the order of the sums (losses equal to ~1e-15), so
it is not part of the fit's identity: a fit may continue with another count. Each chunk's
``ranks`` is in ``fit-state.json``; its ``peak_rss_mb`` is the largest single process's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from ase.data import atomic_numbers

from surfbench.training.base import (
    BUDGET_STOPPED,
    CONVERGED,
    ITERATION_CAP,
    SCRATCH,
    STOPPING_SETTINGS,
    TrainedModel,
    Trainer,
    TrainingError,
    TrainJob,
    registry_facts,
)
from surfbench.training.io import has_stress, write_extxyz
from surfbench.training.resources import run_command, thread_env

#: the registry entry whose family, backend, package, version range and citation a trained MTP shares
GENERIC_ENTRY = "mtp-local"
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def initial_mtp(level: int, explicit: str | os.PathLike | None = None) -> Path:
    """The untrained MTP definition of ``level`` (module docs)."""
    relpath = Path("mtp") / f"level{int(level):02d}-initial.mtp"
    candidates = [Path(explicit).expanduser()] if explicit else []
    env = os.environ.get("SURFBENCH_MODEL_DIR")
    if env:
        candidates.append(Path(env).expanduser() / relpath)
    from surfbench.models.weights import model_cache_dir

    candidates.append(model_cache_dir() / relpath)
    for c in candidates:
        if c.is_file():
            return c
    raise TrainingError(
        f"mtp: no untrained MTP of level {level} ({relpath}); searched {', '.join(map(str, candidates))}. "
        "motep needs one to train from (its wheel ships none): put the levelNN-initial.mtp files of motep's "
        "repository in <folder>/mtp/ and set SURFBENCH_MODEL_DIR=<folder>, or give settings initial_mtp=PATH"
    )


def prepare_initial(text: str, min_dist_a: float, max_dist_a: float, n_species: int) -> str:
    """The untrained definition with the radial range and the number of species set."""
    for key, value in (("min_dist", min_dist_a), ("max_dist", max_dist_a), ("species_count", n_species)):
        pattern = re.compile(rf"^(\s*{key}\s*=\s*).*$", re.MULTILINE)
        if not pattern.search(text):
            raise TrainingError(f"mtp: the untrained MTP has no '{key} =' line")
        text = pattern.sub(lambda m, v=value: f"{m.group(1)}{v}", text, count=1)
    return text


def count_parameters(mtp_text: str) -> int:
    """Fitted coefficients of a trained MTP file: the numbers of its ``radial_coeffs`` blocks
    (species^2 x radial functions x radial basis size), ``species_coeffs`` (one per species)
    and ``moment_coeffs`` (one per scalar moment)."""
    lines = mtp_text.splitlines()
    n = 0
    in_radial = False
    for line in lines:
        stripped = line.strip()
        if stripped == "radial_coeffs":
            in_radial = True
            continue
        if in_radial and not line.startswith(("\t\t", "    ")):
            in_radial = False
        if (in_radial and stripped.startswith("{")) or stripped.startswith(("species_coeffs", "moment_coeffs")):
            n += len(_NUMBER.findall(stripped.split("=", 1)[-1]))
    if n == 0:
        raise TrainingError("mtp: the MTP file holds no fitted coefficients")
    return n


def _motep_command() -> list[str]:
    exe = Path(sys.executable).with_name("motep")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("motep")
    return [found] if found else [sys.executable, "-m", "motep"]


def motep_launcher(ranks: int, echo=None) -> list[str]:
    """What runs ``motep train`` on ``ranks`` cores: ``mpiexec -n ranks`` (motep splits the
    frames over MPI ranks through mpi4py; its engine is otherwise serial), or nothing for one
    rank or when MPI is not usable here (mpi4py not importable, no ``mpiexec`` beside this Python
    or on PATH), which ``echo`` then says."""
    if ranks <= 1:
        return []
    import importlib.util

    exe = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(exe) if exe.is_file() else shutil.which("mpiexec")
    if importlib.util.find_spec("mpi4py") is None or not mpiexec:
        if echo:
            echo(f"  mtp: motep runs on one core, not {ranks}: it needs mpi4py and an MPI "
                 "(pip install mpi4py mpich) to use more")
        return []
    return [mpiexec, "-n", str(int(ranks))]


def fit_ranks(threads: int | None) -> int:
    """MPI ranks of a fit: ``threads`` if given, else every core this process may use."""
    if threads:
        return max(1, int(threads))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: linear pre-fits before the first L-BFGS-B iterations (``init = "lls"``), motep's recommended
#: start: a level-2 MTP fitted by least squares sets the radial and species coefficients
#: (``Level2MTP``), then linear least squares sets the moment and species coefficients (``LLS``)
INIT_STEPS = {"lls": ("Level2MTP", "LLS"), "random": ()}


def setting_toml(species: list[int], seed: int, s: dict, use_stress: bool, *, initial: str = "initial.mtp",
                 final: str = "final.mtp", maxiter: int | None = None, init: bool = True) -> str:
    """motep's setting file; ``init``: with the pre-fits of ``s["init"]`` (the first chunk)."""
    mode = str(s.get("init", "random"))
    if mode not in INIT_STEPS:
        raise TrainingError(f"mtp: init must be one of {', '.join(INIT_STEPS)}, got {mode!r}")
    pre = "".join(f'[[steps]]\nmethod = "{m}"\n' for m in INIT_STEPS[mode]) if init else ""
    return (
        "[common]\n"
        f"species = {species}\n"
        # motep draws a random seed when given 0 (``seed or <entropy>``): surfbench's seed s is
        # motep's s + 1, so that every seed, 0 included, gives the same starting parameters
        f"seed = {int(seed) + 1}\n"
        '[configurations]\ntraining = ["training.xyz"]\n'
        f'[potentials]\ninitial = "{initial}"\nfinal = "{final}"\n'
        "[loss]\n"
        f"energy_weight = {float(s['energy_weight'])}\n"
        f"forces_weight = {float(s['force_weight'])}\n"
        f"stress_weight = {float(s['stress_weight']) if use_stress else 0.0}\n"
        + pre
        + '[[steps]]\nmethod = "L-BFGS-B"\n'
        f"kwargs = {{options = {{maxiter = {int(maxiter if maxiter is not None else s['maxiter'])}}}}}\n"
    )


STATE_FILE = "fit-state.json"
_STOPPING = STOPPING_SETTINGS | {"threads"}
CHECKPOINT = "checkpoint.mtp"
_LOSS = re.compile(r"^loss (\d+): (\S+)\s*$", re.MULTILINE)
_SUCCESS = re.compile(r"^\s*Success: (True|False)\s*$", re.MULTILINE)


def chunk_outcome(log_text: str) -> tuple[list[float], bool | None]:
    """(losses per iteration of the L-BFGS-B step, the first being its start's; whether L-BFGS-B
    stopped on its own criterion: True/False, None when motep printed no result) from one
    chunk's motep output. Each step of motep counts its losses from 0: the last step's are
    L-BFGS-B's (the pre-fits of ``init`` come before it)."""
    found = _LOSS.findall(log_text)
    last = max((i for i, (k, _) in enumerate(found) if k == "0"), default=0)
    losses = [float(v) for _, v in found[last:]]
    ok = _SUCCESS.findall(log_text)
    return losses, (ok[-1] == "True") if ok else None


def loss_before_init(log_text: str) -> float | None:
    """The loss of the untrained start: the first one motep printed."""
    m = _LOSS.search(log_text)
    return float(m.group(2)) if m else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _fit_key(work: Path, s: dict) -> str:
    """What a checkpoint belongs to: the training frames, the untrained start and every setting
    that changes the path of the fit; not those that only say when to stop (``maxiter``,
    ``rel_tol``, ``timeout_s``: raising the cap continues a fit) nor the thread count."""
    h = hashlib.sha256()
    for name in ("training.xyz", "initial.mtp"):
        h.update((work / name).read_bytes())
    h.update(json.dumps({k: v for k, v in sorted(s.items()) if k not in _STOPPING}, default=str).encode())
    return h.hexdigest()


def _load_state(work: Path, key: str) -> dict:
    path = work / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict) or state.get("key") != key or not (work / CHECKPOINT).is_file():
        return {"key": key, "chunks": [], "converged": False, "reason": ""}
    return state


def _check_resumable(work: Path, s: dict, name: str) -> None:
    """``--resume``: the folder must hold a checkpoint of this very fit."""
    try:
        saved = json.loads((work / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    if not isinstance(saved, dict) or not saved.get("chunks") or not (work / CHECKPOINT).is_file():
        raise TrainingError(f"mtp ({name}): --resume, but there is no checkpoint of this fit in {work}")
    if saved.get("key") != _fit_key(work, s):
        raise TrainingError(f"mtp ({name}): --resume, but the checkpoint in {work} belongs to another fit (other "
                            "training frames or settings); run without --resume to start this one over")


def fit_chunks(work: Path, s: dict, species: list[int], seed: int, use_stress: bool, *, name: str,
               deadline: float | None = None, echo=None) -> dict:
    """Run (or continue) the chunked L-BFGS-B fit in ``work`` (module docs); the fit state:
    ``chunks`` (iterations, start and end loss, wall and CPU s, peak RSS MB of each),
    ``converged``, ``reason`` (why it stopped)."""
    from surfbench.models.loaders.mtp import normalise_mtp_text

    maxiter, chunk = int(s["maxiter"]), max(1, int(s.get("chunk_iter") or s["maxiter"]))
    rel_tol = float(s.get("rel_tol") or 0.0)
    state = _load_state(work, _fit_key(work, s))
    last = state["chunks"][-1] if state["chunks"] else None
    if state["converged"] and last is not None and not last.get("scipy_success") and \
            not (rel_tol and last["relative_change"] <= rel_tol):
        state["converged"], state["reason"] = False, ""  # converged by a looser rel_tol than this run's
    if state["chunks"] and echo:
        done = sum(c["iterations"] for c in state["chunks"])
        echo(f"  mtp ({name}): continuing from its checkpoint after {done} iterations "
             f"(loss {state['chunks'][-1]['loss_end']:.6g})")
    ranks = fit_ranks(s.get("threads"))
    launcher = motep_launcher(ranks, echo) if not state["converged"] else []
    ranks = int(launcher[2]) if launcher else 1
    while not state["converged"]:
        done = sum(c["iterations"] for c in state["chunks"])
        if done >= maxiter:
            state["reason"] = f"reached maxiter={maxiter} iterations before converging"
            break
        remaining = None if deadline is None else deadline - time.time()
        if remaining is not None and remaining <= 0:
            state["reason"] = f"stopped at its time budget after {done} iterations"
            break
        n = min(chunk, maxiter - done)
        k = len(state["chunks"])
        start = CHECKPOINT if state["chunks"] else "initial.mtp"
        toml = work / "motep-chunk.toml"
        toml.write_text(setting_toml(species, seed, s, use_stress, initial=start, final="chunk-final.mtp", maxiter=n,
                                     init=not state["chunks"]), encoding="utf-8")
        log = work / f"chunk-{k:03d}.log"
        try:
            limits = [x for x in (remaining, s.get("timeout_s")) if x is not None]
            # one BLAS thread per rank: the ranks already fill the cores
            result = run_command([*launcher, *_motep_command(), "train", toml.name], log, cwd=work, env=thread_env(1),
                                 timeout_s=min(limits) if limits else None,
                                 what=f"mtp ({name}), chunk {k}")
        except TrainingError:
            if deadline is not None and time.time() >= deadline:
                state["reason"] = f"stopped at its time budget after {done} iterations (chunk {k} cut short)"
                break
            raise
        text = log.read_text(encoding="utf-8", errors="replace")
        losses, success = chunk_outcome(text)
        out = work / "chunk-final.mtp"
        if not out.is_file() or len(losses) < 1:
            raise TrainingError(f"mtp ({name}): motep's chunk {k} wrote no parameters or printed no loss; log {log}")
        _write_atomic(work / CHECKPOINT, normalise_mtp_text(out.read_text(encoding="utf-8")))
        out.unlink()
        loss0, loss1, its = losses[0], losses[-1], len(losses) - 1
        change = (loss0 - loss1) / abs(loss0) if loss0 else 0.0
        if not state["chunks"]:
            state["loss_untrained"] = loss_before_init(text)  # before the pre-fits of init, if any
        state["chunks"].append({"iterations": its, "loss_start": loss0, "loss_end": loss1, "relative_change": change,
                                "scipy_success": success, "ranks": ranks, "wall_s": result.wall_s, "cpu_s": result.cpu_s,
                                "peak_rss_mb": result.peak_rss_mb})
        if success:
            state["converged"], state["reason"] = True, "L-BFGS-B stopped on its own convergence criterion"
        elif rel_tol and its > 0 and change <= rel_tol:
            state["converged"] = True
            state["reason"] = f"a chunk of {its} iterations lowered the loss by a relative {change:.2e} <= rel_tol {rel_tol:g}"
        _write_atomic(work / STATE_FILE, json.dumps(state, indent=1))
        if echo:
            echo(f"  mtp ({name}): chunk {k}: {its} iterations, loss {loss0:.6g} -> {loss1:.6g} "
                 f"(relative change {change:.2e}){', converged' if state['converged'] else ''}")
    _write_atomic(work / STATE_FILE, json.dumps(state, indent=1))
    if not state["chunks"]:
        raise TrainingError(f"mtp ({name}): {state['reason'] or 'no chunk ran'}, before its first checkpoint; "
                            "give it a larger budget (--max-minutes); a rerun starts the fit again")
    return state


class MtpTrainer(Trainer):
    method = "mtp"
    modes = (SCRATCH,)
    checkpoints = True

    def train(self, job: TrainJob) -> TrainedModel:
        if job.mode != SCRATCH:
            raise TrainingError("mtp: only training from scratch is possible (there is no universal MTP to fine-tune)")
        s = job.settings
        work = Path(job.workdir)
        work.mkdir(parents=True, exist_ok=True)
        species = [atomic_numbers[el] for el in job.elements]
        use_stress = bool(s.get("stress_weight")) and has_stress(job.train)
        s["use_stress"] = use_stress
        write_extxyz(job.train, work / "training.xyz", "calc", stress=use_stress)
        initial = initial_mtp(int(s["level"]), s.get("initial_mtp"))
        (work / "initial.mtp").write_text(
            prepare_initial(initial.read_text(encoding="utf-8"), float(s["min_dist_a"]), float(s["cutoff_a"]), len(species)),
            encoding="utf-8",
        )
        # the whole fit's setting file, as one motep run would take it (the chunks use motep-chunk.toml)
        (work / "motep.toml").write_text(setting_toml(species, job.seed, s, use_stress), encoding="utf-8")
        if job.resume:
            _check_resumable(work, s, job.name)
        state = fit_chunks(work, s, species, job.seed, use_stress, name=job.name, deadline=job.deadline,
                           echo=job.echo)
        final = work / "final.mtp"
        shutil.copyfile(work / CHECKPOINT, final)
        chunks = state["chunks"]
        iterations = sum(c["iterations"] for c in chunks)
        history, total = [], 0
        for c in chunks:
            total += c["iterations"]
            history.append({"iteration": total, "loss": c["loss_end"], "relative_change": c["relative_change"]})
        entry = {
            "name": job.name,
            **registry_facts(GENERIC_ENTRY, "family", "backend"),
            "kwargs": {"species": list(job.elements)},
            **registry_facts(GENERIC_ENTRY, "package", "version"),
            "weights": {"source": "local", "path": str(final)},
            "licence": "MIT (motep code; potential trained here)",
            **registry_facts(GENERIC_ENTRY, "citation"),
            "note": (f"converged after {iterations} L-BFGS-B iterations: {state['reason']}" if state["converged"]
                     else f"NOT CONVERGED: {state['reason']}; the parameters of its last checkpoint"),
        }
        walls = [c["wall_s"] for c in chunks]
        cpus = [c["cpu_s"] for c in chunks if c.get("cpu_s") is not None]
        rss = [c["peak_rss_mb"] for c in chunks if c.get("peak_rss_mb") is not None]
        return TrainedModel(
            weights_path=final, registry_entry=entry,
            n_parameters=count_parameters(final.read_text(encoding="utf-8")),
            wall_s=float(sum(walls)), peak_rss_mb=max(rss) if rss else None, log_path=work / f"chunk-{len(chunks) - 1:03d}.log",
            cpu_s=float(sum(cpus)) if cpus else None, history=history, converged=bool(state["converged"]),
            state=CONVERGED if state["converged"] else ITERATION_CAP if "maxiter" in state["reason"] else BUDGET_STOPPED,
        )
