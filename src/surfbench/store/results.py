"""The result store: one SQLite file per project folder (:class:`ResultStore`), holding the
tables of :mod:`surfbench.store.schema`; this module reads and writes records, models, results,
frame results and analyses (MD runs: :mod:`surfbench.store.md_runs`; trainings:
:mod:`surfbench.store.trainings`).

Every result is committed as soon as it is computed (WAL journal), so a killed run loses
nothing already finished and a rerun computes only what is missing.

A record's stored row is its content (:mod:`surfbench.store.records`): a record whose data set
now gives another value for any of its labels is updated, its results are kept.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pandas as pd

from surfbench.models.base import Fingerprint
from surfbench.records import Dataset, ReferenceSurfaceRecord
from surfbench.store import schema
from surfbench.store.file import StoreError, StoreNotWritable, open_store, translate
from surfbench.store.records import RECORD_COLUMNS, changed_labels, record_row
from surfbench.store.schema import READABLE_WITHOUT_UPGRADE, SCHEMA_VERSION

STORE_NAME = "surfbench.sqlite"


class StoredOutcome(Protocol):
    """What the store keeps of a protocol's outcome
    (:class:`surfbench.evaluation.protocols.Outcome`): status (``ok`` or ``failed``), total
    energy (eV), failure kind, message, wall time (s) and the protocol's extras."""

    status: str
    energy_ev: float | None
    failure_kind: str | None
    message: str | None
    wall_s: float
    extra: dict


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
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultStore:
    """SQLite-backed store of records, models and results (one writer process)."""

    def __init__(self, path: str | Path, *, read_only: bool = False):
        """``read_only``: open for reading commands, writing nothing (see
        :mod:`surfbench.store.file`); a store of an older schema is upgraded once first
        (:mod:`surfbench.store.schema`), which needs write access. A damaged, foreign or
        unwritable store raises :class:`~surfbench.store.file.StoreError` naming the file."""
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
                self._schema_version()
                schema.create_and_migrate(self._con)
                self._con.commit()
        except BaseException:
            self._con.close()
            raise
        self._stale = True

    def _has_stale_columns(self) -> bool:
        with translate(self.path):
            return all("stale" in schema.columns(self._con, table) for table in ("records", "reference_facets"))

    def _current(self, alias: str) -> str:
        """SQL condition: the record of table alias ``alias`` is current (not stale)."""
        return f"COALESCE({alias}.stale, 0)=0" if self._stale else "1=1"

    def _schema_version(self) -> int:
        """The store's schema version; :class:`StoreError` for one newer than this surfbench's."""
        with translate(self.path):
            version = schema.stored_version(self._con)
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer surfbench (schema {version} > {SCHEMA_VERSION}); "
                             "upgrade surfbench to read it")
        return version

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ records/models
    def put_records(self, dataset: Dataset) -> list[tuple[str, list[str]]]:
        """Store the records: new ones, and stored ones whose structure or labels differ (see
        :data:`~surfbench.store.records.RECORD_LABELS`). Returns (record id, names of the changed
        labels) of every stored record that was updated. A bulk's symmetry analysis is redone only
        when its structure changed."""
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
            row = record_row(dataset.name, r, (old["bulk_lattice"], old["spacegroup"]) if keep_lattice else None)
            if old is None:
                rows.append(row)
                continue
            changed = changed_labels(old, row)
            if changed:
                changes.append((r.id, changed))
            if changed or (row[RECORD_COLUMNS.index("kind")] == "bulk" and old["bulk_lattice"] is None):
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
                rows = self._con.execute(f"SELECT record_id, stale FROM {table} WHERE dataset=?",
                                         (dataset.name,)).fetchall()
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

    def check_model(self, fingerprint: Fingerprint, *, keep_both: bool = False) -> None:
        """Refuse (:class:`FingerprintChanged`) a model whose name is stored with another
        fingerprint (new weights, package version, dtype or options), unless ``keep_both``."""
        if keep_both:
            return
        rows = self._con.execute("SELECT fingerprint, details FROM models WHERE name=?",
                                 (fingerprint.model,)).fetchall()
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
        outcome: StoredOutcome, forces_ev_per_a=None,
    ) -> None:
        forces = (None if forces_ev_per_a is None
                  else json.dumps([[round(float(x), 6) for x in row] for row in forces_ev_per_a]))
        with self._con:
            self._con.execute(
                "INSERT OR REPLACE INTO frame_results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (frameset, frame_id, fingerprint, protocol, content_hash, outcome.status, outcome.failure_kind,
                 outcome.message, outcome.energy_ev, forces, outcome.wall_s, _now()),
            )

    def frame_results(self, frameset: str, fingerprint: str | None = None,
                      protocol: str = "single-point") -> pd.DataFrame:
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
        outcome: StoredOutcome, device: str = "", threads: int | None = None,
    ) -> None:
        with self._con:
            self._con.execute(
                "INSERT OR REPLACE INTO results (dataset, record_id, fingerprint, protocol, content_hash, status, "
                "failure_kind, message, energy_ev, wall_s, device, threads, extra, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
