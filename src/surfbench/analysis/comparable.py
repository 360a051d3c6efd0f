"""Which models can be ranked against each other: the rule every comparison of surfbench follows
(the report, ``table --models``, ``run -m A -m B``, :meth:`surfbench.Results.compare`, the
benchmarks).

A model's RMSE over its own slabs says nothing about another model's over other slabs: EMT on 12
Cu slabs and CHGNet on 75 slabs of six elements are not two scores of one test. So:

* the slabs in scope are every slab that any of the compared models evaluated (has a stored
  result for, ok or failed);
* a model that evaluated every one of them is **comparable**; rankings, "best" claims and the
  paired bootstrap use only the comparable models, on the slabs every one of them has a gamma
  for, and say how many ("compared on N common slabs");
* a model that evaluated only some of them is **not comparable**: its metrics are shown over its
  own slabs, marked, and never ranked. Not evaluated is not failed: a slab a model never ran
  counts neither as a failure nor as an error of that model. To compare it with the others,
  restrict the comparison to the slabs they share (``--elements``/``--miller``).

Failures stay what they were: a comparable model that failed on a slab is compared with the
others on the slabs where all of them have a gamma, and its failures are counted in its
coverage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Comparability:
    """The comparable models of a comparison and the slabs they are compared on."""

    n_slabs: int  #: slabs in scope: evaluated by at least one model
    evaluated: dict[str, int]  #: model -> slabs it evaluated (ok or failed)
    comparable: list[str]  #: models that evaluated every slab in scope (input order)
    others: list[str]  #: models with other coverage: not comparable, never ranked
    #: the comparable models with at least one gamma (one that failed on every slab has nothing to rank)
    ranked_models: list[str] = field(default_factory=list)
    common_ids: frozenset = field(default_factory=frozenset)  #: slabs with a gamma from every ranked model
    shared_ids: frozenset = field(default_factory=frozenset)  #: slabs every model evaluated
    shared_elements: tuple[str, ...] | None = None  #: the shared slabs are exactly the slabs in scope of these elements

    @property
    def n_common(self) -> int:
        """Slabs the comparable models are ranked on (each has a gamma from all of them)."""
        return len(self.common_ids)

    @property
    def ranked(self) -> bool:
        """Whether there is a ranking: at least two comparable models with a gamma on common slabs."""
        return len(self.ranked_models) >= 2 and self.n_common > 0

    def is_comparable(self, model: str) -> bool:
        return model in self.comparable

    def mark(self, model: str) -> str:
        """"" for a comparable model, else e.g. "not comparable: 12 of 75 slabs"."""
        if model in self.comparable or model not in self.evaluated:
            return ""
        return f"not comparable: {self.evaluated[model]} of {self.n_slabs} slabs"

    def label(self, model: str) -> str:
        """The model's name, with its mark in brackets where it is not comparable."""
        mark = self.mark(model)
        return f"{model} ({mark})" if mark else model

    def compared(self) -> str:
        """E.g. "compared on 75 common slabs" (the comparable models' common ground)."""
        return f"compared on {self.n_common} common slabs"

    def hint(self) -> str:
        """How to compare every model: restrict to the slabs they all evaluated."""
        if not self.shared_ids:
            return "no slab was evaluated by every model, so they cannot all be compared"
        how = f" (--elements {','.join(self.shared_elements)})" if self.shared_elements else ""
        return (f"to compare every model, restrict the comparison to the {len(self.shared_ids)} slabs they all "
                f"evaluated{how}")

    def note(self) -> str | None:
        """A sentence on the models that are not comparable (None when every model is)."""
        if not self.others:
            return None
        shown = ", ".join(f"{m} ({self.evaluated.get(m, 0)} of {self.n_slabs} slabs)" for m in self.others)
        return (f"Not comparable (other coverage, not ranked): {shown}: "
                f"{'its numbers are' if len(self.others) == 1 else 'their numbers are'} over "
                f"{'its' if len(self.others) == 1 else 'their'} own slabs, not those of the others; {self.hint()}.")

    def summary(self) -> str:
        """What is ranked, in one sentence: "N models compared on K common slabs" or why none."""
        if self.ranked:
            return f"{len(self.ranked_models)} models {self.compared()}"
        if len(self.comparable) == 1 and self.others:
            return (f"no ranking: {self.comparable[0]} is the only model that evaluated all {self.n_slabs} slabs "
                    "in scope")
        if not self.comparable:
            return f"no ranking: no model evaluated all {self.n_slabs} slabs in scope"
        if len(self.comparable) >= 2 and len(self.ranked_models) < 2:
            return "no ranking: fewer than two of the models have a surface energy on any slab"
        if len(self.comparable) >= 2:
            return "no ranking: no slab has a gamma from every model"
        return "one model: nothing to rank"


def comparability(slabs: pd.DataFrame, models: Iterable[str] | None = None, *, model_column: str = "model",
                  error_column: str = "error_gamma_j_per_m2") -> Comparability:
    """The :class:`Comparability` of the models in ``slabs`` (one row per stored result on a
    slab, as :func:`surfbench.analysis.predictions.slab_predictions` gives; ``model_column``
    names a run, one label per fingerprint). ``models``: every model of the comparison, those
    without any slab result included (they evaluated none)."""
    names = list(dict.fromkeys([*(models or []), *(slabs[model_column].dropna().unique() if len(slabs) else [])]))
    key = "record_id"
    if "dataset" in slabs and len(slabs) and slabs["dataset"].nunique() > 1:
        slabs = slabs.assign(_key=slabs["dataset"].astype(str) + "\0" + slabs["record_id"].astype(str))
        key = "_key"
    done = {m: set(slabs.loc[slabs[model_column] == m, key]) for m in names} if len(slabs) else {m: set() for m in names}
    scope = set().union(*done.values()) if done else set()
    comparable = [m for m in names if scope and done[m] == scope]
    others = [m for m in names if m not in comparable]
    common: set = set()
    ranked: list[str] = []
    if comparable and len(slabs):
        errors = slabs[slabs[model_column].isin(comparable)]
        finite = errors[np.isfinite(pd.to_numeric(errors[error_column], errors="coerce").to_numpy(dtype=float))]
        ranked = [m for m in comparable if (finite[model_column] == m).any()]
        counts = finite.groupby(key)[model_column].nunique()
        common = set(counts[counts == len(ranked)].index) if ranked else set()
    shared = set.intersection(*done.values()) if done else set()
    elements = None
    if shared and "element" in slabs and key == "record_id":
        in_scope = slabs.drop_duplicates(key)
        els = sorted(set(in_scope.loc[in_scope[key].isin(shared), "element"]))
        if set(in_scope.loc[in_scope["element"].isin(els), key]) == shared:
            elements = tuple(els)
    return Comparability(n_slabs=len(scope), evaluated={m: len(done[m]) for m in names}, comparable=comparable,
                         others=others, ranked_models=ranked, common_ids=frozenset(common),
                         shared_ids=frozenset(shared), shared_elements=elements)
