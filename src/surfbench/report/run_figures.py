"""Figures and tables that compare models (runs) on one data set (Figs. 2-7, S2 and Table I
of Focassio, Freitas & Schleder 2024).

Every function takes the frames of :mod:`surfbench.analysis.predictions` (``bulks`` from
``bulk_predictions``, ``slabs`` from ``slab_predictions``) of one data set and one protocol,
for any number of models, and returns a plotly Figure (or a DataFrame for the tables). The
``model`` column names a run; it must be unique per fingerprint (the HTML report makes it so).
Errors are model - DFT throughout; failed structures are never plotted as 0, they are left out
and counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from surfbench.analysis.metrics import metrics

#: colour-blind safe colours (Okabe-Ito, then Tol's muted) for the models, in ranking order
MODEL_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
                 "#882255", "#999933", "#44AA99", "#332288", "#AA4499"]
MODEL_SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down",
                 "pentagon", "star", "hexagon", "triangle-left", "star-diamond"]
#: colours of the Miller index families on the Wulff shapes
FACET_COLOURS = ["#4E79A7", "#F28E2B", "#59A14F", "#E15759", "#B07AA1", "#EDC948", "#76B7B2", "#FF9DA7",
                 "#9C755F", "#BAB0AC", "#17BECF", "#7B4173", "#BCBD22", "#D37295", "#A0CBE8", "#FFBE7D",
                 "#79706E", "#F1CE63", "#86BCB6", "#D4A6C8"]

GAMMA_UNIT = "J/m²"
ENERGY_UNIT = "eV/atom"
TEMPLATE = "plotly_white"
FONT = dict(family="Arial, Helvetica, sans-serif", size=13)

#: quantity -> (label, unit) for titles and tables
QUANTITY_LABELS = {
    "gamma": ("surface energy γ", GAMMA_UNIT),
    "slab_e_per_atom": ("slab energy per atom", ENERGY_UNIT),
    "bulk_e_per_atom": ("bulk energy per atom", ENERGY_UNIT),
}


# ---------------------------------------------------------------------------- helpers
def _rmse(x: pd.Series | np.ndarray) -> float:
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
    on_common = common.groupby("model")["error_gamma_j_per_m2"].apply(_rmse) if len(common) else pd.Series(dtype=float)
    own = slabs.groupby("model")["error_gamma_j_per_m2"].apply(_rmse)

    def key(m: str) -> tuple:
        r = on_common.get(m, math.nan) if m in comp.comparable else own.get(m, math.nan)
        return (m not in comp.comparable, math.isnan(r), 0.0 if math.isnan(r) else r, m)

    return sorted(own.index, key=key)


def model_marks(slabs: pd.DataFrame) -> dict[str, str]:
    """model -> its name as figures show it: marked "(not comparable: k of n slabs)" where it
    evaluated other slabs than the others (:mod:`surfbench.analysis.comparable`)."""
    if slabs.empty:
        return {}
    from surfbench.analysis.comparable import comparability

    comp = comparability(slabs)
    return {m: comp.label(m) for m in comp.evaluated}


def model_colours(order: Sequence[str]) -> dict[str, str]:
    return {m: MODEL_COLOURS[i % len(MODEL_COLOURS)] for i, m in enumerate(order)}


def miller_label(miller: object) -> str:
    """"110" -> "(110)"; a missing index -> "unknown"."""
    if not isinstance(miller, str) or not miller or miller == "unknown":
        return "unknown"
    return f"({miller})"


def _miller_key(miller: str) -> tuple:
    """Sort Miller strings by the size of the indices, then by the digits."""
    if not isinstance(miller, str):
        return (1, 99, "")
    digits = [int(c) for c in miller if c.isdigit()]
    return (0, sum(digits), max(digits, default=0), miller)


def _element_order(elements: Sequence[str]) -> list[str]:
    from pymatgen.core import Element

    def key(el: str) -> tuple:
        try:
            e = Element(el)
            return (0, e.group, e.row)
        except ValueError:
            return (1, 0, 0)

    return sorted(set(elements), key=key)


def _layout(fig: go.Figure, title: str, **kw) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.5, xanchor="center"), template=TEMPLATE, font=FONT, **kw)
    return fig


def _orders(slabs: pd.DataFrame, order: Sequence[str] | None, colours: Mapping[str, str] | None):
    order = list(order) if order is not None else model_order(slabs)
    return order, dict(colours) if colours is not None else model_colours(order)


# ---------------------------------------------------------------------------- Fig. 2a-c: parity
def _parity(
    df: pd.DataFrame, x: str, y: str, *, label: str, unit: str, order: Sequence[str],
    colours: Mapping[str, str], title: str, with_miller: bool, from_zero: bool = False, residual: bool = False,
    marks: Mapping[str, str] | None = None,
) -> go.Figure:
    """Model vs DFT with the y = x line and equal axes; ``residual``: a second panel with the
    error (model - DFT) against DFT, where errors far smaller than the range of the values
    (energies per atom across elements) can be seen."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.12) if residual else go.Figure()
    at = dict(row=1, col=1) if residual else {}
    finite = df[np.isfinite(df[x].astype(float)) & np.isfinite(df[y].astype(float))]
    n_left_out = len(df) - len(finite)
    if finite.empty:
        lo, hi = 0.0, 1.0
    else:
        lo = float(min(finite[x].min(), finite[y].min()))
        hi = float(max(finite[x].max(), finite[y].max()))
    pad = 0.05 * (hi - lo) if hi > lo else 0.1
    lo, hi = (0.0 if from_zero and lo >= 0 else lo - pad), hi + pad
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x (model = DFT)",
                             line=dict(color="#888", dash="dash", width=1), hoverinfo="skip"), **at)
    for i, m in enumerate(order):
        d = finite[finite["model"] == m]
        n_all = int((df["model"] == m).sum())
        if n_all == 0:
            continue
        marker = dict(color=colours[m], symbol=MODEL_SYMBOLS[i % len(MODEL_SYMBOLS)], size=7,
                      opacity=0.75, line=dict(width=0.5, color="white"))
        shown = (marks or {}).get(m, m)
        if d.empty:  # keep the model in the legend
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"{shown}: all {n_all} failed",
                                     marker=marker), **at)
            continue
        err = (d[y] - d[x]).to_numpy(dtype=float)
        miller = d["miller"].map(miller_label) if with_miller and "miller" in d else pd.Series("-", index=d.index)
        custom = np.column_stack([d["record_id"].astype(str), d["element"].astype(str), miller.astype(str),
                                  err, d[y].to_numpy(dtype=float)])
        name = f"{shown}: RMSE {_rmse(err):.3f}" + (f" ({n_all - len(d)} failed)" if n_all > len(d) else "")
        hover = ("<b>%{customdata[0]}</b><br>element %{customdata[1]}"
                 + (", Miller %{customdata[2]}" if with_miller else "")
                 + f"<br>DFT %{{x:.4f}} {unit}<br>model %{{customdata[4]:.4f}} {unit}"
                 + f"<br>error %{{customdata[3]:+.4f}} {unit}<extra>{m}</extra>")
        fig.add_trace(go.Scatter(x=d[x], y=d[y], mode="markers", name=name, customdata=custom, marker=marker,
                                 legendgroup=m, hovertemplate=hover), **at)
        if residual:
            fig.add_trace(go.Scatter(x=d[x], y=err, mode="markers", name=name, customdata=custom, marker=marker,
                                     legendgroup=m, showlegend=False, hovertemplate=hover), row=1, col=2)
    note = f"<br><sup>{n_left_out} failed predictions not shown</sup>" if n_left_out else ""
    axis = dict(showgrid=True, zeroline=False, mirror=True, showline=True, linecolor="#444", ticks="outside")
    _layout(fig, title + note, width=1450 if residual else 980, height=640,
            legend=dict(title=dict(text=f"model: RMSE ({unit})"), x=1.02, y=1, xanchor="left",
                        font=dict(size=12), tracegroupgap=3),
            margin=dict(l=80, r=20, t=80, b=70))
    fig.update_xaxes(title=f"DFT {label} ({unit})", range=[lo, hi], constrain="domain", **axis, **at)
    fig.update_yaxes(title=f"model {label} ({unit})", range=[lo, hi], constrain="domain", scaleanchor="x",
                     scaleratio=1, **axis, **at)
    if residual:
        fig.update_xaxes(title=f"DFT {label} ({unit})", range=[lo, hi], **axis, row=1, col=2)
        fig.update_yaxes(title=f"error, model − DFT ({unit})", **axis, row=1, col=2)
        fig.add_hline(y=0, line=dict(color="#888", dash="dash", width=1), row=1, col=2)
    return fig


def parity_bulk_energy(bulks: pd.DataFrame, order: Sequence[str] | None = None,
                       colours: Mapping[str, str] | None = None, marks: Mapping[str, str] | None = None) -> go.Figure:
    """Fig. 2a: bulk energy per atom, model vs DFT (eV/atom); ``marks``: model -> the name its
    legend entry shows (:func:`model_marks` of the slabs)."""
    order = list(order) if order is not None else sorted(bulks["model"].unique())
    colours = dict(colours) if colours is not None else model_colours(order)
    return _parity(bulks, "e_dft_per_atom_ev", "e_pred_per_atom_ev", label="bulk energy", unit=ENERGY_UNIT,
                   order=order, colours=colours, title="Bulk energy per atom: model vs DFT (right: error)",
                   with_miller=False, residual=True, marks=marks)


def parity_slab_energy(slabs: pd.DataFrame, order: Sequence[str] | None = None,
                       colours: Mapping[str, str] | None = None) -> go.Figure:
    """Fig. 2b: slab energy per atom, model vs DFT (eV/atom)."""
    order, colours = _orders(slabs, order, colours)
    return _parity(slabs, "e_dft_per_atom_ev", "e_pred_per_atom_ev", label="slab energy", unit=ENERGY_UNIT,
                   order=order, colours=colours, title="Slab energy per atom: model vs DFT (right: error)",
                   with_miller=True, residual=True, marks=model_marks(slabs))


def parity_gamma(slabs: pd.DataFrame, order: Sequence[str] | None = None,
                 colours: Mapping[str, str] | None = None) -> go.Figure:
    """Fig. 2c: surface energy gamma, model vs DFT (J/m^2)."""
    order, colours = _orders(slabs, order, colours)
    return _parity(slabs, "dft_gamma_j_per_m2", "gamma_pred_j_per_m2", label="surface energy γ", unit=GAMMA_UNIT,
                   order=order, colours=colours, title="Surface energy γ: model vs DFT", with_miller=True,
                   from_zero=True, marks=model_marks(slabs))


# ---------------------------------------------------------------------------- Fig. 2d: error distribution
def gamma_error_distribution(slabs: pd.DataFrame, order: Sequence[str] | None = None,
                             colours: Mapping[str, str] | None = None) -> go.Figure:
    """Fig. 2d: box + violin of the gamma error (model - DFT, J/m^2) per model, every slab a
    point, the comparable models from the best (top) to the worst RMSE on their common slabs,
    then the models with other coverage, marked "not comparable"; the labels carry RMSE and the
    mean signed error over each model's own slabs."""
    order, colours = _orders(slabs, order, colours)
    marks = model_marks(slabs)
    fig = go.Figure()
    ticks = []
    for m in order:
        d = slabs[(slabs["model"] == m) & np.isfinite(slabs["error_gamma_j_per_m2"].astype(float))]
        e = d["error_gamma_j_per_m2"].astype(float)
        n_fail = int((slabs["model"] == m).sum()) - len(d)
        head = f"<b>{m}</b>" + (f"<br><i>{marks[m][len(m) + 2:-1]}</i>" if marks.get(m, m) != m else "")
        tick = f"{head}<br>RMSE {_rmse(e):.3f}, mean signed {e.mean():+.3f}" if len(e) else f"{head}<br>no γ"
        if n_fail:
            tick += f", {n_fail} failed"
        ticks.append(tick)
        if d.empty:  # keep the model's row, with its label
            fig.add_trace(go.Scatter(x=[None], y=[tick], mode="markers", showlegend=False, hoverinfo="skip"))
            continue
        custom = np.column_stack([d["record_id"].astype(str), d["element"].astype(str),
                                  d["miller"].map(miller_label).astype(str),
                                  d["dft_gamma_j_per_m2"].astype(float)])
        fig.add_trace(go.Violin(
            y=[tick] * len(d), x=e, name=m, orientation="h", showlegend=False,
            line=dict(color=colours[m], width=1.5), fillcolor=colours[m], opacity=0.55,
            box=dict(visible=True, fillcolor="rgba(255,255,255,0.7)", width=0.3),
            meanline=dict(visible=True, color="black"), points="all", pointpos=0, jitter=0.4,
            marker=dict(size=4, color=colours[m], opacity=0.9, line=dict(width=0.4, color="white")),
            scalemode="width", width=0.85, spanmode="hard", customdata=custom,
            hovertemplate=("<b>%{customdata[0]}</b><br>%{customdata[1]} %{customdata[2]}"
                           f"<br>DFT γ %{{customdata[3]:.3f}} {GAMMA_UNIT}<br>error %{{x:+.3f}} {GAMMA_UNIT}"
                           f"<extra>{m}</extra>"),
        ))
    fig.add_vline(x=0, line=dict(color="#444", width=1, dash="dash"))
    _layout(fig, "Surface energy error per model (box: quartiles and median, black line: mean)",
            width=1000, height=170 + 95 * len(order), margin=dict(l=300, r=30, t=60, b=70), violingap=0.1)
    fig.update_yaxes(title=None, categoryorder="array", categoryarray=ticks[::-1], tickfont=dict(size=12))
    fig.update_xaxes(title=f"γ error, model − DFT ({GAMMA_UNIT}); RMSE and mean signed error MSE in {GAMMA_UNIT}",
                     zeroline=False)
    return fig


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

    order, _ = _orders(slabs, order, None)
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
    order, _ = _orders(slabs, order, None)
    per = metrics(bulks, slabs, by="element")
    g = per[per["quantity"] == "gamma"] if not per.empty else per
    elements = _element_order(g["element"].dropna().unique()) if len(g) else []
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
    _layout(fig, f"RMSE of γ per element ({GAMMA_UNIT}; small: mean signed error, model − DFT)",
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
    order, colours = _orders(slabs, order, colours)
    d = slabs.assign(miller_key=slabs["miller"].where(slabs["miller"].notna(), "unknown"))
    stats = d.groupby(["model", "miller_key"])["error_gamma_j_per_m2"].agg(
        rmse=_rmse, n_ok=lambda s: int(np.isfinite(s.astype(float)).sum()), n_total="size").reset_index()
    millers = sorted(stats["miller_key"].unique(), key=_miller_key)
    ticks = {}
    for mk in millers:
        ok = stats[stats["miller_key"] == mk]["n_ok"]
        n = f"n={ok.iloc[0]}" if ok.nunique() == 1 else f"n={ok.min()}–{ok.max()}"
        ticks[mk] = f"{miller_label(mk)}<br>{n}"
    marks = model_marks(slabs)
    fig = go.Figure()
    for i, m in enumerate(order):
        s = stats[stats["model"] == m].set_index("miller_key").reindex(millers)
        other = marks.get(m, m) != m  # not comparable: hatched, named so
        fig.add_trace(go.Bar(
            x=[ticks[mk] for mk in millers], y=s["rmse"], name=marks.get(m, m),
            marker=dict(color=colours[m], pattern=dict(shape="/" if other else "")),
            customdata=np.column_stack([s["n_ok"].fillna(0).astype(int), s["n_total"].fillna(0).astype(int)]),
            hovertemplate=f"<b>{m}</b><br>%{{x}}<br>RMSE %{{y:.3f}} {GAMMA_UNIT}"
                          "<br>%{customdata[0]} of %{customdata[1]} slabs ok<extra></extra>",
        ))
    _layout(fig, "RMSE of the surface energy per Miller index (n: slabs of that index with a γ)",
            barmode="group", bargap=0.18, bargroupgap=0.05, width=min(1400, max(800, 12 * len(millers) * max(1, len(order)) + 200)),
            height=520, legend=dict(orientation="h", x=0.5, xanchor="center", y=1.0, yanchor="bottom", font=dict(size=11)),
            margin=dict(l=80, r=20, t=110, b=80))
    fig.update_xaxes(title="Miller index (hkl)", categoryorder="array", categoryarray=[ticks[mk] for mk in millers])
    fig.update_yaxes(title=f"RMSE of γ ({GAMMA_UNIT})", rangemode="tozero")
    return fig


# ---------------------------------------------------------------------------- Fig. S2: error correlation
def error_correlation_matrix(slabs: pd.DataFrame, order: Sequence[str] | None = None,
                             column: str = "error_gamma_j_per_m2") -> tuple[pd.DataFrame, int]:
    """Pearson r between the models' errors over the records every model has (and that count);
    models without any finite error are left out."""
    order, _ = _orders(slabs, order, None)
    wide = slabs.pivot_table(index="record_id", columns="model", values=column, aggfunc="first")
    order = [m for m in order if m in wide.columns and np.isfinite(wide[m].to_numpy(dtype=float)).any()]
    wide = wide.reindex(columns=order).dropna(how="any")
    if len(wide) < 2:
        return pd.DataFrame(np.nan, index=order, columns=order), len(wide)
    return wide.corr(method="pearson"), len(wide)


def error_correlation(slabs: pd.DataFrame, order: Sequence[str] | None = None) -> go.Figure:
    """Fig. S2: heat map of the Pearson correlation of the gamma errors between models, over
    the slabs that every model has a gamma for, annotated with r."""
    r, n = error_correlation_matrix(slabs, order)
    order = list(r.index)
    z = r.to_numpy(dtype=float)
    fig = go.Figure(go.Heatmap(
        z=z, x=list(r.columns), y=list(r.index), zmin=-1, zmax=1, colorscale="RdBu_r", zmid=0,
        text=np.vectorize(lambda v: "" if not np.isfinite(v) else f"{v:.2f}")(z), texttemplate="%{text}",
        textfont=dict(size=12), colorbar=dict(title=dict(text="Pearson r", side="right")),
        hovertemplate="%{y} vs %{x}<br>r = %{z:.3f}<extra></extra>",
    ))
    side = 110 + 70 * len(order)
    # the title in two lines: one line was wider than a figure of two or three models, and cut
    _layout(fig, f"Correlation of the γ errors between models<br><sup>Pearson r over {n} common slabs</sup>",
            width=max(side + 330, 560), height=side + 200, margin=dict(l=260, r=40, t=80, b=200))
    fig.update_xaxes(tickangle=-35, showgrid=False)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", scaleratio=1, showgrid=False)
    return fig


# ---------------------------------------------------------------------------- Table I
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
            for k in ("rmse", "rmse_lo", "rmse_hi") + (("mae", "mae_lo", "mae_hi", "mean_signed_error", "mean_signed_error_lo",
                                                            "mean_signed_error_hi") if q == "gamma" else ()):
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


def _ci(v: float, lo: float, hi: float, digits: int = 3) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    if lo is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def comparison_display(table: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Table I as strings for people: value [CI] per cell, ok/total coverage; a model with other
    coverage marked "not comparable" with the slabs it evaluated."""
    pct = f"{100 * ci:.0f}%"
    comparable = table["comparable"] if "comparable" in table else pd.Series(True, index=table.index)
    out = pd.DataFrame({
        "model": [m if ok else f"{m} (not comparable: {int(k)} of {int(n)} slabs)"
                  for m, ok, k, n in zip(table["model"], comparable,
                                         table.get("gamma_n_evaluated", table["gamma_n_total"]),
                                         table.get("n_slabs", table["gamma_n_total"]))],
        "family": table["family"].fillna("–"),
        "training set": table["training_set"].fillna("–"),
        "parameters": table["parameters"].map(lambda p: f"{int(p):,}" if p is not None and np.isfinite(p) else "–"),
        f"γ RMSE ({GAMMA_UNIT}) [{pct} CI]": [_ci(*r) for r in table[["gamma_rmse", "gamma_rmse_lo", "gamma_rmse_hi"]].to_numpy()],
        f"γ MAE ({GAMMA_UNIT})": [_ci(*r) for r in table[["gamma_mae", "gamma_mae_lo", "gamma_mae_hi"]].to_numpy()],
        f"γ mean signed error ({GAMMA_UNIT})": [_ci(*r) for r in table[["gamma_mean_signed_error", "gamma_mean_signed_error_lo", "gamma_mean_signed_error_hi"]].to_numpy()],
        f"slab energy RMSE ({ENERGY_UNIT}) [{pct} CI]": [_ci(*r, digits=4) for r in table[["slab_e_per_atom_rmse", "slab_e_per_atom_rmse_lo", "slab_e_per_atom_rmse_hi"]].to_numpy()],
        f"bulk energy RMSE ({ENERGY_UNIT}) [{pct} CI]": [_ci(*r, digits=4) for r in table[["bulk_e_per_atom_rmse", "bulk_e_per_atom_rmse_lo", "bulk_e_per_atom_rmse_hi"]].to_numpy()],
        "γ ok/total": [f"{a}/{b}" for a, b in table[["gamma_n_ok", "gamma_n_total"]].to_numpy()],
    })
    if "gamma_common_rmse" in table:
        n = table["gamma_common_n_common"].dropna()
        head = f"γ RMSE on the {int(n.iloc[0])} common slabs [{pct} CI]" if len(n) else "γ RMSE on the common slabs"
        out[head] = [_ci(*r) for r in table[["gamma_common_rmse", "gamma_common_rmse_lo",
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
    _layout(fig, title, width=width, height=min(2400, 130 + 36 + 27 * max(1, len(display)) + 40),
            margin=dict(l=10, r=10, t=50, b=10))
    return fig


def comparison_table_figure(table: pd.DataFrame, dataset: str = "", ci: float = 0.95) -> go.Figure:
    """Table I as a plotly table."""
    d = comparison_display(table, ci).drop(columns=["training set", "γ MAE (J/m²)"], errors="ignore")
    widths = [2.6, 1.1, 0.9, 1.9, 1.9, 1.9, 1.9, 0.8, 1.9, 1.2, 0.8, 2.2][: len(d.columns)]
    return table_figure(d, f"Model comparison{' on ' + dataset if dataset else ''} (bootstrap {100 * ci:.0f}% CI)",
                        column_widths=widths, width=1600)


# ---------------------------------------------------------------------------- Fig. 7: facet ordering
_GOOD, _NEAR, _BAD, _HEAD = "#d4edda", "#fff3cd", "#f8d7da", "#eef1f5"


def bulk_labels(frame: pd.DataFrame) -> dict[str, str]:
    """bulk id -> its element, or "element (bulk id)" where an element has several bulks."""
    pairs = frame[["bulk_id", "element"]].drop_duplicates()
    counts = pairs["element"].value_counts()
    return {b: (el if counts[el] == 1 else f"{el} ({b})") for b, el in zip(pairs["bulk_id"], pairs["element"])}


def dft_facet_ordering(slabs: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The DFT facet ordering of every bulk over ALL its slabs with a DFT gamma and a Miller
    index (:func:`surfbench.analysis.facets.facet_ordering` of DFT against itself)."""
    from surfbench.analysis.facets import facet_ordering

    s = slabs.drop_duplicates("record_id").copy()
    s = s[np.isfinite(s["dft_gamma_j_per_m2"].astype(float)) & s["bulk_id"].notna()]
    if s.empty:
        return pd.DataFrame()
    s["fingerprint"], s["model"] = "DFT", "DFT"
    s["gamma_status"], s["gamma_pred_j_per_m2"] = "ok", s["dft_gamma_j_per_m2"]
    out = facet_ordering(s, n=n)
    ok = s[s["miller"].notna()]
    lowest = ok.groupby(["bulk_id", ok["miller"].astype(str)])["dft_gamma_j_per_m2"].min()
    gaps = {b: (float(np.diff(np.sort(g.to_numpy())[:2])[0]) if len(g) >= 2 else math.nan)
            for b, g in lowest.groupby(level=0)}
    out["gap_1_2_j_per_m2"] = out["bulk_id"].map(gaps)
    return out


def facet_ordering_display(facets: pd.DataFrame, order: Sequence[str] | None = None,
                           dft: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 7 as a table: per bulk a DFT row with its lowest facets, then one row per model with
    its lowest facets (green: same place as DFT, yellow: in DFT's list at another place),
    whether the lowest facet is right, Spearman and Kendall over all facets and the overlap of
    the two lists. Returns ``(strings, cell colours)``."""
    cols = ["bulk", "ranking by", "1st", "2nd", "3rd", "4th", "5th", "lowest facet right",
            "Spearman ρ", "Kendall τ", "overlap", "facets"]
    if facets.empty:
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=cols)
    order = list(order) if order is not None else sorted(facets["model"].unique())
    rank = {m: i for i, m in enumerate(order)}
    n_top = max(len(t) for t in facets["dft_top"]) if len(facets) else 5
    n_top = max(n_top, 1)
    place = ["1st", "2nd", "3rd", "4th", "5th"] + [f"{i}th" for i in range(6, n_top + 1)]
    cols = ["bulk", "ranking by", *place[:n_top], "lowest facet right", "Spearman ρ", "Kendall τ", "overlap", "facets"]
    rows, fills = [], []
    labels = bulk_labels(facets)
    for bulk_id, grp in sorted(facets.groupby("bulk_id"), key=lambda kv: (kv[1]["element"].iloc[0], kv[0])):
        grp = grp.sort_values("model", key=lambda s: s.map(lambda m: rank.get(m, 1e9)))
        full = dft[dft["bulk_id"] == bulk_id] if dft is not None and len(dft) else None
        gap = math.nan
        if full is not None and len(full):
            dft_top, n_dft = list(full["dft_top"].iloc[0]), int(full["n_facets"].iloc[0])
            gap = float(full["gap_1_2_j_per_m2"].iloc[0]) if "gap_1_2_j_per_m2" in full else math.nan
        else:
            widest = grp.loc[grp["n_facets"].idxmax()]
            dft_top, n_dft = list(widest["dft_top"]), int(widest["n_facets"])
        label = labels[bulk_id]
        rows.append([label, "DFT", *[miller_label(x) for x in dft_top[:n_top]] + [""] * (n_top - len(dft_top[:n_top])),
                     f"1st–2nd: {gap:.3f} {GAMMA_UNIT}" if np.isfinite(gap) else "", "", "", "", str(n_dft)])
        fills.append([_HEAD] * len(cols))
        for _, r in grp.iterrows():
            d_top, m_top = list(r["dft_top"]), list(r["model_top"])
            cells, colours = [], []
            for i in range(n_top):
                if i >= len(m_top):
                    cells.append(""); colours.append("white"); continue
                f = m_top[i]
                cells.append(miller_label(f))
                colours.append(_GOOD if i < len(d_top) and d_top[i] == f else (_NEAR if f in d_top else "white"))
            ok = bool(r["lowest_correct"])
            sp, kt = float(r["spearman"]), float(r["kendall"])
            rows.append(["", r["model"], *cells, "yes" if ok else "no",
                         "–" if not np.isfinite(sp) else f"{sp:.2f}", "–" if not np.isfinite(kt) else f"{kt:.2f}",
                         f"{int(r['top_overlap'])}/{min(len(d_top), n_top)}",
                         str(int(r["n_facets"])) + (f" ({int(r['n_failed'])} failed)" if r.get("n_failed", 0) else "")])
            fills.append(["white", "white", *colours, _GOOD if ok else _BAD, "white", "white", "white", "white"])
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(fills, columns=cols)


def facet_ordering_table(facets: pd.DataFrame, order: Sequence[str] | None = None,
                         dft: pd.DataFrame | None = None) -> go.Figure:
    """Fig. 7: the facet-ordering table (see :func:`facet_ordering_display`) as a plotly table."""
    d, fill = facet_ordering_display(facets, order, dft)
    n_top = sum(1 for c in d.columns if c[0].isdigit())
    widths = [0.9, 2.4, *[0.7] * n_top, 0.9, 0.8, 0.8, 0.7, 1.0]
    fig = table_figure(d, "Facet ordering: the lowest-γ facets by DFT and by each model "
                          "(green: same place as DFT, yellow: among DFT's but elsewhere)",
                       fill=fill, column_widths=widths, width=1400)
    return fig


def facet_ordering_heatmap(facets: pd.DataFrame, order: Sequence[str] | None = None) -> go.Figure:
    """Summary of Fig. 7: Kendall τ between the DFT and model facet orderings, per bulk
    (columns) and model (rows); the mark tells whether the lowest facet is right."""
    order = list(order) if order is not None else sorted(facets["model"].unique())
    bulks = sorted(facets["bulk_id"].unique(), key=lambda b: (facets.loc[facets["bulk_id"] == b, "element"].iloc[0], b))
    labels = [facets.loc[facets["bulk_id"] == b, "element"].iloc[0] for b in bulks]
    if len(set(labels)) < len(labels):
        labels = [f"{el}<br>{b}" for el, b in zip(labels, bulks)]
    z = np.full((len(order), len(bulks)), np.nan)
    text = np.full(z.shape, "", dtype=object)
    for _, r in facets.iterrows():
        if r["model"] not in order:
            continue
        i, j = order.index(r["model"]), bulks.index(r["bulk_id"])
        z[i, j] = r["kendall"]
        mark = "✓" if r["lowest_correct"] else "✗"
        text[i, j] = f"{r['kendall']:.2f} {mark}" if np.isfinite(r["kendall"]) else mark
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=order, zmin=-1, zmax=1, colorscale="RdBu", zmid=0, text=text, texttemplate="%{text}",
        textfont=dict(size=13), colorbar=dict(title=dict(text="Kendall τ", side="right")), xgap=2, ygap=2,
        hovertemplate="%{y} on %{x}<br>Kendall τ = %{z:.3f}<extra></extra>",
    ))
    # two title lines: one did not fit a figure of one or two bulks
    _layout(fig, "Facet ordering vs DFT: Kendall τ over all facets<br><sup>✓ / ✗: lowest-γ facet right / wrong</sup>",
            width=max(650, 330 + 95 * len(bulks)), height=200 + 42 * len(order), margin=dict(l=280, r=30, t=80, b=60))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(side="bottom", title="bulk (element)")
    return fig


# ---------------------------------------------------------------------------- Fig. 8: Wulff shapes
def dft_wulff(slabs: pd.DataFrame, records: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The DFT Wulff shape of every bulk from ALL its slabs with a DFT gamma (not only those a
    given model evaluated): ``(frame, {bulk_id: WulffShape})`` with the columns of
    :func:`surfbench.analysis.facets.wulff_analysis` (source "DFT", model "DFT")."""
    from surfbench.analysis.facets import wulff_analysis

    s = slabs.drop_duplicates("record_id").copy()
    s = s[np.isfinite(s["dft_gamma_j_per_m2"].astype(float)) & s["bulk_id"].notna()]
    if s.empty:
        return pd.DataFrame(), {}
    s["fingerprint"], s["model"] = "DFT", "DFT"
    s["gamma_status"], s["gamma_pred_j_per_m2"] = "ok", s["dft_gamma_j_per_m2"]
    frame, shapes = wulff_analysis(s, records)
    frame = frame[frame["source"] == "DFT"].reset_index(drop=True)
    return frame, {b: sh for (fp, b, src), sh in shapes.items() if src == "DFT"}


def _facet_polygons(shape) -> list[tuple[tuple[int, ...], np.ndarray, np.ndarray]]:
    """(input Miller index, outward unit normal, ordered vertices) of every facet on the shape."""
    out = []
    for facet in shape.facets:
        if not facet.outer_lines:
            continue
        pts = shape.get_line_in_facet(facet)
        poly: list = []
        for p in pts:
            if not poly or not np.allclose(p, poly[-1]):
                poly.append(p)
        if len(poly) > 1 and np.allclose(poly[0], poly[-1]):
            poly.pop()
        if len(poly) < 3:
            continue
        n = np.asarray(facet.normal, dtype=float)
        out.append((shape.miller_list[facet.index], n / np.linalg.norm(n), np.asarray(poly, dtype=float)))
    return out


#: viewing direction (Cartesian) and light of the projected Wulff shapes
_VIEW = np.array([1.0, 0.42, 0.33])
_LIGHT = np.array([0.55, 0.35, 0.76])


def _shade(hex_colour: str, factor: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgb({int(r * factor)},{int(g * factor)},{int(b * factor)})"


def _project(shape):
    """2D projected front facets of a Wulff shape scaled to unit volume: list of
    (miller, xs, ys, brightness)."""
    v = _VIEW / np.linalg.norm(_VIEW)
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(up, v)
    right /= np.linalg.norm(right)
    up2 = np.cross(v, right)
    light = _LIGHT / np.linalg.norm(_LIGHT)
    scale = 1.0 / max(shape.volume, 1e-12) ** (1.0 / 3.0)
    out = []
    for hkl, n, poly in _facet_polygons(shape):
        facing = float(n @ v)
        if facing <= 1e-9:
            continue
        p = poly * scale
        xs, ys = p @ right, p @ up2
        out.append((hkl, np.append(xs, xs[0]), np.append(ys, ys[0]), 0.62 + 0.38 * max(0.0, float(n @ light)),
                    float(p @ v @ np.ones(len(p)) / len(p))))
    out.sort(key=lambda t: t[4])  # far first
    return [t[:4] for t in out]


def _hkl_str(hkl: Sequence[int]) -> str:
    return "".join(str(i) if i >= 0 else f"-{-i}" for i in hkl)


def wulff_figures(
    wulff: pd.DataFrame, shapes: Mapping, dft_frame: pd.DataFrame, dft_shapes: Mapping,
    order: Sequence[str] | None = None, bulks_per_figure: int = 6,
) -> list[go.Figure]:
    """Wulff shapes side by side: columns are bulks, the first row DFT, then one row per model
    (a projection of the front facets, each shape scaled to the same volume so that the shapes
    and not the sizes are compared; colour = Miller index, shaded by a light from the upper
    left). Under each shape: the area-weighted surface energy. ``wulff``/``shapes`` from
    :func:`surfbench.analysis.facets.wulff_analysis`, ``dft_frame``/``dft_shapes`` from
    :func:`dft_wulff`. Several figures when there are more than ``bulks_per_figure`` bulks."""
    if wulff.empty and dft_frame.empty:
        return []
    order = list(order) if order is not None else sorted(wulff["model"].unique())
    fp_of = wulff.drop_duplicates("model").set_index("model")["fingerprint"].to_dict() if not wulff.empty else {}
    elem = {**dict(zip(wulff["bulk_id"], wulff["element"])), **dict(zip(dft_frame.get("bulk_id", []), dft_frame.get("element", [])))}
    all_bulks = sorted(elem, key=lambda b: (elem[b], b))
    millers = set()
    for sh in [*shapes.values(), *dft_shapes.values()]:
        millers.update(_hkl_str(h) for h in sh.miller_list)
    palette = {m: FACET_COLOURS[i % len(FACET_COLOURS)] for i, m in enumerate(sorted(millers, key=_miller_key))}
    rank_of = {m: 1000 + i for i, m in enumerate(sorted(millers, key=_miller_key))}
    rows_src = ["DFT", *order]
    figs = []
    for start in range(0, len(all_bulks), bulks_per_figure):
        chunk = all_bulks[start:start + bulks_per_figure]
        labels = [elem[b] if sum(elem[x] == elem[b] for x in all_bulks) == 1 else f"{elem[b]} ({b})" for b in chunk]
        fig = make_subplots(rows=len(rows_src), cols=len(chunk), horizontal_spacing=0.01, vertical_spacing=0.012,
                            column_titles=labels)
        shown = set()
        traces, t_rows, t_cols = [], [], []
        for i, src in enumerate(rows_src):
            for j, b in enumerate(chunk):
                if src == "DFT":
                    shape = dft_shapes.get(b)
                    row = dft_frame[dft_frame["bulk_id"] == b]
                else:
                    shape = shapes.get((fp_of.get(src), b, "model"))
                    row = wulff[(wulff["model"] == src) & (wulff["bulk_id"] == b) & (wulff["source"] == "model")]
                r = row.iloc[0] if len(row) else None
                ax = dict(row=i + 1, col=j + 1)
                if shape is None:
                    why = r["problem"] if r is not None and isinstance(r["problem"], str) else "no data"
                    fig.add_annotation(text="no shape:<br>" + "<br>".join(_wrap(why, 22)), x=0, y=0, showarrow=False,
                                       font=dict(size=9, color="#a00"), **ax)
                    continue
                for hkl, xs, ys, bright in _project(shape):
                    key = _hkl_str(hkl)
                    frac = r["area_fraction"].get(key, math.nan) if r is not None and isinstance(r["area_fraction"], dict) else math.nan
                    e = shape.miller_energy_dict.get(tuple(hkl), math.nan)
                    traces.append(go.Scatter(
                        x=xs, y=ys, mode="lines", fill="toself", fillcolor=_shade(palette[key], bright),
                        line=dict(color="rgba(40,40,40,0.8)", width=0.8), name=f"({key})", legendgroup=key,
                        showlegend=False, hoveron="fills",
                        text=f"{src}, {labels[j]}: ({key}) γ = {e:.3f} {GAMMA_UNIT}, area fraction {frac:.2f}",
                        hoverinfo="text",
                    ))
                    t_rows.append(i + 1)
                    t_cols.append(j + 1)
                    shown.add(key)
                if r is not None and np.isfinite(r["weighted_surface_energy"]):
                    d = r["delta_weighted_gamma"] if src != "DFT" else math.nan
                    txt = f"γ̄ {r['weighted_surface_energy']:.2f}" + (f" ({d:+.2f})" if np.isfinite(d) else "")
                    fig.add_annotation(text=txt, x=0, y=-1.02, yanchor="top", showarrow=False, font=dict(size=11), **ax)
        for key in sorted(shown, key=_miller_key):  # legend: the unshaded colour of each facet family
            traces.append(go.Scatter(x=[None], y=[None], mode="markers", name=f"({key})", legendgroup=key,
                                     legendrank=rank_of[key], marker=dict(symbol="square", size=13, color=palette[key],
                                                                          line=dict(width=0.8, color="#333"))))
            t_rows.append(1)
            t_cols.append(1)
        if traces:
            fig.add_traces(traces, rows=t_rows, cols=t_cols)
        for i, src in enumerate(rows_src):  # row labels, horizontal, left of the first panel
            sub = fig.get_subplot(i + 1, 1)
            xa, ya = sub.xaxis.plotly_name.replace("axis", ""), sub.yaxis.plotly_name.replace("axis", "")
            fig.add_annotation(text="<b>DFT</b>" if src == "DFT" else src, xref=f"{xa} domain", yref=f"{ya} domain",
                               x=-0.06, y=0.55, xanchor="right", showarrow=False, font=dict(size=12))
        fig.update_xaxes(visible=False, range=[-1.05, 1.05], showgrid=False, zeroline=False)
        fig.update_yaxes(showticklabels=False, range=[-1.3, 0.95], showgrid=False, zeroline=False, showline=False,
                         scaleanchor="x", scaleratio=1)
        for k in range(1, len(rows_src) * len(chunk) + 1):  # each panel equal axes
            suffix = "" if k == 1 else str(k)
            fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
        ncol = len(chunk)
        _layout(fig, "Wulff shapes: DFT (top row) and each model<br><sup>same volume; colour: Miller index; "
                     f"γ̄: area-weighted γ ({GAMMA_UNIT}), model − DFT in brackets</sup>",
                width=230 + 165 * ncol + 90, height=90 + 172 * len(rows_src),
                legend=dict(title=dict(text="facet (hkl)"), x=1.01, y=1, xanchor="left", tracegroupgap=2),
                margin=dict(l=230, r=10, t=90, b=20), plot_bgcolor="white")
        figs.append(fig)
    return figs


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(str(text), width)[:4]


def wulff_display(wulff: pd.DataFrame, dft_frame: pd.DataFrame, order: Sequence[str] | None = None,
                  n_facets: int = 4) -> pd.DataFrame:
    """The Wulff comparison as strings: per bulk the DFT row and one row per model with the
    area-weighted gamma (J/m^2), its difference to DFT, the shape factor, the anisotropy and the
    largest facets with their area fractions."""
    order = list(order) if order is not None else sorted(wulff["model"].unique())
    rank = {m: i for i, m in enumerate(order)}
    rows = []

    def fractions(fr) -> str:
        if not isinstance(fr, dict):
            return "–"
        top = sorted(((k, v) for k, v in fr.items() if v > 0.005), key=lambda kv: -kv[1])[:n_facets]
        return ", ".join(f"({k}) {v:.2f}" for k, v in top)

    def num(v, fmt):
        return "–" if v is None or not np.isfinite(v) else format(v, fmt)

    elements = dict(zip(wulff["bulk_id"], wulff["element"]))
    elements.update(dict(zip(dft_frame.get("bulk_id", []), dft_frame.get("element", []))))
    counts = pd.Series(list(elements.values())).value_counts()
    for b in sorted(elements, key=lambda x: (elements[x], x)):
        d = dft_frame[dft_frame["bulk_id"] == b] if not dft_frame.empty else dft_frame
        label = elements[b] if counts[elements[b]] == 1 else f"{elements[b]} ({b})"
        if len(d):
            r = d.iloc[0]
            rows.append([label, "DFT", num(r["weighted_surface_energy"], ".3f"), "", num(r["shape_factor"], ".3f"),
                         num(r["anisotropy"], ".3f"), fractions(r["area_fraction"]), r["problem"] or ""])
        m = wulff[(wulff["bulk_id"] == b) & (wulff["source"] == "model")]
        for _, r in m.sort_values("model", key=lambda s: s.map(lambda x: rank.get(x, 1e9))).iterrows():
            rows.append([label, r["model"], num(r["weighted_surface_energy"], ".3f"), num(r["delta_weighted_gamma"], "+.3f"),
                         num(r["shape_factor"], ".3f"), num(r["anisotropy"], ".3f"), fractions(r["area_fraction"]),
                         r["problem"] or ""])
    return pd.DataFrame(rows, columns=["bulk", "source", f"weighted γ ({GAMMA_UNIT})", f"model − DFT ({GAMMA_UNIT})",
                                       "shape factor", "anisotropy", "largest facets: area fraction", "problem"])
