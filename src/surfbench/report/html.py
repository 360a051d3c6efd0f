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

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from surfbench import __version__
from surfbench.data.subset import Subset
from surfbench.report.context import EmptySubset, report_context
from surfbench.report.markup import esc, figure_html, plural
from surfbench.report.outputs import write_figures, write_tables
from surfbench.report.section import ReportContext, Section
from surfbench.report.sections import REPORT_SECTIONS, nav_order, output_order
from surfbench.store import selection
from surfbench.store.selection import run_labels as _labels

#: section id -> heading, in the navigation bar's order (tests check that every one is present);
#: the sections themselves: :data:`surfbench.report.sections.REPORT_SECTIONS`
SECTIONS = {s.id: s.heading for s in nav_order()}

#: the paper whose figure and table numbers the report's sections cite
PAPER = ("Focassio, Freitas &amp; Schleder (2024), <i>Performance assessment of universal machine learning "
         "interatomic potentials: challenges and directions for materials' surfaces</i>")


class ReportError(ValueError):
    """Nothing to report (no matching run), or a bad selection."""


# ---------------------------------------------------------------------------- selection
def select_runs(store, dataset: str | None, models: list[str] | str | None, protocol: str) -> pd.DataFrame:
    """The stored runs of one data set and protocol, optionally only some models (names or
    fingerprints; :func:`surfbench.store.selection.select_runs`, whose rule leaves out the models
    trained by 'surfbench train' unless named). ``dataset=None`` is allowed when the store holds
    a single data set. :class:`ReportError` when nothing matches."""
    try:
        return selection.select_runs(store, dataset, models, protocol, reference_section=SECTIONS["reference"])
    except selection.SelectionError as exc:
        raise ReportError(str(exc)) from exc


# ---------------------------------------------------------------------------- the page
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


def build_report(
    store, dataset: str | None, models: list[str] | str | None = None, protocol: str = "static",
    output: str | Path = Path("report.html"), *, png: bool = True, n_boot: int = 2000, seed: int = 0,
    ci: float = 0.95, title: str | None = None, subset: Subset | None = None, require_png: bool = False,
) -> Path:
    """Write the HTML report of the stored runs of ``models`` (None or "all": every model) on
    ``dataset`` with ``protocol``, with its JSON, CSV and figure files beside it; return the
    HTML path. Raises :class:`ReportError` when no run matches.

    ``subset``: only these slabs (by element/Miller index) and their bulks in every table and
    figure built from stored results and records (MD runs and softening analyses as stored).
    ``png``: also write each figure as PNG when a browser is there (otherwise one warning);
    ``require_png``: a PNG that cannot be written raises
    :class:`~surfbench.report.figures.FigureExportError`."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        output = output.with_suffix(".html")
    output.parent.mkdir(parents=True, exist_ok=True)
    stem = output.with_suffix("")
    runs = select_runs(store, dataset, models, protocol)
    try:
        ctx = report_context(store, runs, _labels(runs), protocol, output, Path(f"{stem}-figures"), n_boot=n_boot,
                             seed=seed, ci=ci, subset=subset)
    except EmptySubset as exc:
        raise ReportError(str(exc)) from exc
    ctx.meta = _meta(ctx, title)
    built: dict[str, Section] = {s.id: s.build(ctx) for s in output_order()}
    figures = {name: fig for sec in built.values() for name, fig, _ in sec.figures}
    files_only = {name: fig for sec in built.values() for name, fig in sec.files_only}
    ctx.warnings = [w for sec in built.values() for w in sec.warnings]
    stale = ctx.store.stale_records(ctx.dataset)
    if len(stale):
        from surfbench.store.selection import stale_note

        ctx.warnings.append(stale_note(ctx.store, ctx.dataset))
    write_figures({**figures, **files_only}, ctx.fig_dir, png, ctx.warnings, require_png)
    ctx.csv_paths = write_tables({n: df for sec in built.values() for n, df in sec.tables.items()}, stem)
    comp = ctx.comp
    payload = {
        **{k: v for k, v in ctx.meta.items() if k != "comparability"},
        "comparability": {"n_slabs": comp.n_slabs, "comparable": comp.comparable, "not_comparable": comp.others,
                          "slabs_evaluated": comp.evaluated, "n_common": comp.n_common, "ranked": comp.ranked,
                          "summary": comp.summary(), "note": comp.note()},
        "stale_records": int(len(stale)),
        **{k: v for sec in built.values() for k, v in sec.payload.items()},
        "figures": {"in_report": list(figures), "files_only": list(files_only), "folder": str(ctx.fig_dir)},
        "warnings": ctx.warnings,
    }
    ctx.json_path = Path(f"{stem}-metrics.json")
    ctx.json_path.write_text(json.dumps(payload, indent=1, allow_nan=False, default=str), encoding="utf-8")
    built.update({s.id: s.build(ctx) for s in REPORT_SECTIONS if s.late})
    output.write_text(_page(ctx, built, n_figures=len(figures)), encoding="utf-8")
    return output


def _meta(ctx: ReportContext, title: str | None) -> dict:
    """The report's title, versions, data set, protocol, store, bootstrap settings and model order."""
    from surfbench.data.synthetic import BANNER, is_synthetic

    records, dataset = ctx.records, ctx.dataset
    synthetic = is_synthetic(dataset)
    title = title or f"surfbench report: {dataset}"
    if synthetic and not title.startswith("SYNTHETIC"):
        title = f"SYNTHETIC data, not DFT: {title}"
    return {
        "title": title, "surfbench_version": __version__,
        "synthetic": synthetic, "synthetic_banner": BANNER if synthetic else None,
        "generated_utc": datetime.now(UTC).isoformat(timespec="seconds"), "dataset": dataset,
        "protocol": ctx.protocol, "store": str(Path(ctx.store.path).resolve()),
        "dataset_counts": {"slabs": int((records["kind"] == "slab").sum()),
                           "bulks": int((records["kind"] == "bulk").sum()),
                           "elements": sorted(records["element"].dropna().unique().tolist())},
        "bootstrap": {"n_boot": ctx.n_boot, "seed": ctx.seed, "ci": ctx.ci, "method": "percentile"},
        "model_order": ctx.order,
        "comparability": ctx.comp,
    }


def _page(ctx: ReportContext, built: dict[str, Section], n_figures: int) -> str:
    """The HTML page: head (plotly.js inlined), header, navigation bar and every section in page order."""
    import plotly.offline

    meta = ctx.meta
    parts = []
    for spec in REPORT_SECTIONS:
        sec = built[spec.id]
        body = sec.body + "".join(figure_html(n, f, c) for n, f, c in sec.figures) + sec.tail
        parts.append(f'<section id="{spec.id}"><h2>{esc(spec.heading)}</h2>{body}</section>')
    nav = "".join(f'<a href="#{sid}">{esc(h.split(" (")[0])}</a>' for sid, h in SECTIONS.items())
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta name='surfbench-figures' content='{n_figures}'>"
        f"<title>{esc(meta['title'])}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<header><h1>{esc(meta['title'])}</h1>"
        + (f"<p class='synthetic'><b>{esc(meta['synthetic_banner'])}.</b> Errors below are against stand-in "
           "energies: they measure cost and scaling, not accuracy.</p>" if meta.get("synthetic") else "")
        + f"<p>data set {esc(meta['dataset'])} · protocol {esc(meta['protocol'])} · "
        f"{plural(len(ctx.order), 'model')} · generated {esc(meta['generated_utc'])} (UTC) by surfbench "
        f"{esc(meta['surfbench_version'])}</p>"
        f"<p class='paper'>Figure and table numbers (Fig. 2a-c, Table I, ...) are those of {PAPER}, which this "
        "report reproduces and extends.</p>"
        f"<p>store {esc(meta['store'])}</p></header><nav>{nav}</nav><main>{''.join(parts)}</main></body></html>\n"
    )
