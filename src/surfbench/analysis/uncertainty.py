"""Bootstrap uncertainty of error metrics and paired comparison of models.

Errors are prediction - DFT. NaN errors are failures: they are counted elsewhere
(:func:`surfbench.analysis.metrics.error_stats`) and left out here, never taken as 0.

Resampling: percentile bootstrap (``numpy.percentile``, linear interpolation). With
``rng = numpy.random.default_rng(seed)``, replica ``b`` uses the indices
``rng.integers(0, n, size=(n_boot, n))[b]`` (drawn with replacement). They are drawn in
consecutive chunks of replicas (``rng.integers(0, n, size=(chunk, n))``) so that memory stays
bounded for large data sets; numpy's int64 ``integers`` stream does not depend on how it is
chunked (checked in the tests). A replica's statistics are computed from how often each record
was drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations

import numpy as np
import pandas as pd

#: largest number of indices drawn at once (replicas x records) before chunking the replicas
MAX_DRAWS_PER_CHUNK = 4_000_000

#: keys that identify one structure across models (the records every model is paired on)
_RECORD_KEYS = ("dataset", "record_id")


def _check_args(n_boot: int, ci: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie strictly between 0 and 1, got {ci}")


def _percentiles(ci: float) -> tuple[float, float]:
    return 100.0 * (1.0 - ci) / 2.0, 100.0 * (1.0 + ci) / 2.0


def _bootstrap_counts(rng: np.random.Generator, n: int, n_boot: int) -> Iterator[np.ndarray]:
    """Yield (chunk, n) arrays: how many times each of the n records was drawn per replica."""
    chunk = max(1, min(n_boot, MAX_DRAWS_PER_CHUNK // max(n, 1)))
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(m, n))
        flat = (idx + (np.arange(m) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=m * n).reshape(m, n).astype(float)
        done += m


def bootstrap_stats(errors, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> dict:
    """Point estimates and percentile-bootstrap intervals of MAE, RMSE and mean signed error.

    Only the finite errors are used (NaN = failure, left out). Returns a dict with keys
    ``n`` (finite errors used), ``mae``, ``mae_lo``, ``mae_hi``, ``rmse``, ``rmse_lo``,
    ``rmse_hi``, ``mean_signed_error``, ``mean_signed_error_lo``, ``mean_signed_error_hi``. The point estimates are the plain statistics
    of the finite errors; with 0 finite errors everything is NaN, with 1 the bounds are NaN.
    """
    _check_args(n_boot, ci)
    e = np.asarray(errors, dtype=float).ravel()
    e = e[np.isfinite(e)]
    n = int(e.size)
    out: dict = {"n": n}
    if n == 0:
        for stat in ("mae", "rmse", "mean_signed_error"):
            out.update({stat: np.nan, f"{stat}_lo": np.nan, f"{stat}_hi": np.nan})
        return out
    point = {
        "mae": float(np.mean(np.abs(e))),
        "rmse": float(np.sqrt(np.mean(e**2))),
        "mean_signed_error": float(np.mean(e)),
    }
    if n == 1:
        for stat, value in point.items():
            out.update({stat: value, f"{stat}_lo": np.nan, f"{stat}_hi": np.nan})
        return out
    rng = np.random.default_rng(seed)
    values = np.column_stack([np.abs(e), e**2, e])  # (n, 3)
    reps = np.vstack([counts @ values for counts in _bootstrap_counts(rng, n, int(n_boot))]) / n
    boot = {"mae": reps[:, 0], "rmse": np.sqrt(reps[:, 1]), "mean_signed_error": reps[:, 2]}
    q_lo, q_hi = _percentiles(ci)
    for stat, value in point.items():
        lo, hi = np.percentile(boot[stat], [q_lo, q_hi])
        out.update({stat: value, f"{stat}_lo": float(lo), f"{stat}_hi": float(hi)})
    return out


def _rank_rows(values: np.ndarray) -> np.ndarray:
    """Rank within each row, 1 = smallest; ties get the lowest rank ("min" method)."""
    from scipy.stats import rankdata

    return rankdata(values, axis=1, method="min").astype(int)


def compare_models(
    slabs: pd.DataFrame,
    error_column: str = "error_gamma_j_per_m2",
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired bootstrap comparison of the models (fingerprints) in ``slabs`` by RMSE.

    Only the records (``dataset``, ``record_id``) that EVERY fingerprint in ``slabs`` has a
    finite error for are used (``n_common`` in both frames): a record that failed, or was
    not evaluated, for one model is left out for all, so every model is scored on the same
    structures; the RMSE here can therefore differ from the per-model RMSE over all of its
    own successes. A model that failed everywhere empties the common set: leave it out of
    ``slabs`` first. ``slabs`` must hold one protocol (a record may appear once per
    fingerprint); otherwise ValueError.

    Every bootstrap replica draws the same records for all models (paired), see the module
    docstring for the random stream.

    Returns ``(models, pairs)``:

    * ``models``: one row per fingerprint, sorted by rank: ``fingerprint``, ``model``,
      ``n_common``, ``rmse``, ``rmse_lo``, ``rmse_hi``, ``rank`` (1 = lowest RMSE on the common
      records), ``p_best`` (share of replicas in which it has the lowest RMSE; a tie for the
      lowest shares the replica equally, so p_best sums to 1), ``rank_lo``, ``rank_hi``
      (percentile interval of its rank over the replicas, whole ranks);
    * ``pairs``: one row per unordered pair, the better-ranked model first: ``fingerprint_a``,
      ``model_a``, ``fingerprint_b``, ``model_b``, ``n_common``, ``delta_rmse`` (= rmse_a -
      rmse_b), ``lo``, ``hi`` (percentile interval of the paired difference) and
      ``distinguishable`` (the interval excludes 0).
    """
    _check_args(n_boot, ci)
    model_cols = ["fingerprint", "model", "n_common", "rmse", "rmse_lo", "rmse_hi",
                  "rank", "p_best", "rank_lo", "rank_hi"]
    pair_cols = ["fingerprint_a", "model_a", "fingerprint_b", "model_b", "n_common",
                 "delta_rmse", "lo", "hi", "distinguishable"]
    if slabs.empty:
        return pd.DataFrame(columns=model_cols), pd.DataFrame(columns=pair_cols)
    keys = [k for k in _RECORD_KEYS if k in slabs.columns]
    if "record_id" not in keys:
        raise ValueError("slabs needs a record_id column to pair the models")
    if slabs.duplicated(keys + ["fingerprint"]).any():
        raise ValueError(
            "a record appears more than once for one fingerprint (several protocols?): "
            "pass the slabs of one protocol")
    names = (slabs.drop_duplicates("fingerprint").set_index("fingerprint")["model"]
             if "model" in slabs.columns else None)
    fingerprints = sorted(slabs["fingerprint"].unique())
    table = slabs.pivot(index=keys, columns="fingerprint", values=error_column)
    table = table.reindex(columns=fingerprints)
    common = table.dropna(how="any")
    common = common[np.isfinite(common.to_numpy(dtype=float)).all(axis=1)]
    err = common.to_numpy(dtype=float)  # (n_common, n_models)
    n, m = err.shape
    q_lo, q_hi = _percentiles(ci)

    rmse = np.sqrt(np.mean(err**2, axis=0)) if n else np.full(m, np.nan)
    rank = _rank_rows(rmse[None, :])[0] if n else np.full(m, np.nan)
    if n >= 2:
        rng = np.random.default_rng(seed)
        sq = err**2
        boot = np.sqrt(np.vstack([c @ sq for c in _bootstrap_counts(rng, n, int(n_boot))]) / n)
        rmse_lo, rmse_hi = np.percentile(boot, [q_lo, q_hi], axis=0)
        ranks = _rank_rows(boot)
        best = boot == boot.min(axis=1, keepdims=True)
        p_best = (best / best.sum(axis=1, keepdims=True)).mean(axis=0)
        rank_lo = np.percentile(ranks, q_lo, axis=0, method="lower")
        rank_hi = np.percentile(ranks, q_hi, axis=0, method="higher")
    else:
        boot = None
        rmse_lo = rmse_hi = rank_lo = rank_hi = p_best = np.full(m, np.nan)

    def name(fp: str) -> str:
        return str(names[fp]) if names is not None else fp

    models = pd.DataFrame({
        "fingerprint": fingerprints,
        "model": [name(fp) for fp in fingerprints],
        "n_common": n,
        "rmse": rmse, "rmse_lo": rmse_lo, "rmse_hi": rmse_hi,
        "rank": rank, "p_best": p_best, "rank_lo": rank_lo, "rank_hi": rank_hi,
    })
    order = np.lexsort((models["model"].to_numpy(), models["rmse"].to_numpy())) if n else np.arange(m)
    models = models.iloc[order].reset_index(drop=True)

    rows = []
    ordered = [fingerprints.index(fp) for fp in models["fingerprint"]]
    for i, j in combinations(ordered, 2):
        delta = rmse[i] - rmse[j] if n else np.nan
        if boot is not None:
            lo, hi = np.percentile(boot[:, i] - boot[:, j], [q_lo, q_hi])
            distinguishable = bool(lo > 0 or hi < 0)
        else:
            lo = hi = np.nan
            distinguishable = False
        rows.append({
            "fingerprint_a": fingerprints[i], "model_a": name(fingerprints[i]),
            "fingerprint_b": fingerprints[j], "model_b": name(fingerprints[j]),
            "n_common": n, "delta_rmse": float(delta), "lo": float(lo), "hi": float(hi),
            "distinguishable": distinguishable,
        })
    pairs = pd.DataFrame(rows, columns=pair_cols)
    return models, pairs
