"""The ``trainings`` table of the result store: one row per model trained by ``surfbench train``
(:mod:`surfbench.training.pipeline` writes it): method, mode, foundation, preset, settings, split
summary (which frames were held out and why), the training frames and their structure hashes,
wall time (s), CPU time (s), peak RSS (MB), parameters, energy and force errors on the test
frames, per-epoch history, evaluation protocol, fold and the training's end state.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from surfbench.store.results import ResultStore
from surfbench.store.schema import ensure_table, has_table

#: JSON columns of the trainings table
JSON_COLUMNS = ("settings", "split", "train_frames", "train_hashes", "frame_metrics", "history", "zero_shot", "judged")

#: the columns of the frame :func:`trainings` returns for a store without trainings
_EMPTY_COLUMNS = ["name", "fingerprint", "method", "mode", "foundation", "preset", "elements", "data", "dataset",
                  "curve", "seed", "include_surfaces", "n_train", "n_valid", "n_test", "wall_s", "cpu_s",
                  "peak_rss_mb", "n_parameters", "device", *JSON_COLUMNS, "weights", "log", "config_hash",
                  "created_at", "protocol", "fold", "size", "converged", "state", "curve_elements"]


def put_training(store: ResultStore, row: dict[str, Any]) -> None:
    """Insert or replace one training (``row``: the table's columns; JSON columns as objects)."""
    row = {k: (json.dumps(v, default=str) if k in JSON_COLUMNS and v is not None else v) for k, v in row.items()}
    cols = ", ".join(row)
    con = store._con  # one writer, one transaction per call
    ensure_table(con, "trainings")
    with con:
        con.execute(f"INSERT OR REPLACE INTO trainings ({cols}) VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()))


def trainings(store: ResultStore, parse: bool = True) -> pd.DataFrame:
    """Every recorded training (JSON columns parsed unless ``parse`` is False); an empty frame
    for a store without trainings (the table is not created by reading)."""
    if not has_table(store._con, "trainings"):
        return pd.DataFrame(columns=_EMPTY_COLUMNS)
    df = store.frame("SELECT * FROM trainings ORDER BY curve, n_train, created_at")
    for name, default in (("protocol", "no-surfaces"), ("fold", "all"), ("judged", None), ("size", None),
                          ("converged", None), ("state", None)):
        if name not in df.columns:  # a store of an earlier release, opened read-only
            df[name] = default
    df["size"] = [str(n) if not isinstance(v, str) else v for v, n in zip(df["size"], df["n_train"])]
    # a curve's elements: the union over its folds (a facet-cv fold trains one element)
    union = {c: ",".join(sorted({e for v in g for e in str(v).split(",")})) for c, g in df.groupby("curve")["elements"]}
    df["curve_elements"] = df["curve"].map(union)
    if parse:
        for c in JSON_COLUMNS:
            df[c] = df[c].map(lambda v: json.loads(v) if isinstance(v, str) else v)
    return df


def get_training(store: ResultStore, name: str) -> dict[str, Any] | None:
    """One recorded training by model name (JSON columns parsed), or None: one row read, not
    the table (a facet-cv curve records a row per fold and size)."""
    if not has_table(store._con, "trainings"):
        return None
    hit = store.frame("SELECT * FROM trainings WHERE name=?", (name,))
    if hit.empty:
        return None
    row = hit.iloc[0].to_dict()
    return {k: (json.loads(v) if k in JSON_COLUMNS and isinstance(v, str) else v) for k, v in row.items()}
