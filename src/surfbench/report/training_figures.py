"""The report's training section: learning curves (paper Fig. S6/S7: error and cost against
the training-set size, fine-tuned vs from scratch), the Table I style comparison of zero-shot,
fine-tuned and from-scratch models per element and overall, and which frames were held out.

Reads only the store (:mod:`surfbench.training.curves`). :func:`training_section` returns the
section's HTML, figures, tables (CSV) and JSON payload; :mod:`surfbench.report.html` places
them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from surfbench.report.run_figures import ENERGY_UNIT, GAMMA_UNIT, MODEL_COLOURS, _layout
from surfbench.training.curves import ZERO_SHOT, comparison_table, curve_table, held_out_table, protocol_table

#: line style of a curve by kind
DASH = {"fine-tuned": "solid", "from scratch": "dash"}
#: bar pattern by kind: zero-shot dotted, fine-tuned plain, from scratch hatched
PATTERN = {ZERO_SHOT: ".", "fine-tuned": "", "from scratch": "/"}

ERROR_PANELS = (("gamma_rmse", f"γ RMSE ({GAMMA_UNIT})"), ("energy_rmse_ev_per_atom", f"energy RMSE ({ENERGY_UNIT})"),
                ("force_rmse_ev_per_a", "force RMSE (eV/Å)"))
COST_PANELS = (("wall_s", "training wall time (s)"), ("peak_rss_mb", "peak memory (MB)"),
               ("n_parameters", "parameters"))


def _e(x: object) -> str:
    return html.escape("" if x is None else str(x))


def _finite(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v))


def _panels(curves: pd.DataFrame, panels, title: str, zero_shot: bool) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[1] for p in panels], horizontal_spacing=0.08)
    trained = curves[curves["n_train"] > 0]
    for i, (curve, grp) in enumerate(trained.groupby("curve", sort=True)):
        colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
        kind = grp["kind"].iloc[0]
        label = grp["label"].iloc[0]
        for j, (col, _) in enumerate(panels, start=1):
            g = grp[grp[col].map(_finite)]
            if g.empty:
                continue
            fig.add_trace(go.Scatter(
                x=g["n_train"], y=g[col].astype(float), mode="lines+markers", name=label, legendgroup=curve,
                showlegend=j == 1, line=dict(color=colour, dash=DASH.get(kind, "solid")),
                hovertemplate=f"{_e(label)}<br>n_train %{{x}}<br>%{{y:.4g}}<extra></extra>"), row=1, col=j)
        zs = curves[(curves["curve"] == curve) & (curves["n_train"] == 0)]
        if zero_shot and not zs.empty:
            xs = [grp["n_train"].min(), grp["n_train"].max()]
            for j, (col, _) in enumerate(panels, start=1):
                v = zs[col].iloc[0]
                if _finite(v):
                    fig.add_trace(go.Scatter(
                        x=xs, y=[float(v)] * 2, mode="lines", name=f"{zs['model'].iloc[0]} zero-shot",
                        legendgroup=curve + "-0", showlegend=j == 1, line=dict(color=colour, dash="dot", width=1.5),
                        hovertemplate=f"{_e(zs['model'].iloc[0])} zero-shot<br>%{{y:.4g}}<extra></extra>"), row=1, col=j)
    for j in range(1, len(panels) + 1):
        fig.update_xaxes(type="log", title_text="training frames", row=1, col=j)
        fig.update_yaxes(rangemode="tozero", row=1, col=j)
    return _layout(fig, title, height=430, width=1350, legend=dict(orientation="h", y=-0.25, x=0))


def learning_curves(curves: pd.DataFrame) -> go.Figure:
    """Errors on the held-out slabs and test frames against the training-set size."""
    return _panels(curves, ERROR_PANELS, "Learning curves: error against training-set size (dotted: the foundation, zero-shot)", True)


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
            hovertemplate=f"{_e(group)}<br>%{{x}}: γ RMSE %{{y:.3f}} {GAMMA_UNIT}<extra></extra>"))
    fig.update_layout(barmode="group", yaxis_title=f"γ RMSE ({GAMMA_UNIT})", xaxis_title="element")
    return _layout(fig, "Zero-shot vs fine-tuned vs from scratch: γ RMSE on the held-out slabs", height=460,
                   width=1100, legend=dict(orientation="h", y=-0.2, x=0))


def comparison_display(comp: pd.DataFrame) -> pd.DataFrame:
    def f(v, fmt="{:.3f}"):
        return fmt.format(v) if _finite(v) else "–"

    return pd.DataFrame({
        "element": comp["element"], "kind": comp["kind"], "model": comp["model"],
        f"γ RMSE ({GAMMA_UNIT})": comp["gamma_rmse"].map(f), f"γ MAE ({GAMMA_UNIT})": comp["gamma_mae"].map(f),
        "γ mean signed error": comp["gamma_mean_signed_error"].map(lambda v: f(v, "{:+.3f}")),
        "slabs (γ ok / total)": [f"{int(a)} / {int(b)}" for a, b in zip(comp["n_gamma"], comp["n_slabs"])],
        f"slab E RMSE ({ENERGY_UNIT})": comp["slab_rmse"].map(lambda v: f(v, "{:.4f}")),
        f"test E RMSE ({ENERGY_UNIT})": comp.get("energy_rmse_ev_per_atom", pd.Series(np.nan, index=comp.index)).map(lambda v: f(v, "{:.4f}")),
        "test F RMSE (eV/Å)": comp.get("force_rmse_ev_per_a", pd.Series(np.nan, index=comp.index)).map(f),
        "training frames": comp["n_train"].map(lambda v: str(int(v)) if _finite(v) and v > 0 else "–"),
        "training wall (s)": comp.get("wall_s", pd.Series(np.nan, index=comp.index)).map(lambda v: f(v, "{:.0f}")),
    })


def curve_display(curves: pd.DataFrame) -> pd.DataFrame:
    def f(v, fmt="{:.3f}"):
        return fmt.format(v) if _finite(v) else "–"

    return pd.DataFrame({
        "curve": curves["label"], "model": curves["model"], "training frames": curves["n_train"].astype(int),
        f"γ RMSE ({GAMMA_UNIT})": curves["gamma_rmse"].map(f),
        "γ mean signed error": curves["gamma_mean_signed_error"].map(lambda v: f(v, "{:+.3f}")),
        f"test E RMSE ({ENERGY_UNIT})": curves["energy_rmse_ev_per_atom"].map(lambda v: f(v, "{:.4f}")),
        "test F RMSE (eV/Å)": curves["force_rmse_ev_per_a"].map(f),
        "wall (s)": curves["wall_s"].map(lambda v: f(v, "{:.0f}")),
        "CPU (s)": curves["cpu_s"].map(lambda v: f(v, "{:.0f}")),
        "peak RSS (MB)": curves["peak_rss_mb"].map(lambda v: f(v, "{:.0f}")),
        "parameters": curves["n_parameters"].map(lambda v: f"{int(v):,}" if _finite(v) else "–"),
    })


def protocols_display(protocols: pd.DataFrame) -> pd.DataFrame:
    """The protocol table's "all" rows (and per element) for the report."""
    from surfbench.report.protocol_console import short_label

    def f(v, fmt="{:.3f}"):
        return fmt.format(v) if _finite(v) else "–"

    def ci(r, stat, fmt="{:.3f}"):
        return f"{f(r[stat], fmt)} [{f(r[stat + '_lo'], fmt)}, {f(r[stat + '_hi'], fmt)}]"

    rows = []
    for _, r in protocols.iterrows():
        kind = r["kind"] + (f", {int(r['n_folds'])} folds" if r["n_folds"] and r["n_folds"] > 1 else "")
        kind += f", saw {int(r['n_seen'])} of these slabs" if r["n_seen"] else ""
        facets = (f"{r['lowest_right']}/{r['n_elements']} · {r['lowest_right_tol']}/{r['n_elements']}" if r["element"] == "all"
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


@dataclass
class TrainingSection:
    body: str = ""
    figures: list[tuple[str, go.Figure, str]] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    payload: dict = field(default_factory=dict)


def convergence_html(store, curves: pd.DataFrame) -> str:
    """Which trained models did not converge (their tables' mark, with how they stopped), and
    the deep trainings not finished (killed or running: :func:`surfbench.training.epochs.unfinished_runs`)."""
    from pathlib import Path

    from surfbench.training.epochs import unfinished_runs
    from surfbench.training.pipeline import TRAINED_DIR

    marks = curves[curves["not_converged"].fillna("").astype(str) != ""] if "not_converged" in curves else curves.iloc[:0]
    out = []
    if len(marks):
        out.append(f'<p class="note"><b>{len(marks)} of {int((curves["n_train"] > 0).sum())} trained models did not '
                   "converge</b> (marked NOT CONVERGED, with how they stopped: epoch-cap, iteration-cap or "
                   "budget-stopped): their numbers show where a training stands, not what the method reaches. "
                   + _e(", ".join(marks["model"])) + ".</p>")
    runs = unfinished_runs(Path(store.path).parent / TRAINED_DIR)
    if runs:
        out.append('<p class="note">Trainings not finished (their last checkpoint is no recorded model; the same '
                   "<code>surfbench train</code> command with <code>--resume</code> continues each): " + _e("; ".join(
                       f"{r['name']}: {r['state']} after {r['epochs_done']} epochs" for r in runs)) + ".</p>")
    return "".join(out)


def training_section(store, dataset: str, table: Callable[..., str]) -> TrainingSection:
    """The section for ``dataset``; ``table`` renders a DataFrame as HTML (the report's)."""
    curves = curve_table(store, dataset)
    out = TrainingSection()
    if curves.empty:
        out.body = ("<p>No model trained on this data set is recorded in the store. <code>surfbench train --method M "
                    "--from scratch|MODEL --elements El</code> trains one (a learning curve with <code>--sizes</code>), "
                    "evaluates it on the held-out slabs and records its cost; this section then compares zero-shot, "
                    "fine-tuned and from-scratch models.</p>")
        return out
    comp = comparison_table(store, dataset)
    held = held_out_table(store, dataset)
    out.tables = {"training-comparison": comp, "training-curves": curves, "training-held-out": held}
    n_leak = int(held["training frames equal to an evaluated slab"].sum()) if not held.empty else 0
    incl = held[held["surfaces included"]] if not held.empty else held
    protocols = protocol_table(store, dataset)
    if not protocols.empty:
        out.tables["training-protocols"] = protocols
    parts = [convergence_html(store, curves), protocols_html(protocols, table),
             "<h3>Held-out frames</h3>",
             "<p>A trained model is evaluated on the slabs of its elements in this data set. Under the no-surfaces "
             "protocol (the default) no frame of "
             "those slabs is trained or validated on: frames of the group \"Surface\", unlabelled frames with a vacuum "
             "gap (the Ni/Cu extxyz training frames) and any frame whose structure equals an evaluated slab are held "
             "out. Independent check from the store: training frames whose structure hash equals an evaluated slab "
             f"record: <b>{n_leak}</b>.</p>"]
    if len(incl):
        parts.append(f'<p class="note">Surfaces were included in training on request (--include-surfaces) for: '
                     f"{_e(', '.join(incl['curve']))}. Their γ errors are not held-out errors.</p>")
    held_show = held.drop(columns=["held-out frames"]) if not held.empty else held
    parts.append(table(held_show, align_numbers=False))
    if not held.empty:
        parts.append("<details><summary>held-out frames per curve (file#index)</summary>" + "".join(
            f"<p><b>{_e(r['curve'])}</b>: {_e(r['held-out frames']) or 'none'}</p>" for _, r in held.iterrows())
            + "</details>")
    if not comp.empty:
        out.figures.append(("training-comparison", comparison_bars(comp),
                            "γ RMSE per element and over all trained elements: every zero-shot model in the store, and "
                            "the largest model of each fine-tuning and from-scratch curve, on the same held-out slabs."))
        parts.append("<h3>Zero-shot vs fine-tuned vs from scratch (Table I)</h3>"
                     "<p>Per element and overall (“all”: the slabs of every trained element; for trained models the "
                     "per-element models of one method, mode and preset pooled). Test E/F: energy per atom and force "
                     "components on the data's test frames (never trained on).</p>" + table(comparison_display(comp)))
    out.figures.append(("learning-curves", learning_curves(curves),
                        "Learning curves (paper Fig. S6/S7): each model is trained on a nested random subset of the "
                        "training frames (a larger subset contains the smaller ones; same validation frames) and "
                        "evaluated on the held-out slabs (γ) and the test frames (energy per atom, forces). Solid: "
                        "fine-tuned; dashed: from scratch; dotted: the foundation model zero-shot."))
    out.figures.append(("training-cost", cost_curves(curves),
                        "Training cost: wall time of the training run (s), its peak resident memory (MB; of the "
                        "training subprocess, or of the whole process for in-process drivers) and trainable "
                        "parameters, against the training-set size."))
    parts.append("<h3>Learning curves</h3>" + table(curve_display(curves), align_numbers=False))
    out.body = "".join(parts)
    out.payload = {"n_trainings": int((curves["n_train"] > 0).sum()), "training_frames_equal_to_evaluated_slabs": n_leak,
                   "curves": sorted(curves["curve"].unique().tolist())}
    return out
