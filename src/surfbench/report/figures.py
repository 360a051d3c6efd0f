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
    """Write ``<stem>.html`` and ``<stem>.png``; return the paths written.

    ``include_plotlyjs=True`` embeds plotly.js (4.8 MB) in the HTML; ``"directory"`` writes
    one ``plotly.min.js`` beside it that every figure of the folder shares (still offline)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    html = stem.with_suffix(".html")
    fig.write_html(html, include_plotlyjs=include_plotlyjs, full_html=True)
    written = [html]
    if png:
        out = stem.with_suffix(".png")
        try:
            fig.write_image(out, scale=scale)
        except Exception as exc:  # kaleido raises its own types when no browser is found
            raise FigureExportError(
                f"could not write {out}: {type(exc).__name__}: {exc}. PNG export uses kaleido with a "
                "Chrome/Chromium browser (e.g. Debian's 'chromium' package); the HTML was written."
            ) from exc
        written.append(out)
    return written
