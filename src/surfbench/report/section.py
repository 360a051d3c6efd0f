"""One section of the HTML report, and what a section builder is given.

A section builder is a function ``build(ctx: ReportContext) -> Section``; the list of the
report's sections (:mod:`surfbench.report.sections`) names each one with its id and heading.
The page shows every section's body and figures in that list's order; its tables go to CSV
files and its payload into the JSON file beside the page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go


@dataclass
class Section:
    """What a builder makes of one section.

    ``body``: HTML shown under the heading, before the figures; ``tail``: HTML after them.
    ``figures``: (name, figure, caption HTML), shown in the section and written to the figures
    folder. ``files_only``:
    (name, figure), written to the figures folder only (tables the page shows as HTML).
    ``tables``: name -> frame, each written as ``<stem>-<name>.csv`` (none for an empty frame).
    ``payload``: entries of the JSON file. ``warnings``: notes shown in the summary and the JSON.
    """

    body: str = ""
    tail: str = ""
    figures: list[tuple[str, go.Figure, str]] = field(default_factory=list)
    files_only: list[tuple[str, go.Figure]] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SectionSpec:
    """A section of the report: its anchor id, its heading and its builder.

    ``late``: built after every other section's figures, CSV and JSON files are written (it
    shows their warnings or lists their files). ``nav_after``: listed in the navigation bar
    after that section instead of at its place on the page."""

    id: str
    heading: str
    build: Callable[[ReportContext], Section]
    late: bool = False
    nav_after: str | None = None


@dataclass
class ReportContext:
    """Everything a section builder reads: the store (restricted to the report's subset), the
    selected runs and their results, and the numbers several sections share (computed once by
    :func:`surfbench.report.context.report_context`). Sizes: gamma in J/m^2, energies in eV/atom.

    The files written so far (``json_path``, ``csv_paths``) and every warning (``warnings``) are
    filled in before the late sections are built."""

    store: Any
    dataset: str
    protocol: str
    runs: pd.DataFrame
    labels: dict[str, str]
    results: pd.DataFrame
    records: pd.DataFrame
    bulks: pd.DataFrame
    slabs: pd.DataFrame
    order: list[str]
    colours: dict[str, str]
    info: dict[str, dict]
    comp: Any
    n_boot: int
    seed: int
    ci: float
    output: Path
    fig_dir: Path
    meta: dict[str, Any] = field(default_factory=dict)
    overall: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_element: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_miller: pd.DataFrame = field(default_factory=pd.DataFrame)
    fails: pd.DataFrame = field(default_factory=pd.DataFrame)
    coverage: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)
    pairs: pd.DataFrame = field(default_factory=pd.DataFrame)
    corr: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_corr: int = 0
    facets: pd.DataFrame = field(default_factory=pd.DataFrame)
    dft_facets: pd.DataFrame = field(default_factory=pd.DataFrame)
    wulff: pd.DataFrame = field(default_factory=pd.DataFrame)
    shapes: dict = field(default_factory=dict)
    dft_wulff: pd.DataFrame = field(default_factory=pd.DataFrame)
    dft_shapes: dict = field(default_factory=dict)
    missing_facets: dict[str, list[str]] = field(default_factory=dict)
    ptables: Callable[[], dict[str, go.Figure]] = dict
    warnings: list[str] = field(default_factory=list)
    json_path: Path | None = None
    csv_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def pct(self) -> str:
        """The confidence level as text ("95%")."""
        return f"{100 * self.ci:.0f}%"
