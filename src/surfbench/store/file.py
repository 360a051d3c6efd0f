"""Opening the result store's SQLite file: read-only for reading commands, an integrity check
on open, and clear errors (naming the file) for a damaged, foreign or unwritable store.

* Reading (``read_only=True``): the file is opened with SQLite's ``mode=ro`` and nothing is
  written (no journal-mode change, no schema). In a folder the user cannot write, where
  SQLite cannot create the WAL index (``-shm``) a read-only WAL database needs, it is opened
  ``immutable`` (nothing can be writing it there).
* Writing: a file or folder that cannot be written gives :class:`StoreNotWritable`.
* Either way the first 16 bytes must be SQLite's header and ``PRAGMA quick_check`` (b-tree
  structure and page accounting, no index cross-check: linear in the file size) must pass, else
  :class:`DamagedStore` says how to recover.
* An SQLite database with tables but not surfbench's (:data:`REQUIRED_TABLES`) is somebody
  else's file: :class:`ForeignStore`, for reading and writing alike; nothing is written into it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

SQLITE_HEADER = b"SQLite format 3\x00"
#: tables every surfbench store has (older schemas included)
REQUIRED_TABLES = ("records", "models", "results")


class StoreError(Exception):
    """The result store cannot be used; the message names the file and what to do."""


class DamagedStore(StoreError):
    """The store's file is not a readable surfbench SQLite database."""

    def __init__(self, path: Path, detail: str):
        self.path = path
        super().__init__(
            f"the result store {path} is damaged ({detail}). To recover: keep a backup copy of the damaged file "
            f"(e.g. mv {path} {path}.damaged; 'sqlite3 {path}.damaged .recover' may salvage rows), then start a "
            f"new store: rerun 'surfbench run' in this folder (the results are computed again) or use another "
            f"--workdir."
        )


class ForeignStore(StoreError):
    """The store's file is an SQLite database of something else: surfbench neither reads nor
    writes it."""

    def __init__(self, path: Path, tables: list[str]):
        self.path, self.tables = path, tables
        shown = ", ".join(tables[:8]) + (f" and {len(tables) - 8} more" if len(tables) > 8 else "")
        super().__init__(
            f"{path} is an SQLite database but not a surfbench result store (it holds the table(s) {shown}; a "
            f"surfbench store has the tables {', '.join(REQUIRED_TABLES)}). surfbench does not write into it: move "
            f"it away (e.g. mv {path} {path.with_name(path.name + '.other')}) or use another --workdir."
        )


class StoreNotWritable(StoreError):
    """A writing command met a store file or folder it cannot write."""

    def __init__(self, path: Path, detail: str):
        self.path, self.detail = path, detail
        super().__init__(
            f"cannot write the result store {path} ({detail}): the file or its folder {path.parent} is read-only. "
            f"Reading commands (table, report, export) work on it as it is; to compute, make the folder writable "
            f"or copy the store to a writable --workdir."
        )


def _uri(path: Path, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{quote(str(path.resolve()))}?{query}"


def check_header(path: Path) -> None:
    """:class:`DamagedStore` unless ``path`` is empty (a new store) or starts with SQLite's header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read the result store {path}: {exc.strerror or exc}") from exc
    if head and (len(head) < 100 or not head.startswith(SQLITE_HEADER)):
        what = f"only {len(head)} bytes" if len(head) < 100 else "it does not start with the SQLite header"
        raise DamagedStore(path, f"not an SQLite database: {what}")


def _quick_check(con: sqlite3.Connection, path: Path, *, writing: bool) -> None:
    with translate(path, writing=writing):
        rows = [row[0] for row in con.execute("PRAGMA quick_check(3)").fetchall()]
    if rows != ["ok"]:
        problems = [line for row in rows for line in str(row).splitlines() if not line.startswith("***")]
        raise DamagedStore(path, "integrity check: " + "; ".join(problems[:3]))


@contextlib.contextmanager
def translate(path: Path, *, writing: bool = False) -> Iterator[None]:
    """SQLite errors inside the block become :class:`StoreError` naming ``path``: a busy store
    as such, a read-only one (``writing``) as :class:`StoreNotWritable`, the rest as damage."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise StoreError(f"the result store {path} is locked by another process ({text}); retry when it "
                             "has finished") from exc
        if writing and ("readonly" in text or "read-only" in text or "unable to open" in text):
            raise StoreNotWritable(path, text) from exc
        raise DamagedStore(path, text) from exc
    except sqlite3.DatabaseError as exc:
        raise DamagedStore(path, str(exc)) from exc
    except UnicodeDecodeError as exc:  # a text value whose bytes were overwritten
        raise DamagedStore(path, f"a text value is not valid UTF-8: {exc}") from exc


def open_store(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A checked connection to the store at ``path`` (see the module docstring)."""
    check_header(path)
    if read_only:
        if not path.is_file():
            raise StoreError(f"no result store at {path}; run 'surfbench run' first or pass --workdir")
        con = _open_read_only(path)
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreNotWritable(path, f"cannot create the folder: {exc.strerror or exc}") from exc
        with translate(path, writing=True):
            con = sqlite3.connect(path, timeout=60)
    try:
        _quick_check(con, path, writing=not read_only)
        with translate(path):
            tables = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'"))
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing and tables:  # somebody else's database: never add surfbench's tables to it
            raise ForeignStore(path, tables)
        if missing and read_only:
            raise DamagedStore(path, f"no {', '.join(missing)} table: empty, not a surfbench result store, or "
                                     "truncated")
    except BaseException:
        con.close()
        raise
    return con


def _connect_read_only(path: Path, *, immutable: bool) -> sqlite3.Connection:
    params = {"mode": "ro", **({"immutable": "1"} if immutable else {})}
    con = sqlite3.connect(_uri(path, **params), uri=True, timeout=60)
    try:
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except BaseException:
        con.close()
        raise
    return con


#: what SQLite says when a read-only connection to a WAL store cannot open or create its WAL
#: index (``-shm``) or journal beside it: "unable to open database file" for root under
#: ``chattr +i``, "attempt to write a readonly database" for a user without write permission
_NO_WAL_INDEX = ("unable to open", "readonly database", "read-only database")


def _open_read_only(path: Path) -> sqlite3.Connection:
    """``mode=ro``; ``immutable`` where SQLite cannot open or create the WAL index beside a
    store the user may not write (nothing can be writing it there)."""
    with translate(path):
        try:
            return _connect_read_only(path, immutable=False)
        except sqlite3.OperationalError as exc:
            if not any(text in str(exc) for text in _NO_WAL_INDEX):
                raise
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:  # immutable would not read it: results would be missing
            raise StoreError(f"the result store {path} has results in its write-ahead log {wal} (a run was stopped "
                             "before it could fold them in), which cannot be read where the store cannot be written: "
                             "copy the folder to a writable place and read it there")
        return _connect_read_only(path, immutable=True)
