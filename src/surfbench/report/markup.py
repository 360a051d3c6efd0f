"""Small pieces of the HTML report: escaping, numbers as text, an HTML table of a DataFrame and a
plotly figure for the page. Every report module takes them from here."""

from __future__ import annotations

import html
import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

#: responsive: a figure is redrawn at its container's width (at most its own width) when the
#: window changes, so that legends and titles stay inside a narrow window (see figure_html)
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "toImageButtonOptions": {"format": "png", "scale": 2}}


def esc(x: object) -> str:
    """HTML-escaped text of ``x`` (None: empty)."""
    return html.escape("" if x is None else str(x))


def is_num(v: object) -> bool:
    """A number (int or float, numpy's too), not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def finite(v) -> bool:
    """A finite number."""
    return isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v))


def fmt(v: object, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals; "–" for a missing or non-finite value."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return f"{f:.{digits}f}" if np.isfinite(f) else "–"


def ci_text(v: float, lo: float, hi: float, digits: int = 3) -> str:
    """"v [lo, hi]"; "v" without a finite interval; "–" without a finite value."""
    if v is None or not np.isfinite(v):
        return "–"
    if lo is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def plural(n: int, noun: str) -> str:
    """``1 model``, ``3 models``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def slug(text: str) -> str:
    """``text`` as a file-name part (letters, digits, ``_`` and ``-``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "model"


def html_table(df: pd.DataFrame, fills: pd.DataFrame | None = None, group_rows: set[int] | None = None,
               num_fmt: str = "{:.3f}", align_numbers: bool = True, cls: str = "data") -> str:
    """An HTML table of a DataFrame (strings escaped; numbers right-aligned)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = []
    for i, (_, row) in enumerate(df.iterrows()):
        cells = []
        for j, (_c, v) in enumerate(row.items()):
            style = ""
            if fills is not None and fills.iloc[i, j] not in ("white", "", None):
                style = f' style="background:{fills.iloc[i, j]}"'
            if is_num(v):
                text = "–" if not np.isfinite(v) else (f"{int(v):,}" if float(v).is_integer() and abs(v) > 999
                                                       else (str(int(v)) if isinstance(v, (int, np.integer))
                                                             else num_fmt.format(v)))
                cells.append(f'<td class="num"{style}>{esc(text)}</td>')
            else:
                num = align_numbers and isinstance(v, str) and re.fullmatch(r"[-+−]?[\d.,/ \[\]–-]+", v or "x")
                klass = ' class="num"' if num else ""
                cells.append(f"<td{klass}{style}>{esc(v)}</td>")
        tr = ' class="group"' if group_rows and i in group_rows else ""
        body.append(f"<tr{tr}>{''.join(cells)}</tr>")
    # in a box that scrolls sideways: a wide table (Table I has 14 columns) stays inside its section
    # in a narrow window instead of running past the page's edge
    return (f'<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def figure_html(name: str, fig: go.Figure, caption: str) -> str:
    """A figure for the page: as wide as its container, at most its own width (the width of its
    PNG). Plotly draws it at that width and places its legend and title inside it, so that a
    narrow window (a 1000-px laptop screen) does not cut a parity plot's legend or a title; a
    figure drawn wider than the window was cut at the window's edge."""
    width = fig.layout.width
    fig.layout.width = None  # the page's copy only: the PNG and the figure files keep the width
    try:
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, config=PLOTLY_CONFIG,
                          div_id=f"fig-{name}", validate=False, default_width="100%")
    finally:
        fig.layout.width = width
    style = f' style="max-width:{int(width)}px"' if width else ""
    cap = f'<p class="caption">{caption}</p>' if caption else ""
    return f'<div class="figure" data-figure="{esc(name)}"{style}>{div}</div>{cap}'
