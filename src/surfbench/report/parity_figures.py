"""Figures of the errors per structure (Fig. 2a-d and S2 of Focassio, Freitas & Schleder 2024):
model-vs-DFT parity plots of bulk energy, slab energy and surface energy, the distribution of
the gamma error, and the correlation of the gamma errors between models.

Each takes the frames of :mod:`surfbench.analysis.predictions` (``bulks``, ``slabs``) of one data
set and protocol for any number of models; errors are model - DFT, failed structures are left
out and counted, never plotted as 0."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from surfbench.analysis.ranking import error_correlation_matrix, rmse
from surfbench.report.style import (
    ENERGY_UNIT,
    GAMMA_UNIT,
    MODEL_SYMBOLS,
    layout,
    miller_label,
    model_colours,
    model_marks,
    orders_and_colours,
)


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
        name = f"{shown}: RMSE {rmse(err):.3f}" + (f" ({n_all - len(d)} failed)" if n_all > len(d) else "")
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
    layout(fig, title + note, width=1450 if residual else 980, height=640,
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
    order, colours = orders_and_colours(slabs, order, colours)
    return _parity(slabs, "e_dft_per_atom_ev", "e_pred_per_atom_ev", label="slab energy", unit=ENERGY_UNIT,
                   order=order, colours=colours, title="Slab energy per atom: model vs DFT (right: error)",
                   with_miller=True, residual=True, marks=model_marks(slabs))


def parity_gamma(slabs: pd.DataFrame, order: Sequence[str] | None = None,
                 colours: Mapping[str, str] | None = None) -> go.Figure:
    """Fig. 2c: surface energy gamma, model vs DFT (J/m^2)."""
    order, colours = orders_and_colours(slabs, order, colours)
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
    order, colours = orders_and_colours(slabs, order, colours)
    marks = model_marks(slabs)
    fig = go.Figure()
    ticks = []
    for m in order:
        d = slabs[(slabs["model"] == m) & np.isfinite(slabs["error_gamma_j_per_m2"].astype(float))]
        e = d["error_gamma_j_per_m2"].astype(float)
        n_fail = int((slabs["model"] == m).sum()) - len(d)
        head = f"<b>{m}</b>" + (f"<br><i>{marks[m][len(m) + 2:-1]}</i>" if marks.get(m, m) != m else "")
        tick = f"{head}<br>RMSE {rmse(e):.3f}, mean signed {e.mean():+.3f}" if len(e) else f"{head}<br>no γ"
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
    layout(fig, "Surface energy error per model (box: quartiles and median, black line: mean)",
           width=1000, height=170 + 95 * len(order), margin=dict(l=300, r=30, t=60, b=70), violingap=0.1)
    fig.update_yaxes(title=None, categoryorder="array", categoryarray=ticks[::-1], tickfont=dict(size=12))
    fig.update_xaxes(title=f"γ error, model − DFT ({GAMMA_UNIT}); RMSE and mean signed error MSE in {GAMMA_UNIT}",
                     zeroline=False)
    return fig



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
    layout(fig, f"Correlation of the γ errors between models<br><sup>Pearson r over {n} common slabs</sup>",
           width=max(side + 330, 560), height=side + 200, margin=dict(l=260, r=40, t=80, b=200))
    fig.update_xaxes(tickangle=-35, showgrid=False)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", scaleratio=1, showgrid=False)
    return fig

