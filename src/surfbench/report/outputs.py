"""The files beside the report's page: every figure as HTML and PNG, every table as CSV, every
number as JSON (NaN as null)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def jsonable(obj):
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def records_of(df: pd.DataFrame) -> list[dict]:
    return [jsonable(r) for r in df.to_dict(orient="records")]


def csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Lists and dicts as text for CSV."""
    out = df.copy()
    for c in out.columns:
        if out[c].map(lambda v: isinstance(v, (list, tuple))).any():
            out[c] = out[c].map(lambda v: " ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
        elif out[c].map(lambda v: isinstance(v, dict)).any():
            out[c] = out[c].map(lambda v: json.dumps(jsonable(v), sort_keys=True) if isinstance(v, dict) else v)
    return out


def write_figures(figs: dict[str, go.Figure], fig_dir: Path, png: bool, warnings: list[str],
                  require_png: bool = False) -> None:
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
            _, warning = save_figures({fig_dir / name: fig for name, fig in figs.items()}, png=png,
                                      require_png=require_png, include_plotlyjs="directory")
        if warning:
            warnings.append(warning)
    finally:
        if server is not None:
            try:
                server.stop_sync_server(silence_warnings=True)
            except Exception:  # noqa: BLE001
                pass


def write_tables(tables: dict[str, pd.DataFrame], stem: Path) -> dict[str, Path]:
    """Each table as ``<stem>-<name>.csv``; an empty one writes no file and removes the file of
    that name an earlier report left. Returns name -> path of the files written."""
    paths = {}
    for name, df in tables.items():
        path = Path(f"{stem}-{name}.csv")
        if df is None or df.empty:  # nothing to tell (one model: no correlation, no pairs): no file, and no
            path.unlink(missing_ok=True)  # file of an earlier report of the same name left to mislead
            continue
        csv_frame(df).to_csv(path, index=False)
        paths[name] = path
    return paths
