"""The look shared by the report's figures: model colours and markers (in ranking order), units,
the plotly template and font, the colours of good/near/bad table cells, and the orders in which
models, Miller indices and elements are shown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from surfbench.analysis.ranking import model_order

#: colour-blind safe colours (Okabe-Ito, then Tol's muted) for the models, in ranking order
MODEL_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
                 "#882255", "#999933", "#44AA99", "#332288", "#AA4499"]
MODEL_SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down",
                 "pentagon", "star", "hexagon", "triangle-left", "star-diamond"]
#: colours of the Miller index families on the Wulff shapes
FACET_COLOURS = ["#4E79A7", "#F28E2B", "#59A14F", "#E15759", "#B07AA1", "#EDC948", "#76B7B2", "#FF9DA7",
                 "#9C755F", "#BAB0AC", "#17BECF", "#7B4173", "#BCBD22", "#D37295", "#A0CBE8", "#FFBE7D",
                 "#79706E", "#F1CE63", "#86BCB6", "#D4A6C8"]

GAMMA_UNIT = "J/m²"
ENERGY_UNIT = "eV/atom"
TEMPLATE = "plotly_white"
FONT = dict(family="Arial, Helvetica, sans-serif", size=13)

#: quantity -> (label, unit) for titles and tables
QUANTITY_LABELS = {
    "gamma": ("surface energy γ", GAMMA_UNIT),
    "slab_e_per_atom": ("slab energy per atom", ENERGY_UNIT),
    "bulk_e_per_atom": ("bulk energy per atom", ENERGY_UNIT),
}


#: table cell colours: right (green), near (yellow), wrong (red), and a group's head row
GOOD, NEAR, BAD, HEAD = "#d4edda", "#fff3cd", "#f8d7da", "#eef1f5"


def model_marks(slabs: pd.DataFrame) -> dict[str, str]:
    """model -> its name as figures show it: marked "(not comparable: k of n slabs)" where it
    evaluated other slabs than the others (:mod:`surfbench.analysis.comparable`)."""
    if slabs.empty:
        return {}
    from surfbench.analysis.comparable import comparability

    comp = comparability(slabs)
    return {m: comp.label(m) for m in comp.evaluated}


def model_colours(order: Sequence[str]) -> dict[str, str]:
    """model -> its colour, in the order given (ranking order)."""
    return {m: MODEL_COLOURS[i % len(MODEL_COLOURS)] for i, m in enumerate(order)}


def miller_label(miller: object) -> str:
    """"110" -> "(110)"; a missing index -> "unknown"."""
    if not isinstance(miller, str) or not miller or miller == "unknown":
        return "unknown"
    return f"({miller})"


def miller_sort_key(miller: str) -> tuple:
    """Sort Miller strings by the size of the indices, then by the digits."""
    if not isinstance(miller, str):
        return (1, 99, "")
    digits = [int(c) for c in miller if c.isdigit()]
    return (0, sum(digits), max(digits, default=0), miller)


def element_order(elements: Sequence[str]) -> list[str]:
    """The elements by periodic-table group, then row (unknown symbols last)."""
    from pymatgen.core import Element

    def key(el: str) -> tuple:
        try:
            e = Element(el)
            return (0, e.group, e.row)
        except ValueError:
            return (1, 0, 0)

    return sorted(set(elements), key=key)


def layout(fig: go.Figure, title: str, **kw) -> go.Figure:
    """``fig`` with the report's template, font and a centred title (``kw``: more layout)."""
    fig.update_layout(title=dict(text=title, x=0.5, xanchor="center"), template=TEMPLATE, font=FONT, **kw)
    return fig


def orders_and_colours(slabs: pd.DataFrame, order: Sequence[str] | None, colours: Mapping[str, str] | None):
    """``(order, colours)``: as given, else the ranking order of ``slabs`` and its colours."""
    order = list(order) if order is not None else model_order(slabs)
    return order, dict(colours) if colours is not None else model_colours(order)

