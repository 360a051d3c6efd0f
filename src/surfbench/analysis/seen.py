"""Which evaluated records a model saw in training, so that its metrics on surfaces it never
saw are reported apart from those on surfaces it was fitted to.

A registry entry may say what the model was trained on (``trained_on``, models/schema.json)::

    trained_on:
      description: mlearn Mo training split, including its slabs
      dataset: mlearn-surfaces      # the surface data set whose records are meant
      elements: [Mo]                # with splits: every record of these elements ...
      splits: [train]               # ... in these splits
      records: [Mo-slab-...]        # and/or explicit record ids (models made by surfbench train)

The rule is the same for every model: the records it names are *seen*, all others *unseen*.
A universal model (trained on MPtrj, no ``trained_on``) has seen none of the mlearn slabs.
The entry is stored with the model in the result store (``models.details``), so reading the
store needs no registry; for models stored before that, the registry entry of the same name
is used when there is one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

#: column added to results/predictions: "seen" (in the model's training data) or "unseen"
COLUMN = "in_training"
SEEN, UNSEEN = "seen", "unseen"
#: column with the model's training data in words
DESCRIPTION = "trained_on"


def _from_registry(name: str) -> dict[str, Any] | None:
    from surfbench.models.base import ModelLoadError
    from surfbench.models.registry import get_spec

    try:
        return get_spec(name).trained_on
    except ModelLoadError:
        return None


def trained_on_by_fingerprint(models: pd.DataFrame) -> dict[str, dict[str, Any] | None]:
    """fingerprint -> the model's ``trained_on`` (None: it saw none of the evaluated records),
    from a store's ``models`` table (columns fingerprint, name, details)."""
    out: dict[str, dict[str, Any] | None] = {}
    for _, row in models.iterrows():
        try:
            details = json.loads(row["details"]) if isinstance(row["details"], str) else {}
        except json.JSONDecodeError:
            details = {}
        out[row["fingerprint"]] = details["trained_on"] if "trained_on" in details else _from_registry(str(row["name"]))
    return out


def is_seen(trained_on: Mapping[str, Any] | None, dataset: str, record_id: str, element: str | None,
            split: str | None) -> bool:
    """Whether the record is among those ``trained_on`` names (module docs)."""
    if not trained_on or trained_on.get("dataset") != dataset:
        return False
    if record_id in set(trained_on.get("records") or ()):
        return True
    splits, elements = trained_on.get("splits"), trained_on.get("elements")
    if not splits and not elements:
        return False
    return (not splits or split in splits) and (not elements or element in elements)


def mark(results: pd.DataFrame, trained_on: Mapping[str, Mapping[str, Any] | None]) -> pd.DataFrame:
    """``results`` (one row per result, with dataset, record_id, fingerprint, element, split)
    with the column :data:`COLUMN`."""
    out = results.copy()
    flags = [is_seen(trained_on.get(fp), ds, rid, el, sp) for fp, ds, rid, el, sp in
             zip(out["fingerprint"], out["dataset"], out["record_id"], out["element"], out["split"])]
    out[COLUMN] = np.where(np.asarray(flags, dtype=bool), SEEN, UNSEEN) if len(out) else []
    out[DESCRIPTION] = [describe(trained_on.get(fp)) for fp in out["fingerprint"]]
    return out


def mark_from_store(store, results: pd.DataFrame) -> pd.DataFrame:
    """:func:`mark` with the models' ``trained_on`` read from ``store``."""
    return mark(results, trained_on_by_fingerprint(store.models()))


def seen_counts(slabs: pd.DataFrame) -> pd.DataFrame:
    """Per model and element: slabs seen in training and unseen (columns seen, unseen)."""
    if slabs.empty or COLUMN not in slabs:
        return pd.DataFrame(columns=["model", "element", SEEN, UNSEEN])
    c = slabs.groupby(["model", "element", COLUMN]).size().unstack(COLUMN, fill_value=0)
    for col in (SEEN, UNSEEN):
        if col not in c:
            c[col] = 0
    return c[[SEEN, UNSEEN]].reset_index()


def models_with_seen(slabs: pd.DataFrame) -> list[str]:
    """Models that saw at least one of these slabs in training."""
    if slabs.empty or COLUMN not in slabs:
        return []
    return sorted(slabs.loc[slabs[COLUMN] == SEEN, "model"].dropna().unique().tolist())


def unseen_by_all(slabs: pd.DataFrame) -> pd.DataFrame:
    """The slabs that no model in ``slabs`` saw in training (the fair common ground)."""
    if slabs.empty or COLUMN not in slabs:
        return slabs
    seen_ids = set(slabs.loc[slabs[COLUMN] == SEEN, "record_id"])
    return slabs[~slabs["record_id"].isin(seen_ids)]


def describe(trained_on: Mapping[str, Any] | None) -> str:
    """The ``trained_on`` in words."""
    if not trained_on:
        return "none of the evaluated records"
    return str(trained_on.get("description") or trained_on.get("dataset"))


def _boot_row(errors: pd.Series, prefix: str, n_boot: int, seed: int, ci: float) -> dict[str, Any]:
    from surfbench.analysis.uncertainty import bootstrap_stats

    b = bootstrap_stats(errors, n_boot=n_boot, seed=seed, ci=ci)
    return {f"{prefix}_n": b["n"], **{f"{prefix}_{k}": v for k, v in b.items() if k != "n"}}


def seen_summary(slabs: pd.DataFrame, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Per model: what it was trained on, and the gamma errors (J/m^2) on the slabs it never
    saw (``unseen_*``, with percentile-bootstrap intervals) and on those it saw (``seen_*``)."""
    rows = []
    for model, g in slabs.groupby("model", sort=True):
        err = g["error_gamma_j_per_m2"]
        row = {"model": model, "trained_on": str(g[DESCRIPTION].iloc[0]) if DESCRIPTION in g else "",
               "n_slabs": len(g), "n_seen": int((g[COLUMN] == SEEN).sum()), "n_unseen": int((g[COLUMN] == UNSEEN).sum())}
        row.update(_boot_row(err[g[COLUMN] == UNSEEN], "unseen", n_boot, seed, ci))
        row.update(_boot_row(err[g[COLUMN] == SEEN], "seen", n_boot, seed, ci))
        rows.append(row)
    return pd.DataFrame(rows)


def common_unseen_summary(slabs: pd.DataFrame, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Per model and element (and ``all``): gamma errors (J/m^2) with bootstrap intervals on the
    slabs that no model in ``slabs`` saw in training, so that every model is judged on the
    same surfaces, new to all of them."""
    common = unseen_by_all(slabs)
    rows = []
    for model, g in common.groupby("model", sort=True):
        for el, ge in [*g.groupby("element", sort=True), ("all", g)]:
            rows.append({"model": model, "element": el, "n_slabs": len(ge),
                         **_boot_row(ge["error_gamma_j_per_m2"], "gamma", n_boot, seed, ci)})
    return pd.DataFrame(rows)
