"""Unit conversions used across surfbench, derived from ASE's CODATA constants.

Nothing here is retyped: every factor comes from :mod:`ase.units`.
"""

from __future__ import annotations

from ase import units as _u

#: 1 eV/Angstrom^2 expressed in J/m^2 (elementary charge [C] * 1e20 [Angstrom^2/m^2]).
EV_PER_A2_IN_J_PER_M2: float = _u._e * 1e20

#: 1 kBar expressed in eV/Angstrom^3 (1 kBar = 0.1 GPa).
KBAR_IN_EV_PER_A3: float = 0.1 * _u.GPa


def ev_per_a2_to_j_per_m2(value_ev_per_a2: float) -> float:
    """Convert a surface energy from eV/Angstrom^2 to J/m^2."""
    return value_ev_per_a2 * EV_PER_A2_IN_J_PER_M2
