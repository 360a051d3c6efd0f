"""Report section: the metrics of models trained on some of the evaluated slabs (specialised
potentials such as SNAP, models made by ``surfbench train``) on the slabs they never saw,
apart from those they were fitted to, and every model compared on the slabs none of them saw."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from surfbench.analysis import seen
from surfbench.report.markup import ci_text, html_table
from surfbench.report.section import ReportContext, Section


def build(ctx: ReportContext) -> Section:
    """The seen/unseen metrics of the models trained on some slabs, and every model on the slabs
    none of them saw."""
    slabs, n_boot, seed, ci, pct, table = ctx.slabs, ctx.n_boot, ctx.seed, ctx.ci, ctx.pct, html_table
    trained = seen.models_with_seen(slabs)
    if not trained:
        return Section(payload={"seen": {}},
                       body="<p>No model in this report was trained on any of these slabs, as far as their registry "
                            "entries say (<code>trained_on</code>): every metric above is on surfaces new to the "
                            "model.</p>")
    from surfbench.analysis.comparable import comparability

    summary = seen.seen_summary(slabs, n_boot=n_boot, seed=seed, ci=ci)
    comp = comparability(slabs)
    # every model on the same slabs: a model that evaluated other slabs (not comparable) is left out here
    compared = slabs[slabs["model"].isin(comp.comparable)] if comp.others else slabs
    common = seen.common_unseen_summary(compared, n_boot=n_boot, seed=seed, ci=ci)
    n_common = int(seen.unseen_by_all(compared)["record_id"].nunique())
    left_out = (f"<p class='note'>Left out of this comparison (other coverage, not comparable): "
                f"{html.escape(', '.join(comp.label(m) for m in comp.others))}.</p>" if comp.others else "")
    show = pd.DataFrame({
        "model": summary["model"],
        "trained on": summary["trained_on"],
        "unseen slabs (γ ok)": [f"{n}/{t}" for n, t in zip(summary["unseen_n"], summary["n_unseen"])],
        f"γ RMSE unseen, J/m² ({pct} CI)": [
            ci_text(*r) for r in summary[["unseen_rmse", "unseen_rmse_lo", "unseen_rmse_hi"]].to_numpy()],
        f"γ mean signed error unseen, J/m² ({pct} CI)": [
            ci_text(*r) for r in summary[["unseen_mean_signed_error", "unseen_mean_signed_error_lo",
                                      "unseen_mean_signed_error_hi"]].to_numpy()],
        "seen slabs (γ ok)": [f"{n}/{t}" for n, t in zip(summary["seen_n"], summary["n_seen"])],
        "γ RMSE seen, J/m²": [ci_text(v, np.nan, np.nan) for v in summary["seen_rmse"]],
    })
    wide = common.assign(cell=[ci_text(*r)
                               for r in common[["gamma_rmse", "gamma_rmse_lo", "gamma_rmse_hi"]].to_numpy()])
    wide = wide.pivot(index="element", columns="model", values="cell")
    wide = wide.reindex([e for e in wide.index if e != "all"] + ["all"]).reset_index()
    body = (
        f"<p>{html.escape(', '.join(trained))} saw some of these slabs in training (their registry entries' "
        "<code>trained_on</code>). Their error on a slab they were fitted to says how well they were fitted, not how "
        "they do on a new surface; the table gives the two apart, the unseen slabs with percentile-bootstrap "
        f"{pct} intervals ({n_boot} resamples, seed {seed}).</p>"
        + table(show)
        + f"<h3>Every model on the {n_common} slabs that none of them saw in training</h3>"
        "<p>RMSE of γ (J/m²) per element with its interval: the fair comparison of universal and specialised "
        "models on surfaces new to all of them. With one or two slabs per element an interval is wide or absent; "
        "the row <i>all</i> is the one to read.</p>"
        + left_out
        + table(wide)
    )
    return Section(body=body, tables={"seen-unseen": summary, "unseen-by-all": common},
                   payload={"seen": {"models_with_seen_slabs": trained, "n_unseen_by_all": n_common}})
