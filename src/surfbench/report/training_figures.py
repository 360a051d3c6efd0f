"""Figures and tables of the report's training section (:mod:`surfbench.report.sections.training`):
learning curves (paper Fig. S6/S7: error and cost against the training-set size, fine-tuned vs
from scratch), the Table I style comparison of zero-shot, fine-tuned and from-scratch models per
element and overall, and the evaluation protocols' table."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from surfbench.report.markup import esc, finite
from surfbench.report.style import ENERGY_UNIT, GAMMA_UNIT, MODEL_COLOURS, layout
from surfbench.training.curves import ZERO_SHOT

#: line style of a curve by kind
DASH = {"fine-tuned": "solid", "from scratch": "dash"}
#: bar pattern by kind: zero-shot dotted, fine-tuned plain, from scratch hatched
PATTERN = {ZERO_SHOT: ".", "fine-tuned": "", "from scratch": "/"}

ERROR_PANELS = (("gamma_rmse", f"γ RMSE ({GAMMA_UNIT})"), ("energy_rmse_ev_per_atom", f"energy RMSE ({ENERGY_UNIT})"),
                ("force_rmse_ev_per_a", "force RMSE (eV/Å)"))
COST_PANELS = (("wall_s", "training wall time (s)"), ("peak_rss_mb", "peak memory (MB)"),
               ("n_parameters", "parameters"))


def _panels(curves: pd.DataFrame, panels, title: str, zero_shot: bool) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[1] for p in panels], horizontal_spacing=0.08)
    trained = curves[curves["n_train"] > 0]
    for i, (curve, grp) in enumerate(trained.groupby("curve", sort=True)):
        colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
        kind = grp["kind"].iloc[0]
        label = grp["label"].iloc[0]
        for j, (col, _) in enumerate(panels, start=1):
            g = grp[grp[col].map(finite)]
            if g.empty:
                continue
            fig.add_trace(go.Scatter(
                x=g["n_train"], y=g[col].astype(float), mode="lines+markers", name=label, legendgroup=curve,
                showlegend=j == 1, line=dict(color=colour, dash=DASH.get(kind, "solid")),
                hovertemplate=f"{esc(label)}<br>n_train %{{x}}<br>%{{y:.4g}}<extra></extra>"), row=1, col=j)
        zs = curves[(curves["curve"] == curve) & (curves["n_train"] == 0)]
        if zero_shot and not zs.empty:
            xs = [grp["n_train"].min(), grp["n_train"].max()]
            for j, (col, _) in enumerate(panels, start=1):
                v = zs[col].iloc[0]
                if finite(v):
                    fig.add_trace(go.Scatter(
                        x=xs, y=[float(v)] * 2, mode="lines", name=f"{zs['model'].iloc[0]} zero-shot",
                        legendgroup=curve + "-0", showlegend=j == 1, line=dict(color=colour, dash="dot", width=1.5),
                        hovertemplate=f"{esc(zs['model'].iloc[0])} zero-shot<br>%{{y:.4g}}<extra></extra>"),
                        row=1, col=j)
    for j in range(1, len(panels) + 1):
        fig.update_xaxes(type="log", title_text="training frames", row=1, col=j)
        fig.update_yaxes(rangemode="tozero", row=1, col=j)
    return layout(fig, title, height=430, width=1350, legend=dict(orientation="h", y=-0.25, x=0))


def learning_curves(curves: pd.DataFrame) -> go.Figure:
    """Errors on the held-out slabs and test frames against the training-set size."""
    return _panels(curves, ERROR_PANELS,
                   "Learning curves: error against training-set size (dotted: the foundation, zero-shot)", True)


def cost_curves(curves: pd.DataFrame) -> go.Figure:
    """Training cost against the training-set size."""
    return _panels(curves, COST_PANELS, "Training cost against training-set size", False)


def comparison_bars(comp: pd.DataFrame) -> go.Figure:
    """gamma RMSE per element and overall, one bar per model (pattern: its kind)."""
    fig = go.Figure()
    elements = [e for e in comp["element"].unique() if e != "all"] + ["all"]
    for i, ((group, kind), g) in enumerate(comp.groupby(["group", "kind"], sort=False)):
        g = g.set_index("element").reindex(elements)
        fig.add_trace(go.Bar(
            x=elements, y=g["gamma_rmse"], name=f"{group} ({kind})", legendgroup=kind,
            marker=dict(color=MODEL_COLOURS[i % len(MODEL_COLOURS)], pattern_shape=PATTERN.get(kind, "")),
            hovertemplate=f"{esc(group)}<br>%{{x}}: γ RMSE %{{y:.3f}} {GAMMA_UNIT}<extra></extra>"))
    fig.update_layout(barmode="group", yaxis_title=f"γ RMSE ({GAMMA_UNIT})", xaxis_title="element")
    return layout(fig, "Zero-shot vs fine-tuned vs from scratch: γ RMSE on the held-out slabs", height=460,
                   width=1100, legend=dict(orientation="h", y=-0.2, x=0))


def comparison_display(comp: pd.DataFrame) -> pd.DataFrame:
    def f(v, fmt="{:.3f}"):
        return fmt.format(v) if finite(v) else "–"

    return pd.DataFrame({
        "element": comp["element"], "kind": comp["kind"], "model": comp["model"],
        f"γ RMSE ({GAMMA_UNIT})": comp["gamma_rmse"].map(f), f"γ MAE ({GAMMA_UNIT})": comp["gamma_mae"].map(f),
        "γ mean signed error": comp["gamma_mean_signed_error"].map(lambda v: f(v, "{:+.3f}")),
        "slabs (γ ok / total)": [f"{int(a)} / {int(b)}" for a, b in zip(comp["n_gamma"], comp["n_slabs"])],
        f"slab E RMSE ({ENERGY_UNIT})": comp["slab_rmse"].map(lambda v: f(v, "{:.4f}")),
        f"test E RMSE ({ENERGY_UNIT})": comp.get("energy_rmse_ev_per_atom", pd.Series(np.nan, index=comp.index))
        .map(lambda v: f(v, "{:.4f}")),
        "test F RMSE (eV/Å)": comp.get("force_rmse_ev_per_a", pd.Series(np.nan, index=comp.index)).map(f),
        "training frames": comp["n_train"].map(lambda v: str(int(v)) if finite(v) and v > 0 else "–"),
        "training wall (s)": comp.get("wall_s", pd.Series(np.nan, index=comp.index)).map(lambda v: f(v, "{:.0f}")),
    })


def curve_display(curves: pd.DataFrame) -> pd.DataFrame:
    def f(v, fmt="{:.3f}"):
        return fmt.format(v) if finite(v) else "–"

    return pd.DataFrame({
        "curve": curves["label"], "model": curves["model"], "training frames": curves["n_train"].astype(int),
        f"γ RMSE ({GAMMA_UNIT})": curves["gamma_rmse"].map(f),
        "γ mean signed error": curves["gamma_mean_signed_error"].map(lambda v: f(v, "{:+.3f}")),
        f"test E RMSE ({ENERGY_UNIT})": curves["energy_rmse_ev_per_atom"].map(lambda v: f(v, "{:.4f}")),
        "test F RMSE (eV/Å)": curves["force_rmse_ev_per_a"].map(f),
        "wall (s)": curves["wall_s"].map(lambda v: f(v, "{:.0f}")),
        "CPU (s)": curves["cpu_s"].map(lambda v: f(v, "{:.0f}")),
        "peak RSS (MB)": curves["peak_rss_mb"].map(lambda v: f(v, "{:.0f}")),
        "parameters": curves["n_parameters"].map(lambda v: f"{int(v):,}" if finite(v) else "–"),
    })


def protocols_display(protocols: pd.DataFrame) -> pd.DataFrame:
    """The protocol table's "all" rows (and per element) for the report."""
    from surfbench.report.protocol_console import short_label

    def f(v, fmt="{:.3f}"):
        return fmt.format(v) if finite(v) else "–"

    def ci(r, stat, fmt="{:.3f}"):
        return f"{f(r[stat], fmt)} [{f(r[stat + '_lo'], fmt)}, {f(r[stat + '_hi'], fmt)}]"

    rows = []
    for _, r in protocols.iterrows():
        kind = r["kind"] + (f", {int(r['n_folds'])} folds" if r["n_folds"] and r["n_folds"] > 1 else "")
        kind += f", saw {int(r['n_seen'])} of these slabs" if r["n_seen"] else ""
        facets = (f"{r['lowest_right']}/{r['n_elements']} · {r['lowest_right_tol']}/{r['n_elements']}"
                  if r["element"] == "all"
                  else f"{'yes' if r['lowest_right'] else 'no'} · {'yes' if r['lowest_right_tol'] else 'no'}")
        rows.append({"protocol": r["protocol"], "trained elements": r["elements"], "element": r["element"],
                     "model": short_label(r), "kind": kind, "judged (γ ok)": f"{r['n_judged']} ({r['n_ok']})",
                     f"γ RMSE ({GAMMA_UNIT}) [95 % CI]": ci(r, "gamma_rmse"),
                     "γ mean signed error [95 % CI]": ci(r, "gamma_mean_signed_error", "{:+.3f}"),
                     "RMSE on the common slabs": f"{f(r['rmse_common'])} (n = {r['n_common']})",
                     "lowest facet right (strict · within 0.025)": facets,
                     "fit wall (s)": f(r["wall_s"], "{:.1f}")})
    return pd.DataFrame(rows)


def protocols_html(protocols: pd.DataFrame, table: Callable[..., str]) -> str:
    """The evaluation-protocols subsection: every protocol's trained models beside the zero-shot
    models on the same judged slabs."""
    if protocols.empty:
        return ""
    allrows = protocols[protocols["element"] == "all"]
    per_el = protocols[protocols["element"] != "all"]
    return ("<h3>Evaluation protocols: trained models against zero-shot on the same slabs</h3>"
            "<p><b>no-surfaces</b>: no slab in training, judged on every slab of the trained elements; "
            "<b>mlearn-split</b>: the data's own split, training-split slabs trained on, judged on the test-split "
            "slabs; <b>facet-cv</b>: one model per element and facet, each slab judged by the model that never saw "
            "its facet (its γ from that model's own bulk energy). Within a protocol and set of trained elements, "
            "models may be ranked only by the RMSE on the common slabs (every row has a γ for them); a model that "
            "saw some of the judged slabs in its own training (the data's SNAP/qSNAP under facet-cv and "
            "no-surfaces) says so and is not a fair comparison there. Intervals: 95 % percentile bootstrap over "
            "the judged slabs.</p>" + table(protocols_display(allrows), align_numbers=False)
            + "<details><summary>per element</summary>" + table(protocols_display(per_el), align_numbers=False)
            + "</details>")
