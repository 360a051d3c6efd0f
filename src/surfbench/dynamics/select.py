"""Which slabs an MD check runs on: the worst slab of each element for a model (largest
|gamma error| in the store's static results), or given record ids."""

from __future__ import annotations

from dataclasses import dataclass

from surfbench.analysis.predictions import slab_predictions
from surfbench.records import Dataset, SurfaceRecord
from surfbench.store.results import ResultStore

WORST_PER_ELEMENT = "worst-per-element"


class SelectionError(ValueError):
    """No slab can be selected (no static results, unknown ids, ...)."""


@dataclass(frozen=True)
class Choice:
    """A selected slab, with why: its gamma error (J/m^2, model - DFT) where chosen as worst."""

    record: SurfaceRecord
    gamma_error_j_per_m2: float | None = None
    reason: str = ""


@dataclass
class Selection:
    choices: list[Choice]
    notes: list[str]


def worst_per_element(
    store: ResultStore, dataset: Dataset, fingerprint: str, model: str, *, workdir_hint: str = ".",
) -> Selection:
    """Per element, the slab with the largest |gamma error| of ``fingerprint`` in the
    store's static results on ``dataset``. Elements whose slabs all lack a model gamma
    (failed slab or bulk) are named in the notes, never replaced by another slab. Raises
    :class:`SelectionError` when the store has no static results of the model there."""
    results = store.results(dataset.name, fingerprint, "static")
    if results.empty:
        raise SelectionError(
            f"the store {store.path} has no static results of {model} (fingerprint {fingerprint}) on "
            f"{dataset.name}; the worst slabs are chosen from them: run 'surfbench run --model {model} "
            f"--dataset {dataset.name} --workdir {workdir_hint}' first, or give record ids"
        )
    slabs = slab_predictions(results)
    by_id = {s.id: s for s in dataset.surfaces}
    notes = []
    stale = [rid for rid in slabs["record_id"] if rid not in by_id]
    if stale:
        notes.append(f"{len(stale)} stored slab(s) are not in the data set {dataset.name} any more: {', '.join(stale[:5])}")
    slabs = slabs[slabs["record_id"].isin(by_id)]
    missing = [s.id for s in dataset.surfaces if s.id not in set(slabs["record_id"])]
    if missing:
        notes.append(f"static results cover {len(dataset.surfaces) - len(missing)} of {len(dataset.surfaces)} slabs; "
                     f"not evaluated: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    choices = []
    for element in sorted(set(s.element for s in dataset.surfaces)):
        grp = slabs[(slabs["element"] == element)]
        ok = grp[grp["gamma_status"] == "ok"]
        if ok.empty:
            kinds = sorted(set(grp["gamma_failure"].dropna().astype(str))) or ["not evaluated"]
            notes.append(f"{element}: no slab has a model surface energy ({', '.join(kinds)}); no worst slab")
            continue
        worst = ok.loc[ok["error_gamma_j_per_m2"].abs().idxmax()]
        err = float(worst["error_gamma_j_per_m2"])
        choices.append(Choice(by_id[worst["record_id"]], err, f"largest |gamma error| of {element}: {err:+.3f} J/m^2"))
    return Selection(choices, notes)


def by_ids(dataset: Dataset, ids: list[str]) -> Selection:
    """The slabs with these record ids; an unknown id or a bulk id is an error naming it."""
    by_id = {s.id: s for s in dataset.surfaces}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        bulks = [i for i in unknown if i in dataset.bulks]
        hint = f" ({', '.join(bulks)} are bulk records: MD runs on slabs)" if bulks else ""
        raise SelectionError(f"no slab with id {', '.join(repr(i) for i in unknown)} in data set {dataset.name}{hint}")
    return Selection([Choice(by_id[i], None, "given") for i in ids], [])
