"""The ``md_runs`` table of the result store: one row per (data set, record id, model
fingerprint, protocol), with protocol ``md@<digest>`` of the run's settings, resolved
temperature and verdict thresholds (:func:`surfbench.dynamics.presets.protocol_key`), so that
a rerun with the same settings reuses the row and any change makes a new one.

The table lives in the same SQLite file as the static results (it is created on the
:class:`~surfbench.evaluation.store.ResultStore`'s connection). A row holds the verdict
(``stable`` or the failure kind), its message, the numbers of
:mod:`surfbench.dynamics.verdicts`, the settings as JSON, the sampled time series (time in
fs, temperature in K, potential and total energy per atom in eV/atom) as JSON for the report,
and the trajectory path relative to the store's folder.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from surfbench.dynamics.md import MDRun
from surfbench.evaluation.store import ResultStore

NUMBER_COLUMNS = (
    "energy_drift_ev_per_atom_per_ps", "conserved_drift_ev_per_atom_per_ps", "temperature_mean_k",
    "temperature_std_k", "max_displacement_a", "min_distance_a", "nn_distance_a", "lindemann_inner",
    "msd_inner_a2", "max_force_ev_per_a", "n_desorbed", "first_desorption_step",
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS md_runs (
    dataset TEXT NOT NULL,
    record_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    protocol TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    model TEXT,
    element TEXT,
    preset TEXT,
    thermostat TEXT NOT NULL,
    temperature_k REAL NOT NULL,
    timestep_fs REAL NOT NULL,
    steps INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    settings TEXT NOT NULL,
    verdict TEXT NOT NULL,
    failure_kind TEXT,
    message TEXT,
    steps_done INTEGER NOT NULL,
    time_ps REAL NOT NULL,
    {", ".join(f"{c} REAL" for c in NUMBER_COLUMNS)},
    trajectory TEXT,
    series TEXT,
    wall_s REAL,
    device TEXT,
    threads INTEGER,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dataset, record_id, fingerprint, protocol)
);
"""


def _num(value) -> float | None:
    """A float for SQLite; None (NULL) for NaN/inf, never 0."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _series(run: MDRun, n_atoms: int) -> str:
    s = run.samples
    epot = np.asarray(s.epot_ev, dtype=float) / n_atoms
    etot = (np.asarray(s.epot_ev, dtype=float) + np.asarray(s.ekin_ev, dtype=float)) / n_atoms
    clean = lambda a: [_num(v) for v in a]  # noqa: E731 - JSON has no NaN
    return json.dumps({
        "time_fs": clean(s.time_fs), "temperature_k": clean(s.temperature_k),
        "epot_ev_per_atom": clean(epot), "etot_ev_per_atom": clean(etot),
    })


class MDStore:
    """Reads and writes ``md_runs`` on an open :class:`ResultStore`."""

    def __init__(self, store: ResultStore):
        self.store = store
        self._con = store._con  # the store's connection: one SQLite file, one writer
        self._con.executescript(_SCHEMA)
        self._con.commit()

    @property
    def root(self) -> Path:
        """The folder of the store file; trajectory paths are relative to it."""
        return Path(self.store.path).parent

    def get(self, dataset: str, record_id: str, fingerprint: str, protocol: str, content_hash: str | None = None) -> dict | None:
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

    def put(
        self, *, dataset: str, record_id: str, fingerprint: str, protocol: str, content_hash: str, model: str,
        element: str, preset: str, settings: dict, run: MDRun, n_atoms: int, device: str = "",
        threads: int | None = None,
    ) -> None:
        v = run.verdict
        traj = None
        if run.trajectory is not None:
            path = Path(run.trajectory).resolve()
            traj = path.relative_to(self.root.resolve()).as_posix() if path.is_relative_to(self.root.resolve()) else str(path)
        row = {
            "dataset": dataset, "record_id": record_id, "fingerprint": fingerprint, "protocol": protocol,
            "content_hash": content_hash, "model": model, "element": element, "preset": preset,
            "thermostat": settings["thermostat"], "temperature_k": run.temperature_k,
            "timestep_fs": settings["timestep_fs"], "steps": settings["steps"], "seed": settings["seed"],
            "settings": json.dumps(settings, sort_keys=True), "verdict": v.verdict, "failure_kind": v.failure_kind,
            "message": v.message[:2000], "steps_done": run.steps_done,
            "time_ps": run.steps_done * settings["timestep_fs"] / 1000.0,
            **{c: _num(v.numbers.get(c)) for c in NUMBER_COLUMNS},
            "trajectory": traj, "series": _series(run, n_atoms), "wall_s": run.wall_s, "device": device,
            "threads": threads, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._con:
            self._con.execute(f"INSERT OR REPLACE INTO md_runs ({cols}) VALUES ({marks})", tuple(row.values()))

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
        row = self._con.execute(
            "SELECT series FROM md_runs WHERE dataset=? AND record_id=? AND fingerprint=? AND protocol=?",
            (dataset, record_id, fingerprint, protocol)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def _columns(self) -> list[str]:
        return [r[1] for r in self._con.execute("PRAGMA table_info(md_runs)")]


def md_runs(store: ResultStore, dataset: str | None = None, fingerprints: list[str] | None = None) -> pd.DataFrame:
    """The stored MD runs, or an empty frame when the store has no ``md_runs`` table (reads
    only: a store without MD runs is not modified)."""
    exists = store.frame("SELECT name FROM sqlite_master WHERE type='table' AND name='md_runs'")
    if exists.empty:
        return pd.DataFrame()
    return MDStore(store).runs(dataset, fingerprints)
