"""Rich console tables of the metrics of one or more runs."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from surfbench.analysis import seen
from surfbench.analysis.metrics import error_stats, failure_counts, metrics
from surfbench.analysis.predictions import bulk_predictions, slab_predictions


def _f(x: float, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _cov(stats: dict) -> str:
    return f"{stats['n_ok']}/{stats['n_total']}"


def _pick(m: pd.DataFrame, quantity: str, **where: object) -> dict:
    sel = m[m["quantity"] == quantity]
    for k, v in where.items():
        sel = sel[sel[k] == v]
    if sel.empty:
        return {"n_ok": 0, "n_total": 0, "mae": math.nan, "rmse": math.nan, "mean_signed_error": math.nan}
    return sel.iloc[0].to_dict()


def synthetic_tag(console: Console, results: pd.DataFrame, title: str) -> str:
    """For a synthetic data set (:mod:`surfbench.data.synthetic`): print its banner and return
    the title marked SYNTHETIC, so that no table of it passes for DFT data."""
    from surfbench.data.synthetic import BANNER, is_synthetic

    if "dataset" in results and any(is_synthetic(d) for d in results["dataset"].dropna().unique()):
        console.print(f"[bold yellow]{BANNER}[/]")
        return f"SYNTHETIC (not DFT): {title}"
    return title


def render_run(console: Console, results: pd.DataFrame, title: str) -> None:
    """Overall, per-element and per-Miller-index tables for the results of one run."""
    title = escape(synthetic_tag(console, results, title))
    bulks, slabs = bulk_predictions(results), slab_predictions(results)
    overall = metrics(bulks, slabs)
    t = Table(title=f"{title}: overall", title_justify="left")
    for col in ("quantity", "unit", "ok/total", "MAE", "RMSE", "mean signed error"):
        t.add_column(col, justify="left" if col in ("quantity", "unit") else "right")
    for q, label in (("bulk_e_per_atom", "bulk energy per atom"), ("slab_e_per_atom", "slab energy per atom"),
                     ("gamma", "surface energy gamma")):
        s = _pick(overall, q)
        unit = "J/m^2" if q == "gamma" else "eV/atom"
        t.add_row(label, unit, _cov(s), _f(s["mae"]), _f(s["rmse"]), _f(s["mean_signed_error"]))
    console.print(t)

    per_el = metrics(bulks, slabs, by="element")
    t = Table(title=f"{title}: per element (errors = model - DFT)", title_justify="left")
    for col in ("element", "slabs ok/total", "bulk err eV/atom", "slab MAE eV/atom", "slab RMSE eV/atom",
                "gamma MAE J/m^2", "gamma RMSE J/m^2", "gamma mean signed error J/m^2"):
        t.add_column(col, justify="left" if col == "element" else "right")
    for el in sorted(set(per_el["element"].dropna())):
        b = _pick(per_el, "bulk_e_per_atom", element=el)
        s = _pick(per_el, "slab_e_per_atom", element=el)
        g = _pick(per_el, "gamma", element=el)
        t.add_row(el, _cov(g), _f(b["mean_signed_error"]), _f(s["mae"]), _f(s["rmse"]), _f(g["mae"]), _f(g["rmse"]),
                  _f(g["mean_signed_error"]))
    console.print(t)

    if seen.models_with_seen(slabs):
        render_seen(console, slabs, title)

    per_hkl = metrics(bulks, slabs, by="miller")
    t = Table(title=f"{title}: gamma per Miller index", title_justify="left")
    for col in ("Miller index", "ok/total", "MAE J/m^2", "RMSE J/m^2", "mean signed error J/m^2"):
        t.add_column(col, justify="left" if col == "Miller index" else "right")
    g = per_hkl[per_hkl["quantity"] == "gamma"].copy()
    g["_key"] = g["miller"].map(lambda m: (1, "") if not isinstance(m, str) else (0, m))
    for _, row in g.sort_values("_key").iterrows():
        hkl = row["miller"] if isinstance(row["miller"], str) else "unknown"
        t.add_row(f"({hkl})" if hkl != "unknown" else hkl, _cov(row), _f(row["mae"]), _f(row["rmse"]),
                  _f(row["mean_signed_error"]))
    console.print(t)

    fails = failure_counts(bulks, slabs)
    n_rec = len(results)
    n_ok = int((results["status"] == "ok").sum())
    console.print(f"coverage: {n_ok}/{n_rec} structures evaluated ok; "
                  f"gamma for {int((slabs['gamma_status'] == 'ok').sum())}/{len(slabs)} slabs")
    for _, row in fails.iterrows():
        console.print(f"  failed ({row['quantity']}): {row['failure_kind']} x {row['count']}")


def render_seen(console: Console, slabs: pd.DataFrame, title: str) -> None:
    """gamma errors of one run on the slabs its model never saw, apart from those it was
    trained on (analysis/seen.py), per element, with the counts."""
    t = Table(title=f"{escape(title)}: gamma on slabs unseen in training vs seen in training (J/m^2)",
              title_justify="left")
    for col in ("element", "unseen ok/total", "unseen RMSE", "unseen mean signed error", "seen ok/total", "seen RMSE",
                "seen mean signed error"):
        t.add_column(col, justify="left" if col == "element" else "right")

    def stats(df: pd.DataFrame, which: str) -> dict:
        return error_stats(df.loc[df[seen.COLUMN] == which, "error_gamma_j_per_m2"])

    groups = [(el, g) for el, g in slabs.groupby("element", sort=True)] + [("all", slabs)]
    for el, g in groups:
        u, s = stats(g, seen.UNSEEN), stats(g, seen.SEEN)
        t.add_row(el, _cov(u), _f(u["rmse"]), _f(u["mean_signed_error"]), _cov(s), _f(s["rmse"]),
                  _f(s["mean_signed_error"]),
                  style="bold" if el == "all" else None)
    console.print(t)
    n_seen = int((slabs[seen.COLUMN] == seen.SEEN).sum())
    what = slabs[seen.DESCRIPTION].iloc[0] if seen.DESCRIPTION in slabs and len(slabs) else "its training data"
    console.print(f"This model was trained on {escape(str(what))}: {n_seen} of these {len(slabs)} slabs were in its "
                  "training data. The 'unseen' columns measure it on surfaces it never saw; the 'seen' columns only "
                  "show how closely it was fitted to its own training slabs.")


def render_comparison(console: Console, results: pd.DataFrame, title: str) -> None:
    """One table comparing several runs (models) on one data set: gamma RMSE per element and
    overall, with the bulk and slab energy RMSE overall (Table I layout of Focassio et al.).
    A column is headed by the model's name, or by its fingerprint where one name has several.
    The models are compared on the slabs every one of them evaluated
    (:mod:`surfbench.analysis.comparable`): a row gives the gamma RMSE of the comparable models on
    their common slabs, a model with other coverage is marked "not comparable" in its heading
    (its numbers are over its own slabs), and a line under the table says how many slabs the
    comparison rests on. An element a model did not evaluate is "not run", never a failure."""
    from surfbench.analysis.comparable import comparability
    from surfbench.store.selection import run_labels

    title = synthetic_tag(console, results, title)
    results = results.assign(model=results["fingerprint"].map(run_labels(results)))
    bulks, slabs = bulk_predictions(results), slab_predictions(results)
    overall = metrics(bulks, slabs)
    per_el = metrics(bulks, slabs, by="element")
    runs = overall[["fingerprint", "model"]].drop_duplicates().sort_values("model")
    comp = comparability(slabs, list(runs["model"]))
    t = Table(title=escape(title), title_justify="left")
    t.add_column("RMSE (ok/total)", justify="left")
    for _, r in runs.iterrows():
        t.add_column(escape(comp.label(r["model"])), justify="right", overflow="fold")
    elements = sorted(set(per_el["element"].dropna()))

    def cell(m: pd.DataFrame, fp: str, q: str, missing: str = "not run", **where: object) -> str:
        s = _pick(m[m["fingerprint"] == fp], q, **where)
        if s["n_total"] == 0:
            return missing
        return f"{_f(s['rmse'])} ({_cov(s)})"

    def ranked_cell(m: pd.DataFrame, fp: str, model: str, q: str, missing: str = "not run", **where: object) -> str:
        return cell(m, fp, q, missing, **where) if comp.is_comparable(model) else "not comparable"

    for el in elements:
        t.add_row(f"gamma {el} (J/m^2)", *[cell(per_el, fp, "gamma", element=el) for fp in runs["fingerprint"]])
    t.add_row("gamma all (J/m^2)", *[cell(overall, fp, "gamma") for fp in runs["fingerprint"]], style="bold")
    if comp.ranked:
        common = slabs[slabs["model"].isin(comp.ranked_models) & slabs["record_id"].isin(comp.common_ids)]
        c_overall = metrics(bulks, common)
        t.add_row(f"gamma, {comp.n_common} common slabs (J/m^2)",
                  *[ranked_cell(c_overall, fp, m, "gamma", missing="no gamma") for fp, m in
                    zip(runs["fingerprint"], runs["model"])], style="bold")
    t.add_row("slab energy (eV/atom)", *[cell(overall, fp, "slab_e_per_atom") for fp in runs["fingerprint"]])
    t.add_row("bulk energy (eV/atom)", *[cell(overall, fp, "bulk_e_per_atom") for fp in runs["fingerprint"]])
    trained = seen.models_with_seen(slabs)
    if trained:
        # the same slabs for every comparable model: those none of them saw (a model with other coverage is not
        # compared here)
        common_unseen = seen.unseen_by_all(slabs[slabs["model"].isin(comp.comparable)] if comp.others else slabs)
        c_overall = metrics(bulks, common_unseen)
        c_el = metrics(bulks, common_unseen, by="element")
        pairs = list(zip(runs["fingerprint"], runs["model"]))
        for el in sorted(set(c_el["element"].dropna())):
            t.add_row(f"gamma {el}, slabs no model saw (J/m^2)",
                      *[ranked_cell(c_el, fp, m, "gamma", element=el) for fp, m in pairs])
        t.add_row("gamma all, slabs no model saw (J/m^2)",
                  *[ranked_cell(c_overall, fp, m, "gamma") for fp, m in pairs], style="bold")
        own = slabs[slabs[seen.COLUMN] == seen.SEEN]
        o_overall = metrics(bulks, own) if not own.empty else pd.DataFrame(columns=["fingerprint", "quantity"])
        t.add_row("gamma, slabs seen in its training (J/m^2)",
                  *[cell(o_overall, fp, "gamma", missing="none seen") for fp in runs["fingerprint"]])
    console.print(t)
    if len(runs) > 1:
        console.print(escape(f"{comp.summary()[0].upper() + comp.summary()[1:]}"
                             + (" (the bold row 'common slabs'; the other rows are over each model's own slabs)"
                                if comp.ranked else "") + "."))
    if comp.note():
        console.print(f"[yellow]{escape(comp.note())}[/]")
    if trained:
        n_common = common_unseen["record_id"].nunique()
        console.print(
            f"{escape(', '.join(trained))} saw some of these slabs in training "
            f"({escape('; '.join(sorted(set(slabs.loc[slabs['model'].isin(trained), seen.DESCRIPTION]))))}). "
            "The rows 'all' mix slabs they were fitted to with new ones; the rows 'slabs no model saw' compare every "
            f"model on the same {n_common} slabs that none of them was trained on, the fair comparison of how they "
            "do on surfaces they never saw.")


def render_relaxation_split(console: Console, split: pd.DataFrame) -> None:
    """The gamma error split (total = static + relaxation, J/m^2) per model and per element."""
    from surfbench.analysis.relaxation import split_summary

    t = Table(title="gamma error split: total (relaxed - DFT) = static (DFT geometry) + relaxation (J/m^2)",
              title_justify="left")
    for col in ("model", "slabs", "total RMSE", "total mean signed error", "static RMSE", "static mean signed error",
                "relaxation RMSE", "relaxation mean signed error", "median steps", "median RMSD A", "relaxed failures"):
        t.add_column(col, justify="left" if col in ("model", "relaxed failures") else "right")
    for _, r in split_summary(split).iterrows():
        t.add_row(escape(str(r["model"])), f"{r['n']}/{r['n_slabs']}", _f(r["total_rmse"]),
                  _f(r["total_mean_signed_error"]), _f(r["static_rmse"]), _f(r["static_mean_signed_error"]),
                  _f(r["relaxation_rmse"]), _f(r["relaxation_mean_signed_error"]),
                  _f(r["median_steps"], 0), _f(r["median_rmsd_a"]), escape(str(r["relaxed_failures"])))
    console.print(t)
    both = split.dropna(subset=["error_total_j_per_m2", "error_static_j_per_m2"])
    if both.empty:
        return
    t = Table(title="per element: mean signed errors (J/m^2)", title_justify="left")
    for col in ("model", "element", "slabs", "total", "static", "relaxation"):
        t.add_column(col, justify="left" if col in ("model", "element") else "right")
    for (m, el), g in both.groupby(["model", "element"], sort=True):
        t.add_row(escape(str(m)), el, str(len(g)), _f(g["error_total_j_per_m2"].mean()),
                  _f(g["error_static_j_per_m2"].mean()), _f(g["error_relaxation_j_per_m2"].mean()))
    console.print(t)


def render_softening(console: Console, results) -> None:
    """Slopes (overall and per element) and the correction's effect on gamma."""
    ov = results.slopes.get("overall", pd.DataFrame())
    el = results.slopes.get("element", pd.DataFrame())
    gs = results.gamma_slopes.set_index("model") if len(results.gamma_slopes) else pd.DataFrame()
    t = Table(title="softening slopes, predicted vs DFT through the origin (95% bootstrap interval); < 1: too soft",
              title_justify="left")
    for col in ("model", "scope", "frames", "forces k_F", "energies k_E", "gamma k_gamma"):
        t.add_column(col, justify="left" if col in ("model", "scope") else "right")

    def ci(k, lo, hi) -> str:
        return "-" if pd.isna(k) else f"{k:.3f} [{_f(lo)}, {_f(hi)}]"

    for _, r in ov.iterrows():
        g = gs.loc[r["model"]] if r["model"] in gs.index else None
        t.add_row(escape(r["model"]), "all", str(r["n_frames"] - r["n_failed"]),
                  ci(r["force_slope"], r["force_slope_lo"], r["force_slope_hi"]),
                  ci(r["energy_slope"], r["energy_slope_lo"], r["energy_slope_hi"]),
                  "-" if g is None else ci(g["gamma_slope"], g["gamma_slope_lo"], g["gamma_slope_hi"]))
        for _, e in el[el["model"] == r["model"]].iterrows():
            t.add_row("", e["element"], str(e["n_frames"] - e["n_failed"]),
                      ci(e["force_slope"], e["force_slope_lo"], e["force_slope_hi"]),
                      ci(e["energy_slope"], e["energy_slope_lo"], e["energy_slope_hi"]), "")
    console.print(t)
    eff = results.correction_effect
    if len(eff):
        t = Table(title="softening correction (scale about the bulk reference, fitted on training frames, no slabs): "
                        "gamma on the data set's slabs (J/m^2)", title_justify="left")
        for col in ("model", "scale s", "fit frames", "slabs", "RMSE before", "RMSE after", "mean signed error before",
                    "mean signed error after"):
            t.add_column(col, justify="left" if col == "model" else "right")
        for _, r in eff.iterrows():
            t.add_row(escape(r["model"]), str(r["scale"]), str(r["n_fit_frames"]), str(r["n_slabs"]),
                      _f(r["rmse_before_j_per_m2"]), _f(r["rmse_after_j_per_m2"]),
                      _f(r["mean_signed_error_before_j_per_m2"]), _f(r["mean_signed_error_after_j_per_m2"]))
        console.print(t)
    for note in results.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
