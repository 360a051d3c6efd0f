"""Convergence of the model-built surface energy with slab thickness.

``thickness_convergence`` relaxes the bulk once and then the facet's slab at each number of
layers; ``converged_layers`` is the thinnest slab from which on every thicker slab's gamma
lies within a tolerance of the thickest slab's.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from ase.calculators.calculator import Calculator

from surfbench.evaluation.model_built import ModelBuiltProtocol
from surfbench.records import Miller

COLUMNS = ["element", "miller", "layers", "atomic_layers", "status", "failure_kind", "gamma_j_per_m2",
           "delta_j_per_m2", "wall_s"]


def thickness_convergence(
    protocol: ModelBuiltProtocol, element: str, structure: str | None, miller: Miller,
    calculator: Calculator, layers: Iterable[int] = range(3, 15),
) -> pd.DataFrame:
    """gamma (J/m^2) of one facet against the slab thickness (``layers`` as the protocol's
    setting), one row per thickness; ``delta_j_per_m2`` is gamma minus the gamma of the
    thickest slab that relaxed (NaN for failures, which keep their failure kind)."""
    bulk = protocol.relax_bulk(element, structure, calculator)
    miller_str = "".join(str(i) for i in miller)
    if bulk.outcome.status != "ok":
        return pd.DataFrame([{"element": element, "miller": miller_str, "layers": n, "atomic_layers": None,
                              "status": "failed", "failure_kind": bulk.outcome.failure_kind,
                              "gamma_j_per_m2": float("nan"), "wall_s": 0.0} for n in layers], columns=COLUMNS)
    from surfbench.evaluation.slab_builder import reference_crystal

    structure = structure or reference_crystal(element)
    rows = []
    for n in layers:
        out = protocol.slab_gamma(element, structure, miller, bulk, calculator, layers=n)
        rows.append({"element": element, "miller": miller_str, "layers": n,
                     "atomic_layers": out.extra.get("atomic_layers"), "status": out.status,
                     "failure_kind": out.failure_kind, "gamma_j_per_m2": out.extra.get("gamma_j_per_m2", float("nan")),
                     "wall_s": out.wall_s})
    table = pd.DataFrame(rows, columns=COLUMNS)
    ok = table[table["status"] == "ok"]
    if not ok.empty:
        table["delta_j_per_m2"] = table["gamma_j_per_m2"] - ok.sort_values("layers")["gamma_j_per_m2"].iloc[-1]
    return table


def converged_layers(table: pd.DataFrame, tol_j_per_m2: float = 0.02) -> int | None:
    """The smallest ``layers`` from which on every thickness relaxed and has
    |gamma - gamma(thickest)| <= ``tol_j_per_m2``; None when not even the thickest but one does."""
    t = table.sort_values("layers").reset_index(drop=True)
    within = ((t["status"] == "ok") & (t["delta_j_per_m2"].abs() <= tol_j_per_m2)).to_numpy()
    first = len(t)
    while first > 0 and within[first - 1]:
        first -= 1
    return int(t["layers"].iloc[first]) if len(t) - first >= 2 else None
