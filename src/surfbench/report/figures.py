"""Writing figures: every figure is saved as interactive HTML (plotly.js embedded, no network
needed to open it) and as PNG (kaleido, which drives a Chrome/Chromium browser)."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go


class FigureExportError(RuntimeError):
    """A PNG could not be written (kaleido found no Chrome/Chromium)."""


def save_figure(
    fig: go.Figure, stem: str | Path, *, png: bool = True, scale: float = 2.0, include_plotlyjs: bool | str = True
) -> list[Path]:
    """Write ``<stem>.html`` and ``<stem>.png`` (the suffix is added to the stem, never replaces
    part of it); return the paths written.

    ``include_plotlyjs=True`` embeds plotly.js (4.8 MB) in the HTML; ``"directory"`` writes
    one ``plotly.min.js`` beside it that every figure of the folder shares (still offline)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    html = _with(stem, ".html")
    fig.write_html(html, include_plotlyjs=include_plotlyjs, full_html=True)
    written = [html]
    if png:
        out = _with(stem, ".png")
        try:
            fig.write_image(out, scale=scale)
        except Exception as exc:  # kaleido raises its own types when no browser is found
            raise FigureExportError(
                f"could not write {out} ({_first_line(exc)}); PNG export uses kaleido with a "
                "Chrome/Chromium browser (e.g. Debian's 'chromium' package); the HTML was written."
            ) from exc
        written.append(out)
    return written


def save_figures(
    figures: dict[Path, go.Figure], *, png: bool = True, require_png: bool = False, retries: int = 1,
    include_plotlyjs: bool | str = True,
) -> tuple[list[Path], str | None]:
    """Write each ``stem: figure`` with :func:`save_figure`; return the paths written and a
    one-line warning when some PNGs were not (None otherwise).

    A PNG that fails is retried ``retries`` times; if it still fails PNG export is taken to be
    unavailable (no Chrome/Chromium): with ``require_png`` the :class:`FigureExportError` is
    raised, otherwise that figure and the rest are written as HTML only."""
    written: list[Path] = []
    error: FigureExportError | None = None
    html_only = 0
    for stem, fig in figures.items():
        for attempt in range(retries + 1):
            try:
                written += save_figure(fig, stem, png=png and error is None, include_plotlyjs=include_plotlyjs)
                break
            except FigureExportError as exc:
                if attempt == retries:
                    if require_png:
                        raise
                    error = exc
                    written.append(_with(Path(stem), ".html"))  # save_figure writes the HTML first
        html_only += error is not None
    return written, None if error is None else _png_warning(error, html_only)


def _with(stem: Path, suffix: str) -> Path:
    """``stem`` + ``suffix``, also when the stem has a dot ("cu.extxyz-gamma" -> "cu.extxyz-gamma.png")."""
    return stem.with_name(stem.name + suffix)


def _first_line(exc: BaseException) -> str:
    """``Type: first non-blank line of the message`` (kaleido's and plotly's run to many lines)."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first[:120]}"


def _png_warning(exc: FigureExportError, html_only: int) -> str:
    return (f"PNG not written for {html_only} figure(s), HTML only ({_first_line(exc.__cause__ or exc)}); "
            "PNG export needs Chrome/Chromium (e.g. Debian's 'chromium'); --no-png skips it")
