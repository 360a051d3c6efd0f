"""Figures that describe a data set (Fig. 1 of Focassio et al.): surfaces per element on a
periodic table, and the DFT surface energy per element as box + violin plots."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from pymatgen.core import Element

from surfbench.records import Dataset


def _order(element: str) -> tuple[int, int]:
    e = Element(element)
    return (e.group, e.row)


def surfaces_per_element_ptable(ds: Dataset) -> go.Figure:
    """Periodic-table heat map of the number of slabs per element."""
    import pymatviz as pmv

    counts: dict[str, int] = {}
    for s in ds.surfaces:
        counts[s.element] = counts.get(s.element, 0) + 1
    fig = pmv.ptable_heatmap(counts, colorscale="viridis", fmt=".0f",
                             colorbar=dict(title="number of slabs"))
    fig.update_layout(title=dict(text=f"{ds.name}: number of surfaces per element "
                                      f"({len(ds.surfaces)} slabs, {len(counts)} elements)", x=0.5))
    return fig


def gamma_by_element(ds: Dataset) -> go.Figure:
    """Box + violin of the DFT surface energy (J/m^2) per element, elements ordered by group,
    then period, with the number of slabs above each."""
    values: dict[str, list[float]] = {}
    for s in ds.surfaces:
        g = s.dft_gamma_j_per_m2
        if math.isfinite(g):
            values.setdefault(s.element, []).append(g)
    elements = sorted(values, key=_order)
    fig = go.Figure()
    for el in elements:
        fig.add_trace(go.Violin(
            x=[el] * len(values[el]), y=values[el], name=el, box_visible=True, meanline_visible=False,
            points="all", pointpos=0, jitter=0.3, marker=dict(size=4), showlegend=False,
            hovertemplate=f"{el}: %{{y:.3f}} J/m²<extra></extra>",
        ))
    top = max((max(v) for v in values.values()), default=1.0)
    for el in elements:
        fig.add_annotation(x=el, y=top * 1.08, text=f"n={len(values[el])}", showarrow=False, font=dict(size=11))
    n_missing = sum(1 for s in ds.surfaces if not math.isfinite(s.dft_gamma_j_per_m2))
    subtitle = f" ({n_missing} slabs without a bulk reference left out)" if n_missing else ""
    fig.update_layout(
        title=dict(text=f"{ds.name}: DFT surface energy per element{subtitle}", x=0.5),
        xaxis=dict(title="element (ordered by group, then period)", categoryorder="array", categoryarray=elements),
        yaxis=dict(title="surface energy γ (J/m²)", rangemode="tozero", range=[0, top * 1.15]),
        template="plotly_white", width=max(500, 90 * len(elements) + 200), height=500,
    )
    return fig


def summary(ds: Dataset) -> dict[str, object]:
    """Counts for the text summary: slabs, bulks, elements, Miller indices, reconstructed share."""
    gammas = np.array([s.dft_gamma_j_per_m2 for s in ds.surfaces], dtype=float)
    n = len(ds.surfaces)
    n_rec = sum(1 for s in ds.surfaces if s.reconstructed)
    return {
        "slabs": n,
        "bulks": len(ds.bulks),
        "elements": len(ds.elements),
        "element_list": ", ".join(ds.elements),
        "miller_families": len({s.miller for s in ds.surfaces if s.miller}),
        "max_miller_index": max((max(abs(i) for i in s.miller) for s in ds.surfaces if s.miller), default=0),
        "slabs_with_unknown_miller": sum(1 for s in ds.surfaces if not s.miller),
        "reconstructed": n_rec,
        "reconstructed_share": n_rec / n if n else 0.0,
        "gamma_min_j_per_m2": float(np.nanmin(gammas)) if n else math.nan,
        "gamma_median_j_per_m2": float(np.nanmedian(gammas)) if n else math.nan,
        "gamma_max_j_per_m2": float(np.nanmax(gammas)) if n else math.nan,
    }
