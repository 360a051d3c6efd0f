"""The relaxation section: for every model with a relaxed run, the gamma error (J/m^2) split
into its static part (DFT geometry) and its relaxation part. Reads the store only."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from surfbench.analysis.relaxation import relaxation_split, split_summary
from surfbench.report.markup import html_table
from surfbench.report.section import ReportContext, Section
from surfbench.report.style import FONT, TEMPLATE


def _relaxed_protocol(store, dataset: str, fingerprint: str) -> str | None:
    """The relaxed protocol with the most results for this model (defaults preferred)."""
    runs = store.runs()
    runs = runs[(runs["dataset"] == dataset) & (runs["fingerprint"] == fingerprint)
                & runs["protocol"].str.startswith("relaxed")]
    if runs.empty:
        return None
    runs = runs.assign(default=runs["protocol"] == "relaxed").sort_values(["default", "n"], ascending=False)
    return str(runs["protocol"].iloc[0])


def build(ctx: ReportContext) -> Section:
    """Split of the gamma error into static and relaxation parts for every model with a relaxed run."""
    store, dataset, labels, order, table = ctx.store, ctx.dataset, ctx.labels, ctx.order, html_table
    parts = []
    for fp, label in labels.items():
        proto = _relaxed_protocol(store, dataset, fp)
        if proto is None:
            continue
        split = relaxation_split(store.results(dataset, fp, "static"), store.results(dataset, fp, proto))
        split["model"] = label
        split["relaxed_protocol"] = proto
        parts.append(split)
    if not parts:
        return Section(payload={"relaxation": {}},
                       body="<p>No relaxed run in the store. <code>surfbench run --protocol relaxed</code> relaxes "
                            "each bulk (positions and cell) and each DFT slab (positions, in-plane cell scaled to the "
                            "model's bulk lattice) with the model and splits the γ error into its static and "
                            "relaxation parts.</p>")
    split = pd.concat(parts, ignore_index=True)
    summary = split_summary(split)
    summary["model"] = pd.Categorical(summary["model"], [m for m in order if m in set(summary["model"])] +
                                      sorted(set(summary["model"]) - set(order)))
    summary = summary.sort_values("model")
    show = pd.DataFrame({
        "model": summary["model"].astype(str), "slabs": [f"{a}/{b}" for a, b in zip(summary["n"], summary["n_slabs"])],
        "total RMSE": summary["total_rmse"], "total mean signed error": summary["total_mean_signed_error"],
        "static RMSE": summary["static_rmse"], "static mean signed error": summary["static_mean_signed_error"],
        "relaxation RMSE": summary["relaxation_rmse"],
        "relaxation mean signed error": summary["relaxation_mean_signed_error"],
        "median steps": summary["median_steps"], "median RMSD (Å)": summary["median_rmsd_a"],
        "relaxed failures": summary["relaxed_failures"],
    })
    fig = go.Figure()
    for part, colour in (("static", "#0072B2"), ("relaxation", "#E69F00"), ("total", "#555555")):
        fig.add_trace(go.Bar(x=show["model"], y=summary[f"{part}_mean_signed_error"], name=f"{part} (mean signed)",
                             marker_color=colour,
                             hovertemplate="%{x}: %{y:+.3f} J/m²<extra>" + part + "</extra>"))
    fig.update_layout(template=TEMPLATE, font=FONT, barmode="group", height=420, width=900,
                      yaxis_title="mean signed γ error (J/m²)",
                      title="γ error split: total (relaxed − DFT) = static (DFT geometry) + relaxation")
    body = ("<p>Each bulk is relaxed with the model (positions and cell, ASE FrechetCellFilter); each DFT slab keeps "
            "its atoms and is scaled in-plane to the model's bulk lattice (isotropic, from the volume per atom), then "
            "its positions are relaxed. Per slab, total = γ<sub>relaxed</sub> − γ<sub>DFT</sub> is exactly static "
            "(γ<sub>static</sub> − γ<sub>DFT</sub>) + relaxation (γ<sub>relaxed</sub> − γ<sub>static</sub>); the "
            "table uses the slabs with both (J/m²). Protocols: "
            + html.escape(", ".join(sorted(set(split["relaxed_protocol"])))) + ".</p>" + table(show))
    return Section(body=body, figures=[("relaxation-split", fig, "Mean signed γ error per part and model.")],
                   tables={"relaxation-split": split, "relaxation-summary": summary.astype({"model": str})},
                   payload={"relaxation": {"summary": summary.astype({"model": str}).to_dict(orient="records")}})
