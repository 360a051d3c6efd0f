"""Verdicts of a slab's NVT run: stable, or one failure kind, with the numbers behind it.

Failure kinds, in the order they are decided (the first that applies is the verdict; every
flag is kept in the numbers):

``calculator_error``
    the calculator raised (positions still finite).
``exploded``
    a non-finite energy, force or position; or, at a sample, a force above
    ``max_force_ev_per_a``, a potential energy more than ``max_energy_change_ev_per_atom``
    away from the initial one, or an instantaneous temperature above
    ``max_temperature_factor`` x the target.
``too_close``
    two atoms closer than ``min_distance_factor`` x d_nn, with d_nn the initial
    nearest-neighbour distance (the median over atoms of each atom's nearest-neighbour
    distance in the starting slab). Checked before the force bound: atoms pushed onto each
    other also see huge forces, and the collapse is the cause.
``desorbed``
    an atom left the slab: its height along the surface normal is more than
    ``desorption_height_a`` above the initial top atom or below the initial bottom atom (the
    slab's centre-of-mass motion along the normal removed), at any sample.
``melted``
    the inner layers lost their crystal order: the Lindemann-like ratio
    delta = sqrt(< |u_i(t) - <u_i>|^2 >) / d_nn of the atoms in the central
    ``inner_fraction`` of the slab's thickness, over the second half of the samples (u_i the
    displacement with the slab's centre of mass removed, <u_i> its time average), exceeds
    ``lindemann_max``. In a crystal atoms vibrate about fixed sites and delta stays below
    ~0.1-0.15 up to the melting point (Lindemann's criterion); in a liquid atoms diffuse, so
    the spread about their mean position grows with the window. The outer layers are left
    out because surfaces premelt and roughen below the bulk melting point. Runs shorter
    than about 1 ps give the liquid little time to diffuse: a slab melting slowly is only
    caught by longer runs (the ``paper`` preset).

``exploded`` and ``too_close`` stop a run at the sample where they are found; the other
kinds are decided at the end.

Numbers (units in the names): energy drift (slope of a least-squares line through the total
energy per atom over the second half of the samples, eV/atom/ps; for thermostats with a
conserved quantity also its drift), temperature mean and standard deviation over the second
half (K), largest displacement of an atom from its start (Angstrom), smallest interatomic
distance seen (Angstrom), delta, mean-square displacement of the inner atoms at the end
(Angstrom^2), largest force (eV/Angstrom), number of desorbed atoms.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

STABLE = "stable"
CALCULATOR_ERROR = "calculator_error"
EXPLODED = "exploded"
TOO_CLOSE = "too_close"
DESORBED = "desorbed"
MELTED = "melted"
FAILURE_KINDS = (CALCULATOR_ERROR, EXPLODED, TOO_CLOSE, DESORBED, MELTED)


@dataclass(frozen=True)
class Thresholds:
    """Bounds of the verdicts (see the module docstring); every one can be changed and is part
    of the store key of a run. Defaults: force 50 eV/Angstrom, potential-energy change
    2 eV/atom and instantaneous temperature 5 x the target (exploded; far beyond the thermal
    values at 0.8 T_melt, also for 6-atom slabs whose temperature fluctuates by ~40 %);
    0.5 x d_nn (too_close); 4 Angstrom beyond the outermost layer (desorbed; an adatom sits one
    layer spacing, 1.3-2.5 Angstrom, above it); Lindemann ratio 0.2 of the central half of the
    slab (melted; a solid stays below ~0.15 up to its melting point)."""

    max_force_ev_per_a: float = 50.0
    max_energy_change_ev_per_atom: float = 2.0
    max_temperature_factor: float = 5.0
    min_distance_factor: float = 0.5
    desorption_height_a: float = 4.0
    lindemann_max: float = 0.2
    inner_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"threshold {name} must be a positive number, got {value!r}")
        if self.inner_fraction > 1:
            raise ValueError(f"threshold inner_fraction must be at most 1, got {self.inner_fraction}")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# --------------------------------------------------------------------------- slab geometry
@dataclass(frozen=True)
class SlabFrame:
    """What the checks need about the starting slab: the unit surface normal, the initial
    heights (Angstrom) along it, the inner atoms and the nearest-neighbour distance d_nn
    (Angstrom)."""

    normal: np.ndarray
    heights0: np.ndarray
    inner: np.ndarray  # bool mask
    nn_distance_a: float
    min_distance0_a: float

    @property
    def top_a(self) -> float:
        return float(self.heights0.max())

    @property
    def bottom_a(self) -> float:
        return float(self.heights0.min())


def surface_normal(atoms: Atoms, axis: int) -> np.ndarray:
    """Unit normal of the plane of the two lattice vectors other than ``axis``, pointing
    along that lattice vector."""
    cell = np.asarray(atoms.cell.array, dtype=float)
    j, k = (i for i in range(3) if i != axis)
    n = np.cross(cell[j], cell[k])
    n /= np.linalg.norm(n)
    return n if n @ cell[axis] > 0 else -n


def nearest_neighbour_distances(atoms: Atoms, cutoff_a: float = 6.0) -> np.ndarray:
    """Distance (Angstrom) of each atom to its nearest neighbour (periodic images counted);
    inf for an atom with no neighbour within ``cutoff_a``."""
    i, d = neighbor_list("id", atoms, cutoff_a)
    nearest = np.full(len(atoms), np.inf)
    np.minimum.at(nearest, i, d)
    return nearest


def min_distance_a(atoms: Atoms, cutoff_a: float) -> float:
    """Smallest interatomic distance (Angstrom), periodic images counted; inf when no pair
    is closer than ``cutoff_a``."""
    d = neighbor_list("d", atoms, cutoff_a)
    return float(d.min()) if d.size else math.inf


def slab_frame(atoms: Atoms, axis: int, thresholds: Thresholds) -> SlabFrame:
    """The :class:`SlabFrame` of a slab whose atoms are contiguous along ``axis`` (the
    vacuum axis); atoms in the central ``inner_fraction`` of its thickness are inner (all of
    them when that band holds none)."""
    normal = surface_normal(atoms, axis)
    heights = np.asarray(atoms.positions, dtype=float) @ normal
    nearest = nearest_neighbour_distances(atoms)
    finite = nearest[np.isfinite(nearest)]
    if finite.size == 0:
        raise ValueError("no two atoms are within 6 Angstrom of each other: not a slab")
    lo, hi = float(heights.min()), float(heights.max())
    mid, half = 0.5 * (lo + hi), 0.5 * thresholds.inner_fraction * (hi - lo)
    inner = np.abs(heights - mid) <= half + 1e-9
    if not inner.any():
        inner = np.ones(len(atoms), dtype=bool)
    return SlabFrame(normal, heights, inner, float(np.median(finite)), float(finite.min()))


# --------------------------------------------------------------------------- checks
@dataclass
class StepCheck:
    """A failure found at one sample (stops the run)."""

    kind: str
    message: str


def check_sample(
    step: int, energy_ev: float, forces: np.ndarray, positions: np.ndarray, temperature_k: float,
    min_dist_a: float, energy0_ev: float, n_atoms: int, target_k: float, frame: SlabFrame,
    thresholds: Thresholds,
) -> StepCheck | None:
    """The run-stopping checks at one sample, in the documented order."""
    if not (math.isfinite(energy_ev) and np.isfinite(forces).all() and np.isfinite(positions).all()):
        what = [name for name, ok in (("energy", math.isfinite(energy_ev)), ("forces", np.isfinite(forces).all()),
                                      ("positions", np.isfinite(positions).all())) if not ok]
        return StepCheck(EXPLODED, f"non-finite {', '.join(what)} at step {step}")
    limit = thresholds.min_distance_factor * frame.nn_distance_a
    if min_dist_a < limit:
        return StepCheck(TOO_CLOSE, f"atoms {min_dist_a:.3f} Angstrom apart at step {step} "
                                    f"(< {thresholds.min_distance_factor} x d_nn = {limit:.3f} Angstrom)")
    fmax = float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0
    if fmax > thresholds.max_force_ev_per_a:
        return StepCheck(EXPLODED, f"force {fmax:.1f} eV/Angstrom at step {step} "
                                   f"(> {thresholds.max_force_ev_per_a} eV/Angstrom)")
    de = abs(energy_ev - energy0_ev) / n_atoms
    if de > thresholds.max_energy_change_ev_per_atom:
        return StepCheck(EXPLODED, f"potential energy changed by {de:.2f} eV/atom at step {step} "
                                   f"(> {thresholds.max_energy_change_ev_per_atom} eV/atom)")
    if temperature_k > thresholds.max_temperature_factor * target_k:
        return StepCheck(EXPLODED, f"temperature {temperature_k:.0f} K at step {step} "
                                   f"(> {thresholds.max_temperature_factor} x {target_k:.0f} K)")
    return None


# --------------------------------------------------------------------------- final verdict
@dataclass
class Samples:
    """What a run recorded at each sample: step, time (fs), potential and kinetic energy
    (eV), temperature (K), largest force (eV/Angstrom), smallest distance (Angstrom),
    positions (Angstrom, unwrapped, shape (samples, atoms, 3)), and the conserved energy of
    the thermostat (eV; NaN for Langevin)."""

    step: list[int] = field(default_factory=list)
    time_fs: list[float] = field(default_factory=list)
    epot_ev: list[float] = field(default_factory=list)
    ekin_ev: list[float] = field(default_factory=list)
    temperature_k: list[float] = field(default_factory=list)
    fmax_ev_per_a: list[float] = field(default_factory=list)
    min_distance_a: list[float] = field(default_factory=list)
    conserved_ev: list[float] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.step)


@dataclass
class Verdict:
    """``verdict`` is ``stable`` or the failure kind; ``numbers`` carry units in their names
    (NaN where a number cannot be computed, e.g. a drift from fewer than two samples)."""

    verdict: str
    message: str
    numbers: dict[str, float]

    @property
    def failure_kind(self) -> str | None:
        return None if self.verdict == STABLE else self.verdict


def _slope_per_ps(time_fs: np.ndarray, values: np.ndarray) -> float:
    ok = np.isfinite(values)
    if ok.sum() < 2 or np.ptp(time_fs[ok]) == 0:
        return math.nan
    return float(np.polyfit(time_fs[ok] / 1000.0, values[ok], 1)[0])


def _finite_or_nan(values: np.ndarray, fn) -> float:
    v = values[np.isfinite(values)]
    return float(fn(v)) if v.size else math.nan


def measure(samples: Samples, frame: SlabFrame, n_atoms: int, thresholds: Thresholds) -> dict[str, float]:
    """The numbers of a run (see the module docstring)."""
    nan = math.nan
    out = {k: nan for k in (
        "energy_drift_ev_per_atom_per_ps", "conserved_drift_ev_per_atom_per_ps", "temperature_mean_k",
        "temperature_std_k", "max_displacement_a", "min_distance_a", "lindemann_inner", "msd_inner_a2",
        "max_force_ev_per_a")}
    out["nn_distance_a"] = frame.nn_distance_a
    out["n_desorbed"] = 0
    out["first_desorption_step"] = nan
    if not len(samples):
        return out
    t = np.asarray(samples.time_fs, dtype=float)
    prod = np.arange(len(samples)) >= len(samples) // 2  # second half of the samples
    etot = (np.asarray(samples.epot_ev) + np.asarray(samples.ekin_ev)) / n_atoms
    out["energy_drift_ev_per_atom_per_ps"] = _slope_per_ps(t[prod], etot[prod])
    out["conserved_drift_ev_per_atom_per_ps"] = _slope_per_ps(t[prod], np.asarray(samples.conserved_ev)[prod] / n_atoms)
    temps = np.asarray(samples.temperature_k, dtype=float)[prod]
    out["temperature_mean_k"] = _finite_or_nan(temps, np.mean)
    out["temperature_std_k"] = _finite_or_nan(temps, np.std)
    out["min_distance_a"] = _finite_or_nan(np.asarray(samples.min_distance_a, dtype=float), np.min)
    out["max_force_ev_per_a"] = _finite_or_nan(np.asarray(samples.fmax_ev_per_a, dtype=float), np.max)

    pos = np.asarray(samples.positions, dtype=float)  # (samples, atoms, 3)
    if not np.isfinite(pos).all():
        return out
    disp = pos - pos[0]
    disp_cm = disp - np.median(disp, axis=1, keepdims=True)  # slab's own motion removed
    out["max_displacement_a"] = float(np.linalg.norm(disp_cm, axis=2).max())
    heights = pos @ frame.normal - np.median(disp @ frame.normal, axis=1, keepdims=True)
    above = heights > frame.top_a + thresholds.desorption_height_a
    below = heights < frame.bottom_a - thresholds.desorption_height_a
    away = above | below
    out["n_desorbed"] = int(away.any(axis=0).sum())
    if away.any():
        out["first_desorption_step"] = int(samples.step[int(np.argmax(away.any(axis=1)))])
    inner = frame.inner
    u = disp_cm[prod][:, inner]  # (production samples, inner atoms, 3)
    spread = u - u.mean(axis=0, keepdims=True)
    out["lindemann_inner"] = float(np.sqrt((spread ** 2).sum(axis=2).mean()) / frame.nn_distance_a)
    out["msd_inner_a2"] = float((disp_cm[-1][inner] ** 2).sum(axis=1).mean())
    return out


def classify(
    samples: Samples, frame: SlabFrame, n_atoms: int, thresholds: Thresholds, stopped: StepCheck | None = None,
) -> Verdict:
    """The verdict of a run: ``stopped`` (a failure that ended it) wins; then desorbed, then
    melted; else stable."""
    numbers = measure(samples, frame, n_atoms, thresholds)
    if stopped is not None:
        return Verdict(stopped.kind, stopped.message, numbers)
    if numbers["n_desorbed"]:
        return Verdict(DESORBED, f"{numbers['n_desorbed']} atom(s) more than {thresholds.desorption_height_a} "
                                 f"Angstrom beyond the outermost layer (first at step {numbers['first_desorption_step']})",
                       numbers)
    if numbers["lindemann_inner"] > thresholds.lindemann_max:
        return Verdict(MELTED, f"inner-layer Lindemann ratio {numbers['lindemann_inner']:.3f} "
                               f"> {thresholds.lindemann_max}", numbers)
    return Verdict(STABLE, f"stable for {samples.time_fs[-1] / 1000.0:.3g} ps" if len(samples) else "stable", numbers)
