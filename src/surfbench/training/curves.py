"""Learning curves and the zero-shot / fine-tuned / from-scratch comparison, from the store
alone (the ``trainings`` table written by :mod:`surfbench.training.pipeline`, the results and
the records; no model and no data file is loaded).

* :func:`curve_table`: one row per trained model (and, for a fine-tuning curve, its
  foundation at ``n_train = 0``): the errors (gamma RMSE / MAE / mean signed error in J/m^2 on
  the held-out slabs of its elements, slab and bulk energy per atom in eV/atom, energy per atom
  (eV/atom) and force components (eV/A) on the test frames) and the cost (training wall time
  and CPU time s, peak RSS MB, parameters) against the training-set size;
* :func:`comparison_table`: the paper's Table I question per element and overall: every
  zero-shot model in the store (the universal models evaluated by ``surfbench run``, the
  foundations), and the largest model of every fine-tuning and from-scratch curve, on the same
  slabs (those of the elements that were trained on);
* :func:`held_out_table`: which frames each curve held out and why, and an independent leak
  check: training frames whose structure hash equals an evaluated slab's.
"""

from __future__ import annotations

import math

import pandas as pd

from surfbench.analysis.metrics import error_stats
from surfbench.analysis.predictions import bulk_predictions, slab_predictions
from surfbench.evaluation.store import ResultStore
from surfbench.training.base import FINETUNE, SCRATCH
from surfbench.training.pipeline import trainings

ZERO_SHOT = "zero-shot"
KIND = {SCRATCH: "from scratch", FINETUNE: "fine-tuned", ZERO_SHOT: ZERO_SHOT}

_GAMMA_COLS = ["gamma_rmse", "gamma_mae", "gamma_mse", "n_gamma", "slab_rmse", "bulk_error"]


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
    return {"gamma_rmse": g["rmse"], "gamma_mae": g["mae"], "gamma_mse": g["mse"], "n_gamma": g["n_ok"],
            "n_slabs": g["n_total"], "slab_rmse": e["rmse"], "bulk_error": bb["rmse"]}


def _label(row) -> str:
    kind = "scratch" if row["mode"] == SCRATCH else f"fine-tuned from {row['foundation']}"
    return f"{row['method']} {kind} ({row['preset']}, {row['elements'].replace(',', '-')}, seed {row['seed']})"


def curve_table(store: ResultStore, dataset: str | None = None) -> pd.DataFrame:
    """Errors and cost against the training-set size, one row per model (module docs)."""
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
        elements = set(first["elements"].split(","))
        base = {"curve": curve, "label": _label(first), "method": first["method"], "mode": first["mode"],
                "kind": KIND[first["mode"]], "foundation": first["foundation"], "preset": first["preset"],
                "elements": first["elements"], "seed": int(first["seed"]),
                "include_surfaces": bool(first["include_surfaces"]), "dataset": first["dataset"]}
        zs = next((z for z in grp["zero_shot"] if isinstance(z, dict) and z.get("fingerprint")), None)
        if zs is not None:
            fm = zs.get("frame_metrics") or {}
            rows.append({**base, "model": zs["model"], "fingerprint": zs["fingerprint"], "n_train": 0,
                         **surface_numbers(*preds(first["dataset"], zs["fingerprint"]), elements),
                         "energy_rmse_ev_per_atom": fm.get("energy_rmse_ev_per_atom", math.nan),
                         "force_rmse_ev_per_a": fm.get("force_rmse_ev_per_a", math.nan),
                         "wall_s": math.nan, "cpu_s": math.nan, "peak_rss_mb": math.nan, "n_parameters": math.nan})
        for _, r in grp.sort_values("n_train").iterrows():
            fm = r["frame_metrics"] if isinstance(r["frame_metrics"], dict) else {}
            numbers = surface_numbers(*preds(r["dataset"], r["fingerprint"]), elements) if r["fingerprint"] else {}
            rows.append({**base, "model": r["name"], "fingerprint": r["fingerprint"], "n_train": int(r["n_train"]),
                         **numbers,
                         "energy_rmse_ev_per_atom": fm.get("energy_rmse_ev_per_atom", math.nan),
                         "force_rmse_ev_per_a": fm.get("force_rmse_ev_per_a", math.nan),
                         "wall_s": r["wall_s"], "cpu_s": r.get("cpu_s", math.nan), "peak_rss_mb": r["peak_rss_mb"],
                         "n_parameters": r["n_parameters"]})
    cols = ["curve", "label", "method", "mode", "kind", "foundation", "preset", "elements", "seed", "include_surfaces",
            "dataset", "model", "fingerprint", "n_train", "gamma_rmse", "gamma_mae", "gamma_mse", "n_gamma", "n_slabs",
            "slab_rmse", "bulk_error", "energy_rmse_ev_per_atom", "force_rmse_ev_per_a", "wall_s", "cpu_s", "peak_rss_mb",
            "n_parameters"]
    return pd.DataFrame(rows, columns=cols)


def comparison_table(store: ResultStore, dataset: str) -> pd.DataFrame:
    """Zero-shot vs fine-tuned vs from-scratch, per element and overall (module docs).

    One row per (model, element or "all"): kind, gamma RMSE / MAE / mean signed error (J/m^2)
    and count, slab and bulk energy RMSE (eV/atom), test-frame energy and force RMSE for
    trained models, training-set size, parameters and wall time. A trained model counts only
    for the elements it was trained on; "all" pools the slabs of every element of the group
    (for trained models: the largest model of each curve of that method, mode, foundation and
    preset, one per element set)."""
    tr = trainings(store)
    tr = tr[tr["dataset"] == dataset]
    if tr.empty:
        return pd.DataFrame()
    elements = sorted({e for els in tr["elements"] for e in els.split(",")})
    trained_fps = set(tr["fingerprint"].dropna())
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
    curves = curves[curves["n_train"] > 0]
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
    """Per curve: frames held out (by reason), whether surfaces were included, and the leak
    check: the number of training frames (of the curve's largest model) whose structure hash
    equals that of an evaluated slab record of ``dataset``."""
    tr = trainings(store)
    tr = tr[tr["dataset"] == dataset]
    if tr.empty:
        return pd.DataFrame()
    records = store.records(dataset)
    rows = []
    for curve, grp in tr.groupby("curve", sort=True):
        r = grp.sort_values("n_train").iloc[-1]
        split = r["split"] if isinstance(r["split"], dict) else {}
        els = r["elements"].split(",")
        slab_hashes = set(records.loc[(records["kind"] == "slab") & records["element"].isin(els), "content_hash"])
        leaks = sum(1 for h in (r["train_hashes"] or []) if h in slab_hashes)
        reasons = split.get("held_out_reasons", {})
        held = [h["frame"] for h in split.get("held_out", [])]
        rows.append({
            "curve": curve, "elements": r["elements"], "surfaces included": bool(r["include_surfaces"]),
            "evaluated slabs": split.get("n_evaluated_slabs"), "frames held out": split.get("n_held_out"),
            "reasons": ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())),
            "slab frames left in training pool": split.get("n_leaked", 0),
            "largest training set": int(r["n_train"]), "validation frames": int(r["n_valid"]),
            "test frames": int(r["n_test"]),
            "training frames equal to an evaluated slab": int(leaks),
            "held-out frames": " ".join(held),
        })
    return pd.DataFrame(rows)
