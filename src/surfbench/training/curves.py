"""Learning curves and the zero-shot / fine-tuned / from-scratch comparison, from the store
alone (the ``trainings`` table written by :mod:`surfbench.training.pipeline`, the results and
the records; no model and no data file is loaded).

* :func:`curve_table`: one row per trained model (the folds of a facet-cv training pooled into
  one row; for a fine-tuning curve also its foundation at ``n_train = 0``): the errors (gamma
  RMSE / MAE / mean signed error in J/m^2 on the judged slabs, slab and bulk energy per atom in eV/atom, energy per atom
  (eV/atom) and force components (eV/A) on the test frames) and the cost (training wall time
  and CPU time s, peak RSS MB, parameters) against the training-set size;
* :func:`comparison_table`: the paper's Table I question per element and overall: every
  zero-shot model in the store (the universal models evaluated by ``surfbench run``, the
  foundations), and the largest model of every fine-tuning and from-scratch curve, on the same
  slabs (those of the elements that were trained on);
* :func:`held_out_table`: which frames each curve held out and why, and an independent leak
  check: training frames whose structure hash equals an evaluated slab's;
* :func:`protocol_table`: every evaluation protocol's trained models beside the zero-shot
  models on the same judged slabs, with bootstrap intervals, the common-slab RMSE and the
  lowest facet per element.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from surfbench.analysis.metrics import error_stats
from surfbench.analysis.predictions import bulk_predictions, slab_predictions
from surfbench.store.results import ResultStore
from surfbench.store.trainings import trainings
from surfbench.training.base import FINETUNE, SCRATCH

ZERO_SHOT = "zero-shot"
KIND = {SCRATCH: "from scratch", FINETUNE: "fine-tuned", ZERO_SHOT: ZERO_SHOT}

_GAMMA_COLS = ["gamma_rmse", "gamma_mae", "gamma_mean_signed_error", "n_gamma", "slab_rmse", "bulk_error"]


def predictions(store: ResultStore, dataset: str, fingerprint: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(bulk, slab) predictions of one static run joined with DFT (empty frames without results)."""
    res = store.results(dataset, fingerprint, "static")
    if res.empty:
        return res, res
    return bulk_predictions(res), slab_predictions(res)


def surface_numbers(bulks: pd.DataFrame, slabs: pd.DataFrame, elements: set[str]) -> dict[str, float]:
    """gamma RMSE / MAE / mean signed error (J/m^2) with counts, slab and bulk energy RMSE
    (eV/atom) over the slabs and bulks of ``elements``."""
    s = slabs[slabs["element"].isin(elements)] if not slabs.empty else slabs
    b = bulks[bulks["element"].isin(elements)] if not bulks.empty else bulks
    g = error_stats(s["error_gamma_j_per_m2"]) if not s.empty else error_stats([])
    e = error_stats(s["error_e_per_atom_ev"]) if not s.empty else error_stats([])
    bb = error_stats(b["error_e_per_atom_ev"]) if not b.empty else error_stats([])
    return {"gamma_rmse": g["rmse"], "gamma_mae": g["mae"], "gamma_mean_signed_error": g["mean_signed_error"], "n_gamma": g["n_ok"],
            "n_slabs": g["n_total"], "slab_rmse": e["rmse"], "bulk_error": bb["rmse"]}


def _label(row) -> str:
    kind = "scratch" if row["mode"] == SCRATCH else f"fine-tuned from {row['foundation']}"
    els = row.get("curve_elements") or row["elements"]
    return f"{row['method']} {kind} ({row['preset']}, {els.replace(',', '-')}, seed {row['seed']})"


def not_converged(grp: pd.DataFrame) -> str:
    """``""``, or the mark of trainings (the folds of one curve and size) whose fit stopped
    before it converged (``converged`` 0: at its budget, epoch or iteration cap), with how
    (the ``state`` column, :mod:`surfbench.training.epochs`) where recorded:
    ``"NOT CONVERGED (budget-stopped)"``, ``"NOT CONVERGED"`` or ``"NOT CONVERGED: k of n folds"``."""
    if "converged" not in grp.columns:
        return ""
    stopped = grp[pd.to_numeric(grp["converged"], errors="coerce") == 0]
    if stopped.empty:
        return ""
    states = sorted({s for s in stopped.get("state", pd.Series(dtype=object)) if isinstance(s, str) and s})
    how = f" ({', '.join(states)})" if states else ""
    return f"NOT CONVERGED{how}" if len(grp) == 1 else f"NOT CONVERGED{how}: {len(stopped)} of {len(grp)} folds"


def marked(label: str, mark: str) -> str:
    """``label`` with its not-converged mark (:func:`not_converged`) in brackets, if any."""
    return f"{label} [{mark}]" if mark else label


def _pooled(grp: pd.DataFrame, preds) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(bulk, slab) predictions of the trainings ``grp`` (the folds of one curve and size), each
    model's slabs restricted to the slabs it is judged on (all of its elements' before protocols)."""
    bulks, slabs = [], []
    for _, r in grp.iterrows():
        if not isinstance(r["fingerprint"], str) or not r["fingerprint"]:
            continue
        b, s = preds(r["dataset"], r["fingerprint"])
        judged = r.get("judged")
        if isinstance(judged, list) and not s.empty:
            s = s[s["record_id"].isin(set(judged))]
        bulks.append(b)
        slabs.append(s)
    if not slabs:
        return pd.DataFrame(), pd.DataFrame()
    return pd.concat(bulks, ignore_index=True), pd.concat(slabs, ignore_index=True)


def curve_table(store: ResultStore, dataset: str | None = None) -> pd.DataFrame:
    """Errors and cost against the training-set size, one row per model (module docs); the
    folds of a facet-cv training are one row (their judged slabs pooled, costs summed, the
    median training-set size), and the zero-shot row is on the same judged slabs."""
    tr = trainings(store)
    if dataset is not None:
        tr = tr[tr["dataset"] == dataset]
    rows = []
    cache: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]] = {}

    def preds(ds: str, fp: str):
        if (ds, fp) not in cache:
            cache[(ds, fp)] = predictions(store, ds, fp)
        return cache[(ds, fp)]

    for curve, grp in tr.groupby("curve", sort=True):
        first = grp.iloc[0]
        elements = set(first["curve_elements"].split(","))
        base = {"curve": curve, "label": _label(first), "method": first["method"], "mode": first["mode"],
                "kind": KIND[first["mode"]], "foundation": first["foundation"], "preset": first["preset"],
                "elements": first["curve_elements"], "seed": int(first["seed"]),
                "include_surfaces": bool(first["include_surfaces"]), "dataset": first["dataset"],
                "protocol": first["protocol"]}
        judged = [j for js in grp["judged"] if isinstance(js, list) for j in js]
        zs = next((z for z in grp["zero_shot"] if isinstance(z, dict) and z.get("fingerprint")), None)
        if zs is not None:
            fm = zs.get("frame_metrics") or {}
            b, s = preds(first["dataset"], zs["fingerprint"])
            if judged and not s.empty:
                s = s[s["record_id"].isin(set(judged))]
            rows.append({**base, "model": zs["model"], "fingerprint": zs["fingerprint"], "n_train": 0, "size": "0",
                         "n_folds": 0, **surface_numbers(b, s, elements),
                         "energy_rmse_ev_per_atom": fm.get("energy_rmse_ev_per_atom", math.nan),
                         "force_rmse_ev_per_a": fm.get("force_rmse_ev_per_a", math.nan),
                         "wall_s": math.nan, "cpu_s": math.nan, "peak_rss_mb": math.nan, "n_parameters": math.nan})
        for size, sg in grp.groupby("size", sort=False):
            b, s = _pooled(sg, preds)
            numbers = surface_numbers(b, s, elements) if not s.empty else {}
            one = sg.iloc[0]
            fm = one["frame_metrics"] if len(sg) == 1 and isinstance(one["frame_metrics"], dict) else {}
            mark = not_converged(sg)
            rows.append({**base, "model": marked(one["name"] if len(sg) == 1 else f"{curve} [{size}, {len(sg)} folds]", mark),
                         "not_converged": mark,
                         "fingerprint": one["fingerprint"] if len(sg) == 1 else ",".join(sorted(sg["fingerprint"].dropna())),
                         "n_train": int(sg["n_train"].median()), "size": size, "n_folds": int(len(sg)), **numbers,
                         "energy_rmse_ev_per_atom": fm.get("energy_rmse_ev_per_atom", math.nan),
                         "force_rmse_ev_per_a": fm.get("force_rmse_ev_per_a", math.nan),
                         "wall_s": float(sg["wall_s"].sum()), "cpu_s": float(sg["cpu_s"].sum(min_count=1)),
                         "peak_rss_mb": float(sg["peak_rss_mb"].max()), "n_parameters": sg["n_parameters"].max()})
    cols = ["curve", "label", "method", "mode", "kind", "foundation", "preset", "elements", "seed", "include_surfaces",
            "dataset", "protocol", "model", "fingerprint", "n_train", "size", "n_folds", "gamma_rmse", "gamma_mae",
            "gamma_mean_signed_error", "n_gamma", "n_slabs", "slab_rmse", "bulk_error", "energy_rmse_ev_per_atom",
            "force_rmse_ev_per_a", "wall_s", "cpu_s", "peak_rss_mb", "n_parameters", "not_converged"]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["curve", "n_train"], kind="stable").reset_index(drop=True)


def comparison_table(store: ResultStore, dataset: str) -> pd.DataFrame:
    """Zero-shot vs fine-tuned vs from-scratch, per element and overall (module docs).

    One row per (model, element or "all"): kind, gamma RMSE / MAE / mean signed error (J/m^2)
    and count, slab and bulk energy RMSE (eV/atom), test-frame energy and force RMSE for
    trained models, training-set size, parameters and wall time. A trained model counts only
    for the elements it was trained on; "all" pools the slabs of every element of the group
    (for trained models: the largest model of each curve of that method, mode, foundation and
    preset, one per element set). Trainings of the ``no-surfaces`` protocol only (every slab of
    their elements judged, as for the zero-shot models); the other protocols judge other slab
    sets and are compared, on their own slabs, by :func:`protocol_table`."""
    all_tr = trainings(store)
    all_tr = all_tr[all_tr["dataset"] == dataset]
    trained_fps = set(all_tr["fingerprint"].dropna())
    tr = all_tr[all_tr["protocol"] == "no-surfaces"]
    if tr.empty:
        return pd.DataFrame()
    elements = sorted({e for els in tr["elements"] for e in els.split(",")})
    rows = []

    def add(element: str, model: str, kind: str, group: str, b: pd.DataFrame, s: pd.DataFrame, pick: set[str],
            extra: dict) -> None:
        numbers = surface_numbers(b, s, pick)
        if numbers["n_slabs"]:
            rows.append({"element": element, "model": model, "kind": kind, "group": group, **numbers, **extra})

    # zero-shot: every model evaluated on this data set that is not a trained one
    runs = store.runs()
    runs = runs[(runs["dataset"] == dataset) & (runs["protocol"] == "static") & ~runs["fingerprint"].isin(trained_fps)]
    for _, run in runs.iterrows():
        b, s = predictions(store, dataset, run["fingerprint"])
        name = run["model"] if isinstance(run["model"], str) else run["fingerprint"]
        for el in elements:
            add(el, name, ZERO_SHOT, name, b, s, {el}, {"n_train": 0})
        add("all", name, ZERO_SHOT, name, b, s, set(elements), {"n_train": 0})
    # trained: the largest model of each curve; "all" pools a family's models over their elements
    curves = curve_table(store, dataset)
    curves = curves[(curves["n_train"] > 0) & (curves["protocol"] == "no-surfaces")]
    for keys, fam in curves.groupby(["method", "mode", "foundation", "preset", "seed", "include_surfaces"], dropna=False):
        method, mode, foundation, preset, _, incl = keys
        group = f"{method} {'scratch' if mode == SCRATCH else 'fine-tuned from ' + str(foundation)} ({preset})"
        group += " with surfaces" if incl else ""
        largest = fam.sort_values("n_train").groupby("curve").tail(1)
        pooled_b, pooled_s, pooled_els = [], [], set()
        for _, r in largest.iterrows():
            own = set(r["elements"].split(","))
            b, s = predictions(store, dataset, r["fingerprint"])
            b = b[b["element"].isin(own)] if not b.empty else b
            s = s[s["element"].isin(own)] if not s.empty else s
            pooled_b.append(b)
            pooled_s.append(s)
            pooled_els |= own
            extra = {"n_train": int(r["n_train"]), "energy_rmse_ev_per_atom": r["energy_rmse_ev_per_atom"],
                     "force_rmse_ev_per_a": r["force_rmse_ev_per_a"], "n_parameters": r["n_parameters"],
                     "wall_s": r["wall_s"]}
            for el in sorted(own):
                add(el, r["model"], KIND[mode], group, b, s, {el}, extra)
        add("all", group, KIND[mode], group, pd.concat(pooled_b, ignore_index=True),
            pd.concat(pooled_s, ignore_index=True), pooled_els,
            {"n_train": int(largest["n_train"].sum()), "wall_s": float(largest["wall_s"].sum()),
             "n_parameters": largest["n_parameters"].max()})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out[out["element"].isin(elements + ["all"])]
    order = {ZERO_SHOT: 0, "fine-tuned": 1, "from scratch": 2}
    out["_el"] = out["element"].map(lambda e: (e == "all", e))
    out["_k"] = out["kind"].map(order)
    return out.sort_values(["_el", "_k", "gamma_rmse"]).drop(columns=["_el", "_k"]).reset_index(drop=True)


def held_out_table(store: ResultStore, dataset: str) -> pd.DataFrame:
    """Per curve: its protocol, frames held out (by reason), slab frames trained on by the
    protocol's rule (mlearn-split, facet-cv), whether surfaces were included, and the leak
    check: the number of training frames (of each fold's largest model) whose structure hash
    equals that of a slab record of ``dataset`` that the fold is judged on (for trainings
    made before protocols: any slab of its elements)."""
    tr = trainings(store)
    tr = tr[tr["dataset"] == dataset]
    if tr.empty:
        return pd.DataFrame()
    records = store.records(dataset)
    slabs = records[records["kind"] == "slab"]
    hash_of = dict(zip(slabs["record_id"], slabs["content_hash"]))
    rows = []
    for curve, grp in tr.groupby("curve", sort=True):
        largest = grp.sort_values("n_train").groupby("fold", sort=False).tail(1)
        r = largest.iloc[-1]
        els = r["curve_elements"].split(",")
        leaks, held, reasons, n_trained_slabs = 0, [], {}, 0
        for _, f in largest.iterrows():
            split = f["split"] if isinstance(f["split"], dict) else {}
            judged = f["judged"] if isinstance(f["judged"], list) else \
                list(slabs.loc[slabs["element"].isin(els), "record_id"])
            judged_hashes = {hash_of[j] for j in judged if j in hash_of}
            leaks += sum(1 for h in (f["train_hashes"] or []) if h in judged_hashes)
            held += [h["frame"] for h in split.get("held_out", [])]
            for k, v in split.get("held_out_reasons", {}).items():
                reasons[k] = reasons.get(k, 0) + v
            n_trained_slabs += int(split.get("n_slab_frames_trained", 0))
        split = r["split"] if isinstance(r["split"], dict) else {}
        rows.append({
            "curve": curve, "protocol": r["protocol"], "folds": int(len(largest)), "elements": r["curve_elements"],
            "surfaces included": bool(r["include_surfaces"]),
            "judged slabs": int(sum(len(j) for j in largest["judged"] if isinstance(j, list)))
            or split.get("n_evaluated_slabs"),
            "frames held out": int(sum((f["split"] or {}).get("n_held_out", 0) for _, f in largest.iterrows())),
            "reasons": ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())),
            "slab frames trained on by the protocol": n_trained_slabs,
            "slab frames left in training pool": split.get("n_leaked", 0),
            "largest training set": int(r["n_train"]), "validation frames": int(r["n_valid"]),
            "test frames": int(r["n_test"]),
            "training frames equal to an evaluated slab": int(leaks),  # evaluated = judged by its fold
            "held-out frames": " ".join(held),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- protocols

#: "lowest facet right" within this DFT margin (J/m^2): some elements' two lowest facets lie
#: about this close in DFT (Si(100) and Si(111) reconstructed in mlearn: 1.284 and 1.307)
FACET_TOL_J_PER_M2 = 0.025

#: kinds of the models that surfbench did not train, in protocol tables
SCALE_CORRECTED = "scale-corrected"  # a zero-shot model behind the softening scale (fitted on no slab)
SPECIALIST = "trained elsewhere"  # its registry entry names evaluated records it saw (trained_on)

PROTOCOL_COLUMNS = [
    "protocol", "group", "kind", "n_seen", "label", "preset", "overrides", "method", "foundation", "curve", "size", "elements", "element",
    "n_folds", "n_train", "n_train_slabs", "n_judged", "n_ok", "n_common", "gamma_rmse", "gamma_rmse_lo", "gamma_rmse_hi",
    "gamma_mean_signed_error", "gamma_mean_signed_error_lo", "gamma_mean_signed_error_hi", "comparable", "rmse_common", "lowest_right", "lowest_right_tol", "n_elements",
    "wall_s", "peak_rss_mb", "n_parameters", "fingerprints", "not_converged",
]


def judged_predictions(store: ResultStore, dataset: str, curves: list[str] | None = None) -> pd.DataFrame:
    """Slab predictions of every trained group (curve and size) on its judged slabs: each slab
    predicted by the fold that judged it (facet-cv: the fold that never saw its facet), gamma
    with that fold's own bulk energy. Columns of :func:`surfbench.analysis.predictions.slab_predictions`
    plus ``curve``, ``size``, ``protocol``, ``fold``, ``model`` (the fold's registry name)."""
    tr = trainings(store)
    tr = tr[(tr["dataset"] == dataset) & tr["fingerprint"].notna()]
    if curves is not None:
        tr = tr[tr["curve"].isin(curves)]
    parts = []
    cache: dict[str, pd.DataFrame] = {}
    for _, r in tr.iterrows():
        fp = r["fingerprint"]
        if fp not in cache:
            cache[fp] = predictions(store, dataset, fp)[1]
        s = cache[fp]
        if s.empty:
            continue
        els = set(str(r["elements"]).split(","))
        judged = r["judged"] if isinstance(r["judged"], list) else None
        s = s[s["record_id"].isin(set(judged))] if judged is not None else s[s["element"].isin(els)]
        parts.append(s.assign(curve=r["curve"], size=r["size"], protocol=r["protocol"], fold=r["fold"],
                              model=r["name"], n_train=int(r["n_train"])))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _facets_right(slabs: pd.DataFrame, tol: float) -> tuple[dict[str, bool], dict[str, bool]]:
    """Per element: the model's lowest facet is DFT's (strict) / within ``tol`` J/m^2 of DFT's minimum."""
    from surfbench.analysis.facets import facet_ordering

    if slabs.empty:
        return {}, {}
    order = facet_ordering(slabs.assign(fingerprint="pooled", model="pooled", bulk_id=slabs["element"]))
    order = order[order["n_facets"] > 0]
    strict = dict(zip(order["element"], order["lowest_correct"].astype(bool)))
    tolerant = dict(zip(order["element"], (order["lowest_excess_j_per_m2"] <= tol + 1e-12)))
    return strict, tolerant


def _row(slabs: pd.DataFrame, common: set, element: str, n_boot: int, seed: int, tol: float) -> dict:
    from surfbench.analysis.uncertainty import bootstrap_stats

    s = slabs if element == "all" else slabs[slabs["element"] == element]
    err = s["error_gamma_j_per_m2"].astype(float)
    st = bootstrap_stats(err, n_boot=n_boot, seed=seed)
    c = s[s["record_id"].isin(common)]
    ce = c["error_gamma_j_per_m2"].astype(float)
    strict, tolerant = _facets_right(s, tol)
    return {"element": element, "n_judged": int(len(s)), "n_ok": int(np.isfinite(err).sum()),
            "n_common": int(len(c)), "gamma_rmse": st["rmse"], "gamma_rmse_lo": st["rmse_lo"],
            "gamma_rmse_hi": st["rmse_hi"], "gamma_mean_signed_error": st["mean_signed_error"],
            "gamma_mean_signed_error_lo": st["mean_signed_error_lo"],
            "gamma_mean_signed_error_hi": st["mean_signed_error_hi"],
            "rmse_common": float(np.sqrt(np.mean(ce ** 2))) if len(ce) else np.nan,
            "lowest_right": int(sum(strict.values())), "lowest_right_tol": int(sum(tolerant.values())),
            "n_elements": int(len(strict))}


def protocol_table(store: ResultStore, dataset: str, *, curves: list[str] | None = None,
                   zero_shot: list[str] | None = None, n_boot: int = 2000, seed: int = 0,
                   tol_j_per_m2: float = FACET_TOL_J_PER_M2) -> pd.DataFrame:
    """Trained models per evaluation protocol, beside the zero-shot models on the same slabs.

    One *block* per (protocol, elements trained): its trained groups (curve and size; a
    facet-cv group pools its folds) and every zero-shot run of ``dataset`` (``zero_shot``: those
    fingerprints only; None: every static run that is not a trained model) restricted to the
    block's judged slabs. Rows per element and ``"all"``: slabs judged and with a gamma
    (``n_judged``, ``n_ok``), gamma RMSE and mean signed error (J/m^2) with 95 % percentile
    bootstrap intervals over the slabs (``n_boot`` resamples), ``n_common`` / ``rmse_common``
    (the slabs every *comparable* row of the block has a gamma for: the only set on which rows
    may be ranked; a row that did not evaluate every judged slab is ``comparable = False``,
    shown with its own coverage, not ranked: ``n_common`` 0), the lowest facet right per element, strictly and within ``tol_j_per_m2`` of the
    DFT minimum (counts of elements on "all" rows, of ``n_elements``), and the cost of the fits
    (wall time summed over folds, peak memory, parameters).
    """
    judged = judged_predictions(store, dataset, curves)
    if judged.empty:
        return pd.DataFrame(columns=PROTOCOL_COLUMNS)
    tr = trainings(store)
    tr = tr[(tr["dataset"] == dataset) & tr["fingerprint"].notna()]
    trained_fps = set(tr["fingerprint"])
    runs = store.runs()
    runs = runs[(runs["dataset"] == dataset) & (runs["protocol"] == "static") & ~runs["fingerprint"].isin(trained_fps)
                & ~runs["model"].isin(_trained_names(store))]  # a training being evaluated, or left unrecorded
    if zero_shot is not None:
        runs = runs[runs["fingerprint"].isin(set(zero_shot))]
    zs_preds = {fp: predictions(store, dataset, fp)[1] for fp in runs["fingerprint"]}
    kinds = _run_kinds(store, dataset)
    rows = []
    for (protocol, elements), block in judged.assign(elements=judged["curve"].map(
            dict(zip(tr["curve"], tr["curve_elements"])))).groupby(["protocol", "elements"], sort=True):
        ids = set(block["record_id"])
        members = []  # (meta, slabs)
        for (curve, size), g in block.groupby(["curve", "size"], sort=True):
            meta_rows = tr[(tr["curve"] == curve) & (tr["size"] == size)]
            first = meta_rows.iloc[0]
            kind = KIND[first["mode"]]
            mark = not_converged(meta_rows)
            members.append(({
                "protocol": protocol, "group": f"{curve} [{size}]", "kind": kind, "n_seen": 0,
                "label": marked(_label(first), mark), "not_converged": mark,
                "preset": first["preset"], "overrides": overrides_of(first),
                "method": first["method"], "foundation": first["foundation"], "curve": curve, "size": size,
                "elements": elements, "n_folds": int(meta_rows["fold"].nunique()),
                "n_train": float(meta_rows["n_train"].median()),
                "n_train_slabs": float(np.median([_slab_frames_trained(r) for _, r in meta_rows.iterrows()])),
                "wall_s": float(meta_rows["wall_s"].sum()),
                "peak_rss_mb": float(meta_rows["peak_rss_mb"].max()), "n_parameters": meta_rows["n_parameters"].max(),
                "fingerprints": ",".join(sorted(set(meta_rows["fingerprint"]))),
            }, g))
        for _, run in runs.iterrows():
            s = zs_preds[run["fingerprint"]]
            s = s[s["record_id"].isin(ids)] if not s.empty else s
            if s.empty:
                continue
            name = run["model"] if isinstance(run["model"], str) else run["fingerprint"]
            kind, seen_ids = kinds.get(run["fingerprint"], (ZERO_SHOT, set()))
            members.append(({"protocol": protocol, "group": name, "kind": kind,
                             "n_seen": len(seen_ids & set(s["record_id"])), "label": name, "not_converged": "",
                             "preset": "", "overrides": "", "method": "",
                             "foundation": "", "curve": "", "size": "", "elements": elements, "n_folds": 0,
                             "n_train": 0.0, "n_train_slabs": 0.0, "wall_s": np.nan, "peak_rss_mb": np.nan, "n_parameters": np.nan,
                             "fingerprints": run["fingerprint"]}, s))
        # ranked only: models that evaluated every judged slab of the block; the common slabs are
        # those all of them have a gamma for (a failure counts against the set, not as an error of 0)
        comparable = [set(s["record_id"]) >= ids for _, s in members]
        ok_sets = [set(s.loc[np.isfinite(s["error_gamma_j_per_m2"].astype(float)), "record_id"])
                   for (_, s), c in zip(members, comparable) if c]
        common = set.intersection(*ok_sets) if ok_sets else set()
        for (meta, s), c in zip(members, comparable):
            for el in [*sorted(set(s["element"])), "all"]:
                rows.append({**meta, "comparable": c, **_row(s, common if c else set(), el, n_boot, seed, tol_j_per_m2)})
    out = pd.DataFrame(rows, columns=PROTOCOL_COLUMNS)
    out["_el"] = out["element"].map(lambda e: (e == "all", e))
    out["_k"] = out["kind"].map({ZERO_SHOT: 0, SCALE_CORRECTED: 1, SPECIALIST: 2, "fine-tuned": 3, "from scratch": 4})
    return out.sort_values(["protocol", "elements", "_el", "_k", "gamma_rmse"]).drop(columns=["_el", "_k"]).reset_index(drop=True)


def overrides_of(training) -> str:
    """The settings of a training (a trainings row) that differ from its preset's, as
    ``key=value`` (``surfbench train --set``); the thread count is not a setting of the model."""
    from surfbench.training.base import TrainingError
    from surfbench.training.presets import resolve

    settings = training["settings"] if isinstance(training["settings"], dict) else {}
    try:
        default = resolve(training["method"], training["preset"], training["mode"])
    except TrainingError:
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()) if k != "threads" and default.get(k) != v)


def _slab_frames_trained(training) -> int:
    """How many of a training's frames are slab frames (of slabs it is not judged on)."""
    split = training["split"] if isinstance(training["split"], dict) else {}
    slabs = {h["frame"] for h in split.get("slab_frames_trained", [])}
    return sum(1 for f in (training["train_frames"] or []) if f in slabs)


def _trained_names(store: ResultStore) -> set[str]:
    """Names of the models in the store folder's trained-models file (``surfbench train``)."""
    import yaml

    from surfbench.models.registry import TRAINED_MODELS_FILE, load_yaml

    path = Path(store.path).parent / TRAINED_MODELS_FILE
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return set()
    entries = raw.get("models", []) if isinstance(raw, dict) else raw or []
    return {e["name"] for e in entries if isinstance(e, dict) and "name" in e}


def _run_kinds(store: ResultStore, dataset: str) -> dict[str, tuple[str, set[str]]]:
    """fingerprint -> (kind, ids of the records of ``dataset`` it saw in training) of the models
    stored: a model whose registry entry says what it was trained on (``trained_on``,
    :mod:`surfbench.analysis.seen`) is a specialist; a model behind the softening correction is
    scale-corrected; the rest are zero-shot."""
    import json

    from surfbench.analysis.seen import is_seen, trained_on_by_fingerprint

    models = store.models()
    trained_on = trained_on_by_fingerprint(models)
    records = store.records(dataset)
    slabs = records[records["kind"] == "slab"]
    out = {}
    for _, m in models.iterrows():
        fp = m["fingerprint"]
        seen_ids = {rid for rid, el, sp in zip(slabs["record_id"], slabs["element"], slabs["split"])
                    if is_seen(trained_on.get(fp), dataset, rid, el, sp)}
        try:
            options = json.loads(json.loads(m["details"]).get("fingerprint", {}).get("options") or "{}")
        except (TypeError, ValueError):
            options = {}
        kind = SPECIALIST if seen_ids else SCALE_CORRECTED if "softening_correction" in options else ZERO_SHOT
        out[fp] = (kind, seen_ids)
    return out
