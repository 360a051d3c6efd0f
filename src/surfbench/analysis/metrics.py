"""Error metrics (MAE, RMSE, mean signed error) with counts and coverage.

The mean signed error (column ``mean_signed_error``; ``mse`` in earlier releases) is the
mean of model - DFT: negative when the model is too low on average. It is not the mean squared
error, which ML libraries call MSE.

Quantities: bulk energy per atom (eV/atom), slab energy per atom (eV/atom), surface energy
gamma (J/m^2). Errors are prediction - DFT; a failed structure is never an error of 0: it
counts in ``n_failed`` and is left out of the statistics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: quantity -> (which table, error column, unit)
QUANTITIES = {
    "bulk_e_per_atom": ("bulk", "error_e_per_atom_ev", "eV/atom"),
    "slab_e_per_atom": ("slab", "error_e_per_atom_ev", "eV/atom"),
    "gamma": ("slab", "error_gamma_j_per_m2", "J/m^2"),
}


def error_stats(errors: pd.Series | np.ndarray, n_total: int | None = None) -> dict[str, float | int]:
    """MAE, RMSE, mean signed error (``mean_signed_error``: the bias, model - DFT on average;
    not the mean squared error) and max |error| of the finite errors, with counts."""
    e = np.asarray(errors, dtype=float)
    finite = e[np.isfinite(e)]
    n = int(finite.size)
    total = int(e.size if n_total is None else n_total)
    out: dict[str, float | int] = {"n_ok": n, "n_failed": total - n, "n_total": total}
    if n:
        out.update(
            mae=float(np.mean(np.abs(finite))),
            rmse=float(np.sqrt(np.mean(finite**2))),
            mean_signed_error=float(np.mean(finite)),
            max_abs=float(np.max(np.abs(finite))),
        )
    else:
        out.update(mae=np.nan, rmse=np.nan, mean_signed_error=np.nan, max_abs=np.nan)
    return out


def metrics(
    bulks: pd.DataFrame, slabs: pd.DataFrame, by: str | None = None
) -> pd.DataFrame:
    """Long table of metrics: one row per (run, group, quantity).

    ``by`` is None (overall), "element" or "miller" (bulk quantities have no Miller index
    and are skipped then).
    """
    tables = {"bulk": bulks, "slab": slabs}
    run_keys = ["dataset", "fingerprint", "model", "protocol"]
    rows = []
    for quantity, (table, column, unit) in QUANTITIES.items():
        df = tables[table]
        if by is not None and by not in df.columns:
            continue
        if df.empty:
            continue
        group_keys = run_keys + ([by] if by else [])
        for key, grp in df.groupby(group_keys, dropna=False, sort=True):
            stats = error_stats(grp[column])
            row = dict(zip(group_keys, key if isinstance(key, tuple) else (key,)))
            row.update(quantity=quantity, unit=unit, **stats)
            rows.append(row)
    if not rows:  # no results: the columns all the same, so that tables print empty
        return pd.DataFrame(columns=[*run_keys, *([by] if by else []), "quantity", "unit", "n_ok", "n_failed",
                                     "n_total", "mae", "rmse", "mean_signed_error", "max_abs"])
    return pd.DataFrame(rows)


def failure_counts(bulks: pd.DataFrame, slabs: pd.DataFrame) -> pd.DataFrame:
    """Counts of each failure kind per run (bulk, slab energy and gamma)."""
    parts = []
    for what, df, col in (("bulk", bulks, "failure_kind"), ("slab", slabs, "failure_kind"), ("gamma", slabs, "gamma_failure")):
        failed = df[df[col].notna()]
        if failed.empty:
            continue
        c = failed.groupby(["dataset", "model", "protocol", col]).size().reset_index(name="count")
        c = c.rename(columns={col: "failure_kind"})
        c.insert(0, "quantity", what)
        parts.append(c)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["quantity", "dataset", "model", "protocol", "failure_kind", "count"]
    )
