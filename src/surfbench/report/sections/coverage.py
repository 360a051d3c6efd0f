"""The coverage section: per model the structures evaluated, failed and in total, the failure
kinds, compute time and device."""

from __future__ import annotations

import pandas as pd

from surfbench.report.markup import html_table
from surfbench.report.outputs import records_of
from surfbench.report.section import ReportContext, Section
from surfbench.report.style import BAD


def build(ctx: ReportContext) -> Section:
    """The coverage table (failed counts in red)."""
    coverage = ctx.coverage
    cov = pd.DataFrame({
        "model": coverage["model"],
        **{f"{q} ok / failed / total": [f"{r[f'{q}_n_ok']} / {r[f'{q}_n_failed']} / {r[f'{q}_n_total']}"
                                       for _, r in coverage.iterrows()] for q in ("bulk", "slab", "gamma")},
        "failure kinds (count)": coverage["failures"].replace("", "none"),
        "compute time (s)": coverage["wall_s"].map(lambda v: f"{v:.1f}"),
        "device": coverage["devices"],
    })
    cfill = pd.DataFrame("white", index=cov.index, columns=cov.columns)
    for i, r in coverage.iterrows():
        for q in ("bulk", "slab", "gamma"):
            if r[f"{q}_n_failed"]:
                cfill.loc[i, f"{q} ok / failed / total"] = BAD
    body = ("<p>Structures evaluated per model. A γ fails when the slab fails, when its bulk "
            "reference failed or was not evaluated, or when the slab has no bulk reference.</p>"
            + html_table(cov, cfill))
    return Section(body=body, tables={"coverage": coverage, "failures": ctx.fails},
                   payload={"coverage": records_of(coverage), "failures": records_of(ctx.fails)})
