"""Figures of the descriptor map and the out-of-domain distance.

* :func:`map_figure`: the kernel-PCA map of every structure (the paper's descriptor map),
  slabs coloured by |gamma error| (J/m^2) of a model picked from a menu, marker by the bulk
  lattice (fcc, bcc, hcp, diamond, other), bulk records as open grey markers, element labels
  at the centre of each element's points, hover with the record's numbers;
* :func:`distance_error_figure`: |gamma error| against the distance from the reference set,
  one colour per model, the Spearman rho with its interval in the legend;
* :func:`correlation_figure`: rho with its interval per model and reference set;
* :func:`correlation_table`: the Spearman rho of distance and |gamma error| per reference set and
  model (the report's section: :mod:`surfbench.report.sections.domain`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from surfbench.analysis.lattice import LATTICES
from surfbench.report.markup import esc, fmt
from surfbench.report.style import FONT, TEMPLATE, model_colours

#: marker of each bulk lattice (slabs take their bulk's)
LATTICE_SYMBOLS = {"fcc": "circle", "bcc": "square", "hcp": "hexagon", "diamond": "diamond", "other": "x"}
GAMMA_UNIT = "J/m²"
_COLOURSCALE = "Viridis"


def _joined(table: pd.DataFrame, slabs: pd.DataFrame, model: str) -> pd.DataFrame:
    """The map's slab rows with one model's gamma (J/m^2) and its error."""
    cols = ["record_id", "dft_gamma_j_per_m2", "gamma_pred_j_per_m2", "error_gamma_j_per_m2", "gamma_failure"]
    s = slabs.loc[slabs["model"] == model, [c for c in cols if c in slabs.columns]]
    out = table[table["kind"] == "slab"].merge(s, on="record_id", how="left")
    out["abs_error"] = np.abs(out["error_gamma_j_per_m2"].astype(float))
    return out


def _hover(df: pd.DataFrame, with_model: bool) -> list[str]:
    rows = []
    for r in df.itertuples():
        text = (f"<b>{esc(r.record_id)}</b><br>{esc(r.element)} {esc(r.miller or '')} · {esc(r.lattice)}"
                f"<br>distance {fmt(r.distance, 4)}")
        if with_model:
            failure = getattr(r, "gamma_failure", None)
            if isinstance(failure, str) and failure:
                text += f"<br>γ failed: {esc(failure)}"
            else:
                text += (f"<br>γ DFT {fmt(r.dft_gamma_j_per_m2)}, model {fmt(r.gamma_pred_j_per_m2)} {GAMMA_UNIT}"
                         f"<br>error {fmt(r.error_gamma_j_per_m2)} {GAMMA_UNIT}")
        rows.append(text)
    return rows


def map_figure(table: pd.DataFrame, slabs: pd.DataFrame, order: list[str], *,
               label_elements: list[str] | None = None, title: str = "") -> go.Figure:
    """The kernel-PCA map; a menu picks the model whose |gamma error| colours the slabs.

    ``table``: a map's rows (:class:`surfbench.analysis.descriptor_map.DescriptorMap`);
    ``slabs``: :func:`~surfbench.analysis.predictions.slab_predictions` with a ``model``
    column; ``label_elements``: elements labelled on the map (default: all).
    """
    fig = go.Figure()
    models = [m for m in order if m in set(slabs["model"])] if not slabs.empty else []
    cmax = 0.0
    joined = {m: _joined(table, slabs, m) for m in models}
    for j in joined.values():
        if j["abs_error"].notna().any():
            cmax = max(cmax, float(j["abs_error"].max()))
    lattices = [lat for lat in LATTICES if lat in set(table["lattice"])]
    owner: list[str | None] = []  # the model each trace belongs to (None: always shown)
    for lat in lattices:
        b = table[(table["kind"] == "bulk") & (table["lattice"] == lat)]
        if len(b):
            fig.add_trace(go.Scatter(
                x=b["pc1"], y=b["pc2"], mode="markers", name=f"bulk ({lat})", legendgroup="bulk",
                marker=dict(symbol=f"{LATTICE_SYMBOLS[lat]}-open", size=13, color="#555", line=dict(width=2)),
                hovertext=_hover(b, False), hoverinfo="text"))
            owner.append(None)
    if not models:  # no model: slabs in grey
        for lat in lattices:
            s = table[(table["kind"] == "slab") & (table["lattice"] == lat)]
            if len(s):
                fig.add_trace(go.Scatter(x=s["pc1"], y=s["pc2"], mode="markers", name=f"slab ({lat})",
                                         marker=dict(symbol=LATTICE_SYMBOLS[lat], size=9, color="#888"),
                                         hovertext=_hover(s, False), hoverinfo="text"))
                owner.append(None)
    for k, m in enumerate(models):
        j = joined[m]
        ok = j["abs_error"].notna()
        for lat in lattices:
            s = j[ok & (j["lattice"] == lat)]
            if len(s):
                fig.add_trace(go.Scatter(
                    x=s["pc1"], y=s["pc2"], mode="markers", name=f"slab ({lat})", legendgroup=f"slab-{lat}",
                    visible=k == 0, marker=dict(symbol=LATTICE_SYMBOLS[lat], size=10, color=s["abs_error"],
                                                coloraxis="coloraxis", line=dict(width=0.5, color="#333")),
                    hovertext=_hover(s, True), hoverinfo="text"))
                owner.append(m)
        bad = j[~ok]
        if len(bad):
            fig.add_trace(go.Scatter(
                x=bad["pc1"], y=bad["pc2"], mode="markers", name="slab, no model γ", visible=k == 0,
                marker=dict(symbol=[LATTICE_SYMBOLS.get(lat, "x") for lat in bad["lattice"]], size=10,
                            color="#d62728", line=dict(width=1, color="#d62728")),
                hovertext=_hover(bad, True), hoverinfo="text"))
            owner.append(m)
    elements = sorted(set(table["element"])) if label_elements is None else [e for e in label_elements
                                                                            if e in set(table["element"])]
    for el in elements:
        pts = table[table["element"] == el]
        fig.add_annotation(x=float(pts["pc1"].mean()), y=float(pts["pc2"].max()), text=f"<b>{esc(el)}</b>",
                           showarrow=False, yshift=16, font=dict(size=15, color="#222"))
    if models:
        buttons = [dict(label=m, method="update", args=[{"visible": [o is None or o == m for o in owner]}])
                   for m in models]
        fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=0.0, xanchor="left", y=1.13,
                                            yanchor="top", showactive=True)])
        fig.update_layout(coloraxis=dict(colorscale=_COLOURSCALE, cmin=0.0, cmax=cmax or 1.0,
                                         colorbar=dict(title=dict(text=f"|γ error|<br>({GAMMA_UNIT})"))))
    fig.update_layout(title=dict(text=title, x=0.98, xanchor="right"), template=TEMPLATE, font=FONT,
                      width=980, height=700, xaxis_title="kernel PC 1", yaxis_title="kernel PC 2",
                      legend=dict(x=1.16, xanchor="left"), margin=dict(t=110))
    return fig


def distance_error_figure(table: pd.DataFrame, slabs: pd.DataFrame, corr: pd.DataFrame, order: list[str], *,
                          reference: str = "", ci: float = 0.95) -> go.Figure:
    """|gamma error| (J/m^2) of each model against the slab's distance from the reference set."""
    fig = go.Figure()
    colours = model_colours(order)
    rho = corr.set_index("model") if len(corr) else pd.DataFrame()
    pct = f"{100 * ci:.0f}%"
    for m in order:
        j = _joined(table, slabs, m)
        j = j[j["abs_error"].notna() & np.isfinite(j["distance"].astype(float))]
        if j.empty:
            continue
        label = m
        if m in rho.index and np.isfinite(rho.loc[m, "rho"]):
            r = rho.loc[m]
            label = f"{m}: ρ = {r['rho']:+.2f} [{fmt(r['rho_lo'], 2)}, {fmt(r['rho_hi'], 2)}]"
        fig.add_trace(go.Scatter(x=j["distance"], y=j["abs_error"], mode="markers", name=label,
                                 marker=dict(color=colours[m], size=8,
                                             symbol=[LATTICE_SYMBOLS.get(lat, "x") for lat in j["lattice"]]),
                                 hovertext=_hover(j, True), hoverinfo="text"))
    fig.update_layout(title=dict(text=f"|γ error| against the distance from the reference set ({esc(reference)}); "
                                      f"Spearman ρ with its {pct} bootstrap interval", x=0.5, xanchor="center"),
                      template=TEMPLATE, font=FONT, width=1100, height=600,
                      xaxis_title="distance from the reference set (mean k-NN distance of unit site descriptors)",
                      yaxis_title=f"|γ model − γ DFT| ({GAMMA_UNIT})")
    return fig


def correlation_figure(corr: pd.DataFrame, ci: float = 0.95) -> go.Figure:
    """Spearman rho (pooled and within elements) with intervals, per model and reference set."""
    fig = go.Figure()
    refs = list(dict.fromkeys(corr["reference"]))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
    for i, ref in enumerate(refs):
        c = corr[corr["reference"] == ref]
        for what, col, dash in (("pooled", "rho", "circle"), ("within elements", "rho_within_element", "diamond")):
            fig.add_trace(go.Scatter(
                x=c[col], y=[f"{m}" for m in c["model"]], mode="markers", name=f"{ref}: {what}",
                marker=dict(symbol=dash, size=10, color=palette[i % len(palette)],
                            opacity=1.0 if what == "pooled" else 0.6),
                error_x=dict(type="data", symmetric=False, array=c[f"{col}_hi"] - c[col],
                             arrayminus=c[col] - c[f"{col}_lo"]),
                offsetgroup=f"{ref}-{what}"))
    fig.add_vline(x=0.0, line=dict(color="#888", dash="dot"))
    fig.update_layout(title=dict(text=f"Spearman ρ of distance and |γ error| with {100 * ci:.0f}% bootstrap intervals",
                                 x=0.5, xanchor="center"), template=TEMPLATE, font=FONT, width=1000,
                      height=160 + 40 * max(1, corr["model"].nunique()) * max(1, len(refs)),
                      xaxis=dict(title="Spearman ρ", range=[-1.05, 1.05]), scattermode="group")
    return fig


def correlation_table(maps, slabs: pd.DataFrame, order: list[str], *, n_boot: int = 2000, seed: int = 0,
                      ci: float = 0.95) -> pd.DataFrame:
    """One row per (reference set, model): Spearman rho of distance and |gamma error|."""
    from surfbench.analysis.domain import distance_error_correlation

    frames = []
    for _, dmap in maps:
        c = distance_error_correlation(slabs[slabs["model"].isin(order)], dmap.table[dmap.table["kind"] == "slab"],
                                       n_boot=n_boot, seed=seed, ci=ci)
        c.insert(0, "reference", dmap.settings.reference_name)
        c["model"] = pd.Categorical(c["model"], categories=order, ordered=True)
        frames.append(c.sort_values("model"))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["model"] = out["model"].astype(str)
    return out
