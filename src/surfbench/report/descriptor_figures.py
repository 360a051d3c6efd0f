"""Figures and the report section of the descriptor map and the out-of-domain distance.

* :func:`map_figure`: the kernel-PCA map of every structure (the paper's descriptor map),
  slabs coloured by |gamma error| (J/m^2) of a model picked from a menu, marker by the bulk
  lattice (fcc, bcc, hcp, diamond, other), bulk records as open grey markers, element labels
  at the centre of each element's points, hover with the record's numbers;
* :func:`distance_error_figure`: |gamma error| against the distance from the reference set,
  one colour per model, the Spearman rho with its interval in the legend;
* :func:`correlation_figure`: rho with its interval per model and reference set;
* :func:`domain_section`: everything the HTML report shows, from the maps saved beside the
  result store by ``surfbench map`` (no descriptor is computed while the report is built).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from surfbench.analysis.lattice import LATTICES
from surfbench.report.run_figures import FONT, TEMPLATE, model_colours

#: marker of each bulk lattice (slabs take their bulk's)
LATTICE_SYMBOLS = {"fcc": "circle", "bcc": "square", "hcp": "hexagon", "diamond": "diamond", "other": "x"}
GAMMA_UNIT = "J/m²"
_COLOURSCALE = "Viridis"


def _e(x: object) -> str:
    return html.escape("" if x is None else str(x))


def _fmt(v: object, digits: int = 3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return f"{f:.{digits}f}" if np.isfinite(f) else "–"


def _joined(table: pd.DataFrame, slabs: pd.DataFrame, model: str) -> pd.DataFrame:
    """The map's slab rows with one model's gamma (J/m^2) and its error."""
    cols = ["record_id", "dft_gamma_j_per_m2", "gamma_pred_j_per_m2", "error_gamma_j_per_m2", "gamma_failure"]
    s = slabs.loc[slabs["model"] == model, [c for c in cols if c in slabs.columns]]
    out = table[table["kind"] == "slab"].merge(s, on="record_id", how="left")
    out["abs_error"] = np.abs(out["error_gamma_j_per_m2"].astype(float))
    return out


def _hover(df: pd.DataFrame, with_model: bool) -> list[str]:
    rows = []
    for r in df.itertuples():
        text = (f"<b>{_e(r.record_id)}</b><br>{_e(r.element)} {_e(r.miller or '')} · {_e(r.lattice)}"
                f"<br>distance {_fmt(r.distance, 4)}")
        if with_model:
            failure = getattr(r, "gamma_failure", None)
            if isinstance(failure, str) and failure:
                text += f"<br>γ failed: {_e(failure)}"
            else:
                text += (f"<br>γ DFT {_fmt(r.dft_gamma_j_per_m2)}, model {_fmt(r.gamma_pred_j_per_m2)} {GAMMA_UNIT}"
                         f"<br>error {_fmt(r.error_gamma_j_per_m2)} {GAMMA_UNIT}")
        rows.append(text)
    return rows


def map_figure(table: pd.DataFrame, slabs: pd.DataFrame, order: list[str], *,
               label_elements: list[str] | None = None, title: str = "") -> go.Figure:
    """The kernel-PCA map; a menu picks the model whose |gamma error| colours the slabs.

    ``table``: a map's rows (:class:`surfbench.analysis.descriptor_map.DescriptorMap`);
    ``slabs``: :func:`~surfbench.analysis.predictions.slab_predictions` with a ``model``
    column; ``label_elements``: elements labelled on the map (default: all).
    """
    fig = go.Figure()
    models = [m for m in order if m in set(slabs["model"])] if not slabs.empty else []
    cmax = 0.0
    joined = {m: _joined(table, slabs, m) for m in models}
    for j in joined.values():
        if j["abs_error"].notna().any():
            cmax = max(cmax, float(j["abs_error"].max()))
    lattices = [lat for lat in LATTICES if lat in set(table["lattice"])]
    owner: list[str | None] = []  # the model each trace belongs to (None: always shown)
    for lat in lattices:
        b = table[(table["kind"] == "bulk") & (table["lattice"] == lat)]
        if len(b):
            fig.add_trace(go.Scatter(
                x=b["pc1"], y=b["pc2"], mode="markers", name=f"bulk ({lat})", legendgroup="bulk",
                marker=dict(symbol=f"{LATTICE_SYMBOLS[lat]}-open", size=13, color="#555", line=dict(width=2)),
                hovertext=_hover(b, False), hoverinfo="text"))
            owner.append(None)
    if not models:  # no model: slabs in grey
        for lat in lattices:
            s = table[(table["kind"] == "slab") & (table["lattice"] == lat)]
            if len(s):
                fig.add_trace(go.Scatter(x=s["pc1"], y=s["pc2"], mode="markers", name=f"slab ({lat})",
                                         marker=dict(symbol=LATTICE_SYMBOLS[lat], size=9, color="#888"),
                                         hovertext=_hover(s, False), hoverinfo="text"))
                owner.append(None)
    for k, m in enumerate(models):
        j = joined[m]
        ok = j["abs_error"].notna()
        for lat in lattices:
            s = j[ok & (j["lattice"] == lat)]
            if len(s):
                fig.add_trace(go.Scatter(
                    x=s["pc1"], y=s["pc2"], mode="markers", name=f"slab ({lat})", legendgroup=f"slab-{lat}",
                    visible=k == 0, marker=dict(symbol=LATTICE_SYMBOLS[lat], size=10, color=s["abs_error"],
                                                coloraxis="coloraxis", line=dict(width=0.5, color="#333")),
                    hovertext=_hover(s, True), hoverinfo="text"))
                owner.append(m)
        bad = j[~ok]
        if len(bad):
            fig.add_trace(go.Scatter(
                x=bad["pc1"], y=bad["pc2"], mode="markers", name="slab, no model γ", visible=k == 0,
                marker=dict(symbol=[LATTICE_SYMBOLS.get(lat, "x") for lat in bad["lattice"]], size=10,
                            color="#d62728", line=dict(width=1, color="#d62728")),
                hovertext=_hover(bad, True), hoverinfo="text"))
            owner.append(m)
    elements = sorted(set(table["element"])) if label_elements is None else [e for e in label_elements
                                                                            if e in set(table["element"])]
    for el in elements:
        pts = table[table["element"] == el]
        fig.add_annotation(x=float(pts["pc1"].mean()), y=float(pts["pc2"].max()), text=f"<b>{_e(el)}</b>",
                           showarrow=False, yshift=16, font=dict(size=15, color="#222"))
    if models:
        buttons = [dict(label=m, method="update", args=[{"visible": [o is None or o == m for o in owner]}])
                   for m in models]
        fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=0.0, xanchor="left", y=1.13,
                                            yanchor="top", showactive=True)])
        fig.update_layout(coloraxis=dict(colorscale=_COLOURSCALE, cmin=0.0, cmax=cmax or 1.0,
                                         colorbar=dict(title=dict(text=f"|γ error|<br>({GAMMA_UNIT})"))))
    fig.update_layout(title=dict(text=title, x=0.98, xanchor="right"), template=TEMPLATE, font=FONT,
                      width=980, height=700, xaxis_title="kernel PC 1", yaxis_title="kernel PC 2",
                      legend=dict(x=1.16, xanchor="left"), margin=dict(t=110))
    return fig


def distance_error_figure(table: pd.DataFrame, slabs: pd.DataFrame, corr: pd.DataFrame, order: list[str], *,
                          reference: str = "", ci: float = 0.95) -> go.Figure:
    """|gamma error| (J/m^2) of each model against the slab's distance from the reference set."""
    fig = go.Figure()
    colours = model_colours(order)
    rho = corr.set_index("model") if len(corr) else pd.DataFrame()
    pct = f"{100 * ci:.0f}%"
    for m in order:
        j = _joined(table, slabs, m)
        j = j[j["abs_error"].notna() & np.isfinite(j["distance"].astype(float))]
        if j.empty:
            continue
        label = m
        if m in rho.index and np.isfinite(rho.loc[m, "rho"]):
            r = rho.loc[m]
            label = f"{m}: ρ = {r['rho']:+.2f} [{_fmt(r['rho_lo'], 2)}, {_fmt(r['rho_hi'], 2)}]"
        fig.add_trace(go.Scatter(x=j["distance"], y=j["abs_error"], mode="markers", name=label,
                                 marker=dict(color=colours[m], size=8,
                                             symbol=[LATTICE_SYMBOLS.get(lat, "x") for lat in j["lattice"]]),
                                 hovertext=_hover(j, True), hoverinfo="text"))
    fig.update_layout(title=dict(text=f"|γ error| against the distance from the reference set ({_e(reference)}); "
                                      f"Spearman ρ with its {pct} bootstrap interval", x=0.5, xanchor="center"),
                      template=TEMPLATE, font=FONT, width=1100, height=600,
                      xaxis_title="distance from the reference set (mean k-NN distance of unit site descriptors)",
                      yaxis_title=f"|γ model − γ DFT| ({GAMMA_UNIT})")
    return fig


def correlation_figure(corr: pd.DataFrame, ci: float = 0.95) -> go.Figure:
    """Spearman rho (pooled and within elements) with intervals, per model and reference set."""
    fig = go.Figure()
    refs = list(dict.fromkeys(corr["reference"]))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
    for i, ref in enumerate(refs):
        c = corr[corr["reference"] == ref]
        for what, col, dash in (("pooled", "rho", "circle"), ("within elements", "rho_within_element", "diamond")):
            fig.add_trace(go.Scatter(
                x=c[col], y=[f"{m}" for m in c["model"]], mode="markers", name=f"{ref}: {what}",
                marker=dict(symbol=dash, size=10, color=palette[i % len(palette)],
                            opacity=1.0 if what == "pooled" else 0.6),
                error_x=dict(type="data", symmetric=False, array=c[f"{col}_hi"] - c[col],
                             arrayminus=c[col] - c[f"{col}_lo"]),
                offsetgroup=f"{ref}-{what}"))
    fig.add_vline(x=0.0, line=dict(color="#888", dash="dot"))
    fig.update_layout(title=dict(text=f"Spearman ρ of distance and |γ error| with {100 * ci:.0f}% bootstrap intervals",
                                 x=0.5, xanchor="center"), template=TEMPLATE, font=FONT, width=1000,
                      height=160 + 40 * max(1, corr["model"].nunique()) * max(1, len(refs)),
                      xaxis=dict(title="Spearman ρ", range=[-1.05, 1.05]), scattermode="group")
    return fig


# ---------------------------------------------------------------------------- report section
@dataclass
class DomainSection:
    """What the HTML report shows in its descriptor-map section."""

    body: str = ""
    figures: list[tuple[str, go.Figure, str]] = field(default_factory=list)
    correlation: pd.DataFrame = field(default_factory=pd.DataFrame)
    maps: pd.DataFrame = field(default_factory=pd.DataFrame)
    payload: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def correlation_table(maps, slabs: pd.DataFrame, order: list[str], *, n_boot: int = 2000, seed: int = 0,
                      ci: float = 0.95) -> pd.DataFrame:
    """One row per (reference set, model): Spearman rho of distance and |gamma error|."""
    from surfbench.analysis.domain import distance_error_correlation

    frames = []
    for _, dmap in maps:
        c = distance_error_correlation(slabs[slabs["model"].isin(order)], dmap.table[dmap.table["kind"] == "slab"],
                                       n_boot=n_boot, seed=seed, ci=ci)
        c.insert(0, "reference", dmap.settings.reference_name)
        c["model"] = pd.Categorical(c["model"], categories=order, ordered=True)
        frames.append(c.sort_values("model"))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["model"] = out["model"].astype(str)
    return out


def _fresh(dmap, records: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The map's rows whose structure is the stored record's (content hash), and how many differ."""
    if records.empty:
        return dmap.table, 0
    hashes = records.set_index("record_id")["content_hash"]
    t = dmap.table
    same = t["record_id"].map(hashes) == t["content_hash"]
    return t[same].reset_index(drop=True), int((~same).sum())


def domain_section(store_path: str | Path, dataset: str, slabs: pd.DataFrame, order: list[str],
                   records: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> DomainSection:
    """The report's section from the maps saved beside the store by ``surfbench map``."""
    from surfbench.analysis.descriptor_map import load_maps

    maps = load_maps(store_path, dataset)
    out = DomainSection()
    if not maps:
        out.body = ("<p>No descriptor map is stored for this data set. Run <code>surfbench map --workdir "
                    f"{_e(Path(store_path).parent if str(store_path).endswith('.sqlite') else store_path)} "
                    f"--dataset {_e(dataset)}</code> (add <code>--reference mlearn-train</code> or "
                    "<code>--reference FILE.extxyz</code> for a training set) and rebuild the report.</p>")
        return out
    fresh = []
    for path, dmap in maps:
        table, stale = _fresh(dmap, records)
        if stale:
            out.warnings.append(f"descriptor map {path.name}: {stale} record(s) changed since it was made "
                                "(structure hash); they are left out; rerun 'surfbench map'")
        dmap.table = table
        fresh.append((path, dmap))
    pct = f"{100 * ci:.0f}%"
    corr = correlation_table(fresh, slabs, order, n_boot=n_boot, seed=seed, ci=ci)
    first = fresh[0][1]
    s = first.settings
    out.figures.append(("descriptor-map", map_figure(first.table, slabs, order,
                                                     title=f"Kernel PCA map of {_e(dataset)}"),
                        f"Kernel PCA of the {s.kernel} kernel of {_e(first.settings.descriptor.describe())} "
                        f"({'all sites' if s.sites == 'all' else f'{s.surface_layers} outermost layers per face'}); "
                        "one point per structure. Slabs coloured by the |γ error| of the model chosen in the menu "
                        "(red: no model γ), marker by the bulk lattice; bulk records as open grey markers."))
    for _, dmap in fresh:
        ref = dmap.settings.reference_name
        c = corr[corr["reference"] == ref]
        out.figures.append((f"distance-vs-error-{ref}", distance_error_figure(dmap.table, slabs, c, order,
                                                                                reference=ref, ci=ci),
                            f"|γ error| against each slab's distance from the reference set <b>{_e(ref)}</b> "
                            f"({dmap.n_reference_structures} structures, {dmap.n_reference_sites} sites): the "
                            f"{dmap.settings.reduce} over the slab's sites of the mean distance to the "
                            f"{dmap.settings.k} nearest reference sites of the same element. Marker: the bulk "
                            "lattice (circle fcc, square bcc, hexagon hcp, diamond: diamond)."))
    if len(corr):
        out.figures.append(("distance-error-correlation", correlation_figure(corr, ci),
                            "Spearman ρ of distance and |γ error| per model, pooled over all slabs and within "
                            f"elements (ranks taken per element), with {pct} percentile-bootstrap intervals."))
    rows = []
    for r in corr.itertuples():
        rows.append(f"<tr><td>{_e(r.reference)}</td><td>{_e(r.model)}</td><td class='num'>{r.n}</td>"
                    f"<td class='num'>{_fmt(r.rho, 2)} [{_fmt(r.rho_lo, 2)}, {_fmt(r.rho_hi, 2)}]</td>"
                    f"<td class='num'>{_fmt(r.p_value, 3)}</td>"
                    f"<td class='num'>{_fmt(r.rho_within_element, 2)} [{_fmt(r.rho_within_element_lo, 2)}, "
                    f"{_fmt(r.rho_within_element_hi, 2)}]</td><td class='num'>{r.n_no_gamma}</td>"
                    f"<td class='num'>{r.n_no_distance}</td></tr>")
    table = ("<table class='data'><thead><tr><th>reference set</th><th>model</th><th>slabs</th>"
             f"<th>Spearman ρ [{pct} CI]</th><th>p</th><th>ρ within elements [{pct} CI]</th>"
             "<th>γ failed</th><th>no distance</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    supported = ([f"{r.model} ({r.reference})" for r in corr[corr["rho_lo"] > 0].itertuples()]
                 if len(corr) else [])
    out.body = (
        "<p>Are the errors larger for surfaces far from the reference data? Each structure is described by its "
        "sites' descriptors; the map is the kernel PCA of the structures' similarity, and each slab's distance "
        "from a reference set (the data set's bulk records, or a training set) is the k-nearest-neighbour "
        "distance of its sites' descriptors. Spearman ρ &gt; 0: the farther a slab from the reference, the "
        "larger the error. Pooled over elements, ρ also reflects differences between elements; the "
        "within-element ρ compares only slabs of the same element. Made by <code>surfbench map</code>.</p>"
        + table
        + (f"<p>Interval above 0 (pooled): {_e(', '.join(f'{m}' for m in supported))}.</p>" if supported else
           "<p>No model's pooled interval lies above 0.</p>")
    )
    out.correlation = corr
    out.maps = pd.concat([d.table.assign(reference=d.settings.reference_name) for _, d in fresh], ignore_index=True)
    out.payload = {
        "maps": [{"file": str(p), "reference": d.settings.reference_name, "descriptor": d.settings.descriptor.describe(),
                  "kernel": d.settings.kernel, "sites": d.settings.sites, "k": d.settings.k, "reduce": d.settings.reduce,
                  "n_reference_structures": d.n_reference_structures, "n_reference_sites": d.n_reference_sites,
                  "created_utc": d.created_utc} for p, d in fresh],
    }
    return out
