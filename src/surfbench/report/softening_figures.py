"""Figures of the softening study (Deng et al. 2025, Fig. 1 style): force parity and energy
parity with the fitted slopes, and the slopes per element for forces, energies and gamma."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from surfbench.data.frames import Frame
from surfbench.report.style import FONT, MODEL_COLOURS, TEMPLATE


def _colour(models: Sequence[str]) -> dict[str, str]:
    return {m: MODEL_COLOURS[i % len(MODEL_COLOURS)] for i, m in enumerate(models)}


def force_components(frames: Sequence[Frame], ids: Sequence[str], predictions: pd.DataFrame,
                     max_points: int = 4000, seed: int = 0) -> pd.DataFrame:
    """DFT and predicted force components (eV/Angstrom) per model, at most ``max_points`` per
    model (seeded subsample, for plotting only; the slopes use every component)."""
    dft = dict(zip(ids, frames))
    rng = np.random.default_rng(seed)
    parts = []
    for model, pred in predictions[predictions["status"] == "ok"].groupby("model", sort=True):
        xs, ys, els = [], [], []
        for fid, text in zip(pred["frame_id"], pred["forces_ev_per_a"]):
            f = dft.get(fid)
            if f is None or f.forces_ev_per_a is None or not isinstance(text, str):
                continue
            xs.append(np.asarray(f.forces_ev_per_a, dtype=float).ravel())
            ys.append(np.asarray(json.loads(text), dtype=float).ravel())
            els.append(np.full(xs[-1].size, f.element))
        if not xs:
            continue
        x, y, el = np.concatenate(xs), np.concatenate(ys), np.concatenate(els)
        keep = rng.permutation(x.size)[:max_points]
        parts.append(pd.DataFrame({"model": model, "element": el[keep], "f_dft": x[keep], "f_pred": y[keep]}))
    if not parts:
        return pd.DataFrame(columns=["model", "element", "f_dft", "f_pred"])
    return pd.concat(parts, ignore_index=True)


def _parity(points: pd.DataFrame, slopes: pd.DataFrame, x: str, y: str, slope_col: str, unit: str,
            title: str) -> go.Figure:
    models = sorted(points["model"].unique())
    colours = _colour(models)
    fig = go.Figure()
    lim = float(np.nanmax(np.abs(points[[x, y]].to_numpy()))) if len(points) else 1.0
    fig.add_trace(go.Scatter(x=[-lim, lim], y=[-lim, lim], mode="lines", line=dict(color="#888", dash="dash"),
                             name="y = x", hoverinfo="skip"))
    for m in models:
        p = points[points["model"] == m]
        k = slopes.loc[slopes["model"] == m, slope_col]
        k = float(k.iloc[0]) if len(k) else float("nan")
        fig.add_trace(go.Scattergl(x=p[x], y=p[y], mode="markers", name=f"{m} (k = {k:.3f})", legendgroup=m,
                                   marker=dict(size=4, opacity=0.45, color=colours[m]),
                                   text=p.get("label", p["element"]),
                                   hovertemplate=f"{m}<br>%{{text}}<br>DFT %{{x:.3f}}<br>model %{{y:.3f}} {unit}"
                                                 "<extra></extra>"))
        if np.isfinite(k):
            fig.add_trace(go.Scatter(x=[-lim, lim], y=[-k * lim, k * lim], mode="lines", legendgroup=m,
                                     showlegend=False, line=dict(color=colours[m], width=1.5), hoverinfo="skip"))
    fig.update_layout(template=TEMPLATE, font=FONT, title=title, width=620, height=560,
                      xaxis_title=f"DFT ({unit})", yaxis_title=f"model ({unit})")
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def force_parity(points: pd.DataFrame, overall_slopes: pd.DataFrame) -> go.Figure:
    return _parity(points, overall_slopes, "f_dft", "f_pred", "force_slope", "eV/Å",
                   "Forces: model vs DFT, slope k_F through the origin")


def energy_parity(table: pd.DataFrame, overall_slopes: pd.DataFrame) -> go.Figure:
    pts = table[table["status"] == "ok"].dropna(subset=["de_dft_ev_per_atom", "de_pred_ev_per_atom"]).copy()
    pts["label"] = pts["frame_id"] + " (" + pts["group"] + ")"
    return _parity(pts, overall_slopes, "de_dft_ev_per_atom", "de_pred_ev_per_atom", "energy_slope", "eV/atom",
                   "Energies relative to the bulk reference: model vs DFT, slope k_E")


def slope_bars(element_slopes: pd.DataFrame, gamma_slopes: pd.DataFrame) -> go.Figure:
    """Force and energy slopes per element, and the gamma slope per model, with intervals."""
    models = sorted(element_slopes["model"].unique()) if len(element_slopes) else sorted(gamma_slopes["model"].unique())
    colours = _colour(models)
    fig = make_subplots(rows=1, cols=3, subplot_titles=("forces k_F", "energies k_E", "surface energies k_γ"),
                        column_widths=[0.4, 0.4, 0.2])
    for col, (what, df, xcol) in enumerate((("force_slope", element_slopes, "element"),
                                            ("energy_slope", element_slopes, "element"),
                                            ("gamma_slope", gamma_slopes, None)), start=1):
        for m in models:
            d = df[df["model"] == m]
            if d.empty:
                continue
            xs = d[xcol] if xcol else ["all slabs"] * len(d)
            fig.add_trace(go.Bar(
                x=xs, y=d[what], name=m, legendgroup=m, showlegend=col == 1, marker_color=colours[m],
                error_y=dict(type="data", symmetric=False, array=d[f"{what}_hi"] - d[what],
                             arrayminus=d[what] - d[f"{what}_lo"]),
                hovertemplate=f"{m}<br>%{{x}}: k = %{{y:.3f}}<extra></extra>"), row=1, col=col)
        fig.add_hline(y=1.0, line=dict(color="#555", dash="dash"), row=1, col=col)
    fig.update_layout(template=TEMPLATE, font=FONT, barmode="group", width=1100, height=440,
                      title="Softening slopes (model vs DFT, through the origin; 1 = no softening; "
                            "95% bootstrap intervals)")
    return fig
