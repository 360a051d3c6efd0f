"""The Wulff-shape section: the shapes of DFT and of each model (at most
:data:`MAX_WULFF_BULKS` bulks drawn, those the models get most wrong) and the table of their
area-weighted surface energies (J/m^2), shape factors and largest facets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from surfbench.report.markup import html_table
from surfbench.report.outputs import records_of
from surfbench.report.section import ReportContext, Section
from surfbench.report.wulff_figures import wulff_display, wulff_figures

#: most bulks whose Wulff shapes are drawn (two figures); the numbers of all are in the tables
MAX_WULFF_BULKS = 12


def _wulff_shown(wulff: pd.DataFrame, dft_w: pd.DataFrame) -> tuple[list[str] | None, int]:
    """(bulk ids to draw, number of bulks): None (all) up to :data:`MAX_WULFF_BULKS`, else the
    bulks with the largest |area-weighted gamma, model - DFT| of any model (bulks without a
    model shape last, by id)."""
    none = pd.Series(dtype=object)
    ids = sorted(set(wulff.get("bulk_id", none)) | set(dft_w.get("bulk_id", none)))
    if len(ids) <= MAX_WULFF_BULKS:
        return None, len(ids)
    delta = (wulff.loc[wulff["source"] == "model"].assign(d=lambda f: f["delta_weighted_gamma"].abs())
             .groupby("bulk_id")["d"].max())
    ranked = sorted(ids, key=lambda b: (-(delta.get(b, np.nan) if np.isfinite(delta.get(b, np.nan)) else -1.0), b))
    return ranked[:MAX_WULFF_BULKS], len(ids)


def _only_bulks(shown, wulff, shapes, dft_w, dft_shapes):
    if shown is None:
        return wulff, shapes, dft_w, dft_shapes
    keep = set(shown)
    return (wulff[wulff["bulk_id"].isin(keep)], {k: v for k, v in shapes.items() if k[1] in keep},
            dft_w[dft_w["bulk_id"].isin(keep)] if not dft_w.empty else dft_w,
            {k: v for k, v in dft_shapes.items() if k in keep})


def build(ctx: ReportContext) -> Section:
    """The shapes, the table, and the Wulff numbers of DFT and every model (CSV, JSON)."""
    wulff, dft_w, order = ctx.wulff, ctx.dft_wulff, ctx.order
    both = pd.concat([dft_w, wulff], ignore_index=True) if not dft_w.empty else wulff
    out = Section(tables={"wulff": both},
                  payload={"wulff": records_of(both), "missing_low_index_facets": ctx.missing_facets})
    shown, n_bulks_w = _wulff_shown(wulff, dft_w)
    picked = ("" if shown is None else
              f" Drawn for the {len(shown)} of {n_bulks_w} bulks with the largest |γ̄ model − DFT| of any model (more "
              "shapes would make the page too heavy to open); γ̄ and the area fractions of every bulk are in the "
              "table below and in the report's wulff CSV and JSON.")
    for k, fig in enumerate(wulff_figures(*_only_bulks(shown, wulff, ctx.shapes, dft_w, ctx.dft_shapes), order)):
        out.figures.append((
            f"wulff-shapes-{k + 1}", fig,
            "Wulff shapes from the lowest γ of each Miller index, DFT (top row) and each model, seen along the "
            "same direction, each scaled to the same volume so that shapes, not sizes, are compared. "
            "γ̄: area-weighted surface energy (J/m²), model − DFT in brackets. Hover a facet for its γ and "
            "area fraction." + picked))
    wdisp = wulff_display(wulff, dft_w, order) if not (wulff.empty and dft_w.empty) else pd.DataFrame()
    wgroups = {i for i, v in enumerate(wdisp.get("source", [])) if v == "DFT"}
    if not len(wdisp):
        out.body = "<p>No Wulff shape could be built (no bulk lattice or too few facets).</p>"
        return out
    out.tail = (
        "<p>Area-weighted surface energy γ̄ = Σ γ<sub>i</sub> A<sub>i</sub> / Σ A<sub>i</sub> of the Wulff shape "
        "(J/m²), shape factor (surface area / volume<sup>2/3</sup>), anisotropy of γ and the largest facets with "
        "their share of the area. The DFT row uses every slab; a model row's difference is taken to DFT over "
        "the slabs that model evaluated.</p>"
        + html_table(wdisp, None, wgroups))
    return out
