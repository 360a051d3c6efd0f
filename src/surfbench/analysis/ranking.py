"""Models ordered, ranked and compared on one data set: the gamma RMSE order, Table I of
Focassio, Freitas & Schleder 2024 (bootstrap intervals, the paired ranking of the comparable
models on their common slabs, pairs that cannot be told apart) and the correlation of the
models' errors (Fig. S2).

Every function takes the frames of :mod:`surfbench.analysis.predictions` (``bulks``, ``slabs``)
of one data set and one protocol; the ``model`` column names a run, unique per fingerprint.
Errors are model - DFT (eV/atom for energies, J/m^2 for gamma)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def rmse(x: pd.Series | np.ndarray) -> float:
    """Root mean square of the finite values (NaN when there is none)."""
    e = np.asarray(x, dtype=float)
    e = e[np.isfinite(e)]
    return float(np.sqrt(np.mean(e**2))) if e.size else math.nan


def model_order(slabs: pd.DataFrame) -> list[str]:
    """The comparable models (:mod:`surfbench.analysis.comparable`) from the lowest to the highest
    RMSE of gamma on their common slabs, then the models with other coverage (not comparable) by
    their own RMSE; models without any gamma last in each group."""
    if slabs.empty:
        return []
    from surfbench.analysis.comparable import comparability

    comp = comparability(slabs)
    common = slabs[slabs["model"].isin(comp.ranked_models) & slabs["record_id"].isin(comp.common_ids)]
    on_common = common.groupby("model")["error_gamma_j_per_m2"].apply(rmse) if len(common) else pd.Series(dtype=float)
    own = slabs.groupby("model")["error_gamma_j_per_m2"].apply(rmse)

    def key(m: str) -> tuple:
        r = on_common.get(m, math.nan) if m in comp.comparable else own.get(m, math.nan)
        return (m not in comp.comparable, math.isnan(r), 0.0 if math.isnan(r) else r, m)

    return sorted(own.index, key=key)


def error_correlation_matrix(slabs: pd.DataFrame, order: Sequence[str] | None = None,
                             column: str = "error_gamma_j_per_m2") -> tuple[pd.DataFrame, int]:
    """Pearson r between the models' errors over the records every model has (and that count);
    models without any finite error are left out."""
    order = list(order) if order is not None else model_order(slabs)
    wide = slabs.pivot_table(index="record_id", columns="model", values=column, aggfunc="first")
    order = [m for m in order if m in wide.columns and np.isfinite(wide[m].to_numpy(dtype=float)).any()]
    wide = wide.reindex(columns=order).dropna(how="any")
    if len(wide) < 2:
        return pd.DataFrame(np.nan, index=order, columns=order), len(wide)
    return wide.corr(method="pearson"), len(wide)


def comparison_table(
    bulks: pd.DataFrame, slabs: pd.DataFrame, model_info: Mapping[str, Mapping] | None = None,
    n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table I: per model RMSE (with percentile-bootstrap CI) of bulk energy, slab energy and
    gamma over each model's own successes, MAE and mean signed error of gamma, coverage, the
    paired ranking of the comparable models on the slabs they share (rank, its CI, the share of
    replicas in which the model is best, and the RMSE on those common slabs with its CI) and the
    models it cannot be told apart from (paired bootstrap of the RMSE difference of gamma, CI
    containing 0). A model that evaluated other slabs than the others is not comparable
    (:mod:`surfbench.analysis.comparable`): ``comparable`` is False, its metrics are over its own
    slabs and it has no rank and no pairs. ``n_slabs``: slabs in scope (evaluated by any model);
    ``gamma_n_evaluated``: slabs the model evaluated.

    ``model_info``: model -> dict with ``family``, ``training_set``, ``parameters``,
    ``fingerprint`` (optional). Returns ``(table, pairs)``; ``pairs`` has a ``quantity`` column
    (gamma, slab_e_per_atom, bulk_e_per_atom) and the columns of
    :func:`surfbench.analysis.uncertainty.compare_models`.
    """
    from surfbench.analysis.comparable import comparability
    from surfbench.analysis.uncertainty import bootstrap_stats, compare_models

    model_info = model_info or {}
    order = model_order(slabs) if not slabs.empty else sorted(bulks["model"].unique())
    order += [m for m in sorted(bulks["model"].unique()) if m not in order]
    comp = comparability(slabs, order)
    rows = []
    for m in order:
        info = model_info.get(m, {})
        s, b = slabs[slabs["model"] == m], bulks[bulks["model"] == m]
        row = {"model": m, "fingerprint": (s["fingerprint"].iloc[0] if len(s) else b["fingerprint"].iloc[0]),
               "family": info.get("family"), "training_set": info.get("training_set"),
               "parameters": info.get("parameters"), "comparable": comp.is_comparable(m),
               "n_slabs": comp.n_slabs, "gamma_n_evaluated": comp.evaluated.get(m, 0)}
        for q, frame, col in (("gamma", s, "error_gamma_j_per_m2"), ("slab_e_per_atom", s, "error_e_per_atom_ev"),
                              ("bulk_e_per_atom", b, "error_e_per_atom_ev")):
            st = bootstrap_stats(frame[col].to_numpy(dtype=float), n_boot=n_boot, seed=seed, ci=ci)
            row[f"{q}_n_ok"] = st["n"]
            row[f"{q}_n_total"] = len(frame)
            gamma_only = ("mae", "mae_lo", "mae_hi",
                          "mean_signed_error", "mean_signed_error_lo", "mean_signed_error_hi")
            for k in ("rmse", "rmse_lo", "rmse_hi") + (gamma_only if q == "gamma" else ()):
                row[f"{q}_{k}"] = st[k]
        rows.append(row)
    table = pd.DataFrame(rows)
    pair_frames = []
    for q, frame, col in (("gamma", slabs, "error_gamma_j_per_m2"), ("slab_e_per_atom", slabs, "error_e_per_atom_ev"),
                          ("bulk_e_per_atom", bulks, "error_e_per_atom_ev")):
        frame = frame[frame["model"].isin(comp.comparable)] if not frame.empty else frame  # only these are ranked
        usable = frame[frame.groupby("fingerprint")[col].transform(lambda x: np.isfinite(x.astype(float)).any())] \
            if not frame.empty else frame
        if usable["fingerprint"].nunique() < 2 if not usable.empty else True:
            continue
        ranked, pairs = compare_models(usable, error_column=col, n_boot=n_boot, seed=seed, ci=ci)
        pairs.insert(0, "quantity", q)
        pair_frames.append(pairs)
        if q == "gamma" and not table.empty:
            keep = ranked.set_index("model")[["n_common", "rank", "rank_lo", "rank_hi", "p_best", "rmse", "rmse_lo",
                                              "rmse_hi"]]
            keep.columns = [f"gamma_common_{c}" if c in ("n_common", "rmse", "rmse_lo", "rmse_hi") else f"gamma_{c}"
                            for c in keep.columns]
            table = table.join(keep, on="model")
    pairs = pd.concat(pair_frames, ignore_index=True) if pair_frames else pd.DataFrame(
        columns=["quantity", "fingerprint_a", "model_a", "fingerprint_b", "model_b", "n_common", "delta_rmse",
                 "lo", "hi", "distinguishable"])
    g = pairs[(pairs["quantity"] == "gamma") & ~pairs["distinguishable"].astype(bool)]
    same = {m: sorted({*g.loc[g["model_a"] == m, "model_b"], *g.loc[g["model_b"] == m, "model_a"]},
                      key=order.index) for m in order}
    if not table.empty:
        table["gamma_indistinguishable_from"] = table["model"].map(lambda m: ", ".join(same.get(m, [])))
    return table, pairs
