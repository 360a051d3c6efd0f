"""Errors raised by the data layer. Every message names the file and the record."""

from __future__ import annotations


class DataError(Exception):
    """Bad or missing input data. The message names the file (and record) at fault."""

    def __init__(self, message: str, *, path: object | None = None, record: object | None = None):
        where = []
        if path is not None:
            where.append(f"file {path}")
        if record is not None:
            where.append(f"record {record}")
        self.path = path
        self.record = record
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class DataWarning(UserWarning):
    """A data set kept with a doubt (e.g. a DFT surface energy outside the range of elemental
    surfaces, see :mod:`surfbench.data.checks`); the message names the records."""
