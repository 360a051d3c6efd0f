"""Where a model's surface-energy error comes from: its energy on the DFT geometry (static)
or its own geometry (relaxation).

For each slab and model, with gamma in J/m^2:

    total      = gamma_relaxed - gamma_DFT
    static     = gamma_static  - gamma_DFT        (model energies on the DFT geometries)
    relaxation = gamma_relaxed - gamma_static     (what the model's own minimum adds)

so ``total = static + relaxation`` exactly, slab by slab. Only slabs whose static and relaxed
gammas both exist enter the split; the others are counted with their failure kinds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from surfbench.analysis.metrics import error_stats
from surfbench.analysis.predictions import slab_predictions

_EXTRA_KEYS = ("steps", "converged", "rmsd_a", "max_displacement_a", "lattice_scale")


def _extras(extra) -> dict:
    d = json.loads(extra) if isinstance(extra, str) and extra else {}
    return {k: d.get(k) for k in _EXTRA_KEYS}


def relaxation_split(static_results: pd.DataFrame, relaxed_results: pd.DataFrame) -> pd.DataFrame:
    """One row per (data set, model fingerprint, slab) with gamma DFT/static/relaxed (J/m^2),
    the three errors, and the relaxation's steps, convergence and RMSD (Angstrom)."""
    keys = ["dataset", "fingerprint", "record_id"]
    st = slab_predictions(static_results)
    rx = slab_predictions(relaxed_results)
    rx_extra = pd.DataFrame([_extras(e) for e in rx.get("extra", [None] * len(rx))], index=rx.index,
                            columns=list(_EXTRA_KEYS))
    rx = pd.concat([rx, rx_extra], axis=1)
    left = st[keys + ["model", "element", "miller", "dft_gamma_j_per_m2", "gamma_pred_j_per_m2", "gamma_failure"]].rename(
        columns={"gamma_pred_j_per_m2": "gamma_static_j_per_m2", "gamma_failure": "static_failure"})
    right = rx[keys + ["gamma_pred_j_per_m2", "gamma_failure", "protocol", *_EXTRA_KEYS]].rename(
        columns={"gamma_pred_j_per_m2": "gamma_relaxed_j_per_m2", "gamma_failure": "relaxed_failure",
                 "protocol": "relaxed_protocol"})
    df = left.merge(right, on=keys, how="outer")
    df["error_total_j_per_m2"] = df["gamma_relaxed_j_per_m2"] - df["dft_gamma_j_per_m2"]
    df["error_static_j_per_m2"] = df["gamma_static_j_per_m2"] - df["dft_gamma_j_per_m2"]
    df["error_relaxation_j_per_m2"] = df["gamma_relaxed_j_per_m2"] - df["gamma_static_j_per_m2"]
    return df.reset_index(drop=True)


def split_summary(split: pd.DataFrame) -> pd.DataFrame:
    """Per model: RMSE / MAE / mean signed error (J/m^2; ``{part}_rmse``, ``{part}_mae``,
    ``{part}_mean_signed_error``) of the total, static and relaxation parts on the
    slabs with both gammas, and the coverage (slabs used / slabs seen, failures by kind)."""
    rows = []
    for (fp, model), g in split.groupby(["fingerprint", "model"], dropna=False):
        both = g.dropna(subset=["error_total_j_per_m2", "error_static_j_per_m2"])
        row = {"model": model, "fingerprint": fp, "n": len(both), "n_slabs": len(g)}
        for part in ("total", "static", "relaxation"):
            st = error_stats(both[f"error_{part}_j_per_m2"])
            row.update({f"{part}_{k}": st[k] for k in ("rmse", "mae", "mean_signed_error")})
        fails = g["relaxed_failure"].dropna().value_counts().to_dict()
        row["relaxed_failures"] = ", ".join(f"{k}: {v}" for k, v in sorted(fails.items())) or "none"
        row["median_rmsd_a"] = float(np.nanmedian(both["rmsd_a"].astype(float))) if len(both) else np.nan
        row["median_steps"] = float(np.nanmedian(both["steps"].astype(float))) if len(both) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
