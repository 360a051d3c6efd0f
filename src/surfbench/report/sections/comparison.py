"""The model comparison section (Table I): every model's errors with bootstrap intervals, the
paired ranking of the comparable models on their common slabs and the pairs of models; the
metrics overall, per element and per Miller index go to the CSV and JSON files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from surfbench.report.comparison_figures import comparison_display, comparison_table_figure
from surfbench.report.markup import esc, html_table
from surfbench.report.outputs import records_of
from surfbench.report.section import ReportContext, Section
from surfbench.report.style import GOOD, NEAR


def build(ctx: ReportContext) -> Section:
    """Table I as an HTML table and a plotly table (figures folder), the pairs of models."""
    comp, pairs, pct = ctx.comp, ctx.pairs, ctx.pct
    disp = comparison_display(ctx.comparison, ctx.ci)
    g = pairs[pairs["quantity"] == "gamma"] if not pairs.empty else pairs
    pair_rows = pd.DataFrame({
        "model A (lower RMSE)": g["model_a"], "model B": g["model_b"],
        "ΔRMSE γ, A − B (J/m²)": g["delta_rmse"].map(lambda v: f"{v:+.3f}"),
        f"{pct} CI": [f"[{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) else "–" for lo, hi in zip(g["lo"], g["hi"])],
        "distinguishable": g["distinguishable"].map(lambda d: "yes" if d else "no"),
    }) if len(g) else pd.DataFrame()
    fills = pd.DataFrame("white", index=pair_rows.index, columns=pair_rows.columns) if len(pair_rows) else None
    if fills is not None:
        fills["distinguishable"] = [GOOD if d else NEAR for d in g["distinguishable"]]
    n_common = comp.n_common if comp.ranked else 0
    others = (f" {esc(comp.note())}" if comp.note() else "")
    boot = ctx.meta["bootstrap"]
    body = (
        f"<p>RMSE of each model over its own successes with percentile-bootstrap {pct} confidence intervals "
        f"({boot['n_boot']} resamples of the slabs / bulks, seed {boot['seed']}). "
        + (f"Rank, its interval, P(best) and the RMSE on the common slabs come from a paired bootstrap of the "
           f"{len(comp.ranked_models)} comparable models with a γ (those that evaluated all {comp.n_slabs} slabs) "
           f"over the {n_common} slabs that every one of them has a γ for; two models are <i>not "
           "distinguishable</i> when the interval of their paired RMSE difference contains 0." if comp.ranked else
           f"{esc(comp.summary()[0].upper() + comp.summary()[1:])}.")
        + others + "</p>"
        + html_table(disp)
        + (f"<h3>Pairs of models (γ, paired bootstrap over {n_common} common slabs)</h3>"
           + html_table(pair_rows, fills) if len(pair_rows) else "")
    )
    return Section(
        body=body, files_only=[("comparison-table", comparison_table_figure(ctx.comparison, ctx.dataset, ctx.ci))],
        tables={"metrics-overall": ctx.overall, "metrics-per-element": ctx.per_element,
                "metrics-per-miller": ctx.per_miller, "comparison": ctx.comparison, "comparison-pairs": pairs},
        payload={"metrics": {"overall": records_of(ctx.overall), "per_element": records_of(ctx.per_element),
                             "per_miller": records_of(ctx.per_miller)},
                 "comparison": records_of(ctx.comparison), "comparison_pairs": records_of(pairs)})
