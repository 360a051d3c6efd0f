"""The ``md_runs`` table of the result store: one row per (data set, record id, model
fingerprint, protocol), with protocol ``md@<digest>`` of the run's settings, resolved
temperature and verdict thresholds (:func:`surfbench.dynamics.presets.protocol_key`), so that
a rerun with the same settings reuses the row and any change makes a new one.

A row holds the verdict (``stable`` or the failure kind), its message, the numbers of
:mod:`surfbench.dynamics.verdicts` (:data:`~surfbench.store.schema.MD_NUMBER_COLUMNS`), the
settings as JSON, the sampled time series (time in fs, temperature in K, potential and total
energy per atom in eV/atom) as JSON for the report, and the trajectory path relative to the
store's folder. :mod:`surfbench.dynamics.rows` turns a finished run into such a row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from surfbench.store.results import ResultStore
from surfbench.store.schema import ensure_table, has_table


class MDStore:
    """Reads and writes ``md_runs`` on an open :class:`~surfbench.store.results.ResultStore`
    (creating the table on a writable store that does not hold it yet)."""

    def __init__(self, store: ResultStore):
        self.store = store
        if not store.read_only:
            ensure_table(store._con, "md_runs")

    @property
    def root(self) -> Path:
        """The folder of the store file; trajectory paths are relative to it."""
        return Path(self.store.path).parent

    def get(self, dataset: str, record_id: str, fingerprint: str, protocol: str,
            content_hash: str | None = None) -> dict | None:
        """The stored row, or None (also when the record's structure hash changed)."""
        df = self.store.frame(
            "SELECT * FROM md_runs WHERE dataset=? AND record_id=? AND fingerprint=? AND protocol=?",
            (dataset, record_id, fingerprint, protocol))
        if df.empty:
            return None
        row = df.iloc[0].to_dict()
        if content_hash is not None and row["content_hash"] != content_hash:
            return None
        return row

    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace one run (``row``: the table's columns, settings and series as JSON
        text, numbers finite or None)."""
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        con = self.store._con
        with con:
            con.execute(f"INSERT OR REPLACE INTO md_runs ({cols}) VALUES ({marks})", tuple(row.values()))

    def runs(self, dataset: str | None = None, fingerprints: list[str] | None = None) -> pd.DataFrame:
        """Stored runs (without the series), newest last."""
        cols = [c for c in self._columns() if c != "series"]
        sql = f"SELECT {', '.join(cols)} FROM md_runs"
        where, params = [], []
        if dataset is not None:
            where.append("dataset=?")
            params.append(dataset)
        if fingerprints:
            where.append(f"fingerprint IN ({', '.join('?' for _ in fingerprints)})")
            params += list(fingerprints)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self.store.frame(sql + " ORDER BY created_at, element, record_id", params)

    def series(self, dataset: str, record_id: str, fingerprint: str, protocol: str) -> dict[str, list]:
        """The sampled time series of one run (see the module docstring); empty when none."""
        row = self.store._con.execute(
            "SELECT series FROM md_runs WHERE dataset=? AND record_id=? AND fingerprint=? AND protocol=?",
            (dataset, record_id, fingerprint, protocol)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def _columns(self) -> list[str]:
        return [r[1] for r in self.store._con.execute("PRAGMA table_info(md_runs)")]


def md_runs(store: ResultStore, dataset: str | None = None, fingerprints: list[str] | None = None) -> pd.DataFrame:
    """The stored MD runs, or an empty frame when the store has no ``md_runs`` table (reads
    only: a store without MD runs is not modified)."""
    if not has_table(store._con, "md_runs"):
        return pd.DataFrame()
    return MDStore(store).runs(dataset, fingerprints)

