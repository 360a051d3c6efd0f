"""Fig. 7 of Focassio, Freitas & Schleder 2024: the facet orderings of DFT and of each model
(:func:`surfbench.analysis.facets.facet_ordering`) as a coloured table and as a heat map of
Kendall tau."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from surfbench.report.comparison_figures import table_figure
from surfbench.report.style import BAD, GAMMA_UNIT, GOOD, HEAD, NEAR, layout, miller_label


def bulk_labels(frame: pd.DataFrame) -> dict[str, str]:
    """bulk id -> its element, or "element (bulk id)" where an element has several bulks."""
    pairs = frame[["bulk_id", "element"]].drop_duplicates()
    counts = pairs["element"].value_counts()
    return {b: (el if counts[el] == 1 else f"{el} ({b})") for b, el in zip(pairs["bulk_id"], pairs["element"])}


def facet_ordering_display(facets: pd.DataFrame, order: Sequence[str] | None = None,
                           dft: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 7 as a table: per bulk a DFT row with its lowest facets, then one row per model with
    its lowest facets (green: same place as DFT, yellow: in DFT's list at another place),
    whether the lowest facet is right, Spearman and Kendall over all facets and the overlap of
    the two lists. Returns ``(strings, cell colours)``."""
    cols = ["bulk", "ranking by", "1st", "2nd", "3rd", "4th", "5th", "lowest facet right",
            "Spearman ρ", "Kendall τ", "overlap", "facets"]
    if facets.empty:
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=cols)
    order = list(order) if order is not None else sorted(facets["model"].unique())
    rank = {m: i for i, m in enumerate(order)}
    n_top = max(len(t) for t in facets["dft_top"]) if len(facets) else 5
    n_top = max(n_top, 1)
    place = ["1st", "2nd", "3rd", "4th", "5th"] + [f"{i}th" for i in range(6, n_top + 1)]
    cols = ["bulk", "ranking by", *place[:n_top], "lowest facet right", "Spearman ρ", "Kendall τ", "overlap", "facets"]
    rows, fills = [], []
    labels = bulk_labels(facets)
    for bulk_id, grp in sorted(facets.groupby("bulk_id"), key=lambda kv: (kv[1]["element"].iloc[0], kv[0])):
        grp = grp.sort_values("model", key=lambda s: s.map(lambda m: rank.get(m, 1e9)))
        full = dft[dft["bulk_id"] == bulk_id] if dft is not None and len(dft) else None
        gap = math.nan
        if full is not None and len(full):
            dft_top, n_dft = list(full["dft_top"].iloc[0]), int(full["n_facets"].iloc[0])
            gap = float(full["gap_1_2_j_per_m2"].iloc[0]) if "gap_1_2_j_per_m2" in full else math.nan
        else:
            widest = grp.loc[grp["n_facets"].idxmax()]
            dft_top, n_dft = list(widest["dft_top"]), int(widest["n_facets"])
        label = labels[bulk_id]
        rows.append([label, "DFT", *[miller_label(x) for x in dft_top[:n_top]] + [""] * (n_top - len(dft_top[:n_top])),
                     f"1st–2nd: {gap:.3f} {GAMMA_UNIT}" if np.isfinite(gap) else "", "", "", "", str(n_dft)])
        fills.append([HEAD] * len(cols))
        for _, r in grp.iterrows():
            d_top, m_top = list(r["dft_top"]), list(r["model_top"])
            cells, colours = [], []
            for i in range(n_top):
                if i >= len(m_top):
                    cells.append("")
                    colours.append("white")
                    continue
                f = m_top[i]
                cells.append(miller_label(f))
                colours.append(GOOD if i < len(d_top) and d_top[i] == f else (NEAR if f in d_top else "white"))
            ok = bool(r["lowest_correct"])
            sp, kt = float(r["spearman"]), float(r["kendall"])
            rows.append(["", r["model"], *cells, "yes" if ok else "no",
                         "–" if not np.isfinite(sp) else f"{sp:.2f}", "–" if not np.isfinite(kt) else f"{kt:.2f}",
                         f"{int(r['top_overlap'])}/{min(len(d_top), n_top)}",
                         str(int(r["n_facets"])) + (f" ({int(r['n_failed'])} failed)" if r.get("n_failed", 0) else "")])
            fills.append(["white", "white", *colours, GOOD if ok else BAD, "white", "white", "white", "white"])
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(fills, columns=cols)


def facet_ordering_table(facets: pd.DataFrame, order: Sequence[str] | None = None,
                         dft: pd.DataFrame | None = None) -> go.Figure:
    """Fig. 7: the facet-ordering table (see :func:`facet_ordering_display`) as a plotly table."""
    d, fill = facet_ordering_display(facets, order, dft)
    n_top = sum(1 for c in d.columns if c[0].isdigit())
    widths = [0.9, 2.4, *[0.7] * n_top, 0.9, 0.8, 0.8, 0.7, 1.0]
    fig = table_figure(d, "Facet ordering: the lowest-γ facets by DFT and by each model "
                          "(green: same place as DFT, yellow: among DFT's but elsewhere)",
                       fill=fill, column_widths=widths, width=1400)
    return fig


def facet_ordering_heatmap(facets: pd.DataFrame, order: Sequence[str] | None = None) -> go.Figure:
    """Summary of Fig. 7: Kendall τ between the DFT and model facet orderings, per bulk
    (columns) and model (rows); the mark tells whether the lowest facet is right."""
    order = list(order) if order is not None else sorted(facets["model"].unique())
    bulks = sorted(facets["bulk_id"].unique(), key=lambda b: (facets.loc[facets["bulk_id"] == b, "element"].iloc[0], b))
    labels = [facets.loc[facets["bulk_id"] == b, "element"].iloc[0] for b in bulks]
    if len(set(labels)) < len(labels):
        labels = [f"{el}<br>{b}" for el, b in zip(labels, bulks)]
    z = np.full((len(order), len(bulks)), np.nan)
    text = np.full(z.shape, "", dtype=object)
    for _, r in facets.iterrows():
        if r["model"] not in order:
            continue
        i, j = order.index(r["model"]), bulks.index(r["bulk_id"])
        z[i, j] = r["kendall"]
        mark = "✓" if r["lowest_correct"] else "✗"
        text[i, j] = f"{r['kendall']:.2f} {mark}" if np.isfinite(r["kendall"]) else mark
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=order, zmin=-1, zmax=1, colorscale="RdBu", zmid=0, text=text, texttemplate="%{text}",
        textfont=dict(size=13), colorbar=dict(title=dict(text="Kendall τ", side="right")), xgap=2, ygap=2,
        hovertemplate="%{y} on %{x}<br>Kendall τ = %{z:.3f}<extra></extra>",
    ))
    # two title lines: one did not fit a figure of one or two bulks
    layout(fig, "Facet ordering vs DFT: Kendall τ over all facets<br><sup>✓ / ✗: lowest-γ facet right / wrong</sup>",
           width=max(650, 330 + 95 * len(bulks)), height=200 + 42 * len(order), margin=dict(l=280, r=30, t=80, b=60))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(side="bottom", title="bulk (element)")
    return fig

