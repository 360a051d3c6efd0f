"""Settings of an NVT stability run, the named presets and the temperature of a run.

Temperature: ``T = temperature_factor x T_melt`` (0.8 in the paper) with the element's melting
point (K) from pymatgen's element data, unless ``temperature_k`` is given.

Presets (``PRESETS``):

* ``paper``: the paper's check, 30 ps of NVT at 0.8 T_melt: 15000 steps of 2 fs.
* ``cpu-quick``: a CI-sized check, 0.2 ps: 100 steps of 2 fs (samples every 5 steps, a
  trajectory frame every 10), about 10 minutes for the worst slab of each mlearn element
  (6 slabs, 6-48 atoms) with the slower universal models on one shared CPU core. It catches
  potentials that explode, collapse atoms onto each other or throw atoms off the surface
  within 200 fs; slower failures (an atom desorbing late, melting that takes picoseconds to
  show as diffusion) need longer runs (``--steps``, or ``paper``).

Both use a Langevin thermostat with a friction of 0.01 fs^-1 (a relaxation time of 100 fs).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from dataclasses import asdict, dataclass, replace

THERMOSTATS = ("langevin", "bussi", "nose-hoover")


class MDSettingsError(ValueError):
    """Bad MD settings, or a temperature that cannot be determined."""


@dataclass(frozen=True)
class MDSettings:
    """How one NVT stability run is done.

    thermostat: ``langevin`` (ase.md.langevin.Langevin, friction ``friction_per_fs``),
        ``bussi`` (ase.md.bussi.Bussi, stochastic velocity rescaling with time constant
        ``taut_fs``) or ``nose-hoover`` (ase.md.nose_hoover_chain.NoseHooverChainNVT, damping
        time ``taut_fs``, a chain of ``chain_length`` thermostats).
    timestep_fs: time step (fs); steps: number of steps; the run lasts steps x timestep_fs.
    temperature_factor: T = factor x melting point (K), unless ``temperature_k`` is set.
    seed: seeds the initial Maxwell-Boltzmann velocities and the thermostat's noise.
    sample_every: steps between samples (energies, temperature, positions and the checks of
        :mod:`surfbench.dynamics.verdicts`); traj_every: steps between trajectory frames.
    """

    thermostat: str = "langevin"
    timestep_fs: float = 2.0
    steps: int = 100
    temperature_factor: float = 0.8
    temperature_k: float | None = None
    friction_per_fs: float = 0.01
    taut_fs: float = 100.0
    chain_length: int = 3
    seed: int = 0
    sample_every: int = 5
    traj_every: int = 10

    def __post_init__(self) -> None:
        if self.thermostat not in THERMOSTATS:
            raise MDSettingsError(f"unknown thermostat {self.thermostat!r}; known: {', '.join(THERMOSTATS)}")
        for name in ("timestep_fs", "temperature_factor", "friction_per_fs", "taut_fs"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise MDSettingsError(f"{name} must be a positive number, got {value!r}")
        if self.temperature_k is not None and not (math.isfinite(self.temperature_k) and self.temperature_k > 0):
            raise MDSettingsError(f"temperature_k must be a positive number of kelvin, got {self.temperature_k!r}")
        for name in ("steps", "sample_every", "traj_every", "chain_length"):
            if int(getattr(self, name)) < 1:
                raise MDSettingsError(f"{name} must be at least 1, got {getattr(self, name)!r}")

    @property
    def duration_ps(self) -> float:
        return self.steps * self.timestep_fs / 1000.0

    def thermostat_parameters(self) -> dict[str, float | int]:
        """Only the parameters the chosen thermostat uses (the others do not change a run)."""
        if self.thermostat == "langevin":
            return {"friction_per_fs": self.friction_per_fs}
        if self.thermostat == "bussi":
            return {"taut_fs": self.taut_fs}
        return {"taut_fs": self.taut_fs, "chain_length": self.chain_length}

    def temperature_for(self, element: str) -> float:
        """Target temperature (K) of a run on a slab of ``element``."""
        if self.temperature_k is not None:
            return float(self.temperature_k)
        return self.temperature_factor * melting_point_k(element)

    def key(self, element: str, thresholds: dict) -> dict:
        """Everything that changes a run's trajectory or verdict, with the resolved
        temperature (K): the settings part of the store key."""
        return {
            "thermostat": self.thermostat, **self.thermostat_parameters(),
            "temperature_k": round(self.temperature_for(element), 6),
            "timestep_fs": self.timestep_fs, "steps": int(self.steps), "seed": int(self.seed),
            "sample_every": int(self.sample_every), "thresholds": thresholds,
        }

    def with_overrides(self, **overrides) -> MDSettings:
        """A copy with the given fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self) -> dict:
        return asdict(self)


def protocol_key(settings_key: dict) -> str:
    """The store's protocol string of a run: ``md@`` + 12 hex digits of the sha256 of the
    canonical JSON of :meth:`MDSettings.key`."""
    payload = json.dumps(settings_key, sort_keys=True, separators=(",", ":")).encode()
    return "md@" + hashlib.sha256(payload).hexdigest()[:12]


PRESETS: dict[str, MDSettings] = {
    "paper": MDSettings(timestep_fs=2.0, steps=15000, sample_every=10, traj_every=50),
    "cpu-quick": MDSettings(timestep_fs=2.0, steps=100, sample_every=5, traj_every=10),
}


def get_preset(name: str) -> MDSettings:
    try:
        return PRESETS[name]
    except KeyError:
        raise MDSettingsError(f"unknown MD preset {name!r}; known: {', '.join(PRESETS)}") from None


_NUMBER_UNIT = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")


def melting_point_k(element: str) -> float:
    """Melting point (K) of ``element`` from pymatgen's element data.

    pymatgen returns a ``FloatWithUnit`` in K in recent versions and a string such as
    ``"1357.77 K"`` in older ones; both are accepted. Raises :class:`MDSettingsError` when the
    element is unknown or has no melting point (give the temperature explicitly then).
    """
    from pymatgen.core import Element

    try:
        el = Element(element)
    except ValueError:
        raise MDSettingsError(f"{element!r} is not a chemical element") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns "No data available" and returns None
        value = el.melting_point
    hint = "; give the temperature explicitly (--temperature K)"
    if value is None:
        raise MDSettingsError(f"pymatgen has no melting point for {element}{hint}")
    unit = getattr(value, "unit", None)
    if unit is not None:
        if str(unit).strip() != "K":
            raise MDSettingsError(f"pymatgen's melting point of {element} is in {unit}, expected K{hint}")
        kelvin = float(value)
    elif isinstance(value, int | float):
        kelvin = float(value)
    else:
        match = _NUMBER_UNIT.match(str(value))
        if match is None or match.group(2) not in ("", "K"):
            raise MDSettingsError(f"cannot read pymatgen's melting point of {element}: {value!r}{hint}")
        kelvin = float(match.group(1))
    if not (math.isfinite(kelvin) and kelvin > 0):
        raise MDSettingsError(f"pymatgen's melting point of {element} is {kelvin!r} K{hint}")
    return kelvin
