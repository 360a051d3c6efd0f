"""One self-contained HTML report of stored runs on one data set.

:func:`build_report` reads only the result store (records, models, results): no model and no
data file is loaded. It writes

* ``<stem>.html``: the report; plotly.js is embedded once in the page head, nothing is loaded
  from the network when it is opened;
* ``<stem>-metrics.json``: every number shown, machine-readable;
* ``<stem>-<table>.csv``: the same numbers as CSV files (overall / per-element / per-Miller
  metrics, comparison with confidence intervals, pairwise comparisons, coverage, failures,
  error correlation, facet ordering, Wulff shapes);
* ``<stem>-figures/``: every figure as interactive HTML and as PNG
  (:func:`surfbench.report.figures.save_figure`).
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from surfbench import __version__
from surfbench.analysis.metrics import failure_counts, metrics
from surfbench.analysis.predictions import bulk_predictions, slab_predictions
from surfbench.data.subset import Subset
from surfbench.report import run_figures as rf

#: section id -> heading, in page order (tests check that every one is present)
SECTIONS = {
    "summary": "Summary",
    "comparison": "Model comparison (Table I)",
    "coverage": "Coverage and failures",
    "parity": "Predictions vs DFT (Fig. 2a-c)",
    "errors": "Surface energy errors (Fig. 2d)",
    "elements": "Errors per element (Figs. 3 and 6)",
    "miller": "Errors per Miller index (Fig. 4)",
    "correlation": "Correlation of the errors between models (Fig. S2)",
    "relaxation": "Relaxed surfaces: static and relaxation parts of the error",
    "softening": "Systematic softening and a cheap correction",
    "reference": "Reference surface energies, model-built structures (mSE21)",
    "domain": "Descriptor map and distance from the reference data",
    "facets": "Facet ordering (Fig. 7)",
    "wulff": "Wulff shapes",
    "md": "Molecular-dynamics stability",
    "training": "Fine-tuned vs from scratch (learning curves, Figs. S6/S7)",
    "seen": "Seen and unseen slabs (models trained on some of them)",
    "models": "Models: fingerprints and versions",
    "files": "Machine-readable files",
}

#: responsive: a figure is redrawn at its container's width (at most its own width) when the
#: window changes, so that legends and titles stay inside a narrow window (see _figure_html)
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "toImageButtonOptions": {"format": "png", "scale": 2}}


#: the paper whose figure and table numbers the report's sections cite
PAPER = ("Focassio, Freitas &amp; Schleder (2024), <i>Performance assessment of universal machine learning "
         "interatomic potentials: challenges and directions for materials' surfaces</i>")


def plural(n: int, noun: str) -> str:
    """``1 model``, ``3 models``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class ReportError(ValueError):
    """Nothing to report (no matching run), or a bad selection."""


@dataclass
class _Figures:
    """Figures in page order: name -> (section, figure, caption); section None: written to the
    figures folder only (the tables, which the page shows as HTML tables)."""

    items: dict[str, tuple[str | None, go.Figure, str]] = field(default_factory=dict)

    def add(self, name: str, section: str | None, fig: go.Figure, caption: str = "") -> None:
        self.items[name] = (section, fig, caption)

    def of(self, section: str) -> list[tuple[str, go.Figure, str]]:
        return [(n, f, c) for n, (s, f, c) in self.items.items() if s == section]

    @property
    def embedded(self) -> list[str]:
        return [n for n, (s, _, _) in self.items.items() if s is not None]


# ---------------------------------------------------------------------------- selection
def select_runs(store, dataset: str | None, models: list[str] | str | None, protocol: str) -> pd.DataFrame:
    """The stored runs of one data set and protocol, optionally only some models (names or
    fingerprints). ``dataset=None`` is allowed when the store holds a single data set."""
    runs = store.runs()
    reference = store.reference_datasets()  # no DFT records: shown in the 'reference' section of any report
    if dataset in reference:
        raise ReportError(f"{dataset!r} holds reference values only (no DFT records): its results are in the section "
                          f"'{SECTIONS['reference']}' of the report of a DFT data set with the same models "
                          "(e.g. --dataset mlearn-surfaces), or printed by 'surfbench table --dataset "
                          f"{dataset}'")
    runs = runs[~runs["dataset"].isin(reference)]
    if runs.empty:
        raise ReportError(f"the store {store.path} holds no results on a DFT data set; run 'surfbench run' first")
    if dataset is None:
        names = sorted(runs["dataset"].unique())
        if len(names) > 1:
            raise ReportError(f"the store holds several data sets ({', '.join(names)}): choose one with --dataset")
        dataset = names[0]
    sel = runs[(runs["dataset"] == dataset)]
    if sel.empty:
        raise ReportError(f"no stored run on data set {dataset!r}; stored: {', '.join(sorted(runs['dataset'].unique()))}")
    sel = sel[sel["protocol"] == protocol]
    if sel.empty:
        raise ReportError(f"no stored run of protocol {protocol!r} on {dataset!r}; stored protocols: "
                          f"{', '.join(sorted(runs.loc[runs['dataset'] == dataset, 'protocol'].unique()))}")
    if isinstance(models, str):
        models = None if models.strip() == "all" else [m.strip() for m in models.split(",") if m.strip()]
    if models:
        wanted = set(models)
        missing = wanted - set(sel["model"]) - set(sel["fingerprint"])
        if missing:
            from surfbench.names import did_you_mean

            stored = sorted(sel["model"].astype(str))
            raise ReportError("; ".join(f"no stored run of {m!r}{did_you_mean(m, stored)}" for m in sorted(missing))
                              + f" on {dataset!r} ({protocol}); stored: {', '.join(stored)}")
        sel = sel[sel["model"].isin(wanted) | sel["fingerprint"].isin(wanted)]
    else:
        # models trained by 'surfbench train' cover only their elements' slabs: they are compared in the
        # training section, and in the main sections only when named
        from surfbench.training.pipeline import trainings

        trained = sel["fingerprint"].isin(set(trainings(store)["fingerprint"].dropna()))
        if trained.any() and not trained.all():
            sel = sel[~trained]
    return sel.reset_index(drop=True)


def _labels(runs: pd.DataFrame) -> dict[str, str]:
    """fingerprint -> the label shown: the model name, or the fingerprint where one name has
    several fingerprints (e.g. the same model with other options)."""
    from surfbench.analysis.stored import run_labels

    return run_labels(runs)


def _model_info(store, runs: pd.DataFrame, labels: dict[str, str], results: pd.DataFrame) -> dict[str, dict]:
    models = store.models().set_index("fingerprint")
    info = {}
    for fp in runs["fingerprint"]:
        details = json.loads(models.loc[fp, "details"]) if fp in models.index else {}
        res = results[results["fingerprint"] == fp]
        params = details.get("parameters") or details.get("nominal_parameters")
        info[labels[fp]] = {
            "model": labels[fp], "fingerprint": fp, "name": models.loc[fp, "name"] if fp in models.index else None,
            "first_seen": models.loc[fp, "first_seen"] if fp in models.index else None,
            "family": details.get("family"), "training_set": details.get("training_set"), "parameters": params,
            "devices": sorted({str(d) for d in res["device"].dropna() if str(d)}),
            "threads": sorted({int(t) for t in res["threads"].dropna()}),
            "wall_s": float(res["wall_s"].fillna(0).sum()),
            "last_result": res["created_at"].max() if len(res) else None,
            "details": details,
        }
    return info


# ---------------------------------------------------------------------------- numbers
def _coverage(overall: pd.DataFrame, fails: pd.DataFrame, order: list[str], info: dict) -> pd.DataFrame:
    rows = []
    for m in order:
        row = {"model": m}
        for q, short in (("bulk_e_per_atom", "bulk"), ("slab_e_per_atom", "slab"), ("gamma", "gamma")):
            s = overall[(overall["model"] == m) & (overall["quantity"] == q)]
            for k in ("n_ok", "n_failed", "n_total"):
                row[f"{short}_{k}"] = int(s[k].iloc[0]) if len(s) else 0
        f = fails[fails["model"] == m]
        row["failures"] = "; ".join(f"{r.quantity}: {r.failure_kind} ×{r.count}" for r in f.itertuples())
        row["wall_s"] = info[m]["wall_s"]
        row["devices"] = ", ".join(info[m]["devices"])
        rows.append(row)
    return pd.DataFrame(rows)


def _missing_low_index(records: pd.DataFrame) -> dict[str, list[str]]:
    """Cubic bulks (space group 195-230) whose slabs lack a {100}, {110} or {111} surface:
    bulk id -> the missing families (their Wulff shapes and facet orderings lack them)."""
    out = {}
    bulks = records[(records["kind"] == "bulk") & records["spacegroup"].between(195, 230)]
    slabs = records[records["kind"] == "slab"]
    for bid in bulks["record_id"]:
        fams = set()
        for m in slabs.loc[slabs["bulk_id"] == bid, "miller"].dropna():
            digits = re.findall(r"-?\d", str(m))
            if len(digits) == 3:
                fams.add("".join(sorted((str(abs(int(d))) for d in digits), reverse=True)))
        missing = [f for f in ("100", "110", "111") if f not in fams]
        if missing and fams:
            out[bid] = missing
    return out


def _jsonable(obj):
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def _records(df: pd.DataFrame) -> list[dict]:
    return [_jsonable(r) for r in df.to_dict(orient="records")]


def _csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Lists and dicts as text for CSV."""
    out = df.copy()
    for c in out.columns:
        if out[c].map(lambda v: isinstance(v, (list, tuple))).any():
            out[c] = out[c].map(lambda v: " ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
        elif out[c].map(lambda v: isinstance(v, dict)).any():
            out[c] = out[c].map(lambda v: json.dumps(_jsonable(v), sort_keys=True) if isinstance(v, dict) else v)
    return out


# ---------------------------------------------------------------------------- HTML pieces
_CSS = """
header p.synthetic{background:#fff3b0;color:#222;border:2px solid #c90;padding:6px}
body{font-family:Arial,Helvetica,sans-serif;margin:0;color:#222;background:#fafbfc;line-height:1.45}
header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0 0 6px 0;font-size:26px} header p{margin:2px 0;color:#dfe7f1}
nav{background:#e9eef5;padding:8px 32px;font-size:14px;position:sticky;top:0;z-index:10;border-bottom:1px solid #cfd8e3}
nav a{margin-right:14px;color:#1f3a5f;text-decoration:none} nav a:hover{text-decoration:underline}
main{padding:8px 32px 40px 32px;max-width:1700px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:14px 20px;margin:18px 0}
h2{color:#1f3a5f;margin-top:4px;border-bottom:2px solid #e3e9f0;padding-bottom:4px}
h3{color:#33506f;margin-bottom:6px}
table.data{border-collapse:collapse;font-size:13px;margin:8px 0}
table.data th{background:#dde4ee;text-align:left;padding:5px 8px;border:1px solid #c9d2de;vertical-align:bottom}
table.data td{padding:4px 8px;border:1px solid #e1e6ed;vertical-align:top}
table.data td:first-child{white-space:nowrap}
table.data td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.data tr.group td{background:#eef1f5;font-weight:bold}
.figure{overflow-x:auto;margin:10px 0 4px 0}
.table-wrap{overflow-x:auto;max-width:100%}
.caption{font-size:13px;color:#555;margin:2px 0 16px 0;max-width:1100px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;font-size:14px;margin:8px 0}
.ok{color:#1b7a3a;font-weight:bold} .bad{color:#b3261e;font-weight:bold}
code,pre{font-family:Consolas,Menlo,monospace;font-size:12px} pre{background:#f4f6f8;padding:8px;overflow-x:auto}
table.spec td{overflow-wrap:anywhere;min-width:110px} table.spec td:first-child{font-weight:bold}
details{margin:4px 0 10px 0} summary{cursor:pointer;color:#1f3a5f}
"""


def _e(x: object) -> str:
    return html.escape("" if x is None else str(x))


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _table(df: pd.DataFrame, fills: pd.DataFrame | None = None, group_rows: set[int] | None = None,
           num_fmt: str = "{:.3f}", align_numbers: bool = True, cls: str = "data") -> str:
    """An HTML table of a DataFrame (strings escaped; numbers right-aligned)."""
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    body = []
    for i, (_, row) in enumerate(df.iterrows()):
        cells = []
        for j, (c, v) in enumerate(row.items()):
            style = ""
            if fills is not None and fills.iloc[i, j] not in ("white", "", None):
                style = f' style="background:{fills.iloc[i, j]}"'
            if _is_num(v):
                text = "–" if not np.isfinite(v) else (f"{int(v):,}" if float(v).is_integer() and abs(v) > 999
                                                       else (str(int(v)) if isinstance(v, (int, np.integer))
                                                             else num_fmt.format(v)))
                cells.append(f'<td class="num"{style}>{_e(text)}</td>')
            else:
                num = align_numbers and isinstance(v, str) and re.fullmatch(r"[-+−]?[\d.,/ \[\]–-]+", v or "x")
                klass = ' class="num"' if num else ""
                cells.append(f"<td{klass}{style}>{_e(v)}</td>")
        tr = ' class="group"' if group_rows and i in group_rows else ""
        body.append(f"<tr{tr}>{''.join(cells)}</tr>")
    # in a box that scrolls sideways: a wide table (Table I has 14 columns) stays inside its section
    # in a narrow window instead of running past the page's edge
    return (f'<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _figure_html(name: str, fig: go.Figure, caption: str) -> str:
    """A figure for the page: as wide as its container, at most its own width (the width of its
    PNG). Plotly draws it at that width and places its legend and title inside it, so that a
    narrow window (a 1000-px laptop screen) does not cut a parity plot's legend or a title; a
    figure drawn wider than the window was cut at the window's edge."""
    width = fig.layout.width
    fig.layout.width = None  # the page's copy only: the PNG and the figure files keep the width
    try:
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, config=PLOTLY_CONFIG,
                          div_id=f"fig-{name}", validate=False, default_width="100%")
    finally:
        fig.layout.width = width
    style = f' style="max-width:{int(width)}px"' if width else ""
    cap = f'<p class="caption">{caption}</p>' if caption else ""
    return f'<div class="figure" data-figure="{_e(name)}"{style}>{div}</div>{cap}'


# ---------------------------------------------------------------------------- the report
class _SubsetView:
    """The store as the report's sections read it: stored results, records and reference
    results restricted to a :class:`Subset` (the rest as stored)."""

    def __init__(self, store, subset: Subset):
        self._store, self._subset = store, subset

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def results(self, *args, **kwargs) -> pd.DataFrame:
        return self._subset.frame(self._store.results(*args, **kwargs))

    def records(self, *args, **kwargs) -> pd.DataFrame:
        return self._subset.frame(self._store.records(*args, **kwargs))

    def reference_results(self, *args, **kwargs) -> pd.DataFrame:
        return self._subset.frame(self._store.reference_results(*args, **kwargs))


#: most bulks whose Wulff shapes are drawn (two figures); the numbers of all are in the tables
MAX_WULFF_BULKS = 12


def _wulff_shown(wulff: pd.DataFrame, dft_w: pd.DataFrame) -> tuple[list[str] | None, int]:
    """(bulk ids to draw, number of bulks): None (all) up to :data:`MAX_WULFF_BULKS`, else the
    bulks with the largest |area-weighted gamma, model - DFT| of any model (bulks without a
    model shape last, by id)."""
    ids = sorted(set(wulff.get("bulk_id", pd.Series(dtype=object))) | set(dft_w.get("bulk_id", pd.Series(dtype=object))))
    if len(ids) <= MAX_WULFF_BULKS:
        return None, len(ids)
    delta = (wulff.loc[wulff["source"] == "model"].assign(d=lambda f: f["delta_weighted_gamma"].abs())
             .groupby("bulk_id")["d"].max())
    ranked = sorted(ids, key=lambda b: (-(delta.get(b, np.nan) if np.isfinite(delta.get(b, np.nan)) else -1.0), b))
    return ranked[:MAX_WULFF_BULKS], len(ids)


def _only_bulks(shown, wulff, shapes, dft_w, dft_shapes):
    if shown is None:
        return wulff, shapes, dft_w, dft_shapes
    keep = set(shown)
    return (wulff[wulff["bulk_id"].isin(keep)], {k: v for k, v in shapes.items() if k[1] in keep},
            dft_w[dft_w["bulk_id"].isin(keep)] if not dft_w.empty else dft_w,
            {k: v for k, v in dft_shapes.items() if k in keep})


def _ptables_in_background(bulks: pd.DataFrame, slabs: pd.DataFrame, order: list[str]):
    """The per-model periodic tables (about 2 s each with pymatviz) drawn in a child process
    while this one computes the rest, when there are several models and CPU cores; returns a
    function that gives them."""
    import os

    if len(order) < 3 or (os.cpu_count() or 1) < 2:
        figures = rf.element_rmse_ptables(bulks, slabs, order)
        return lambda: figures
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1)
    future = pool.submit(rf.element_rmse_ptables, bulks, slabs, order)

    def result():
        try:
            return future.result()
        finally:
            pool.shutdown()

    return result


def build_report(
    store, dataset: str | None, models: list[str] | str | None = None, protocol: str = "static",
    output: str | Path = Path("report.html"), *, png: bool = True, n_boot: int = 2000, seed: int = 0,
    ci: float = 0.95, title: str | None = None, subset: Subset | None = None, require_png: bool = False,
) -> Path:
    """Write the HTML report of the stored runs of ``models`` (None or "all": every model) on
    ``dataset`` with ``protocol``, with its JSON, CSV and figure files beside it; return the
    HTML path. Raises :class:`ReportError` when no run matches.

    ``subset``: only these slabs (by element/Miller index) and their bulks in every table and
    figure built from stored results and records (MD runs and softening analyses as stored). ``png``: also write each figure as PNG when a browser is there
    (otherwise one warning); ``require_png``: a PNG that cannot be written raises
    :class:`~surfbench.report.figures.FigureExportError`."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        output = output.with_suffix(".html")
    output.parent.mkdir(parents=True, exist_ok=True)
    stem = output.with_suffix("")
    runs = select_runs(store, dataset, models, protocol)
    dataset = str(runs["dataset"].iloc[0])
    labels = _labels(runs)
    if subset is not None and not subset.everything:
        store = _SubsetView(store, subset)
    results = pd.concat([store.results(dataset, fp, protocol) for fp in runs["fingerprint"]], ignore_index=True)
    if results.empty and isinstance(store, _SubsetView):
        raise ReportError(f"no stored result of the selected runs on {dataset} matches {subset.describe()}")
    results["model"] = results["fingerprint"].map(labels)
    from surfbench.analysis.seen import mark_from_store

    results = mark_from_store(store, results)
    records = store.records(dataset)
    bulks, slabs = bulk_predictions(results), slab_predictions(results)
    order = rf.model_order(slabs) if not slabs.empty else sorted(labels.values())
    order += [m for m in sorted(labels.values()) if m not in order]
    colours = rf.model_colours(order)
    info = _model_info(store, runs, labels, results)

    # ---- numbers
    overall = metrics(bulks, slabs)
    per_element = metrics(bulks, slabs, by="element")
    per_miller = metrics(bulks, slabs, by="miller")
    fails = failure_counts(bulks, slabs)
    coverage = _coverage(overall, fails, order, info)
    ptables = _ptables_in_background(bulks, slabs, order)  # the slowest figures, drawn meanwhile
    comparison, pairs = rf.comparison_table(bulks, slabs, info, n_boot=n_boot, seed=seed, ci=ci)
    from surfbench.analysis.comparable import comparability

    comp = comparability(slabs, order)
    corr, n_corr = rf.error_correlation_matrix(slabs, order) if not slabs.empty else (pd.DataFrame(), 0)
    from surfbench.analysis.facets import facet_ordering, wulff_analysis

    facets = facet_ordering(slabs) if not slabs.empty else pd.DataFrame()
    dft_facets = rf.dft_facet_ordering(slabs) if not slabs.empty else pd.DataFrame()
    wulff, shapes = wulff_analysis(slabs, records) if not slabs.empty else (pd.DataFrame(), {})
    dft_w, dft_shapes = rf.dft_wulff(slabs, records) if not slabs.empty else (pd.DataFrame(), {})
    missing_facets = _missing_low_index(records)

    # ---- figures
    figs = _Figures()
    figs.add("comparison-table", None, rf.comparison_table_figure(comparison, dataset, ci))
    figs.add("parity-bulk-energy", "parity", rf.parity_bulk_energy(bulks, order, colours, rf.model_marks(slabs)),
             "Fig. 2a: the model's bulk energy per atom against DFT, one point per bulk record (the bulk of each "
             "element that the surface energies refer to). The legend gives each model's RMSE.")
    figs.add("parity-slab-energy", "parity", rf.parity_slab_energy(slabs, order, colours),
             "Fig. 2b: slab energy per atom, model against DFT.")
    figs.add("parity-gamma", "parity", rf.parity_gamma(slabs, order, colours),
             "Fig. 2c: surface energy γ = (E<sub>slab</sub> − n e<sub>bulk</sub>) / 2A, each side with its own bulk "
             "energy per atom, model against DFT. Points below the line: the model underestimates γ.")
    figs.add("gamma-error-distribution", "errors", rf.gamma_error_distribution(slabs, order, colours),
             "Fig. 2d: distribution of the γ error (model − DFT) over the slabs, the comparable models from the lowest "
             "RMSE on their common slabs (top), then any model with other coverage (marked: not comparable). "
             "A negative mean signed error is the systematic underestimation (softening) of surface energies.")
    figs.add("gamma-rmse-per-element", "elements", rf.element_rmse_heatmap(bulks, slabs, order),
             "RMSE of γ per element and model, with the mean signed error (negative: γ too low) below each value; "
             "the periodic tables below add the bulk and slab energy errors.")
    for m, fig in ptables().items():
        figs.add(f"ptable-{_slug(m)}", "elements", fig,
                 f"{_e(m)}: RMSE per element. Tile bottom: γ (J/m²); upper left: bulk energy per atom; upper right: "
                 "slab energy per atom (eV/atom). The colour scales are the same for every comparable model (a model "
                 "with other coverage has its own, named in its title); light grey: element not evaluated by this "
                 "model (or not in the data), dark grey: evaluated, but every prediction failed.")
    figs.add("rmse-per-miller", "miller", rf.miller_rmse_bars(slabs, order, colours),
             "Fig. 4: RMSE of γ per Miller index over all elements; n is the number of slabs of that index with a "
             "surface energy (per model where it differs). The same index means different surfaces on fcc, bcc and "
             "diamond lattices. Hatched: a model with other coverage (not comparable), over its own slabs.")
    if len(corr) >= 2 and n_corr >= 2:
        figs.add("error-correlation", "correlation", rf.error_correlation(slabs, order),
                 f"Fig. S2: Pearson correlation of the γ errors of two models over the {n_corr} slabs that all "
                 "models with a γ have one for. High r: the models err on the same surfaces (shared training data "
                 "or architecture), so their errors are not independent.")
    if not facets.empty:
        figs.add("facet-ordering-kendall", "facets", rf.facet_ordering_heatmap(facets, order),
                 "Kendall τ between the DFT and the model ranking of all facets of a bulk (1: same order, "
                 "0: unrelated, −1: reversed); ✓ / ✗: the model's lowest-γ facet is / is not DFT's.")
        figs.add("facet-ordering-table", None, rf.facet_ordering_table(facets, order, dft_facets))
    shown, n_bulks_w = _wulff_shown(wulff, dft_w)
    picked = ("" if shown is None else
              f" Drawn for the {len(shown)} of {n_bulks_w} bulks with the largest |γ̄ model − DFT| of any model (more "
              "shapes would make the page too heavy to open); γ̄ and the area fractions of every bulk are in the "
              "table below and in the report's wulff CSV and JSON.")
    for k, fig in enumerate(rf.wulff_figures(*_only_bulks(shown, wulff, shapes, dft_w, dft_shapes), order)):
        figs.add(f"wulff-shapes-{k + 1}", "wulff", fig,
                 "Wulff shapes from the lowest γ of each Miller index, DFT (top row) and each model, seen along the "
                 "same direction, each scaled to the same volume so that shapes, not sizes, are compared. "
                 "γ̄: area-weighted surface energy (J/m²), model − DFT in brackets. Hover a facet for its γ and "
                 "area fraction." + picked)

    from surfbench.report import md_figures

    md_df = md_figures.load_md(store, dataset, labels)
    md_figures.add_figures(figs, store, md_df, order, _slug)

    from surfbench.report.descriptor_figures import domain_section

    domain = domain_section(store.path, dataset, slabs, order, records, n_boot=n_boot, seed=seed, ci=ci)
    for name, fig, caption in domain.figures:
        figs.add(name, "domain", fig, caption)

    from surfbench.report.physics_sections import relaxation_section, softening_section

    physics = {"relaxation": relaxation_section(store, dataset, labels, order, colours, _table),
               "softening": softening_section(store, dataset, labels, order, _table)}
    from surfbench.report.training_figures import training_section

    physics["training"] = training_section(store, dataset, _table)
    from surfbench.report.seen_section import seen_section

    physics["seen"] = seen_section(slabs, _table, n_boot=n_boot, seed=seed, ci=ci)
    from surfbench.report.reference_section import reference_section

    physics["reference"] = reference_section(store, runs, labels, order, colours, _table, n_boot=n_boot, seed=seed, ci=ci)
    for sid, sec in physics.items():
        for name, fig, caption in sec.figures:
            figs.add(name, sid, fig, caption)

    # ---- files: figures, JSON, CSV
    fig_dir = Path(f"{stem}-figures")
    warnings: list[str] = list(domain.warnings)
    stale = store.stale_records(dataset)
    if len(stale):
        from surfbench.analysis.stored import stale_note

        warnings.append(stale_note(store, dataset))
    _write_figures(figs, fig_dir, png, warnings, require_png)
    tables = {
        "metrics-overall": overall, "metrics-per-element": per_element, "metrics-per-miller": per_miller,
        "comparison": comparison, "comparison-pairs": pairs, "coverage": coverage, "failures": fails,
        "error-correlation": corr.reset_index(names="model") if not corr.empty else corr,
        "domain-correlation": domain.correlation, "domain-map": domain.maps,
        **{name: df for sec in physics.values() for name, df in sec.tables.items()},
        "facets": facets, "facets-dft": dft_facets, "wulff": pd.concat([dft_w, wulff], ignore_index=True) if not dft_w.empty else wulff,
    }
    csv_paths = {}
    for name, df in tables.items():
        path = Path(f"{stem}-{name}.csv")
        if df is None or df.empty:  # nothing to tell (one model: no correlation, no pairs): no file, and no
            path.unlink(missing_ok=True)  # file of an earlier report of the same name left to mislead
            continue
        _csv_frame(df).to_csv(path, index=False)
        csv_paths[name] = path
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    n_slabs = int((records["kind"] == "slab").sum())
    n_bulks = int((records["kind"] == "bulk").sum())
    from surfbench.data.synthetic import BANNER, is_synthetic

    synthetic = is_synthetic(dataset)
    title = title or f"surfbench report: {dataset}"
    if synthetic and not title.startswith("SYNTHETIC"):
        title = f"SYNTHETIC data, not DFT: {title}"
    meta = {
        "title": title, "surfbench_version": __version__,
        "synthetic": synthetic, "synthetic_banner": BANNER if synthetic else None,
        "generated_utc": generated, "dataset": dataset, "protocol": protocol, "store": str(Path(store.path).resolve()),
        "dataset_counts": {"slabs": n_slabs, "bulks": n_bulks,
                           "elements": sorted(records["element"].dropna().unique().tolist())},
        "bootstrap": {"n_boot": n_boot, "seed": seed, "ci": ci, "method": "percentile"},
        "model_order": order,
        "comparability": comp,
    }
    payload = {
        **{k: v for k, v in meta.items() if k != "comparability"},
        "comparability": {"n_slabs": comp.n_slabs, "comparable": comp.comparable, "not_comparable": comp.others,
                          "slabs_evaluated": comp.evaluated, "n_common": comp.n_common, "ranked": comp.ranked,
                          "summary": comp.summary(), "note": comp.note()},
        "stale_records": int(len(stale)),
        "models": [_jsonable({k: v for k, v in info[m].items()}) for m in order],
        "metrics": {"overall": _records(overall), "per_element": _records(per_element),
                    "per_miller": _records(per_miller)},
        "comparison": _records(comparison), "comparison_pairs": _records(pairs),
        "coverage": _records(coverage), "failures": _records(fails),
        "error_correlation": {"n_common": n_corr, "pearson_r": _jsonable(corr.to_dict()) if not corr.empty else {}},
        "facets": _records(facets), "facets_dft": _records(dft_facets), "wulff": _records(tables["wulff"]),
        "missing_low_index_facets": missing_facets,
        "domain": {**domain.payload, "correlation": _records(domain.correlation)},
        "md_runs": md_figures.md_payload(md_df),
        **{sid: sec.payload for sid, sec in physics.items()},
        "figures": {"in_report": figs.embedded, "files_only": [n for n in figs.items if n not in figs.embedded],
                    "folder": str(fig_dir)},
        "warnings": warnings,
    }
    json_path = Path(f"{stem}-metrics.json")
    json_path.write_text(json.dumps(payload, indent=1, allow_nan=False, default=str), encoding="utf-8")

    # ---- the page
    page = _page(meta, order, info, comparison, pairs, coverage, figs, facets, dft_facets, wulff, dft_w, missing_facets,
                 corr, n_corr, ci, warnings, json_path, csv_paths, fig_dir, output, records, slabs, md_df,
                 domain_html=domain.body, extra_html={sid: sec.body for sid, sec in physics.items()})
    output.write_text(page, encoding="utf-8")
    return output


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "model"


def _write_figures(figs: _Figures, fig_dir: Path, png: bool, warnings: list[str], require_png: bool = False) -> None:
    """Every figure as HTML + PNG through save_figures; one kaleido browser is kept for all the
    PNGs (a fresh one per figure costs ~2 s each); a PNG that fails is retried once, then PNG
    export is taken to be unavailable: the figures are written as HTML only with one warning in
    the report (``require_png``: the :class:`FigureExportError` is raised)."""
    from surfbench.report.figures import save_figures

    server = None
    if png:
        try:
            import kaleido

            if not kaleido._global_server.is_running():
                kaleido.start_sync_server(silence_warnings=True)
                server = kaleido
        except Exception:  # noqa: BLE001 - the per-figure path works without the shared server
            server = None
    import warnings as _warnings

    try:
        with _warnings.catch_warnings():
            _warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            _, warning = save_figures({fig_dir / name: fig for name, (_, fig, _) in figs.items.items()}, png=png,
                                      require_png=require_png, include_plotlyjs="directory")
        if warning:
            warnings.append(warning)
    finally:
        if server is not None:
            try:
                server.stop_sync_server(silence_warnings=True)
            except Exception:  # noqa: BLE001
                pass


def _page(meta, order, info, comparison, pairs, coverage, figs, facets, dft_facets, wulff, dft_w, missing_facets,
          corr, n_corr, ci, warnings, json_path, csv_paths, fig_dir, output, records, slabs, md_df=None,
          domain_html: str = "", extra_html: dict[str, str] | None = None) -> str:
    import plotly.offline

    pct = f"{100 * ci:.0f}%"
    parts: list[str] = []

    def section(sid: str, body: str) -> None:
        parts.append(f'<section id="{sid}"><h2>{_e(SECTIONS[sid])}</h2>{body}</section>')

    def figs_of(sid: str) -> str:
        return "".join(_figure_html(n, f, c) for n, f, c in figs.of(sid))

    # summary
    comp = meta["comparability"]
    body = [f"<p>Data set <b>{_e(meta['dataset'])}</b>: {meta['dataset_counts']['slabs']} slabs and "
            f"{meta['dataset_counts']['bulks']} bulk references, elements "
            f"{_e(', '.join(meta['dataset_counts']['elements']))}; protocol <b>{_e(meta['protocol'])}</b>; "
            f"{plural(len(order), 'model')}. Errors are model − DFT; γ in J/m², energies in eV/atom. "
            "A failed structure is never counted as an error of 0: it is left out of the statistics and "
            "counted under <a href='#coverage'>coverage</a>.</p>"]
    ranked = comparison[comparison["comparable"] & comparison["gamma_rank"].notna()] \
        if "gamma_rank" in comparison and len(comparison) else comparison.iloc[0:0]
    best = ranked.sort_values(["gamma_rank", "model"]).iloc[0] if len(ranked) else None
    if best is not None and np.isfinite(best["gamma_common_rmse"]):
        same = best.get("gamma_indistinguishable_from") or ""
        body.append(f"<p>Lowest RMSE of γ among the {len(ranked)} comparable models, {_e(comp.compared())}: "
                    f"<b>{_e(best['model'])}</b>, {best['gamma_common_rmse']:.3f} J/m² "
                    f"({pct} CI {best['gamma_common_rmse_lo']:.3f}–{best['gamma_common_rmse_hi']:.3f})"
                    + (f"; not distinguishable from {_e(same)} on these slabs." if same else
                       "; distinguishable from every other comparable model on these slabs.") + "</p>")
    elif len(order) > 1:
        body.append(f"<p><b>{_e(comp.summary()[0].upper() + comp.summary()[1:])}.</b></p>")
    if comp.note():
        body.append(f'<p class="note">{_e(comp.note())}</p>')
    if len(comparison):
        under = [comp.label(m) for m in comparison[comparison["gamma_mean_signed_error_hi"] < 0]["model"]]
        over = [comp.label(m) for m in comparison[comparison["gamma_mean_signed_error_lo"] > 0]["model"]]
        if under:
            body.append(f"<p>Systematic underestimation of γ (mean signed error and its {pct} CI below 0): "
                        f"{_e(', '.join(under))}.</p>")
        if over:
            body.append(f"<p>Systematic overestimation of γ (mean signed error and its {pct} CI above 0): "
                        f"{_e(', '.join(over))}.</p>")
    for bid, miss in missing_facets.items():
        el = records.loc[records["record_id"] == bid, "element"].iloc[0]
        body.append(f'<p class="note">{_e(el)} ({_e(bid)}): the data set has no '
                    f"{_e(', '.join('{' + m + '}' for m in miss))} slab, so its Wulff shapes and facet orderings "
                    "lack these low-index facets.</p>")
    for w in warnings:
        body.append(f'<p class="note">{_e(w)}</p>')
    section("summary", "".join(body))

    # comparison
    disp = rf.comparison_display(comparison, ci)
    g = pairs[pairs["quantity"] == "gamma"] if not pairs.empty else pairs
    pair_rows = pd.DataFrame({
        "model A (lower RMSE)": g["model_a"], "model B": g["model_b"],
        "ΔRMSE γ, A − B (J/m²)": g["delta_rmse"].map(lambda v: f"{v:+.3f}"),
        f"{pct} CI": [f"[{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) else "–" for lo, hi in zip(g["lo"], g["hi"])],
        "distinguishable": g["distinguishable"].map(lambda d: "yes" if d else "no"),
    }) if len(g) else pd.DataFrame()
    fills = pd.DataFrame("white", index=pair_rows.index, columns=pair_rows.columns) if len(pair_rows) else None
    if fills is not None:
        fills["distinguishable"] = [rf._GOOD if d else rf._NEAR for d in g["distinguishable"]]
    n_common = comp.n_common if comp.ranked else 0
    others = (f" {_e(comp.note())}" if comp.note() else "")
    section("comparison", (
        f"<p>RMSE of each model over its own successes with percentile-bootstrap {pct} confidence intervals "
        f"({meta['bootstrap']['n_boot']} resamples of the slabs / bulks, seed {meta['bootstrap']['seed']}). "
        + (f"Rank, its interval, P(best) and the RMSE on the common slabs come from a paired bootstrap of the "
           f"{len(comp.ranked_models)} comparable models with a γ (those that evaluated all {comp.n_slabs} slabs) over "
           f"the {n_common} slabs that every one of them has a γ for; two models are <i>not distinguishable</i> when "
           "the interval of their paired RMSE difference contains 0." if comp.ranked else
           f"{_e(comp.summary()[0].upper() + comp.summary()[1:])}.")
        + others + "</p>"
        + _table(disp)
        + (f"<h3>Pairs of models (γ, paired bootstrap over {n_common} common slabs)</h3>" + _table(pair_rows, fills)
           if len(pair_rows) else "")
    ))

    section("seen", (extra_html or {}).get("seen", "") + figs_of("seen"))

    # coverage
    cov = pd.DataFrame({
        "model": coverage["model"],
        **{f"{q} ok / failed / total": [f"{r[f'{q}_n_ok']} / {r[f'{q}_n_failed']} / {r[f'{q}_n_total']}"
                                       for _, r in coverage.iterrows()] for q in ("bulk", "slab", "gamma")},
        "failure kinds (count)": coverage["failures"].replace("", "none"),
        "compute time (s)": coverage["wall_s"].map(lambda v: f"{v:.1f}"),
        "device": coverage["devices"],
    })
    cfill = pd.DataFrame("white", index=cov.index, columns=cov.columns)
    for i, r in coverage.iterrows():
        for q in ("bulk", "slab", "gamma"):
            if r[f"{q}_n_failed"]:
                cfill.loc[i, f"{q} ok / failed / total"] = rf._BAD
    section("coverage", "<p>Structures evaluated per model. A γ fails when the slab fails, when its bulk "
                        "reference failed or was not evaluated, or when the slab has no bulk reference.</p>"
            + _table(cov, cfill))

    section("parity", figs_of("parity"))
    section("errors", figs_of("errors"))
    section("elements", figs_of("elements"))
    section("miller", figs_of("miller"))
    section("correlation", figs_of("correlation") or "<p>Needs at least two models with surface energies on "
                                                      "at least two common slabs.</p>")
    for sid in ("relaxation", "softening", "reference"):
        section(sid, (extra_html or {}).get(sid, "") + figs_of(sid))
    section("domain", domain_html + figs_of("domain"))

    # facets
    fdisp, ffill = rf.facet_ordering_display(facets, order, dft_facets)
    groups = {i for i, v in enumerate(fdisp["ranking by"]) if str(v).startswith("DFT")} if len(fdisp) else set()
    section("facets", (
        "<p>Per bulk, the facets (Miller indices) ordered by surface energy, lowest first, from DFT and from "
        "each model; for an index with several slabs (terminations, reconstructions) its lowest γ is used. "
        "Green: the same facet at the same place as DFT; yellow: among DFT's lowest but at another place. "
        "Spearman ρ and Kendall τ compare the orderings of all facets. The DFT row uses every slab; a model "
        "that failed on some slabs is compared with DFT over the slabs it evaluated. In the DFT row: the DFT γ "
        "difference between the lowest and the second-lowest facet; where it is small (a few 0.01 J/m²) a wrong "
        "lowest facet is a small error in γ.</p>"
        + figs_of("facets")
        + _table(fdisp, ffill, groups)
    ) if len(fdisp) else "<p>No facet ordering: no slab with a Miller index and a model γ.</p>")

    # wulff
    wdisp = rf.wulff_display(wulff, dft_w, order) if not (wulff.empty and dft_w.empty) else pd.DataFrame()
    wgroups = {i for i, v in enumerate(wdisp.get("source", [])) if v == "DFT"}
    section("wulff", (
        figs_of("wulff")
        + "<p>Area-weighted surface energy γ̄ = Σ γ<sub>i</sub> A<sub>i</sub> / Σ A<sub>i</sub> of the Wulff shape "
          "(J/m²), shape factor (surface area / volume<sup>2/3</sup>), anisotropy of γ and the largest facets with "
          "their share of the area. The DFT row uses every slab; a model row's difference is taken to DFT over "
          "the slabs that model evaluated.</p>"
        + _table(wdisp, None, wgroups)
    ) if len(wdisp) else "<p>No Wulff shape could be built (no bulk lattice or too few facets).</p>")

    from surfbench.report.md_figures import section_html as md_section

    section("md", md_section(md_df if md_df is not None else pd.DataFrame(), order, _table, figs_of("md")))
    section("training", (extra_html or {}).get("training", "") + figs_of("training"))

    # models
    props: dict[str, list] = {}
    extras: set[str] = set()
    skip = {"fingerprint", "family", "training_set", "package", "parameters", "nominal_parameters", "device",
            "torch", "ase", "python"}
    for m in order:
        extras |= {k for k in info[m]["details"] if k not in skip}
    for m in order:
        d = info[m]["details"]
        fp = d.get("fingerprint", {}) if isinstance(d.get("fingerprint"), dict) else {}
        rows = [
            ("fingerprint", info[m]["fingerprint"]), ("registry name", info[m]["name"]),
            ("family", d.get("family")), ("training set", d.get("training_set")),
            ("package", f"{fp.get('package') or d.get('package') or ''} {fp.get('package_version', '')}".strip()),
            ("weights sha256", fp.get("weights_sha256")), ("dtype", fp.get("dtype")), ("options", fp.get("options")),
            ("parameters (measured)", d.get("parameters")), ("parameters (nominal)", d.get("nominal_parameters")),
            ("device at load", d.get("device")), ("devices of the results", ", ".join(info[m]["devices"])),
            ("torch threads", ", ".join(map(str, info[m]["threads"]))),
            ("torch", d.get("torch")), ("ase", d.get("ase")), ("python", d.get("python")),
            ("first seen", info[m]["first_seen"]), ("last result", info[m]["last_result"]),
        ] + [(k, json.dumps(d[k]) if isinstance(d.get(k), (dict, list)) else d.get(k)) for k in sorted(extras)]
        for k, v in rows:
            props.setdefault(k, []).append("–" if v in (None, "") else (f"{v:,}" if _is_num(v) else str(v)))
    spec = pd.DataFrame({"": list(props), **{m: [props[k][i] for k in props] for i, m in enumerate(order)}})
    jsons = "".join(f"<details><summary>{_e(m)}: details as stored (JSON)</summary>"
                    f"<pre>{_e(json.dumps(info[m]['details'], indent=1, sort_keys=True))}</pre></details>" for m in order)
    section("models", "<p>Each result in the store is keyed by the model fingerprint: name, package version, "
                      "weights hash, dtype and options. Versions as recorded when the model was first run.</p>"
            + '<div class="figure">' + _table(spec, align_numbers=False, cls="data spec") + "</div>" + jsons)

    # files
    rel = lambda p: Path(p).relative_to(output.parent).as_posix() if Path(p).is_relative_to(output.parent) else str(p)  # noqa: E731
    items = [f"<li><a href='{_e(rel(json_path))}'><code>{_e(rel(json_path))}</code></a>: every number of this report</li>"]
    items += [f"<li><a href='{_e(rel(p))}'><code>{_e(rel(p))}</code></a></li>" for p in csv_paths.values()]
    items.append(f"<li><code>{_e(rel(fig_dir))}/</code>: every figure as HTML and PNG</li>")
    section("files", "<ul>" + "".join(items) + "</ul>")

    nav = "".join(f'<a href="#{sid}">{_e(h.split(" (")[0])}</a>' for sid, h in SECTIONS.items())
    n_figs = len(figs.embedded)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta name='surfbench-figures' content='{n_figs}'>"
        f"<title>{_e(meta['title'])}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<header><h1>{_e(meta['title'])}</h1>"
        + (f"<p class='synthetic'><b>{_e(meta['synthetic_banner'])}.</b> Errors below are against stand-in "
           "energies: they measure cost and scaling, not accuracy.</p>" if meta.get("synthetic") else "")
        + f"<p>data set {_e(meta['dataset'])} · protocol {_e(meta['protocol'])} · {plural(len(order), 'model')} · "
        f"generated {_e(meta['generated_utc'])} (UTC) by surfbench {_e(meta['surfbench_version'])}</p>"
        f"<p class='paper'>Figure and table numbers (Fig. 2a-c, Table I, ...) are those of {PAPER}, which this "
        "report reproduces and extends.</p>"
        f"<p>store {_e(meta['store'])}</p></header><nav>{nav}</nav><main>{''.join(parts)}</main></body></html>\n"
    )
