"""The result store: one SQLite file per project folder.

Tables:

* ``records``: the data set records a run saw (DFT energies, Miller index, area, ...), so
  that tables can be reprinted from the store alone;
* ``reference_facets``: records of reference-value data sets (element, crystal, Miller
  index, reference surface energies in J/m^2; no DFT energies, see
  :class:`~surfbench.records.ReferenceSurfaceRecord`);
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

A record's stored row is its content: the structure hash and every label that enters a number
or a grouping (DFT energy, bulk id and the bulk's energy per atom, Miller index, split, area,
DFT gamma, ...; see :data:`RECORD_LABELS`). A record whose data set now gives another value for
any of them is updated (:meth:`ResultStore.put_records` says which labels changed); the model's
results, which depend on the structure only, are kept, and every gamma is derived from the
records at analysis time, so it follows the update.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from surfbench.data.subset import Subset
from surfbench.evaluation.protocols import Outcome
from surfbench.evaluation.store_file import StoreError, StoreNotWritable, open_store, translate
from surfbench.models.base import Fingerprint
from surfbench.records import BulkRecord, Dataset, ReferenceSurfaceRecord, SurfaceRecord

STORE_NAME = "surfbench.sqlite"
SCHEMA_VERSION = 5
#: the oldest schema a read-only store can be read in without an upgrade (schema 5 only added the
#: ``stale`` columns: without them nothing is stale)
READABLE_WITHOUT_UPGRADE = 4

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
    stale INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dataset, record_id)
);
CREATE TABLE IF NOT EXISTS reference_facets (
    dataset TEXT NOT NULL,
    record_id TEXT NOT NULL,
    element TEXT NOT NULL,
    crystal TEXT NOT NULL,
    miller TEXT NOT NULL,
    gamma_pbe_j_per_m2 REAL,
    gamma_exp_j_per_m2 REAL,
    reference TEXT,
    content_hash TEXT NOT NULL,
    stale INTEGER NOT NULL DEFAULT 0,
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


#: the columns of ``records``, in order
RECORD_COLUMNS = ("dataset", "record_id", "kind", "element", "split", "miller", "miller_source", "reconstructed",
                  "n_atoms", "area_a2", "dft_energy_ev", "bulk_id", "dft_bulk_energy_per_atom_ev",
                  "dft_gamma_j_per_m2", "content_hash", "source", "bulk_lattice", "spacegroup")
#: record column -> its name in messages: a stored record that differs in any of them is updated
RECORD_LABELS = {
    "content_hash": "structure", "kind": "kind", "element": "element", "n_atoms": "number of atoms",
    "dft_energy_ev": "dft energy", "bulk_id": "bulk id", "dft_bulk_energy_per_atom_ev": "bulk reference energy",
    "miller": "miller index", "miller_source": "miller source", "reconstructed": "reconstructed",
    "split": "split", "area_a2": "area", "dft_gamma_j_per_m2": "dft gamma",
}


def _same(old: object, new: object) -> bool:
    """Stored and new value agree (NULL and NaN alike; reals to 1e-9 relative, so a store
    written on another machine is not rewritten for a last-bit difference)."""
    def missing(v: object) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    if missing(old) or missing(new):
        return missing(old) and missing(new)
    if isinstance(old, float) or isinstance(new, float):
        try:
            return math.isclose(float(old), float(new), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    return old == new


def _and(where: str, condition: str) -> str:
    """A ``WHERE`` clause (possibly empty) with one more condition (possibly empty)."""
    if not condition:
        return where
    return f"{where} AND {condition}" if where else f" WHERE {condition}"


def _run_filter(dataset: str | None, fingerprint: str | None, protocol: str | None) -> tuple[str, list[str]]:
    """A ``WHERE`` clause on the results table ``r`` (empty when nothing is given) and its parameters."""
    given = [(col, val) for col, val in (("r.dataset", dataset), ("r.fingerprint", fingerprint),
                                          ("r.protocol", protocol)) if val is not None]
    return (" WHERE " + " AND ".join(f"{col}=?" for col, _ in given) if given else ""), [val for _, val in given]


class FingerprintChanged(ValueError):
    """A model name is stored with another fingerprint than the model now has."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultStore:
    """SQLite-backed store of records, models and results (one writer process)."""

    def __init__(self, path: str | Path, *, read_only: bool = False):
        """``read_only``: open for reading commands, writing nothing (see
        :mod:`surfbench.evaluation.store_file`); a store of an older schema is upgraded once
        first, which needs write access. A damaged, foreign or unwritable store raises
        :class:`~surfbench.evaluation.store_file.StoreError` naming the file."""
        path = Path(path)
        if path.is_dir() or path.suffix != ".sqlite":
            path = path / STORE_NAME
        self.path = path
        self.read_only = read_only
        if read_only:
            self._con = open_store(path, read_only=True)
            version = self._schema_version()
            if version < SCHEMA_VERSION:  # upgrade first (the columns the reads expect)
                self._con.close()
                try:
                    ResultStore(path).close()
                except StoreNotWritable as exc:
                    if version < READABLE_WITHOUT_UPGRADE:
                        raise StoreError(
                            f"the result store {path} has an older schema ({version} < {SCHEMA_VERSION}) that must be "
                            f"upgraded before it can be read, and it cannot be written here ({exc.detail}); copy it to "
                            "a writable folder and read it there") from exc
                self._con = open_store(path, read_only=True)
            self._schema_version()
            self._stale = self._has_stale_columns()
            return
        self._con = open_store(path, read_only=False)
        try:
            with translate(path, writing=True):
                self._con.execute("PRAGMA journal_mode=WAL")
                self._con.execute("PRAGMA synchronous=NORMAL")
                self._con.executescript(_SCHEMA)
                self._migrate()
                self._con.commit()
        except BaseException:
            self._con.close()
            raise
        self._stale = True

    def _has_stale_columns(self) -> bool:
        with translate(self.path):
            return all("stale" in {row[1] for row in self._con.execute(f"PRAGMA table_info({table})")}
                       for table in ("records", "reference_facets"))

    def _current(self, alias: str) -> str:
        """SQL condition: the record of table alias ``alias`` is current (not stale)."""
        return f"COALESCE({alias}.stale, 0)=0" if self._stale else "1=1"

    def _schema_version(self) -> int:
        """The store's schema version; :class:`StoreError` for one newer than this surfbench's."""
        with translate(self.path):
            version = self._con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer surfbench (schema {version} > {SCHEMA_VERSION}); "
                             "upgrade surfbench to read it")
        return version

    def _migrate(self) -> None:
        """Bring a store written by an older surfbench up to this schema (columns only added)."""
        self._schema_version()
        columns = {row[1] for row in self._con.execute("PRAGMA table_info(results)")}
        if "threads" not in columns:  # schema 1 -> 2
            self._con.execute("ALTER TABLE results ADD COLUMN threads INTEGER")
        record_columns = {row[1] for row in self._con.execute("PRAGMA table_info(records)")}
        if "bulk_lattice" not in record_columns:  # schema 2 -> 3
            self._con.execute("ALTER TABLE records ADD COLUMN bulk_lattice TEXT")
            self._con.execute("ALTER TABLE records ADD COLUMN spacegroup INTEGER")
        for table in ("records", "reference_facets"):  # schema 4 -> 5
            if "stale" not in {row[1] for row in self._con.execute(f"PRAGMA table_info({table})")}:
                self._con.execute(f"ALTER TABLE {table} ADD COLUMN stale INTEGER NOT NULL DEFAULT 0")
        self._con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ records/models
    def put_records(self, dataset: Dataset) -> list[tuple[str, list[str]]]:
        """Store the records: new ones, and stored ones whose structure or labels differ (see
        :data:`RECORD_LABELS`). Returns (record id, names of the changed labels) of every
        stored record that was updated. A bulk's symmetry analysis is redone only when its
        structure changed."""
        cur = self._con.execute("SELECT * FROM records WHERE dataset=?", (dataset.name,))
        names = [d[0] for d in cur.description]
        stored = {row["record_id"]: row for row in (dict(zip(names, values)) for values in cur.fetchall())}
        rows, changes = [], []
        for r in [*dataset.bulks.values(), *dataset.surfaces]:
            if isinstance(r, ReferenceSurfaceRecord):  # no DFT energies: their own table
                continue
            old = stored.get(r.id)
            keep_lattice = (old is not None and old["kind"] == "bulk" and old["content_hash"] == r.content_hash
                            and old["bulk_lattice"] is not None)
            row = self._record_row(dataset.name, r, (old["bulk_lattice"], old["spacegroup"]) if keep_lattice else None)
            if old is None:
                rows.append(row)
                continue
            new = dict(zip(RECORD_COLUMNS, row))
            changed = [label for col, label in RECORD_LABELS.items() if not _same(old[col], new[col])]
            if changed:
                changes.append((r.id, changed))
            if changed or (new["kind"] == "bulk" and old["bulk_lattice"] is None):
                rows.append(row)
        reference = [
            (dataset.name, r.id, r.element, r.crystal, r.miller_str, r.gamma_pbe_j_per_m2, r.gamma_exp_j_per_m2,
             r.reference, r.content_hash)
            for r in dataset.surfaces if isinstance(r, ReferenceSurfaceRecord)
        ]
        with self._con:
            self._con.executemany(
                f"INSERT OR REPLACE INTO records ({', '.join(RECORD_COLUMNS)}, stale) "
                f"VALUES ({', '.join('?' * len(RECORD_COLUMNS))}, 0)", rows
            )
            self._con.executemany(
                "INSERT OR REPLACE INTO reference_facets (dataset, record_id, element, crystal, miller, "
                "gamma_pbe_j_per_m2, gamma_exp_j_per_m2, reference, content_hash, stale) VALUES (?,?,?,?,?,?,?,?,?,0)",
                reference)
        return changes

    def mark_members(self, dataset: Dataset) -> tuple[list[str], list[str]]:
        """Mark the stored records of ``dataset``'s name that are not among its ``members``
        (the whole data set's record ids, see :class:`~surfbench.records.Dataset`) as stale and
        the members as current again; nothing when the members are not known. A stale record and
        its results are kept (nothing is lost) but left out of :meth:`results`, :meth:`records`,
        :meth:`runs`, :meth:`reference_results` and so of every table, report and export.
        Returns (record ids newly stale, record ids current again)."""
        if dataset.members is None:
            return [], []
        members = dataset.members
        newly_stale, revived = [], []
        with self._con:
            for table in ("records", "reference_facets"):
                rows = self._con.execute(f"SELECT record_id, stale FROM {table} WHERE dataset=?", (dataset.name,)).fetchall()
                stale = [(rid,) for rid, flag in rows if rid not in members and not flag]
                back = [(rid,) for rid, flag in rows if rid in members and flag]
                self._con.executemany(f"UPDATE {table} SET stale=1 WHERE dataset=? AND record_id=?",
                                      [(dataset.name, rid) for (rid,) in stale])
                self._con.executemany(f"UPDATE {table} SET stale=0 WHERE dataset=? AND record_id=?",
                                      [(dataset.name, rid) for (rid,) in back])
                newly_stale += [rid for (rid,) in stale]
                revived += [rid for (rid,) in back]
        return sorted(newly_stale), sorted(revived)

    def stale_records(self, dataset: str | None = None) -> pd.DataFrame:
        """The stale records (no longer in their data set) with how many results each has:
        columns dataset, record_id, results."""
        if not self._stale:
            return pd.DataFrame(columns=["dataset", "record_id", "results"])
        where, params = ("AND s.dataset=?", [dataset]) if dataset is not None else ("", [])
        sql = ("SELECT s.dataset, s.record_id, (SELECT COUNT(*) FROM results r WHERE r.dataset=s.dataset AND "
               "r.record_id=s.record_id) AS results FROM (SELECT dataset, record_id, stale FROM records UNION ALL "
               f"SELECT dataset, record_id, stale FROM reference_facets) s WHERE s.stale=1 {where} "
               "ORDER BY s.dataset, s.record_id")
        return self.frame(sql, params)

    @staticmethod
    def _record_row(dataset: str, r: BulkRecord | SurfaceRecord, lattice: tuple | None = None) -> tuple:
        """The ``records`` row of a record; ``lattice``: a bulk's (conventional lattice JSON,
        space group) when already known (else the symmetry analysis is run)."""
        if isinstance(r, BulkRecord):
            from surfbench.data.geometry import bulk_lattice

            lattice_json, spacegroup = lattice if lattice is not None else bulk_lattice(r)
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
        """A query's rows; an unreadable page or value gives :class:`DamagedStore`."""
        try:
            with translate(self.path):
                return pd.read_sql_query(sql, self._con, params=tuple(params))
        except pd.errors.DatabaseError as exc:  # pandas wraps the SQLite error
            with translate(self.path):
                raise (exc.__cause__ or sqlite3.DatabaseError(str(exc))) from exc

    def models(self) -> pd.DataFrame:
        return self.frame("SELECT fingerprint, name, first_seen, details FROM models ORDER BY first_seen")

    def results(
        self, dataset: str | None = None, fingerprint: str | None = None, protocol: str | None = None, *,
        include_stale: bool = False,
    ) -> pd.DataFrame:
        """Records joined with results (one row per result); the results on stale records (no
        longer in their data set, see :meth:`mark_members`) only with ``include_stale``."""
        where, params = _run_filter(dataset, fingerprint, protocol)
        sql = (
            "SELECT r.dataset, r.record_id, r.fingerprint, m.name AS model, r.protocol, "
            "rec.kind, rec.element, rec.split, rec.miller, rec.miller_source, rec.reconstructed, "
            "rec.n_atoms, rec.area_a2, rec.dft_energy_ev, rec.bulk_id, "
            "rec.dft_bulk_energy_per_atom_ev, rec.dft_gamma_j_per_m2, "
            "r.status, r.failure_kind, r.message, r.energy_ev, r.wall_s, r.device, r.threads, r.extra, r.created_at "
            "FROM results r JOIN records rec ON rec.dataset=r.dataset AND rec.record_id=r.record_id "
            "LEFT JOIN models m ON m.fingerprint=r.fingerprint"
        )
        where = _and(where, "" if include_stale else self._current("rec"))
        return self.frame(sql + where + " ORDER BY r.dataset, rec.kind, r.record_id", params)

    def reference_datasets(self) -> set[str]:
        """Names of the reference-value data sets (e.g. mse21) whose records the store holds."""
        return {row[0] for row in self._con.execute("SELECT DISTINCT dataset FROM reference_facets")}

    def reference_results(
        self, dataset: str | None = None, fingerprint: str | None = None, protocol: str | None = None, *,
        include_stale: bool = False,
    ) -> pd.DataFrame:
        """Results on reference-value records (one row per result) with the reference surface
        energies (J/m^2) and the model name; ``extra`` as JSON text; stale records left out
        unless ``include_stale``."""
        where, params = _run_filter(dataset, fingerprint, protocol)
        where = _and(where, "" if include_stale else self._current("f"))
        sql = (
            "SELECT r.dataset, r.record_id, r.fingerprint, m.name AS model, r.protocol, f.element, f.crystal, "
            "f.miller, f.gamma_pbe_j_per_m2, f.gamma_exp_j_per_m2, f.reference, r.status, r.failure_kind, "
            "r.message, r.energy_ev, r.wall_s, r.device, r.threads, r.extra, r.created_at "
            "FROM results r JOIN reference_facets f ON f.dataset=r.dataset AND f.record_id=r.record_id "
            "LEFT JOIN models m ON m.fingerprint=r.fingerprint"
        )
        return self.frame(sql + where + " ORDER BY r.dataset, r.record_id", params)

    def records(self, dataset: str | None = None, *, include_stale: bool = False) -> pd.DataFrame:
        """The stored records (DFT side), with the bulk's conventional lattice (JSON, Angstrom)
        and space group for bulk records; stale ones (no longer in their data set) only with
        ``include_stale``."""
        current = "" if include_stale else self._current("records")
        if dataset is None:
            return self.frame(f"SELECT * FROM records{_and('', current)} ORDER BY dataset, kind, record_id")
        return self.frame(f"SELECT * FROM records WHERE dataset=?{' AND ' + current if current else ''} "
                          "ORDER BY kind, record_id", (dataset,))

    def runs(self) -> pd.DataFrame:
        """(data set, model fingerprint, protocol) combinations present, with counts (results on
        stale records left out)."""
        current = (" WHERE COALESCE(rec.stale, 0)=0 AND COALESCE(f.stale, 0)=0" if self._stale else "")
        return self.frame(
            "SELECT r.dataset, r.fingerprint, m.name AS model, r.protocol, COUNT(*) AS n, "
            "SUM(r.status='ok') AS ok, MAX(r.created_at) AS last "
            "FROM results r LEFT JOIN models m ON m.fingerprint=r.fingerprint "
            "LEFT JOIN records rec ON rec.dataset=r.dataset AND rec.record_id=r.record_id "
            "LEFT JOIN reference_facets f ON f.dataset=r.dataset AND f.record_id=r.record_id"
            + current + " GROUP BY r.dataset, r.fingerprint, r.protocol ORDER BY last"
        )

    def export_frame(self, *, subset: Subset | None = None) -> pd.DataFrame:
        """Every current result (``subset``: of those slabs and their bulks, or facets), one row
        per result: on DFT records joined with the record, with each slab's gamma (model, DFT,
        error, status and failure kind, :func:`surfbench.analysis.predictions.export_frame`);
        on reference-value records (mSE21, ``kind`` ``reference_facet``) the model's gamma
        beside the reference ones (``gamma_pbe_j_per_m2``, ``gamma_exp_j_per_m2``) with the
        errors ``error_pbe_j_per_m2`` and ``error_exp_j_per_m2``. Miller indices as text."""
        from surfbench.analysis.predictions import export_frame, miller_text
        from surfbench.analysis.reference_gamma import reference_predictions

        results = self.results()
        dft = export_frame(results if subset is None else subset.frame(results))
        reference = self.reference_results()
        if subset is not None:
            reference = subset.frame(reference)
        if reference.empty:
            return dft
        ref = reference_predictions(reference)
        ref.insert(ref.columns.get_loc("element"), "kind", "reference_facet")
        ref["miller"] = ref["miller"].map(miller_text).astype(object)
        ref["gamma_status"] = ref["status"]
        ref["gamma_failure"] = ref["failure_kind"]
        if dft.empty:
            return ref.reset_index(drop=True)
        columns = list(dft.columns) + [c for c in ref.columns if c not in dft.columns]
        return pd.concat([dft, ref], ignore_index=True).reindex(columns=columns)

    def export(self, path: str | Path, fmt: str | None = None, *, subset: Subset | None = None) -> Path:
        """Write :meth:`export_frame` to CSV or Parquet (by ``fmt`` or the file's suffix). Nothing
        is written, and a ValueError says why, when no result matches (an empty store, or a
        ``subset`` that leaves nothing)."""
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".")).lower()
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"unknown export format {fmt!r}; use csv or parquet")
        df = self.export_frame(subset=subset)
        if df.empty:
            if subset is not None and not subset.everything:
                raise ValueError(f"no stored result matches {subset.describe()}: nothing written to {path}")
            raise ValueError(f"the store {self.path} holds no results (on records still in their data sets): nothing "
                             f"written to {path}")
        if fmt == "csv":
            df.to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False)
        return path
