"""Moment tensor potentials from scratch with motep (``motep train``), the paper's MTP [Ong21].

motep fits an untrained MTP definition (``levelNN-initial.mtp``: level, Chebyshev radial
basis of size 8) to the training frames. The file is looked for, by its path
``mtp/levelNN-initial.mtp`` inside a model folder, in ``settings["initial_mtp"]`` (a file),
then ``$SURFBENCH_MODEL_DIR`` (on this project's machines ``../shared/models``), then the
model cache; it is copied into the run folder with ``min_dist`` / ``max_dist`` set from the
preset (``min_dist_a``, ``cutoff_a``, Angstrom) and ``species_count`` set to the number of
elements. Settings:

* ``level``: the MTP level (the paper's MTPs: 16 to 24, cut-offs 4.0 to 5.7 Angstrom);
* ``maxiter``: iterations of the L-BFGS-B fit (motep has no epochs, no validation-based early
  stopping: ``epochs`` and ``patience`` do not apply);
* loss weights, motep's (and MLIP-2's) convention: ``energy_weight`` x squared error of the
  energy per atom ((eV/atom)^2) + ``force_weight`` x squared error of the force components
  ((eV/A)^2) + ``stress_weight`` x squared error of stress x volume (eV^2), each averaged per
  configuration. Stress is written (eV/Angstrom^3, ASE convention, which motep reads through
  ASE) only when every training frame has one; otherwise ``stress_weight`` is set to 0.

The result ``final.mtp`` lies beside the ``motep.toml`` it was trained with, whose
``[common] species`` names the elements; the registry entry also gives them
(``kwargs: {species: [...]}``) to the ``mtp-local`` backend
(:class:`surfbench.models.loaders.mtp.MtpBackend`). Training runs on the CPU whatever the
device.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from ase.data import atomic_numbers

from surfbench.training.base import SCRATCH, TrainedModel, Trainer, TrainingError, TrainJob
from surfbench.training.io import has_stress, write_extxyz
from surfbench.training.resources import run_command, thread_env

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


def setting_toml(species: list[int], seed: int, s: dict, use_stress: bool) -> str:
    return (
        "[common]\n"
        f"species = {species}\n"
        f"seed = {int(seed)}\n"
        '[configurations]\ntraining = ["training.xyz"]\n'
        '[potentials]\ninitial = "initial.mtp"\nfinal = "final.mtp"\n'
        "[loss]\n"
        f"energy_weight = {float(s['energy_weight'])}\n"
        f"forces_weight = {float(s['force_weight'])}\n"
        f"stress_weight = {float(s['stress_weight']) if use_stress else 0.0}\n"
        '[[steps]]\nmethod = "L-BFGS-B"\n'
        f"kwargs = {{options = {{maxiter = {int(s['maxiter'])}}}}}\n"
    )


class MtpTrainer(Trainer):
    method = "mtp"
    modes = (SCRATCH,)

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
        (work / "motep.toml").write_text(setting_toml(species, job.seed, s, use_stress), encoding="utf-8")
        result = run_command([*_motep_command(), "train", "motep.toml"], work / "train.log", cwd=work,
                             env=thread_env(s.get("threads")), timeout_s=s.get("timeout_s"), what=f"mtp ({job.name})")
        final = work / "final.mtp"
        if not final.is_file():
            raise TrainingError(f"mtp ({job.name}): motep train finished but wrote no final.mtp; log {result.log_path}")
        entry = {
            "name": job.name,
            "family": "MTP (moment tensor potential)",
            "backend": "surfbench.models.loaders.mtp:MtpBackend",
            "kwargs": {"species": list(job.elements)},
            "package": "motep",
            "version": ">=0.2,<0.3",
            "weights": {"source": "local", "path": str(final)},
            "licence": "MIT (motep code; potential trained here)",
            "citation": "Shapeev, Multiscale Model. Simul. 14, 1153 (2016) (MTP); Novikov et al., "
                        "Mach. Learn.: Sci. Technol. 2, 025002 (2021) (MLIP-2)",
        }
        return TrainedModel(
            weights_path=final, registry_entry=entry,
            n_parameters=count_parameters(final.read_text(encoding="utf-8")),
            wall_s=result.wall_s, peak_rss_mb=result.peak_rss_mb, log_path=result.log_path, cpu_s=result.cpu_s,
        )
