"""The molecular-dynamics stability section: how verdicts are decided, a verdict table (element x
model) per settings, per model a figure of temperature (K) and energy per atom (eV/atom) against
time (ps), and the numbers of every run. Reads only the store's ``md_runs`` table."""

from __future__ import annotations

import html

import pandas as pd

from surfbench.report.markup import html_table, slug
from surfbench.report.md_figures import (
    BAD,
    GOOD,
    details_table,
    load_md,
    md_payload,
    temperature_energy_figure,
    verdict_matrix,
)
from surfbench.report.section import ReportContext, Section


def build(ctx: ReportContext) -> Section:
    """The verdict tables and one temperature/energy figure per model with MD runs."""
    df = load_md(ctx.store, ctx.dataset, ctx.labels)
    out = Section(payload={"md_runs": md_payload(df)})
    if df.empty:
        out.body = ("<p>No MD stability runs of these models on this data set in the store. "
                    "<code>surfbench md --model M</code> runs NVT dynamics of the worst slab of each element at "
                    "0.8 × the melting point and stores a verdict per run.</p>")
        return out
    order = ctx.order
    models = [m for m in order if m in set(df["label"])] + sorted(set(df["label"]) - set(order))
    for m in models:
        out.figures.append((f"md-{slug(m)}", temperature_energy_figure(ctx.store, df, m),
                            f"{html.escape(m)}: temperature and total energy per atom during each NVT run (dotted: the "
                            "target, 0.8 × the melting point unless set otherwise). A run that ends early stopped at a "
                            "failure."))
    intro = (
        "<p>NVT molecular dynamics of slabs (by default the slab with the largest |γ error| of each element for "
        "that model) at 0.8 × the element's melting point. Verdicts: <b>exploded</b> (non-finite energy or "
        "forces, a force, energy change or temperature beyond its bound), <b>too_close</b> (two atoms closer "
        "than a fraction of the nearest-neighbour distance), <b>desorbed</b> (an atom beyond a height above or "
        "below the outermost layer), <b>melted</b> (inner-layer Lindemann ratio, the RMS displacement about "
        "the mean position over the second half of the run divided by the nearest-neighbour distance, above "
        "its bound), <b>calculator_error</b>; otherwise <b>stable</b>. Bounds are stored with each run.</p>")
    parts = [intro]
    for label, mat in verdict_matrix(df, order).items():
        fills = pd.DataFrame("white", index=mat.index, columns=mat.columns)
        for c in mat.columns[1:]:
            fills[c] = [GOOD if v == "stable" else ("white" if v == "–" else BAD) for v in mat[c]]
        parts.append(f"<h3>Verdicts, {html.escape(label)}</h3>" + html_table(mat, fills))
    out.body = "".join(parts)
    out.tail = "<h3>Numbers of each run</h3>" + html_table(details_table(df), None)
    return out
