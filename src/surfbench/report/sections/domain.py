"""The domain section: the descriptor map, each slab's distance from the reference data and
whether the gamma error grows with it, from the maps saved beside the store by ``surfbench map``
(no descriptor is computed while the report is built)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from surfbench.report.descriptor_figures import correlation_figure, correlation_table, distance_error_figure, map_figure
from surfbench.report.markup import esc, fmt
from surfbench.report.outputs import records_of
from surfbench.report.section import ReportContext, Section


def _fresh(dmap, records: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The map's rows whose structure is the stored record's (content hash), and how many differ."""
    if records.empty:
        return dmap.table, 0
    hashes = records.set_index("record_id")["content_hash"]
    t = dmap.table
    same = t["record_id"].map(hashes) == t["content_hash"]
    return t[same].reset_index(drop=True), int((~same).sum())


def build(ctx: ReportContext) -> Section:
    """The report's section from the maps saved beside the store by ``surfbench map``."""
    from surfbench.analysis.descriptor_map import load_maps

    store_path, dataset, slabs, order, records = ctx.store.path, ctx.dataset, ctx.slabs, ctx.order, ctx.records
    n_boot, seed, ci = ctx.n_boot, ctx.seed, ctx.ci
    maps = load_maps(store_path, dataset)
    out = Section(tables={"domain-correlation": pd.DataFrame(), "domain-map": pd.DataFrame()},
                  payload={"domain": {"correlation": []}})
    if not maps:
        out.body = ("<p>No descriptor map is stored for this data set. Run <code>surfbench map --workdir "
                    f"{esc(Path(store_path).parent if str(store_path).endswith('.sqlite') else store_path)} "
                    f"--dataset {esc(dataset)}</code> (add <code>--reference mlearn-train</code> or "
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
                                                     title=f"Kernel PCA map of {esc(dataset)}"),
                        f"Kernel PCA of the {s.kernel} kernel of {esc(first.settings.descriptor.describe())} "
                        f"({'all sites' if s.sites == 'all' else f'{s.surface_layers} outermost layers per face'}); "
                        "one point per structure. Slabs coloured by the |γ error| of the model chosen in the menu "
                        "(red: no model γ), marker by the bulk lattice; bulk records as open grey markers."))
    for _, dmap in fresh:
        ref = dmap.settings.reference_name
        c = corr[corr["reference"] == ref]
        out.figures.append((f"distance-vs-error-{ref}", distance_error_figure(dmap.table, slabs, c, order,
                                                                                reference=ref, ci=ci),
                            f"|γ error| against each slab's distance from the reference set <b>{esc(ref)}</b> "
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
        rows.append(f"<tr><td>{esc(r.reference)}</td><td>{esc(r.model)}</td><td class='num'>{r.n}</td>"
                    f"<td class='num'>{fmt(r.rho, 2)} [{fmt(r.rho_lo, 2)}, {fmt(r.rho_hi, 2)}]</td>"
                    f"<td class='num'>{fmt(r.p_value, 3)}</td>"
                    f"<td class='num'>{fmt(r.rho_within_element, 2)} [{fmt(r.rho_within_element_lo, 2)}, "
                    f"{fmt(r.rho_within_element_hi, 2)}]</td><td class='num'>{r.n_no_gamma}</td>"
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
        + (f"<p>Interval above 0 (pooled): {esc(', '.join(f'{m}' for m in supported))}.</p>" if supported else
           "<p>No model's pooled interval lies above 0.</p>")
    )
    out.tables = {"domain-correlation": corr, "domain-map": pd.concat(
        [d.table.assign(reference=d.settings.reference_name) for _, d in fresh], ignore_index=True)}
    out.payload = {"domain": {
        "maps": [{"file": str(p), "reference": d.settings.reference_name,
                  "descriptor": d.settings.descriptor.describe(), "kernel": d.settings.kernel,
                  "sites": d.settings.sites, "k": d.settings.k, "reduce": d.settings.reduce,
                  "n_reference_structures": d.n_reference_structures, "n_reference_sites": d.n_reference_sites,
                  "created_utc": d.created_utc} for p, d in fresh],
        "correlation": records_of(corr)}}
    return out
