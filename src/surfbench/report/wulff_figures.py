"""Wulff shapes (Fig. 8): the shapes of DFT and of each model drawn side by side, and the
table of their area-weighted surface energies, shape factors and largest facets."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from surfbench.report.style import FACET_COLOURS, GAMMA_UNIT, layout, miller_sort_key


def _facet_polygons(shape) -> list[tuple[tuple[int, ...], np.ndarray, np.ndarray]]:
    """(input Miller index, outward unit normal, ordered vertices) of every facet on the shape."""
    out = []
    for facet in shape.facets:
        if not facet.outer_lines:
            continue
        pts = shape.get_line_in_facet(facet)
        poly: list = []
        for p in pts:
            if not poly or not np.allclose(p, poly[-1]):
                poly.append(p)
        if len(poly) > 1 and np.allclose(poly[0], poly[-1]):
            poly.pop()
        if len(poly) < 3:
            continue
        n = np.asarray(facet.normal, dtype=float)
        out.append((shape.miller_list[facet.index], n / np.linalg.norm(n), np.asarray(poly, dtype=float)))
    return out


#: viewing direction (Cartesian) and light of the projected Wulff shapes
_VIEW = np.array([1.0, 0.42, 0.33])
_LIGHT = np.array([0.55, 0.35, 0.76])


def _shade(hex_colour: str, factor: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgb({int(r * factor)},{int(g * factor)},{int(b * factor)})"


def _project(shape):
    """2D projected front facets of a Wulff shape scaled to unit volume: list of
    (miller, xs, ys, brightness)."""
    v = _VIEW / np.linalg.norm(_VIEW)
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(up, v)
    right /= np.linalg.norm(right)
    up2 = np.cross(v, right)
    light = _LIGHT / np.linalg.norm(_LIGHT)
    scale = 1.0 / max(shape.volume, 1e-12) ** (1.0 / 3.0)
    out = []
    for hkl, n, poly in _facet_polygons(shape):
        facing = float(n @ v)
        if facing <= 1e-9:
            continue
        p = poly * scale
        xs, ys = p @ right, p @ up2
        out.append((hkl, np.append(xs, xs[0]), np.append(ys, ys[0]), 0.62 + 0.38 * max(0.0, float(n @ light)),
                    float(p @ v @ np.ones(len(p)) / len(p))))
    out.sort(key=lambda t: t[4])  # far first
    return [t[:4] for t in out]


def _hkl_str(hkl: Sequence[int]) -> str:
    return "".join(str(i) if i >= 0 else f"-{-i}" for i in hkl)


def wulff_figures(
    wulff: pd.DataFrame, shapes: Mapping, dft_frame: pd.DataFrame, dft_shapes: Mapping,
    order: Sequence[str] | None = None, bulks_per_figure: int = 6,
) -> list[go.Figure]:
    """Wulff shapes side by side: columns are bulks, the first row DFT, then one row per model
    (a projection of the front facets, each shape scaled to the same volume so that the shapes
    and not the sizes are compared; colour = Miller index, shaded by a light from the upper
    left). Under each shape: the area-weighted surface energy. ``wulff``/``shapes`` from
    :func:`surfbench.analysis.facets.wulff_analysis`, ``dft_frame``/``dft_shapes`` from
    :func:`dft_wulff`. Several figures when there are more than ``bulks_per_figure`` bulks."""
    if wulff.empty and dft_frame.empty:
        return []
    order = list(order) if order is not None else sorted(wulff["model"].unique())
    fp_of = wulff.drop_duplicates("model").set_index("model")["fingerprint"].to_dict() if not wulff.empty else {}
    elem = {**dict(zip(wulff["bulk_id"], wulff["element"])),
            **dict(zip(dft_frame.get("bulk_id", []), dft_frame.get("element", [])))}
    all_bulks = sorted(elem, key=lambda b: (elem[b], b))
    millers = set()
    for sh in [*shapes.values(), *dft_shapes.values()]:
        millers.update(_hkl_str(h) for h in sh.miller_list)
    palette = {m: FACET_COLOURS[i % len(FACET_COLOURS)] for i, m in enumerate(sorted(millers, key=miller_sort_key))}
    rank_of = {m: 1000 + i for i, m in enumerate(sorted(millers, key=miller_sort_key))}
    rows_src = ["DFT", *order]
    figs = []
    for start in range(0, len(all_bulks), bulks_per_figure):
        chunk = all_bulks[start:start + bulks_per_figure]
        labels = [elem[b] if sum(elem[x] == elem[b] for x in all_bulks) == 1 else f"{elem[b]} ({b})" for b in chunk]
        fig = make_subplots(rows=len(rows_src), cols=len(chunk), horizontal_spacing=0.01, vertical_spacing=0.012,
                            column_titles=labels)
        shown = set()
        traces, t_rows, t_cols = [], [], []
        for i, src in enumerate(rows_src):
            for j, b in enumerate(chunk):
                if src == "DFT":
                    shape = dft_shapes.get(b)
                    row = dft_frame[dft_frame["bulk_id"] == b]
                else:
                    shape = shapes.get((fp_of.get(src), b, "model"))
                    row = wulff[(wulff["model"] == src) & (wulff["bulk_id"] == b) & (wulff["source"] == "model")]
                r = row.iloc[0] if len(row) else None
                ax = dict(row=i + 1, col=j + 1)
                if shape is None:
                    why = r["problem"] if r is not None and isinstance(r["problem"], str) else "no data"
                    fig.add_annotation(text="no shape:<br>" + "<br>".join(_wrap(why, 22)), x=0, y=0, showarrow=False,
                                       font=dict(size=9, color="#a00"), **ax)
                    continue
                for hkl, xs, ys, bright in _project(shape):
                    key = _hkl_str(hkl)
                    frac = (r["area_fraction"].get(key, math.nan)
                            if r is not None and isinstance(r["area_fraction"], dict) else math.nan)
                    e = shape.miller_energy_dict.get(tuple(hkl), math.nan)
                    traces.append(go.Scatter(
                        x=xs, y=ys, mode="lines", fill="toself", fillcolor=_shade(palette[key], bright),
                        line=dict(color="rgba(40,40,40,0.8)", width=0.8), name=f"({key})", legendgroup=key,
                        showlegend=False, hoveron="fills",
                        text=f"{src}, {labels[j]}: ({key}) γ = {e:.3f} {GAMMA_UNIT}, area fraction {frac:.2f}",
                        hoverinfo="text",
                    ))
                    t_rows.append(i + 1)
                    t_cols.append(j + 1)
                    shown.add(key)
                if r is not None and np.isfinite(r["weighted_surface_energy"]):
                    d = r["delta_weighted_gamma"] if src != "DFT" else math.nan
                    txt = f"γ̄ {r['weighted_surface_energy']:.2f}" + (f" ({d:+.2f})" if np.isfinite(d) else "")
                    fig.add_annotation(text=txt, x=0, y=-1.02, yanchor="top", showarrow=False, font=dict(size=11), **ax)
        for key in sorted(shown, key=miller_sort_key):  # legend: the unshaded colour of each facet family
            traces.append(go.Scatter(x=[None], y=[None], mode="markers", name=f"({key})", legendgroup=key,
                                     legendrank=rank_of[key], marker=dict(symbol="square", size=13, color=palette[key],
                                                                          line=dict(width=0.8, color="#333"))))
            t_rows.append(1)
            t_cols.append(1)
        if traces:
            fig.add_traces(traces, rows=t_rows, cols=t_cols)
        for i, src in enumerate(rows_src):  # row labels, horizontal, left of the first panel
            sub = fig.get_subplot(i + 1, 1)
            xa, ya = sub.xaxis.plotly_name.replace("axis", ""), sub.yaxis.plotly_name.replace("axis", "")
            fig.add_annotation(text="<b>DFT</b>" if src == "DFT" else src, xref=f"{xa} domain", yref=f"{ya} domain",
                               x=-0.06, y=0.55, xanchor="right", showarrow=False, font=dict(size=12))
        fig.update_xaxes(visible=False, range=[-1.05, 1.05], showgrid=False, zeroline=False)
        fig.update_yaxes(showticklabels=False, range=[-1.3, 0.95], showgrid=False, zeroline=False, showline=False,
                         scaleanchor="x", scaleratio=1)
        for k in range(1, len(rows_src) * len(chunk) + 1):  # each panel equal axes
            suffix = "" if k == 1 else str(k)
            fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
        ncol = len(chunk)
        layout(fig, "Wulff shapes: DFT (top row) and each model<br><sup>same volume; colour: Miller index; "
                     f"γ̄: area-weighted γ ({GAMMA_UNIT}), model − DFT in brackets</sup>",
               width=230 + 165 * ncol + 90, height=90 + 172 * len(rows_src),
               legend=dict(title=dict(text="facet (hkl)"), x=1.01, y=1, xanchor="left", tracegroupgap=2),
               margin=dict(l=230, r=10, t=90, b=20), plot_bgcolor="white")
        figs.append(fig)
    return figs


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(str(text), width)[:4]


def wulff_display(wulff: pd.DataFrame, dft_frame: pd.DataFrame, order: Sequence[str] | None = None,
                  n_facets: int = 4) -> pd.DataFrame:
    """The Wulff comparison as strings: per bulk the DFT row and one row per model with the
    area-weighted gamma (J/m^2), its difference to DFT, the shape factor, the anisotropy and the
    largest facets with their area fractions."""
    order = list(order) if order is not None else sorted(wulff["model"].unique())
    rank = {m: i for i, m in enumerate(order)}
    rows = []

    def fractions(fr) -> str:
        if not isinstance(fr, dict):
            return "–"
        top = sorted(((k, v) for k, v in fr.items() if v > 0.005), key=lambda kv: -kv[1])[:n_facets]
        return ", ".join(f"({k}) {v:.2f}" for k, v in top)

    def num(v, fmt):
        return "–" if v is None or not np.isfinite(v) else format(v, fmt)

    elements = dict(zip(wulff["bulk_id"], wulff["element"]))
    elements.update(dict(zip(dft_frame.get("bulk_id", []), dft_frame.get("element", []))))
    counts = pd.Series(list(elements.values())).value_counts()
    for b in sorted(elements, key=lambda x: (elements[x], x)):
        d = dft_frame[dft_frame["bulk_id"] == b] if not dft_frame.empty else dft_frame
        label = elements[b] if counts[elements[b]] == 1 else f"{elements[b]} ({b})"
        if len(d):
            r = d.iloc[0]
            rows.append([label, "DFT", num(r["weighted_surface_energy"], ".3f"), "", num(r["shape_factor"], ".3f"),
                         num(r["anisotropy"], ".3f"), fractions(r["area_fraction"]), r["problem"] or ""])
        m = wulff[(wulff["bulk_id"] == b) & (wulff["source"] == "model")]
        for _, r in m.sort_values("model", key=lambda s: s.map(lambda x: rank.get(x, 1e9))).iterrows():
            rows.append([label, r["model"], num(r["weighted_surface_energy"], ".3f"),
                         num(r["delta_weighted_gamma"], "+.3f"),
                         num(r["shape_factor"], ".3f"), num(r["anisotropy"], ".3f"), fractions(r["area_fraction"]),
                         r["problem"] or ""])
    return pd.DataFrame(rows, columns=["bulk", "source", f"weighted γ ({GAMMA_UNIT})", f"model − DFT ({GAMMA_UNIT})",
                                       "shape factor", "anisotropy", "largest facets: area fraction", "problem"])
