"""Report section: the report's models on reference-value data sets (mSE21) with the
model-built protocol: errors against PBE and experiment (bootstrap intervals) per crystal
structure, the PBE-vs-experiment floor, a parity plot and a periodic table of the errors.
Reads the store only."""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from surfbench.analysis.reference_gamma import (
    failures,
    pbe_experiment_gap,
    reference_metrics,
    reference_predictions,
)
from surfbench.report.markup import html_table
from surfbench.report.section import ReportContext, Section
from surfbench.report.style import FONT, GAMMA_UNIT, TEMPLATE


def _with_ci(df: pd.DataFrame, stat: str) -> pd.Series:
    def one(row) -> str:
        v, lo, hi = row[stat], row[f"{stat}_lo"], row[f"{stat}_hi"]
        if v is None or math.isnan(v):
            return "–"
        return f"{v:.3f}" if math.isnan(lo) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"

    return df.apply(one, axis=1) if len(df) else pd.Series(dtype=object)


def reference_parity(preds: pd.DataFrame, order: Sequence[str], colours: Mapping[str, str]) -> go.Figure:
    """Model gamma against PBE (filled) and experiment (open), and PBE against experiment
    (grey crosses: the floor), one point per facet."""
    fig = go.Figure()
    facets = preds.drop_duplicates(["dataset", "record_id"])
    fig.add_trace(go.Scatter(x=facets["gamma_exp_j_per_m2"], y=facets["gamma_pbe_j_per_m2"], mode="markers",
                             name="PBE vs experiment", marker=dict(symbol="x", color="#888", size=8),
                             text=facets["record_id"], hovertemplate="%{text}: exp %{x:.3f}, PBE %{y:.3f}"))
    for m in order:
        d = preds[(preds["model"] == m) & preds["gamma_pred_j_per_m2"].notna()]
        if d.empty:
            continue
        for ref, column, symbol in (("PBE", "gamma_pbe_j_per_m2", "circle"),
                                    ("exp.", "gamma_exp_j_per_m2", "circle-open")):
            fig.add_trace(go.Scatter(x=d[column], y=d["gamma_pred_j_per_m2"], mode="markers", name=f"{m} vs {ref}",
                                     marker=dict(symbol=symbol, color=colours.get(m), size=8), text=d["record_id"],
                                     hovertemplate="%{text}: " + ref + " %{x:.3f}, model %{y:.3f}"))
    top = float(pd.concat([preds["gamma_exp_j_per_m2"], preds["gamma_pbe_j_per_m2"],
                           preds["gamma_pred_j_per_m2"]]).max(skipna=True) or 1.0) * 1.05
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(color="#bbb", dash="dash"),
                             showlegend=False, hoverinfo="skip"))
    fig.update_layout(template=TEMPLATE, font=FONT, width=760, height=620,
                      title=dict(text="Model-built γ against the reference values", x=0.5, xanchor="center"),
                      xaxis_title=f"reference γ ({GAMMA_UNIT})", yaxis_title=f"model (or PBE) γ ({GAMMA_UNIT})")
    return fig


def reference_ptable(preds: pd.DataFrame, model: str) -> go.Figure:
    """One model's gamma error against PBE per element (signed, J/m^2) on a periodic table;
    elements whose facet failed are listed in the title. Any number of elements (mSE21: 21)."""
    import pymatviz as pmv

    d = preds[preds["model"] == model]
    values = d.dropna(subset=["error_pbe_j_per_m2"]).groupby("element")["error_pbe_j_per_m2"].mean()
    failed = sorted(set(d["element"]) - set(values.index))
    if values.empty:
        values = pd.Series({"H": math.nan})
    bound = float(values.abs().max()) if values.notna().any() else 1.0
    fig = pmv.ptable_heatmap(values.to_dict(), colorscale="RdBu", cscale_range=(-bound, bound), fmt=".2f",
                             colorbar=dict(title=f"γ − γ<sub>PBE</sub> ({GAMMA_UNIT})"))
    title = f"{model}: γ error against PBE per element ({int(values.notna().sum())} elements)"
    if failed:
        title += f"<br><sub>failed: {', '.join(failed)}</sub>"
    fig.update_layout(title=dict(text=title, x=0.5, xanchor="center"), font=FONT, paper_bgcolor="white")
    return fig


def build(ctx: ReportContext) -> Section:
    """The section for the report's models (fingerprints in ``ctx.runs``) on every reference-value
    data set in the store."""
    store, runs, labels, order, colours = ctx.store, ctx.runs, ctx.labels, ctx.order, ctx.colours
    n_boot, seed, ci, table = ctx.n_boot, ctx.seed, ctx.ci, html_table
    frames = [store.reference_results(fingerprint=fp) for fp in runs["fingerprint"].unique()]
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if results.empty:
        return Section(payload={"reference": {}},
                       body="<p>No run of these models on a reference-value data set (e.g. <code>surfbench run "
                            "--dataset mse21 --protocol model-built</code>).</p>")
    results["model"] = results["fingerprint"].map(labels)
    preds = reference_predictions(results)
    m = reference_metrics(preds, n_boot=n_boot, seed=seed, ci=ci)
    gap = pbe_experiment_gap(preds, n_boot=n_boot, seed=seed, ci=ci)
    pct = f"{100 * ci:.0f} %"
    shown = m.assign(**{"ok/total": m["n_ok"].astype(str) + "/" + m["n_total"].astype(str),
                        f"RMSE [{pct}]": _with_ci(m, "rmse"), f"MAE [{pct}]": _with_ci(m, "mae"),
                        f"mean signed error [{pct}]": _with_ci(m, "mean_signed_error"),
                        "PBE−exp. RMSE, same facets": m["floor_rmse"].round(3),
                        "wall s": m["wall_s"].round(1)})
    columns = ["dataset", "model", "protocol", "crystal", "reference", "ok/total", f"RMSE [{pct}]", f"MAE [{pct}]",
               f"mean signed error [{pct}]", "PBE−exp. RMSE, same facets", "wall s"]
    floor = gap.assign(**{f"RMSE [{pct}]": _with_ci(gap, "rmse"), f"MAE [{pct}]": _with_ci(gap, "mae"),
                          f"mean signed error [{pct}]": _with_ci(gap, "mean_signed_error")})
    bad = failures(preds)
    body = ("<p>The model relaxes its own bulk, builds the facet's slab at its own lattice constant and relaxes it "
            "(protocol <code>model-built</code>); γ comes from its own energies. Errors are model − reference in "
            f"{GAMMA_UNIT}, with percentile-bootstrap {pct} intervals; failed facets are counted, never scored.</p>"
            + table(shown[columns])
            + "<p>The floor: PBE against experiment over all facets. A model trained on PBE data cannot be expected "
              "to do better than this against experiment.</p>"
            + table(floor[["crystal", "n", f"RMSE [{pct}]", f"MAE [{pct}]", f"mean signed error [{pct}]"]]))
    if not bad.empty:
        body += "<p>Failures: " + html.escape("; ".join(
            f"{r.model} {r.record_id}: {r.failure_kind}" for r in bad.itertuples())) + "</p>"
    figures = [("reference-parity", reference_parity(preds, order, colours),
                "Each model's γ against PBE (filled) and experiment (open); grey crosses: PBE against experiment.")]
    for mo in [o for o in order if o in set(preds["model"])]:
        figures.append((f"reference-ptable-{re.sub(r'[^A-Za-z0-9_-]+', '_', mo)}", reference_ptable(preds, mo),
                        f"{html.escape(mo)}: γ − γ<sub>PBE</sub> per element (blue: too low, red: too high)."))
    return Section(body=body, figures=figures,
                   tables={"reference-metrics": m, "reference-floor": gap, "reference-failures": bad},
                   payload={"reference": {"metrics": json.loads(m.to_json(orient="records")),  # NaN -> null
                                          "floor": json.loads(gap.to_json(orient="records"))}})
