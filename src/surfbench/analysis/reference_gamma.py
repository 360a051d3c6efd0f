"""Model surface energies on reference-value data sets (e.g. mSE21) against the PBE and the
experimental values, with bootstrap intervals, per crystal structure, and the PBE-vs-experiment
gap: the floor a model trained on PBE data can reach against experiment.

Input: :meth:`surfbench.store.results.ResultStore.reference_results` (the model-built
protocol stores each facet's gamma as ``extra.gamma_j_per_m2``). Errors are model - reference
(J/m^2); a failed facet has no gamma (NaN), is counted in ``failed`` and left out of the
statistics, never taken as 0.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from surfbench.analysis.uncertainty import bootstrap_stats

#: reference name -> column of the reference gamma (J/m^2)
REFERENCES = {"PBE": "gamma_pbe_j_per_m2", "experiment": "gamma_exp_j_per_m2"}
RUN_KEYS = ["dataset", "fingerprint", "model", "protocol"]
STATS = ["mae", "mae_lo", "mae_hi", "rmse", "rmse_lo", "rmse_hi", "mean_signed_error", "mean_signed_error_lo",
         "mean_signed_error_hi"]


def reference_predictions(results: pd.DataFrame) -> pd.DataFrame:
    """One row per result with ``gamma_pred_j_per_m2`` (NaN unless ok), the errors against
    PBE and experiment (``error_pbe_j_per_m2``, ``error_exp_j_per_m2``) and the model's
    lattice constant ``lattice_a`` (Angstrom)."""
    out = results.copy()
    extras = [json.loads(e) if isinstance(e, str) and e else {} for e in out.get("extra", [None] * len(out))]
    ok = (out["status"] == "ok").to_numpy()
    gamma = np.array([float(x.get("gamma_j_per_m2", np.nan)) for x in extras], dtype=float)
    out["gamma_pred_j_per_m2"] = np.where(ok, gamma, np.nan)
    out["lattice_a"] = [float(x["lattice_a"]) if "lattice_a" in x else np.nan for x in extras]
    out["error_pbe_j_per_m2"] = out["gamma_pred_j_per_m2"] - out["gamma_pbe_j_per_m2"]
    out["error_exp_j_per_m2"] = out["gamma_pred_j_per_m2"] - out["gamma_exp_j_per_m2"]
    return out.reset_index(drop=True)


def _subsets(df: pd.DataFrame):
    yield "all", df
    for crystal, grp in df.groupby("crystal", sort=True):
        yield str(crystal), grp


def reference_metrics(preds: pd.DataFrame, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Per run, crystal subset (``all``, ``bcc``, ``fcc``, ...) and reference (PBE,
    experiment): ``n_total``, ``n_ok``, ``failed``, MAE/RMSE/MSE (J/m^2) with percentile
    bootstrap intervals, ``floor_rmse`` (RMSE of PBE against experiment on the same facets
    the model has a gamma for) and ``wall_s`` (sum over the facets)."""
    rows = []
    for key, run in preds.groupby(RUN_KEYS, sort=False, dropna=False):
        for subset, df in _subsets(run):
            ok = df["gamma_pred_j_per_m2"].notna()
            gap = (df.loc[ok, "gamma_pbe_j_per_m2"] - df.loc[ok, "gamma_exp_j_per_m2"]).to_numpy(dtype=float)
            for ref, column in REFERENCES.items():
                err = (df["gamma_pred_j_per_m2"] - df[column]).to_numpy(dtype=float)
                stats = bootstrap_stats(err, n_boot=n_boot, seed=seed, ci=ci)
                floor = float(np.sqrt(np.nanmean(gap**2))) if ref == "experiment" and np.isfinite(gap).any() else np.nan
                rows.append({**dict(zip(RUN_KEYS, key)), "crystal": subset, "reference": ref,
                             "n_total": len(df), "n_ok": stats["n"], "failed": int((~ok).sum()),
                             **{s: stats[s] for s in STATS}, "floor_rmse": floor,
                             "wall_s": float(df["wall_s"].sum())})
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "crystal", "reference", "n_total", "n_ok", "failed", *STATS,
                                       "floor_rmse", "wall_s"])


def pbe_experiment_gap(records: pd.DataFrame, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """The floor: PBE minus experiment (J/m^2) over the facets of ``records`` (one row per
    facet with ``crystal`` and both reference columns), overall and per crystal subset."""
    facets = records.drop_duplicates(["dataset", "record_id"]) if "dataset" in records else records
    rows = []
    for subset, df in _subsets(facets):
        stats = bootstrap_stats((df["gamma_pbe_j_per_m2"] - df["gamma_exp_j_per_m2"]).to_numpy(dtype=float),
                                n_boot=n_boot, seed=seed, ci=ci)
        rows.append({"crystal": subset, "n": stats["n"], **{s: stats[s] for s in STATS}})
    return pd.DataFrame(rows, columns=["crystal", "n", *STATS])


def failures(preds: pd.DataFrame) -> pd.DataFrame:
    """The failed facets: run, record id, element, failure kind and message."""
    bad = preds[preds["status"] != "ok"]
    return bad[[*RUN_KEYS, "record_id", "element", "failure_kind", "message"]].reset_index(drop=True)
