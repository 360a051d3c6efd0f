"""The result store: one SQLite file per project folder.

Tables:

* ``records``: the data set records a run saw (DFT energies, Miller index, area, ...), so
  that tables can be reprinted from the store alone;
* ``models``: one row per model fingerprint with its details;
* ``results``: one row per (data set, record id, model fingerprint, protocol) with the
  predicted total energy (eV), status, failure kind, timings and protocol extras (JSON:
  relaxation steps, RMSD, relaxed area, ...);
* ``frame_results``: one row per (frame set, frame id, model fingerprint, protocol) of a
  single point on a labelled DFT frame: energy (eV) and forces (eV/Angstrom, JSON), used by
  the softening analysis;
* ``analyses``: results of analyses that need more than the store to compute (the softening
  study needs the DFT frames), one JSON payload per (kind, data set, model fingerprint,
  settings), so the report can show them without loading data or models.

Every result is committed as soon as it is computed (WAL journal), so a killed run loses
nothing already finished and a rerun computes only what is missing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from surfbench.evaluation.protocols import Outcome
from surfbench.models.base import Fingerprint
from surfbench.records import BulkRecord, Dataset, SurfaceRecord

STORE_NAME = "surfbench.sqlite"
SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    dataset TEXT NOT NULL,
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('bulk', 'slab')),
    element TEXT NOT NULL,
    split TEXT,
    miller TEXT,
    miller_source TEXT,
    reconstructed INTEGER,
    n_atoms INTEGER NOT NULL,
    area_a2 REAL,
    dft_energy_ev REAL NOT NULL,
    bulk_id TEXT,
    dft_bulk_energy_per_atom_ev REAL,
    dft_gamma_j_per_m2 REAL,
    content_hash TEXT NOT NULL,
    source TEXT,
    bulk_lattice TEXT,
    spacegroup INTEGER,
    PRIMARY KEY (dataset, record_id)
);
CREATE TABLE IF NOT EXISTS models (
    fingerprint TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    details TEXT NOT NULL,
    first_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    dataset TEXT NOT NULL,
    record_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    protocol TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    failure_kind TEXT,
    message TEXT,
    energy_ev REAL,
    wall_s REAL,
    device TEXT,
    threads INTEGER,
    extra TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dataset, record_id, fingerprint, protocol)
);
CREATE TABLE IF NOT EXISTS frame_results (
    frameset TEXT NOT NULL,
    frame_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    protocol TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    failure_kind TEXT,
    message TEXT,
    energy_ev REAL,
    forces_ev_per_a TEXT,
    wall_s REAL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (frameset, frame_id, fingerprint, protocol)
);
CREATE TABLE IF NOT EXISTS analyses (
    kind TEXT NOT NULL,
    dataset TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    settings TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, dataset, fingerprint, settings)
);
"""


class FingerprintChanged(ValueError):
    """A model name is stored with another fingerprint than the model now has."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultStore:
    """SQLite-backed store of records, models and results (one writer process)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir() or path.suffix != ".sqlite":
            path = path / STORE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._con = sqlite3.connect(path, timeout=60)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.executescript(_SCHEMA)
        self._migrate()
        self._con.commit()

    def _migrate(self) -> None:
        """Bring a store written by an older surfbench up to this schema (columns only added)."""
        version = self._con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer surfbench (schema {version} > {SCHEMA_VERSION})")
        columns = {row[1] for row in self._con.execute("PRAGMA table_info(results)")}
        if "threads" not in columns:  # schema 1 -> 2
            self._con.execute("ALTER TABLE results ADD COLUMN threads INTEGER")
        record_columns = {row[1] for row in self._con.execute("PRAGMA table_info(records)")}
        if "bulk_lattice" not in record_columns:  # schema 2 -> 3
            self._con.execute("ALTER TABLE records ADD COLUMN bulk_lattice TEXT")
            self._con.execute("ALTER TABLE records ADD COLUMN spacegroup INTEGER")
        self._con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ records/models
    def put_records(self, dataset: Dataset) -> None:
        """Store the records (once per structure hash: bulk symmetry analysis is not redone)."""
        known = dict(self._con.execute(
            "SELECT record_id, content_hash FROM records WHERE dataset=? "
            "AND NOT (kind='bulk' AND bulk_lattice IS NULL)", (dataset.name,)).fetchall())
        rows = [
            self._record_row(dataset.name, r)
            for r in [*dataset.bulks.values(), *dataset.surfaces]
            if known.get(r.id) != r.content_hash
        ]
        with self._con:
            self._con.executemany(
                "INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )

    @staticmethod
    def _record_row(dataset: str, r: BulkRecord | SurfaceRecord) -> tuple:
        if isinstance(r, BulkRecord):
            from surfbench.data.geometry import conventional_cell

            try:
                lattice, spacegroup, _ = conventional_cell(r.atoms)
                lattice_json = json.dumps(lattice.tolist())
            except Exception:  # symmetry analysis failing must not stop a run; Wulff shapes need it
                lattice_json, spacegroup = None, None
            return (dataset, r.id, "bulk", r.element, r.split, None, None, None, r.n_atoms, None,
                    r.energy_ev, None, r.energy_per_atom_ev, None, r.content_hash, r.source,
                    lattice_json, spacegroup)
        return (dataset, r.id, "slab", r.element, r.split, r.miller_str if r.miller else None,
                r.miller_source, None if r.reconstructed is None else int(r.reconstructed),
                r.n_atoms, r.area_a2, r.energy_ev, r.bulk_id, r.bulk_energy_per_atom_ev,
                r.dft_gamma_j_per_m2, r.content_hash, r.source, None, None)

    def check_model(self, fingerprint: Fingerprint, *, keep_both: bool = False) -> None:
        """Refuse (:class:`FingerprintChanged`) a model whose name is stored with another
        fingerprint (new weights, package version, dtype or options), unless ``keep_both``."""
        if keep_both:
            return
        rows = self._con.execute("SELECT fingerprint, details FROM models WHERE name=?", (fingerprint.model,)).fetchall()
        if not rows or any(fp == fingerprint.id for fp, _ in rows):
            return
        old_fp, old_details = rows[0]
        old = json.loads(old_details).get("fingerprint", {})
        changed = [k for k, v in fingerprint.__dict__.items() if k in old and old[k] != v] or ["fingerprint"]
        raise FingerprintChanged(
            f"model {fingerprint.model!r}: the store {self.path} holds results of {old_fp} under this name, "
            f"but the model now has fingerprint {fingerprint.id} (changed: {', '.join(changed)}). Keep both "
            "(--keep-both-fingerprints; they are kept apart by fingerprint) or use another --workdir."
        )

    def put_model(self, fingerprint: Fingerprint, details: dict, *, keep_both: bool = False) -> None:
        """Record a model's fingerprint and details (refused, see :meth:`check_model`)."""
        self.check_model(fingerprint, keep_both=keep_both)
        payload = json.dumps({"fingerprint": fingerprint.__dict__, **details}, sort_keys=True, default=str)
        with self._con:
            self._con.execute(
                "INSERT OR IGNORE INTO models VALUES (?,?,?,?)",
                (fingerprint.id, fingerprint.model, payload, _now()),
            )

    # ------------------------------------------------------------------ results
    def get_result(self, dataset: str, record_id: str, fingerprint: str, protocol: str) -> dict | None:
        """One stored result (status, failure_kind, energy_ev, extra as a dict) or None."""
        row = self._con.execute(
            "SELECT status, failure_kind, energy_ev, extra FROM results WHERE dataset=? AND record_id=? "
            "AND fingerprint=? AND protocol=?", (dataset, record_id, fingerprint, protocol)).fetchone()
        if row is None:
            return None
        return {"status": row[0], "failure_kind": row[1], "energy_ev": row[2],
                "extra": json.loads(row[3]) if row[3] else {}}

    # ------------------------------------------------------------------ frame results
    def frames_done(self, frameset: str, fingerprint: str, protocol: str) -> dict[str, str]:
        """frame id -> content hash of the frame results already stored."""
        return dict(self._con.execute(
            "SELECT frame_id, content_hash FROM frame_results WHERE frameset=? AND fingerprint=? AND protocol=?",
            (frameset, fingerprint, protocol)).fetchall())

    def put_frame_result(
        self, frameset: str, frame_id: str, fingerprint: str, protocol: str, content_hash: str,
        outcome: Outcome, forces_ev_per_a=None,
    ) -> None:
        forces = None if forces_ev_per_a is None else json.dumps([[round(float(x), 6) for x in row] for row in forces_ev_per_a])
        with self._con:
            self._con.execute(
                "INSERT OR REPLACE INTO frame_results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (frameset, frame_id, fingerprint, protocol, content_hash, outcome.status, outcome.failure_kind,
                 outcome.message, outcome.energy_ev, forces, outcome.wall_s, _now()),
            )

    def frame_results(self, frameset: str, fingerprint: str | None = None, protocol: str = "single-point") -> pd.DataFrame:
        """Stored frame results (forces as JSON text) with the model name."""
        sql = ("SELECT f.*, m.name AS model FROM frame_results f LEFT JOIN models m ON m.fingerprint=f.fingerprint "
               "WHERE f.frameset=? AND f.protocol=?")
        params: list = [frameset, protocol]
        if fingerprint is not None:
            sql += " AND f.fingerprint=?"
            params.append(fingerprint)
        return self.frame(sql + " ORDER BY f.frame_id", params)

    # ------------------------------------------------------------------ analyses
    def put_analysis(self, kind: str, dataset: str, fingerprint: str, settings: dict, payload: dict) -> None:
        with self._con:
            self._con.execute(
                "INSERT OR REPLACE INTO analyses VALUES (?,?,?,?,?,?)",
                (kind, dataset, fingerprint, json.dumps(settings, sort_keys=True),
                 json.dumps(payload, sort_keys=True, default=str), _now()),
            )

    def analyses(self, kind: str, dataset: str) -> list[dict]:
        """Stored payloads of one analysis kind on a data set, newest first, each with its
        ``fingerprint``, ``settings`` and ``created_at``."""
        rows = self._con.execute(
            "SELECT fingerprint, settings, payload, created_at FROM analyses WHERE kind=? AND dataset=? "
            "ORDER BY created_at DESC", (kind, dataset)).fetchall()
        return [{"fingerprint": fp, "settings": json.loads(st), "created_at": at, **json.loads(pl)}
                for fp, st, pl, at in rows]

    def done(self, dataset: str, fingerprint: str, protocol: str, *, include_failed: bool = True) -> dict[str, str]:
        """record id -> content hash of the results already stored."""
        sql = "SELECT record_id, content_hash FROM results WHERE dataset=? AND fingerprint=? AND protocol=?"
        if not include_failed:
            sql += " AND status='ok'"
        return dict(self._con.execute(sql, (dataset, fingerprint, protocol)).fetchall())

    def put_result(
        self, dataset: str, record_id: str, fingerprint: str, protocol: str, content_hash: str,
        outcome: Outcome, device: str = "", threads: int | None = None,
    ) -> None:
        with self._con:
            self._con.execute(
                "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (dataset, record_id, fingerprint, protocol, content_hash, outcome.status,
                 outcome.failure_kind, outcome.message, outcome.energy_ev, outcome.wall_s,
                 device, threads, json.dumps(outcome.extra) if outcome.extra else None, _now()),
            )

    # ------------------------------------------------------------------ reading
    def frame(self, sql: str, params: Iterable = ()) -> pd.DataFrame:
        return pd.read_sql_query(sql, self._con, params=tuple(params))

    def models(self) -> pd.DataFrame:
        return self.frame("SELECT fingerprint, name, first_seen, details FROM models ORDER BY first_seen")

    def results(
        self, dataset: str | None = None, fingerprint: str | None = None, protocol: str | None = None
    ) -> pd.DataFrame:
        """Records joined with results (one row per result)."""
        where, params = [], []
        for col, val in (("r.dataset", dataset), ("r.fingerprint", fingerprint), ("r.protocol", protocol)):
            if val is not None:
                where.append(f"{col}=?")
                params.append(val)
        sql = (
            "SELECT r.dataset, r.record_id, r.fingerprint, m.name AS model, r.protocol, "
            "rec.kind, rec.element, rec.split, rec.miller, rec.miller_source, rec.reconstructed, "
            "rec.n_atoms, rec.area_a2, rec.dft_energy_ev, rec.bulk_id, "
            "rec.dft_bulk_energy_per_atom_ev, rec.dft_gamma_j_per_m2, "
            "r.status, r.failure_kind, r.message, r.energy_ev, r.wall_s, r.device, r.threads, r.extra, r.created_at "
            "FROM results r JOIN records rec ON rec.dataset=r.dataset AND rec.record_id=r.record_id "
            "LEFT JOIN models m ON m.fingerprint=r.fingerprint"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self.frame(sql + " ORDER BY r.dataset, rec.kind, r.record_id", params)

    def records(self, dataset: str | None = None) -> pd.DataFrame:
        """The stored records (DFT side), with the bulk's conventional lattice (JSON, Angstrom)
        and space group for bulk records."""
        if dataset is None:
            return self.frame("SELECT * FROM records ORDER BY dataset, kind, record_id")
        return self.frame("SELECT * FROM records WHERE dataset=? ORDER BY kind, record_id", (dataset,))

    def runs(self) -> pd.DataFrame:
        """(data set, model fingerprint, protocol) combinations present, with counts."""
        return self.frame(
            "SELECT r.dataset, r.fingerprint, m.name AS model, r.protocol, COUNT(*) AS n, "
            "SUM(r.status='ok') AS ok, MAX(r.created_at) AS last "
            "FROM results r LEFT JOIN models m ON m.fingerprint=r.fingerprint "
            "GROUP BY r.dataset, r.fingerprint, r.protocol ORDER BY last"
        )

    def export(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write every result joined with its record to CSV or Parquet."""
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".")).lower()
        df = self.results()
        if fmt == "csv":
            df.to_csv(path, index=False)
        elif fmt == "parquet":
            df.to_parquet(path, index=False)
        else:
            raise ValueError(f"unknown export format {fmt!r}; use csv or parquet")
        return path
