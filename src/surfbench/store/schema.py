"""The result store's schema: every table of the SQLite file, one :data:`SCHEMA_VERSION`, and
the migration that brings a store written by an older surfbench up to it.

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
  settings), so the report can show them without loading data or models;
* ``md_runs``: one NVT stability run per (data set, record id, model fingerprint, protocol)
  (:mod:`surfbench.store.md_runs`);
* ``trainings``: one row per model trained by ``surfbench train``
  (:mod:`surfbench.store.trainings`).

A migration only adds: missing core tables are created and missing columns (:data:`ADDED_COLUMNS`)
are added with their defaults, so every row an older surfbench wrote is kept and read as before.
``md_runs`` and ``trainings`` are created by their first writer (:func:`ensure_table`), so that a
store without MD runs or trainings holds neither.
"""

from __future__ import annotations

import sqlite3

#: the schema this surfbench writes; 6: the ``md_runs`` and ``trainings`` tables joined the
#: versioned schema (defined and migrated here: a store of schema 6 that holds them holds every
#: column of theirs; before, their writers created and extended them)
SCHEMA_VERSION = 6
#: the oldest schema a read-only store can be read in without an upgrade (schema 5 only added the
#: ``stale`` columns: without them nothing is stale; schema 6 only migrates the ``trainings``
#: columns at open, which its reader fills with their defaults where they are missing)
READABLE_WITHOUT_UPGRADE = 4

#: the numbers of an MD run's verdict (:mod:`surfbench.dynamics.verdicts`), each a column of ``md_runs``
MD_NUMBER_COLUMNS = (
    "energy_drift_ev_per_atom_per_ps", "conserved_drift_ev_per_atom_per_ps", "temperature_mean_k",
    "temperature_std_k", "max_displacement_a", "min_distance_a", "nn_distance_a", "lindemann_inner",
    "msd_inner_a2", "max_force_ev_per_a", "n_desorbed", "first_desorption_step",
)

CORE_TABLES = """
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

#: tables created by their first writer (:mod:`surfbench.store.md_runs`, :mod:`surfbench.store.trainings`):
#: a store without MD runs or trainings holds neither, and their readers take a missing table for an empty one
WRITER_TABLES = {
    "md_runs": f"""
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
    {", ".join(f"{c} REAL" for c in MD_NUMBER_COLUMNS)},
    trajectory TEXT,
    series TEXT,
    wall_s REAL,
    device TEXT,
    threads INTEGER,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dataset, record_id, fingerprint, protocol)
);
""",
    "trainings": """
CREATE TABLE IF NOT EXISTS trainings (
    name TEXT PRIMARY KEY,
    fingerprint TEXT,
    method TEXT NOT NULL,
    mode TEXT NOT NULL,
    foundation TEXT,
    preset TEXT NOT NULL,
    elements TEXT NOT NULL,
    data TEXT NOT NULL,
    dataset TEXT NOT NULL,
    curve TEXT NOT NULL,
    seed INTEGER NOT NULL,
    include_surfaces INTEGER NOT NULL,
    n_train INTEGER NOT NULL,
    n_valid INTEGER NOT NULL,
    n_test INTEGER NOT NULL,
    wall_s REAL,
    cpu_s REAL,
    peak_rss_mb REAL,
    n_parameters INTEGER,
    device TEXT,
    settings TEXT NOT NULL,
    split TEXT NOT NULL,
    train_frames TEXT NOT NULL,
    train_hashes TEXT NOT NULL,
    frame_metrics TEXT,
    history TEXT,
    zero_shot TEXT,
    weights TEXT NOT NULL,
    log TEXT,
    config_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    protocol TEXT NOT NULL DEFAULT 'no-surfaces',
    fold TEXT NOT NULL DEFAULT 'all',
    judged TEXT,
    size TEXT,
    converged INTEGER,
    state TEXT
);
""",
}

#: columns added after a table's first release, in the order they came: table -> ((name, SQL type
#: and default), ...). results.threads: schema 2; records.bulk_lattice and spacegroup: schema 3;
#: the stale columns: schema 5; the trainings table's protocol columns and state: its later releases
#: (its earlier rows were no-surfaces, one fold)
ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "results": (("threads", "INTEGER"),),
    "records": (("bulk_lattice", "TEXT"), ("spacegroup", "INTEGER"), ("stale", "INTEGER NOT NULL DEFAULT 0")),
    "reference_facets": (("stale", "INTEGER NOT NULL DEFAULT 0"),),
    "trainings": (("protocol", "TEXT NOT NULL DEFAULT 'no-surfaces'"), ("fold", "TEXT NOT NULL DEFAULT 'all'"),
                  ("judged", "TEXT"), ("size", "TEXT"), ("converged", "INTEGER"), ("state", "TEXT")),
}


def columns(con: sqlite3.Connection, table: str) -> set[str]:
    """The column names of ``table`` (empty when there is no such table)."""
    return {row[1] for row in con.execute(f"PRAGMA table_info({table})")}


def has_table(con: sqlite3.Connection, table: str) -> bool:
    """The store holds ``table`` (a store of an older schema read as it is may lack one)."""
    return con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone() is not None


def stored_version(con: sqlite3.Connection) -> int:
    """The schema version the store was last written with (``PRAGMA user_version``)."""
    return con.execute("PRAGMA user_version").fetchone()[0]


def create_and_migrate(con: sqlite3.Connection) -> None:
    """Create the missing core tables, add the missing columns of every table the store holds
    and stamp :data:`SCHEMA_VERSION` (the caller commits)."""
    con.executescript(CORE_TABLES)
    for table, added in ADDED_COLUMNS.items():
        have = columns(con, table)
        if not have:  # a writer's table not written yet
            continue
        for name, declaration in added:
            if name not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def ensure_table(con: sqlite3.Connection, table: str) -> None:
    """Create one of :data:`WRITER_TABLES` if the store does not hold it yet."""
    if not has_table(con, table):
        con.executescript(WRITER_TABLES[table])
        con.commit()
