"""One NVT run of a slab with ASE, sampled and checked as it goes.

The slab is evaluated as a fully periodic cell (``pbc=True``; its vacuum separates the images:
matgl treats any other cell as a molecule). Before the run it is made whole along its vacuum
axis and centred in the cell (lattice translations and one rigid shift, which change no
energy). Initial velocities: Maxwell-Boltzmann at the target temperature with the total
momentum removed, from ``numpy.random.default_rng(seed)``, which also drives the
thermostat's noise. ASE's dynamics do not wrap positions, so displacements and heights are
read from unwrapped positions. Times and temperatures use ASE's units (``ase.units.fs``,
``kB``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.md.velocitydistribution import Stationary

try:  # ASE >= 3.29
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # older ASE: the same distribution under its former name
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

from surfbench.dynamics.presets import MDSettings
from surfbench.dynamics.verdicts import (
    CALCULATOR_ERROR,
    EXPLODED,
    Samples,
    SlabFrame,
    StepCheck,
    Thresholds,
    Verdict,
    check_sample,
    classify,
    min_distance_a,
    slab_frame,
)


class MDInputError(ValueError):
    """A structure that cannot be run (not a slab)."""


@dataclass
class MDRun:
    """A finished (or stopped) run: its samples, verdict, where the trajectory went, the
    wall time (s) and the steps done."""

    samples: Samples
    verdict: Verdict
    frame: SlabFrame
    temperature_k: float
    steps_done: int
    wall_s: float
    trajectory: Path | None


def make_slab_whole(atoms: Atoms, axis: int) -> Atoms:
    """A copy with the slab contiguous along lattice vector ``axis`` (the vacuum gap across
    the cell boundary) and centred in the cell along it; ``pbc=True``."""
    work = atoms.copy()
    work.calc = None
    work.pbc = True
    frac = work.get_scaled_positions(wrap=True)
    f = np.sort(frac[:, axis])
    steps = np.append(np.diff(f), f[0] + 1.0 - f[-1])
    gap = int(np.argmax(steps))
    start = f[(gap + 1) % len(f)]  # the first atom above the largest gap
    s = np.mod(frac[:, axis] - start, 1.0)
    s -= 0.5 * (s.max() + s.min()) - 0.5
    frac[:, axis] = s
    work.set_scaled_positions(frac)
    return work


def _dynamics(atoms: Atoms, settings: MDSettings, temperature_k: float, rng: np.random.Generator):
    dt = settings.timestep_fs * units.fs
    if settings.thermostat == "langevin":
        from ase.constraints import FixCom
        from ase.md.langevin import Langevin

        atoms.set_constraint(FixCom())  # the centre of mass stays put (ASE's replacement for fixcm=True)
        return Langevin(atoms, dt, temperature_K=temperature_k, friction=settings.friction_per_fs / units.fs,
                        fixcm=False, rng=rng)
    if settings.thermostat == "bussi":
        from ase.md.bussi import Bussi

        return Bussi(atoms, dt, temperature_K=temperature_k, taut=settings.taut_fs * units.fs, rng=rng)
    try:
        from ase.md.nose_hoover_chain import NoseHooverChainNVT
    except ImportError as exc:  # ASE < 3.24
        raise MDInputError(f"the nose-hoover thermostat needs ASE >= 3.24 ({exc})") from exc
    return NoseHooverChainNVT(atoms, dt, temperature_K=temperature_k, tdamp=settings.taut_fs * units.fs,
                              tchain=settings.chain_length)


def _conserved_ev(dyn, epot: float, ekin: float) -> float:
    """The thermostat's conserved energy (eV): Bussi's total energy minus the energy it
    transferred, Nose-Hoover's extended energy; NaN for Langevin (none)."""
    if hasattr(dyn, "get_conserved_energy"):
        return float(dyn.get_conserved_energy())
    if hasattr(dyn, "transferred_energy"):
        return float(epot + ekin - dyn.transferred_energy)
    return math.nan


def run_md(
    atoms: Atoms,
    calculator,
    settings: MDSettings,
    temperature_k: float,
    thresholds: Thresholds | None = None,
    *,
    vacuum_axis: int | None = None,
    trajectory: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MDRun:
    """Run NVT dynamics of a slab at ``temperature_k`` (K) with ``calculator``; return the
    samples and the verdict. Never raises for a failing potential: a calculator exception,
    non-finite numbers and the bounds of :class:`Thresholds` end the run with a failure
    kind. ``progress(steps_done, steps_total)`` is called at each sample. Raises
    :class:`MDInputError` for a structure that is not a slab."""
    from surfbench.data.geometry import vacuum_axis as find_vacuum_axis

    thresholds = thresholds or Thresholds()
    if not (math.isfinite(temperature_k) and temperature_k > 0):
        raise MDInputError(f"temperature must be a positive number of kelvin, got {temperature_k!r}")
    axis = vacuum_axis
    if axis is None:
        try:
            axis = find_vacuum_axis(atoms)
        except ValueError as exc:
            raise MDInputError(str(exc)) from exc
        if axis is None:
            raise MDInputError("no vacuum gap of at least 5 Angstrom along any lattice vector: not a slab")
    work = make_slab_whole(atoms, axis)
    frame = slab_frame(work, axis, thresholds)
    rng = np.random.default_rng(settings.seed)
    thermalize_momenta(work, temperature_K=temperature_k, rng=rng)
    Stationary(work)
    work.calc = calculator
    n = len(work)
    dist_cutoff = 1.5 * frame.nn_distance_a
    samples = Samples()
    stopped: StepCheck | None = None
    writer = None
    if trajectory is not None:
        from ase.io.trajectory import Trajectory

        trajectory = Path(trajectory)
        trajectory.parent.mkdir(parents=True, exist_ok=True)
        writer = Trajectory(str(trajectory), "w")
    t0 = time.perf_counter()
    step = 0
    energy0 = math.nan
    dyn = None
    try:
        while True:
            try:
                if dyn is None:
                    dyn = _dynamics(work, settings, temperature_k, rng)
                elif step < settings.steps:
                    todo = min(settings.sample_every, settings.steps - step)
                    dyn.run(todo)
                    step += todo
                epot = float(work.get_potential_energy())
                forces = np.asarray(work.get_forces(), dtype=float)
            except Exception as exc:  # any failure of the potential is a verdict, not a crash
                finite = np.isfinite(work.positions).all()
                stopped = StepCheck(CALCULATOR_ERROR if finite else EXPLODED,
                                    f"{type(exc).__name__} after step {step}: {exc}"[:2000])
                break
            ekin = float(work.get_kinetic_energy())
            temp = float(work.get_temperature())
            positions = np.array(work.positions, dtype=float)
            finite = np.isfinite(positions).all()
            dmin = min_distance_a(work, dist_cutoff) if finite else math.nan
            if step == 0:
                energy0 = epot
            samples.step.append(step)
            samples.time_fs.append(step * settings.timestep_fs)
            samples.epot_ev.append(epot)
            samples.ekin_ev.append(ekin)
            samples.temperature_k.append(temp)
            samples.fmax_ev_per_a.append(float(np.linalg.norm(forces, axis=1).max()) if n else 0.0)
            samples.min_distance_a.append(dmin)
            samples.conserved_ev.append(_conserved_ev(dyn, epot, ekin))
            samples.positions.append(positions)
            if writer is not None and (step % settings.traj_every == 0 or step == settings.steps):
                writer.write(work)
            if progress is not None:
                progress(step, settings.steps)
            stopped = check_sample(step, epot, forces, positions, temp, dmin, energy0, n, temperature_k, frame,
                                   thresholds)
            if stopped is not None or step >= settings.steps:
                break
    finally:
        if writer is not None:
            writer.close()
    wall = time.perf_counter() - t0
    verdict = classify(samples, frame, n, thresholds, stopped)
    work.calc = None
    return MDRun(samples, verdict, frame, float(temperature_k), step, wall, trajectory)
