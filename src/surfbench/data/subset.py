"""Subsets of a data set's records by element and Miller index (``--elements Mo,Si --miller
110,211`` of ``run``, ``table``, ``report`` and ``export``, and the Python API): the slabs that
match, with the bulks those slabs reference. One rule for a loaded :class:`Dataset` and for
stored results (one row per record, as :meth:`ResultStore.results`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
from ase.data import chemical_symbols

from surfbench.records import Dataset, Miller


class SubsetError(ValueError):
    """A malformed ``--elements`` or ``--miller`` value; the message names it."""


_GROUP = re.compile(r"\([^)]*\)|[^,\s(][^,]*")  # "(1,1,0)" keeps its commas; "110,211" splits


def parse_elements(text: str | None) -> frozenset[str] | None:
    """``"Mo,Si"`` -> {"Mo", "Si"}; None (the option not given) -> None (every element). A
    value with no element in it (``""``, ``","``) is refused: it would select nothing, and
    taking it for "everything" would run what the user did not ask for."""
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise SubsetError(f"--elements {text!r} names no element: give them like 'Mo,Si', or leave --elements out "
                          "for every element")
    unknown = [n for n in names if n not in chemical_symbols[1:]]
    if unknown:
        from surfbench.names import phrase

        hints = [f"{n!r} is not a chemical symbol{phrase(symbol_suggestions(n))}" for n in unknown]
        raise SubsetError(f"--elements {text!r}: {'; '.join(hints)}; write them like 'Mo,Si'")
    return frozenset(names)


def symbol_suggestions(name: str, n: int = 3) -> list[str]:
    """Chemical symbols close to a mistyped one: the same letters in other case first
    (``cu`` -> ``Cu``), else the closest by :func:`difflib.get_close_matches`."""
    import difflib

    symbols = chemical_symbols[1:]
    same = [s for s in symbols if s.lower() == name.lower()]
    return same or difflib.get_close_matches(name.capitalize(), symbols, n=n, cutoff=0.5)


def parse_millers(text: str | None) -> frozenset[Miller] | None:
    """``"110,211"``, ``"1 1 0"``, ``"(1,1,0),(2,1,1)"``, ``"1-10"`` -> a set of Miller indices;
    None (the option not given) -> None (every index). A value with no index in it (``""``) is
    refused, as are (000) and fractional indices."""
    if text is None:
        return None
    from surfbench.data.userdata import parse_miller  # here: its import (ASE's neighbour lists) costs 0.4 s

    groups = [g.strip() for g in _GROUP.findall(text) if g.strip()]
    if not groups:
        raise SubsetError(f"--miller {text!r} names no Miller index: give them like '110,211', or leave --miller out "
                          "for every index")
    out = set()
    for group in groups:
        try:
            out.add(parse_miller(group))
        except ValueError as exc:
            why = "is (0 0 0), which is no plane" if "(0 0 0)" in str(exc) else "is not a Miller index"
            raise SubsetError(f"--miller {text!r}: {group!r} {why}; write each index as '110', '1 1 0' or '(1,1,0)' "
                              "and separate several with commas ('110,211')") from None
    return frozenset(out)


def _miller_of(value: object) -> Miller | None:
    """A Miller index as stored ("110", "1-10", "10 1 0") or on a record (a tuple); None if unknown."""
    from surfbench.data.miller import parse_miller

    if value is None or (isinstance(value, float) and value != value) or value in ("", "unknown"):
        return None
    hkl = parse_miller(value)
    return hkl if len(hkl) == 3 else None  # type: ignore[return-value]


@dataclass(frozen=True)
class Subset:
    """Slabs of ``elements`` (None: all) with a Miller index in ``millers`` (None: any; a slab
    without an index never matches a Miller filter), and the bulks they reference."""

    elements: frozenset[str] | None = None
    millers: frozenset[Miller] | None = None

    @classmethod
    def parse(cls, elements: str | None = None, miller: str | None = None) -> Subset:
        """From the command-line texts; raises :class:`SubsetError` for a malformed one."""
        return cls(parse_elements(elements), parse_millers(miller))

    @property
    def everything(self) -> bool:
        return self.elements is None and self.millers is None

    def describe(self) -> str:
        """E.g. "elements Cu, Ni; Miller 110, 1-10" ("" for everything)."""
        parts = []
        if self.elements is not None:
            parts.append("elements " + ", ".join(sorted(self.elements)))
        if self.millers is not None:
            parts.append("Miller " + ", ".join(sorted("".join(map(str, m)) for m in self.millers)))
        return "; ".join(parts)

    def keeps_slab(self, element: str, miller: object) -> bool:
        return (self.elements is None or element in self.elements) and (
            self.millers is None or _miller_of(miller) in self.millers)

    def dataset(self, ds: Dataset) -> Dataset:
        """The slabs of ``ds`` that match, with the bulks they reference."""
        if self.everything:
            return ds
        surfaces = [s for s in ds.surfaces if self.keeps_slab(s.element, s.miller)]
        used = {s.bulk_id for s in surfaces}
        return Dataset(ds.name, {k: b for k, b in ds.bulks.items() if k in used}, surfaces,
                       list(ds.notes), dict(ds.provenance), ds.members)

    def frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rows of stored records or results (columns ``element``, ``miller`` and, where bulks
        are present, ``kind``, ``record_id``, ``bulk_id``; reference-value rows have no ``kind``
        and are all facets) whose slab matches, with the bulk rows those slabs reference."""
        if self.everything or rows.empty:
            return rows
        is_bulk = rows["kind"] == "bulk" if "kind" in rows else pd.Series(False, index=rows.index)
        slab = ~is_bulk & pd.Series([self.keeps_slab(e, m) for e, m in zip(rows["element"], rows["miller"])],
                                    index=rows.index, dtype=bool)
        used = set(rows.loc[slab, "bulk_id"].dropna()) if "bulk_id" in rows else set()
        return rows[slab | (is_bulk & rows["record_id"].isin(used))]
