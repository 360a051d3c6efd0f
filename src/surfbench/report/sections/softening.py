"""The softening section: slopes of predicted against DFT forces, energies and gamma (Deng et
al. 2025) and the effect of the cheap correction, from the softening analyses stored by
``surfbench softening``. Reads the store only."""

from __future__ import annotations

import pandas as pd

from surfbench.report import softening_figures as sf
from surfbench.report.markup import html_table
from surfbench.report.section import ReportContext, Section

#: keys of softening analyses in stores written before the rename (``mse`` was the mean signed error)
_OLD_KEYS = {"mse_before_j_per_m2": "mean_signed_error_before_j_per_m2",
             "mse_after_j_per_m2": "mean_signed_error_after_j_per_m2"}


def _renamed(row: dict) -> dict:
    """A stored analysis row with the keys of an older store under their current names (a
    user's store written before the ``mse`` rename still reports)."""
    return {_OLD_KEYS.get(k, k): v for k, v in row.items()}


def build(ctx: ReportContext) -> Section:
    """Slopes and the correction from the stored softening analyses of the report's models."""
    store, dataset, labels, order, table = ctx.store, ctx.dataset, ctx.labels, ctx.order, html_table
    stored = {}
    for a in store.analyses("softening", dataset):
        if a["fingerprint"] in labels and a["fingerprint"] not in stored:
            stored[a["fingerprint"]] = a  # newest first
    if not stored:
        return Section(payload={"softening": {}},
                       body="<p>No softening study in the store: <code>surfbench softening -m MODEL</code> fits the "
                            "slopes of predicted vs DFT forces, energies and γ and a correction.</p>")
    overall, element, gamma, effect, frames = [], [], [], [], []
    for fp, a in stored.items():
        label = labels[fp]
        for rows, out in ((a["slopes"].get("overall", []), overall), (a["slopes"].get("element", []), element),
                          (a["gamma_slopes"], gamma), (a["effect"], effect), (a["frames"], frames)):
            out += [{**_renamed(r), "model": label} for r in rows]
    ov, el, gs = pd.DataFrame(overall), pd.DataFrame(element), pd.DataFrame(gamma)
    eff, fr = pd.DataFrame(effect), pd.DataFrame(frames)

    def ci(df: pd.DataFrame, what: str) -> list[str]:
        def f(v) -> str:
            return "–" if v is None or pd.isna(v) else f"{v:.3f}"

        return ["–" if k is None or pd.isna(k) else f"{f(k)} [{f(lo)}, {f(hi)}]"
                for k, lo, hi in zip(df[what], df[f"{what}_lo"], df[f"{what}_hi"])]

    slopes = pd.DataFrame({"model": ov["model"], "frames": ov["n_frames"] - ov["n_failed"],
                           "forces k_F": ci(ov, "force_slope"), "energies k_E": ci(ov, "energy_slope")})
    if len(gs):
        slopes = slopes.merge(pd.DataFrame({"model": gs["model"], "γ k_γ": ci(gs, "gamma_slope")}), on="model",
                              how="left")
    rank = {m: i for i, m in enumerate(order)}
    slopes = slopes.sort_values("model", key=lambda s: s.map(lambda m: rank.get(m, len(rank))))
    parts = ["<p>Slopes of predicted against DFT values through the origin (Deng et al. 2025), with 95% bootstrap "
             "intervals over frames: forces (eV/Å, every component), energies per atom relative to each side's bulk "
             "reference (eV/atom), and surface energies γ. A slope below 1 is a softened energy landscape.</p>",
             table(slopes)]
    if len(eff):
        show = pd.DataFrame({"model": eff["model"], "scale s": eff["scale"], "fit frames": eff["n_fit_frames"],
                             "slabs": eff["n_slabs"], "γ RMSE before": eff["rmse_before_j_per_m2"],
                             "γ RMSE after": eff["rmse_after_j_per_m2"],
                             "γ mean signed error before": eff["mean_signed_error_before_j_per_m2"],
                             "γ mean signed error after": eff["mean_signed_error_after_j_per_m2"]})
        parts += ["<p>Correction: the model's energy landscape scaled by s about its own bulk reference energies "
                  "(E' = Σe<sub>ref</sub> + s (E − Σe<sub>ref</sub>), F' = s F), s fitted by least squares on a few "
                  "training frames (never slabs, never the \"Surface\" group), judged on every slab of the data set "
                  "(J/m²).</p>", table(show)]
    figs = []
    if len(el):
        figs.append(("softening-slopes", sf.slope_bars(el, gs if len(gs) else pd.DataFrame(columns=["model"])),
                     "Force and energy slopes per element and the γ slope per model (1: no softening)."))
    if len(fr):
        figs.append(("softening-energy-parity", sf.energy_parity(fr, ov),
                     "Energies per atom relative to the bulk reference, model against DFT, one point per frame."))
    return Section(body="".join(parts), figures=figs,
                   tables={"softening-slopes": ov, "softening-slopes-per-element": el, "softening-gamma-slopes": gs,
                           "softening-correction": eff},
                   payload={"softening": {"models": {
                       labels[fp]: {k: a[k] for k in ("settings", "correction", "effect", "created_at")}
                       for fp, a in stored.items()}}})
