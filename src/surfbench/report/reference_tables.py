"""Console tables of model-built runs on reference-value data sets (mSE21): the errors against
PBE and experiment per crystal subset, the PBE-vs-experiment floor, and the failures."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from surfbench.analysis.reference_gamma import failures, pbe_experiment_gap, reference_metrics


def _ci(row, stat: str) -> str:
    value, lo, hi = row[stat], row[f"{stat}_lo"], row[f"{stat}_hi"]
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3f}" if math.isnan(lo) else f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def render_reference(console: Console, preds: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
                     ci: float = 0.95) -> pd.DataFrame:
    """Print the tables for the runs in ``preds`` (from
    :func:`~surfbench.analysis.reference_gamma.reference_predictions`); return the metrics."""
    m = reference_metrics(preds, n_boot=n_boot, seed=seed, ci=ci)
    pct = f"{100 * ci:.0f} %"
    t = Table(title=f"gamma (J/m^2), model - reference, bootstrap {pct} intervals", title_justify="left")
    for col in ("model", "protocol", "crystal", "vs", "ok/total", "RMSE", "MAE", "mean signed error",
                "PBE-exp RMSE same facets",
                "wall s"):
        t.add_column(col, justify="left" if col in ("model", "protocol", "crystal", "vs") else "right")
    for _, row in m.iterrows():
        t.add_row(escape(str(row["model"])), escape(str(row["protocol"])), row["crystal"], row["reference"],
                  f"{row['n_ok']}/{row['n_total']}", _ci(row, "rmse"), _ci(row, "mae"), _ci(row, "mean_signed_error"),
                  "-" if math.isnan(row["floor_rmse"]) else f"{row['floor_rmse']:.3f}", f"{row['wall_s']:.1f}")
    console.print(t)
    gap = pbe_experiment_gap(preds, n_boot=n_boot, seed=seed, ci=ci)
    t = Table(title=f"floor: PBE - experiment (J/m^2), all facets of the data set, bootstrap {pct}",
              title_justify="left")
    for col in ("crystal", "n", "RMSE", "MAE", "mean signed error"):
        t.add_column(col, justify="left" if col == "crystal" else "right")
    for _, row in gap.iterrows():
        t.add_row(row["crystal"], str(row["n"]), _ci(row, "rmse"), _ci(row, "mae"), _ci(row, "mean_signed_error"))
    console.print(t)
    bad = failures(preds)
    if not bad.empty:
        kinds = bad.groupby(["model", "failure_kind"]).size()
        console.print("failures: " + "; ".join(f"{escape(str(mo))} {k}: {n}" for (mo, k), n in kinds.items()))
    return m
