"""The files section: the report's JSON and CSV files and its figures folder, as links relative
to the page."""

from __future__ import annotations

from pathlib import Path

from surfbench.report.markup import esc
from surfbench.report.section import ReportContext, Section


def build(ctx: ReportContext) -> Section:
    """Built last: lists the files written beside the page."""
    base = ctx.output.parent

    def rel(p) -> str:
        return Path(p).relative_to(base).as_posix() if Path(p).is_relative_to(base) else str(p)

    items = [f"<li><a href='{esc(rel(ctx.json_path))}'><code>{esc(rel(ctx.json_path))}</code></a>: every number of "
             "this report</li>"]
    items += [f"<li><a href='{esc(rel(p))}'><code>{esc(rel(p))}</code></a></li>" for p in ctx.csv_paths.values()]
    items.append(f"<li><code>{esc(rel(ctx.fig_dir))}/</code>: every figure as HTML and PNG</li>")
    return Section(body="<ul>" + "".join(items) + "</ul>")
