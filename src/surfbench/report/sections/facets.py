"""The facet-ordering section (Fig. 7): per bulk the facets ordered by gamma, from DFT and from
each model, with Kendall tau and Spearman rho against DFT."""

from __future__ import annotations

from surfbench.report.facet_figures import facet_ordering_display, facet_ordering_heatmap, facet_ordering_table
from surfbench.report.markup import html_table
from surfbench.report.outputs import records_of
from surfbench.report.section import ReportContext, Section


def build(ctx: ReportContext) -> Section:
    """The heat map of Kendall tau and the coloured facet-ordering table."""
    facets, order, dft = ctx.facets, ctx.order, ctx.dft_facets
    out = Section(tables={"facets": facets, "facets-dft": dft},
                  payload={"facets": records_of(facets), "facets_dft": records_of(dft)})
    if not facets.empty:
        out.figures.append(("facet-ordering-kendall", facet_ordering_heatmap(facets, order),
                            "Kendall τ between the DFT and the model ranking of all facets of a bulk (1: same order, "
                            "0: unrelated, −1: reversed); ✓ / ✗: the model's lowest-γ facet is / is not DFT's."))
        out.files_only.append(("facet-ordering-table", facet_ordering_table(facets, order, dft)))
    fdisp, ffill = facet_ordering_display(facets, order, dft)
    groups = {i for i, v in enumerate(fdisp["ranking by"]) if str(v).startswith("DFT")} if len(fdisp) else set()
    if not len(fdisp):
        out.body = "<p>No facet ordering: no slab with a Miller index and a model γ.</p>"
        return out
    out.body = (
        "<p>Per bulk, the facets (Miller indices) ordered by surface energy, lowest first, from DFT and from "
        "each model; for an index with several slabs (terminations, reconstructions) its lowest γ is used. "
        "Green: the same facet at the same place as DFT; yellow: among DFT's lowest but at another place. "
        "Spearman ρ and Kendall τ compare the orderings of all facets. The DFT row uses every slab; a model "
        "that failed on some slabs is compared with DFT over the slabs it evaluated. In the DFT row: the DFT γ "
        "difference between the lowest and the second-lowest facet; where it is small (a few 0.01 J/m²) a wrong "
        "lowest facet is a small error in γ.</p>")
    out.tail = html_table(fdisp, ffill, groups)
    return out
