"""Did-you-mean suggestions for a name a user typed (a model, a data set, a stored run): the
same name in other case first, then the closest by :func:`difflib.get_close_matches`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggestions(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``choices`` close to ``name``: those equal to it but for case (and ``-``
    against ``_``) first, then the closest by difflib's ratio (at least ``cutoff``), also
    compared in lower case."""
    choices = list(dict.fromkeys(choices))

    def fold(s: str) -> str:
        return s.lower().replace("_", "-")

    same = [c for c in choices if fold(c) == fold(name)]
    if same:
        return same[:n]
    lowered = {fold(c): c for c in choices}
    close = difflib.get_close_matches(fold(name), list(lowered), n=n, cutoff=cutoff)
    # a prefix is a likely abbreviation ("sevennet" for "sevennet-0"); difflib may rank it low
    prefixed = [c for c in choices if fold(c).startswith(fold(name)) and len(name) >= 3]
    return list(dict.fromkeys([lowered[c] for c in close] + prefixed))[:n]


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """``" (did you mean 'a' or 'b'?)"`` for the :func:`suggestions` of ``name``, or ``""``
    when nothing is close."""
    return phrase(suggestions(name, choices, n))


def phrase(found: list[str]) -> str:
    """``" (did you mean 'a' or 'b'?)"`` for these suggestions, ``""`` for none."""
    if not found:
        return ""
    quoted = [repr(s) for s in found]
    return f" (did you mean {', '.join(quoted[:-1]) + ' or ' + quoted[-1] if len(quoted) > 1 else quoted[0]}?)"
