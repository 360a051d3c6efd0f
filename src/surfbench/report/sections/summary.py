"""The summary section: the data set, the best comparable model with its interval, systematic
under- or overestimation of gamma, missing low-index facets and every warning of the report."""

from __future__ import annotations

import numpy as np

from surfbench.report.markup import esc, plural
from surfbench.report.section import ReportContext, Section


def build(ctx: ReportContext) -> Section:
    """The summary; built last (it shows every other section's warnings)."""
    meta, comp, comparison, pct = ctx.meta, ctx.comp, ctx.comparison, ctx.pct
    body = [f"<p>Data set <b>{esc(meta['dataset'])}</b>: {meta['dataset_counts']['slabs']} slabs and "
            f"{meta['dataset_counts']['bulks']} bulk references, elements "
            f"{esc(', '.join(meta['dataset_counts']['elements']))}; protocol <b>{esc(meta['protocol'])}</b>; "
            f"{plural(len(ctx.order), 'model')}. Errors are model − DFT; γ in J/m², energies in eV/atom. "
            "A failed structure is never counted as an error of 0: it is left out of the statistics and "
            "counted under <a href='#coverage'>coverage</a>.</p>"]
    ranked = comparison[comparison["comparable"] & comparison["gamma_rank"].notna()] \
        if "gamma_rank" in comparison and len(comparison) else comparison.iloc[0:0]
    best = ranked.sort_values(["gamma_rank", "model"]).iloc[0] if len(ranked) else None
    if best is not None and np.isfinite(best["gamma_common_rmse"]):
        same = best.get("gamma_indistinguishable_from") or ""
        body.append(f"<p>Lowest RMSE of γ among the {len(ranked)} comparable models, {esc(comp.compared())}: "
                    f"<b>{esc(best['model'])}</b>, {best['gamma_common_rmse']:.3f} J/m² "
                    f"({pct} CI {best['gamma_common_rmse_lo']:.3f}–{best['gamma_common_rmse_hi']:.3f})"
                    + (f"; not distinguishable from {esc(same)} on these slabs." if same else
                       "; distinguishable from every other comparable model on these slabs.") + "</p>")
    elif len(ctx.order) > 1:
        body.append(f"<p><b>{esc(comp.summary()[0].upper() + comp.summary()[1:])}.</b></p>")
    if comp.note():
        body.append(f'<p class="note">{esc(comp.note())}</p>')
    if len(comparison):
        under = [comp.label(m) for m in comparison[comparison["gamma_mean_signed_error_hi"] < 0]["model"]]
        over = [comp.label(m) for m in comparison[comparison["gamma_mean_signed_error_lo"] > 0]["model"]]
        if under:
            body.append(f"<p>Systematic underestimation of γ (mean signed error and its {pct} CI below 0): "
                        f"{esc(', '.join(under))}.</p>")
        if over:
            body.append(f"<p>Systematic overestimation of γ (mean signed error and its {pct} CI above 0): "
                        f"{esc(', '.join(over))}.</p>")
    records = ctx.records
    for bid, miss in ctx.missing_facets.items():
        el = records.loc[records["record_id"] == bid, "element"].iloc[0]
        body.append(f'<p class="note">{esc(el)} ({esc(bid)}): the data set has no '
                    f"{esc(', '.join('{' + m + '}' for m in miss))} slab, so its Wulff shapes and facet orderings "
                    "lack these low-index facets.</p>")
    for w in ctx.warnings:
        body.append(f'<p class="note">{esc(w)}</p>')
    return Section(body="".join(body))
