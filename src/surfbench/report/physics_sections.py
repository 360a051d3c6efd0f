"""Report sections on where the surface-energy error comes from: the relaxed protocol's
static/relaxation split, and the softening study with its correction. Both read the store only
(the softening study stores its numbers as an analysis payload when it runs)."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from surfbench.analysis.relaxation import relaxation_split, split_summary
from surfbench.report import softening_figures as sf
from surfbench.report.run_figures import FONT, TEMPLATE


@dataclass
class Section:
    body: str = ""
    figures: list[tuple[str, go.Figure, str]] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    payload: dict = field(default_factory=dict)


def _relaxed_protocol(store, dataset: str, fingerprint: str) -> str | None:
    """The relaxed protocol with the most results for this model (defaults preferred)."""
    runs = store.runs()
    runs = runs[(runs["dataset"] == dataset) & (runs["fingerprint"] == fingerprint) & runs["protocol"].str.startswith("relaxed")]
    if runs.empty:
        return None
    runs = runs.assign(default=runs["protocol"] == "relaxed").sort_values(["default", "n"], ascending=False)
    return str(runs["protocol"].iloc[0])


def relaxation_section(store, dataset: str, labels: Mapping[str, str], order: Sequence[str],
                       colours: Mapping[str, str], table: Callable[[pd.DataFrame], str]) -> Section:
    """Split of the gamma error into static and relaxation parts for every model with a relaxed run."""
    parts = []
    for fp, label in labels.items():
        proto = _relaxed_protocol(store, dataset, fp)
        if proto is None:
            continue
        split = relaxation_split(store.results(dataset, fp, "static"), store.results(dataset, fp, proto))
        split["model"] = label
        split["relaxed_protocol"] = proto
        parts.append(split)
    if not parts:
        return Section(body="<p>No relaxed run in the store. <code>surfbench run --protocol relaxed</code> relaxes "
                            "each bulk (positions and cell) and each DFT slab (positions, in-plane cell scaled to the "
                            "model's bulk lattice) with the model and splits the γ error into its static and "
                            "relaxation parts.</p>")
    split = pd.concat(parts, ignore_index=True)
    summary = split_summary(split)
    summary["model"] = pd.Categorical(summary["model"], [m for m in order if m in set(summary["model"])] +
                                      sorted(set(summary["model"]) - set(order)))
    summary = summary.sort_values("model")
    show = pd.DataFrame({
        "model": summary["model"].astype(str), "slabs": [f"{a}/{b}" for a, b in zip(summary["n"], summary["n_slabs"])],
        "total RMSE": summary["total_rmse"], "total mean signed error": summary["total_mean_signed_error"],
        "static RMSE": summary["static_rmse"], "static mean signed error": summary["static_mean_signed_error"],
        "relaxation RMSE": summary["relaxation_rmse"],
        "relaxation mean signed error": summary["relaxation_mean_signed_error"],
        "median steps": summary["median_steps"], "median RMSD (Å)": summary["median_rmsd_a"],
        "relaxed failures": summary["relaxed_failures"],
    })
    fig = go.Figure()
    for part, colour in (("static", "#0072B2"), ("relaxation", "#E69F00"), ("total", "#555555")):
        fig.add_trace(go.Bar(x=show["model"], y=summary[f"{part}_mean_signed_error"], name=f"{part} (mean signed)", marker_color=colour,
                             hovertemplate="%{x}: %{y:+.3f} J/m²<extra>" + part + "</extra>"))
    fig.update_layout(template=TEMPLATE, font=FONT, barmode="group", height=420, width=900,
                      yaxis_title="mean signed γ error (J/m²)",
                      title="γ error split: total (relaxed − DFT) = static (DFT geometry) + relaxation")
    body = ("<p>Each bulk is relaxed with the model (positions and cell, ASE FrechetCellFilter); each DFT slab keeps "
            "its atoms and is scaled in-plane to the model's bulk lattice (isotropic, from the volume per atom), then "
            "its positions are relaxed. Per slab, total = γ<sub>relaxed</sub> − γ<sub>DFT</sub> is exactly static "
            "(γ<sub>static</sub> − γ<sub>DFT</sub>) + relaxation (γ<sub>relaxed</sub> − γ<sub>static</sub>); the "
            "table uses the slabs with both (J/m²). Protocols: "
            + html.escape(", ".join(sorted(set(split["relaxed_protocol"])))) + ".</p>" + table(show))
    return Section(body=body, figures=[("relaxation-split", fig, "Mean signed γ error per part and model.")],
                   tables={"relaxation-split": split, "relaxation-summary": summary.astype({"model": str})},
                   payload={"summary": summary.astype({"model": str}).to_dict(orient="records")})


#: keys of softening analyses in stores written before the rename (``mse`` was the mean signed error)
_OLD_KEYS = {"mse_before_j_per_m2": "mean_signed_error_before_j_per_m2",
             "mse_after_j_per_m2": "mean_signed_error_after_j_per_m2"}


def _renamed(row: dict) -> dict:
    """A stored analysis row with the keys of an older store under their current names (a
    user's store written before the ``mse`` rename still reports)."""
    return {_OLD_KEYS.get(k, k): v for k, v in row.items()}


def softening_section(store, dataset: str, labels: Mapping[str, str], order: Sequence[str],
                      table: Callable[[pd.DataFrame], str]) -> Section:
    """Slopes and the correction from the stored softening analyses of the report's models."""
    stored = {}
    for a in store.analyses("softening", dataset):
        if a["fingerprint"] in labels and a["fingerprint"] not in stored:
            stored[a["fingerprint"]] = a  # newest first
    if not stored:
        return Section(body="<p>No softening study in the store: <code>surfbench softening -m MODEL</code> fits the "
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
        slopes = slopes.merge(pd.DataFrame({"model": gs["model"], "γ k_γ": ci(gs, "gamma_slope")}), on="model", how="left")
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
                   payload={"models": {labels[fp]: {k: a[k] for k in ("settings", "correction", "effect", "created_at")}
                                       for fp, a in stored.items()}})
