"""Table I for people: the comparison table of :func:`surfbench.analysis.ranking.comparison_table`
as strings (value [CI] per cell) and as a plotly table, and plotly tables of string frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from surfbench.report.markup import ci_text
from surfbench.report.style import ENERGY_UNIT, GAMMA_UNIT, layout


def comparison_display(table: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Table I as strings for people: value [CI] per cell, ok/total coverage; a model with other
    coverage marked "not comparable" with the slabs it evaluated."""
    pct = f"{100 * ci:.0f}%"
    comparable = table["comparable"] if "comparable" in table else pd.Series(True, index=table.index)

    def cells(stat: str, digits: int = 3) -> list[str]:
        return [ci_text(*r, digits=digits) for r in table[[stat, f"{stat}_lo", f"{stat}_hi"]].to_numpy()]

    out = pd.DataFrame({
        "model": [m if ok else f"{m} (not comparable: {int(k)} of {int(n)} slabs)"
                  for m, ok, k, n in zip(table["model"], comparable,
                                         table.get("gamma_n_evaluated", table["gamma_n_total"]),
                                         table.get("n_slabs", table["gamma_n_total"]))],
        "family": table["family"].fillna("–"),
        "training set": table["training_set"].fillna("–"),
        "parameters": table["parameters"].map(lambda p: f"{int(p):,}" if p is not None and np.isfinite(p) else "–"),
        f"γ RMSE ({GAMMA_UNIT}) [{pct} CI]": cells("gamma_rmse"),
        f"γ MAE ({GAMMA_UNIT})": cells("gamma_mae"),
        f"γ mean signed error ({GAMMA_UNIT})": cells("gamma_mean_signed_error"),
        f"slab energy RMSE ({ENERGY_UNIT}) [{pct} CI]": cells("slab_e_per_atom_rmse", 4),
        f"bulk energy RMSE ({ENERGY_UNIT}) [{pct} CI]": cells("bulk_e_per_atom_rmse", 4),
        "γ ok/total": [f"{a}/{b}" for a, b in table[["gamma_n_ok", "gamma_n_total"]].to_numpy()],
    })
    if "gamma_common_rmse" in table:
        n = table["gamma_common_n_common"].dropna()
        head = f"γ RMSE on the {int(n.iloc[0])} common slabs [{pct} CI]" if len(n) else "γ RMSE on the common slabs"
        out[head] = [ci_text(*r) for r in table[["gamma_common_rmse", "gamma_common_rmse_lo",
                                               "gamma_common_rmse_hi"]].to_numpy(dtype=float)]
    if "gamma_rank" in table:
        out["γ rank [CI] on common slabs"] = [
            "–" if not np.isfinite(r) else (f"{int(r)} [{int(lo)}–{int(hi)}]" if np.isfinite(lo) else f"{int(r)}")
            for r, lo, hi in table[["gamma_rank", "gamma_rank_lo", "gamma_rank_hi"]].to_numpy(dtype=float)]
        out["P(best γ)"] = table["gamma_p_best"].map(lambda p: "–" if not np.isfinite(p) else f"{p:.2f}")
    if "gamma_indistinguishable_from" in table and int(comparable.sum()) > 1:  # with one model: no other to name
        out["γ not distinguishable from"] = table["gamma_indistinguishable_from"].replace("", "–")
    return out


def table_figure(display: pd.DataFrame, title: str, fill: pd.DataFrame | None = None,
                 column_widths: Sequence[float] | None = None, width: int = 1400) -> go.Figure:
    """A plotly table of a DataFrame of strings (``fill``: optional cell colours, same shape)."""
    header = list(display.columns)
    values = [display[c].astype(str).tolist() for c in header]
    colours = [fill[c].tolist() for c in header] if fill is not None else "white"
    fig = go.Figure(go.Table(
        columnwidth=list(column_widths) if column_widths else None,
        header=dict(values=[f"<b>{h}</b>" for h in header], fill_color="#dde4ee", align="left",
                    font=dict(size=12), height=34),
        cells=dict(values=values, fill_color=colours, align="left", font=dict(size=12), height=26),
    ))
    layout(fig, title, width=width, height=min(2400, 130 + 36 + 27 * max(1, len(display)) + 40),
           margin=dict(l=10, r=10, t=50, b=10))
    return fig


def comparison_table_figure(table: pd.DataFrame, dataset: str = "", ci: float = 0.95) -> go.Figure:
    """Table I as a plotly table."""
    d = comparison_display(table, ci).drop(columns=["training set", "γ MAE (J/m²)"], errors="ignore")
    widths = [2.6, 1.1, 0.9, 1.9, 1.9, 1.9, 1.9, 0.8, 1.9, 1.2, 0.8, 2.2][: len(d.columns)]
    return table_figure(d, f"Model comparison{' on ' + dataset if dataset else ''} (bootstrap {100 * ci:.0f}% CI)",
                        column_widths=widths, width=1600)


