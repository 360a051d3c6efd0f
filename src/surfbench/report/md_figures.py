"""Figures and tables of the molecular-dynamics stability section of the report
(:mod:`surfbench.report.sections.md`): a verdict table (element x model)
per settings, the numbers of every run, and per model a figure of temperature (K) and total
energy per atom (eV/atom, relative to its start) against time (ps), one trace per run.

Reads only the store's ``md_runs`` table (:mod:`surfbench.store.md_runs`)."""

from __future__ import annotations

import json
import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from surfbench.store.md_runs import md_runs

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf")
GOOD, BAD = "#d9f2d9", "#f8d0d0"


def load_md(store, dataset: str, labels: dict[str, str]) -> pd.DataFrame:
    """The MD runs of ``dataset`` for the report's models (fingerprint -> label), with a
    ``label`` column and a ``settings_label`` naming the preset, thermostat, steps and time
    step; empty when there is none."""
    df = md_runs(store, dataset, list(labels))
    if df.empty:
        return df
    df = df.copy()
    df["label"] = df["fingerprint"].map(labels)
    df["settings_label"] = [
        f"{p or 'custom'}: {th}, {int(n)} x {dt:g} fs"
        for p, th, n, dt in zip(df["preset"], df["thermostat"], df["steps"], df["timestep_fs"])]
    return df.reset_index(drop=True)


def verdict_matrix(df: pd.DataFrame, order: list[str]) -> dict[str, pd.DataFrame]:
    """Per settings label: element x model table of verdicts (several slabs of one element:
    one line per slab, "record: verdict")."""
    out = {}
    for label, grp in df.groupby("settings_label", sort=False):
        models = [m for m in order if m in set(grp["label"])] + sorted(set(grp["label"]) - set(order))
        rows = []
        for element in sorted(grp["element"].unique()):
            cells = {"element": element}
            for m in models:
                sel = grp[(grp["element"] == element) & (grp["label"] == m)]
                cells[m] = "; ".join(
                    (f"{r['verdict']}" if len(sel) == 1 else f"{r['record_id']}: {r['verdict']}")
                    for _, r in sel.iterrows()
                ) or "–"
            rows.append(cells)
        out[label] = pd.DataFrame(rows)
    return out


def details_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run with its numbers (units in the headings)."""
    def f(v, spec):
        return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)

    return pd.DataFrame({
        "model": df["label"], "slab": df["record_id"], "element": df["element"],
        "T target (K)": [f(v, ".0f") for v in df["temperature_k"]],
        "verdict": df["verdict"],
        "time run (ps)": [f(v, ".3g") for v in df["time_ps"]],
        "T mean ± std (K)": [f"{f(a, '.0f')} ± {f(b, '.0f')}"
                             for a, b in zip(df["temperature_mean_k"], df["temperature_std_k"])],
        "energy drift (eV/atom/ps)": [f(v, "+.3f") for v in df["energy_drift_ev_per_atom_per_ps"]],
        "max displacement (Å)": [f(v, ".2f") for v in df["max_displacement_a"]],
        "min distance (Å)": [f(v, ".2f") for v in df["min_distance_a"]],
        "Lindemann (inner)": [f(v, ".3f") for v in df["lindemann_inner"]],
        "desorbed atoms": [f(v, ".0f") for v in df["n_desorbed"]],
        "message": [("" if v == "stable" else str(m)) for v, m in zip(df["verdict"], df["message"])],
    })


def temperature_energy_figure(store, df: pd.DataFrame, model: str) -> go.Figure:
    """Temperature (K, with the target dotted) and total energy per atom relative to the
    first sample (eV/atom) against time (ps), one colour per run of ``model``."""
    from surfbench.store.md_runs import MDStore

    mds = MDStore(store)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("temperature (K)", "total energy per atom − start (eV/atom)"))
    sel = df[df["label"] == model]
    for k, (_, r) in enumerate(sel.iterrows()):
        s = mds.series(r["dataset"], r["record_id"], r["fingerprint"], r["protocol"])
        if not s:
            continue
        colour = _COLOURS[k % len(_COLOURS)]
        t_ps = [t / 1000.0 if t is not None else None for t in s["time_fs"]]
        e = s["etot_ev_per_atom"]
        e0 = next((v for v in e if v is not None), None)
        name = f"{r['record_id']} ({r['verdict']})"
        fig.add_trace(go.Scatter(x=t_ps, y=s["temperature_k"], mode="lines", name=name, legendgroup=name,
                                 line={"color": colour}), row=1, col=1)
        fig.add_trace(go.Scatter(x=[t_ps[0], t_ps[-1]], y=[r["temperature_k"]] * 2, mode="lines", showlegend=False,
                                 legendgroup=name, hoverinfo="skip", line={"color": colour, "dash": "dot", "width": 1}),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=t_ps, y=[None if v is None or e0 is None else v - e0 for v in e], mode="lines",
                                 name=name, legendgroup=name, showlegend=False, line={"color": colour}), row=2, col=1)
    fig.update_xaxes(title_text="time (ps)", row=2, col=1)
    fig.update_layout(title=f"{model}: NVT runs (dotted: target temperature)", height=560, width=900,
                      template="plotly_white", legend={"font": {"size": 10}})
    return fig


def md_payload(df: pd.DataFrame) -> list[dict]:
    """The runs as JSON-ready records (no series) for the report's metrics file."""
    if df.empty:
        return []
    cols = [c for c in df.columns if c not in ("settings",)]
    out = []
    for _, r in df[cols].iterrows():
        rec = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.to_dict().items()}
        out.append(rec)
    for rec, s in zip(out, df["settings"]):
        rec["settings"] = json.loads(s)
    return out
