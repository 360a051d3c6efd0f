"""Figures of the errors per element and per Miller index (Figs. 3, 4 and 6 of Focassio, Freitas
& Schleder 2024): periodic tables of the RMSE per model, the gamma RMSE heat map per element and
model, and the gamma RMSE per Miller index."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from surfbench.analysis.metrics import metrics
from surfbench.analysis.ranking import rmse
from surfbench.report.style import (
    ENERGY_UNIT,
    FONT,
    GAMMA_UNIT,
    element_order,
    layout,
    miller_label,
    miller_sort_key,
    model_marks,
    orders_and_colours,
)

# ---------------------------------------------------------------------------- Fig. 3/6: periodic tables
_PTABLE_SPLITS = (  # (quantity, colour scale, colour bar title); pymatviz order: bottom, upper left, upper right
    ("gamma", "Reds", f"γ RMSE ({GAMMA_UNIT}), bottom"),
    ("bulk_e_per_atom", "Blues", f"bulk energy RMSE ({ENERGY_UNIT}), upper left"),
    ("slab_e_per_atom", "Greens", f"slab energy RMSE ({ENERGY_UNIT}), upper right"),
)


def element_rmse(bulks: pd.DataFrame, slabs: pd.DataFrame) -> pd.DataFrame:
    """RMSE per (model, element) of gamma, bulk and slab energy: columns model, element and
    one per quantity (NaN where nothing was evaluated ok)."""
    per = metrics(bulks, slabs, by="element")
    if per.empty:
        return pd.DataFrame(columns=["model", "element", *[q for q, _, _ in _PTABLE_SPLITS]])
    wide = per.pivot_table(index=["model", "element"], columns="quantity", values="rmse", dropna=False)
    wide = wide.reindex(columns=[q for q, _, _ in _PTABLE_SPLITS])
    # only the (model, element) pairs the model evaluated: an element it never ran is not "every
    # prediction failed" (the pivot pairs every model with every element)
    ran = set(map(tuple, per.loc[per["n_total"] > 0, ["model", "element"]].drop_duplicates().to_numpy()))
    wide = wide[[key in ran for key in wide.index]]
    return wide.reset_index()


def _empty_tiles(fig: go.Figure, skip: set[str]) -> None:
    """Grey tiles with the symbol for the elements without data (pymatviz' on_empty="show"
    adds them one by one, which is slow): one batch of shapes and annotations."""
    from pymatgen.core import Element

    shapes, annotations = list(fig.layout.shapes), list(fig.layout.annotations)
    for e in Element:
        if e.symbol in skip or e.is_lanthanoid or e.is_actinoid or e.Z > 118:
            continue
        idx = (e.row - 1) * 18 + e.group
        key = "" if idx == 1 else str(idx)
        ref = dict(xref=f"x{key}", yref=f"y{key}")
        shapes.append(dict(type="rect", x0=0, x1=1, y0=0, y1=1, fillcolor="#eeeeee", line=dict(width=0),
                           layer="below", **ref))
        annotations.append(dict(text=e.symbol, x=0.5, y=0.5, showarrow=False, font=dict(size=15, color="#888"), **ref))
    fig.layout.shapes = shapes
    fig.layout.annotations = annotations


def element_rmse_ptables(bulks: pd.DataFrame, slabs: pd.DataFrame,
                         order: Sequence[str] | None = None) -> dict[str, go.Figure]:
    """Figs. 3/6: per model, a periodic table whose element tiles are split in three (bottom:
    gamma RMSE, upper left: bulk energy RMSE, upper right: slab energy RMSE). The colour
    scales are shared by the comparable models (0 to the largest RMSE of any of them,
    :mod:`surfbench.analysis.comparable`) so that their tables can be compared; a model with
    other coverage (not comparable) has its own scales, and says so. Light grey tiles: not
    evaluated by this model (or not in the data), dark grey parts: evaluated but every
    prediction failed."""
    import plotly.colors as pc
    import pymatviz as pmv

    from surfbench.analysis.comparable import comparability

    order, _ = orders_and_colours(slabs, order, None)
    table = element_rmse(bulks, slabs)
    comp = comparability(slabs, order) if not slabs.empty else None

    def maxima(rows: pd.DataFrame) -> dict[str, float]:
        out = {}
        for q, _, _ in _PTABLE_SPLITS:
            v = rows[q].to_numpy(dtype=float) if q in rows else np.array([])
            v = v[np.isfinite(v)]
            out[q] = float(v.max()) if v.size and v.max() > 0 else 1.0
        return out

    shared = maxima(table[table["model"].isin(comp.comparable)] if comp is not None else table)
    scales = [pc.get_colorscale(s) for _, s, _ in _PTABLE_SPLITS]

    figs = {}
    for m in order:
        own = comp is not None and not comp.is_comparable(m) and m in comp.evaluated
        cmax = maxima(table[table["model"] == m]) if own else shared

        def colour(symbol: str, value: float, idx: int, cmax: dict[str, float] = cmax) -> str:
            q = _PTABLE_SPLITS[idx][0]
            pos = min(1.0, max(0.0, value / cmax[q]))
            return pc.sample_colorscale(scales[idx], [0.08 + 0.92 * pos])[0]  # never pure white

        t = table[table["model"] == m]
        labels = [title.rsplit(",", 1)[0] for _, _, title in _PTABLE_SPLITS]
        data = pd.DataFrame([[float(row[q]) for q, _, _ in _PTABLE_SPLITS] for _, row in t.iterrows()],
                            index=list(t["element"]), columns=labels)
        if data.empty:
            data = pd.DataFrame([[math.nan] * 3], index=["H"], columns=labels)
        fig = pmv.ptable_heatmap_splits(
            data, orientation="diagonal", colorscale=colour, colorbar=False, on_empty="hide",
            hide_f_block=True, scale=1.3, split_value_fmt=None, nan_color="#b8b8b8",
            hover_fmt=lambda v: f"{v:.3f}", hover_template="<b>{name}</b> {split_name}: {value}",
            symbol_kwargs=dict(font=dict(size=15, color="black"), bgcolor="rgba(255,255,255,0.75)", borderpad=1),
        )
        _empty_tiles(fig, set(data.index))
        for k, (q, _, title) in enumerate(_PTABLE_SPLITS):  # our own colour bars: shared range
            stops = [[i / 10, pc.sample_colorscale(scales[k], [0.08 + 0.092 * i])[0]] for i in range(11)]
            fig.add_trace(go.Scatter(
                x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                marker=dict(colorscale=stops, cmin=0, cmax=cmax[q], color=[0], showscale=True,
                            colorbar=dict(title=dict(text=title, side="top", font=dict(size=11)),
                                          orientation="h", x=0.39, xanchor="center", y=0.985 - 0.135 * k,
                                          yanchor="top", len=0.42, thickness=11, tickfont=dict(size=11),
                                          tickformat=".2~f" if cmax[q] >= 0.1 else ".3~f")),
            ))
        n_el = int(t[["gamma", "bulk_e_per_atom", "slab_e_per_atom"]].notna().any(axis=1).sum()) if len(t) else 0
        scale = (f"its own colour scales: {comp.mark(m)}" if own else
                 "colour scales shared by the comparable models")
        fig.update_layout(title=dict(text=f"{m}: RMSE per element ({n_el} elements evaluated; {scale})",
                                     x=0.5, xanchor="center", font=dict(size=16)),
                          font=FONT, paper_bgcolor="white", margin=dict(l=10, r=10, t=60, b=10))
        figs[m] = fig
    return figs


def element_rmse_heatmap(bulks: pd.DataFrame, slabs: pd.DataFrame, order: Sequence[str] | None = None) -> go.Figure:
    """Summary of Figs. 3/6 for comparing models: RMSE of gamma per element (columns, by group
    then period) and model (rows, a model with other coverage marked "not comparable"),
    annotated with the RMSE and the mean signed error; an element a model did not evaluate is
    an empty cell."""
    order, _ = orders_and_colours(slabs, order, None)
    per = metrics(bulks, slabs, by="element")
    g = per[per["quantity"] == "gamma"] if not per.empty else per
    elements = element_order(g["element"].dropna().unique()) if len(g) else []
    z = np.full((len(order), len(elements)), np.nan)
    text = np.full(z.shape, "", dtype=object)
    for _, r in g.iterrows():
        if r["model"] in order and r["element"] in elements:
            i, j = order.index(r["model"]), elements.index(r["element"])
            z[i, j] = r["rmse"]
            if np.isfinite(r["rmse"]):
                text[i, j] = f"{r['rmse']:.2f}<br><span style='font-size:10px'>{r['mean_signed_error']:+.2f}</span>"
            if r["n_failed"]:
                text[i, j] += f"<br><span style='font-size:10px'>{int(r['n_failed'])} failed</span>"
    marks = model_marks(slabs)
    fig = go.Figure(go.Heatmap(
        z=z, x=elements, y=[marks.get(m, m) for m in order], colorscale="Reds", zmin=0, text=text,
        texttemplate="%{text}", textfont=dict(size=13),
        xgap=2, ygap=2, colorbar=dict(title=dict(text=f"γ RMSE ({GAMMA_UNIT})", side="right")),
        hovertemplate=f"%{{y}}, %{{x}}<br>γ RMSE %{{z:.3f}} {GAMMA_UNIT}<extra></extra>",
    ))
    layout(fig, f"RMSE of γ per element ({GAMMA_UNIT}; small: mean signed error, model − DFT)",
           width=max(600, 330 + 85 * len(elements)), height=170 + 52 * len(order), margin=dict(l=280, r=30, t=60, b=50))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="element (by group, then period)", side="bottom")
    return fig


# ---------------------------------------------------------------------------- Fig. 4: per Miller index
def miller_rmse_bars(slabs: pd.DataFrame, order: Sequence[str] | None = None,
                     colours: Mapping[str, str] | None = None) -> go.Figure:
    """Fig. 4: RMSE of gamma per Miller index, grouped bars per model; the tick labels give the
    number of slabs of each index (per model where it differs), the hover each bar's count. A
    model with other coverage (not comparable: it evaluated other slabs than the others) is
    hatched and named so: its bars are over its own slabs of each index."""
    order, colours = orders_and_colours(slabs, order, colours)
    d = slabs.assign(miller_key=slabs["miller"].where(slabs["miller"].notna(), "unknown"))
    stats = d.groupby(["model", "miller_key"])["error_gamma_j_per_m2"].agg(
        rmse=rmse, n_ok=lambda s: int(np.isfinite(s.astype(float)).sum()), n_total="size").reset_index()
    millers = sorted(stats["miller_key"].unique(), key=miller_sort_key)
    ticks = {}
    for mk in millers:
        ok = stats[stats["miller_key"] == mk]["n_ok"]
        n = f"n={ok.iloc[0]}" if ok.nunique() == 1 else f"n={ok.min()}–{ok.max()}"
        ticks[mk] = f"{miller_label(mk)}<br>{n}"
    marks = model_marks(slabs)
    fig = go.Figure()
    for m in order:
        s = stats[stats["model"] == m].set_index("miller_key").reindex(millers)
        other = marks.get(m, m) != m  # not comparable: hatched, named so
        fig.add_trace(go.Bar(
            x=[ticks[mk] for mk in millers], y=s["rmse"], name=marks.get(m, m),
            marker=dict(color=colours[m], pattern=dict(shape="/" if other else "")),
            customdata=np.column_stack([s["n_ok"].fillna(0).astype(int), s["n_total"].fillna(0).astype(int)]),
            hovertemplate=f"<b>{m}</b><br>%{{x}}<br>RMSE %{{y:.3f}} {GAMMA_UNIT}"
                          "<br>%{customdata[0]} of %{customdata[1]} slabs ok<extra></extra>",
        ))
    layout(fig, "RMSE of the surface energy per Miller index (n: slabs of that index with a γ)",
           barmode="group", bargap=0.18, bargroupgap=0.05,
           width=min(1400, max(800, 12 * len(millers) * max(1, len(order)) + 200)), height=520,
           legend=dict(orientation="h", x=0.5, xanchor="center", y=1.0, yanchor="bottom", font=dict(size=11)),
           margin=dict(l=80, r=20, t=110, b=80))
    fig.update_xaxes(title="Miller index (hkl)", categoryorder="array", categoryarray=[ticks[mk] for mk in millers])
    fig.update_yaxes(title=f"RMSE of γ ({GAMMA_UNIT})", rangemode="tozero")
    return fig

