"""The softening study of one or more models: single points on labelled DFT frames, slopes of
predicted versus DFT forces / energies / surface energies, and the fitted correction judged on
the data set's slabs (static protocol) before and after.

Everything computed goes through the store (frame results, static results of the plain and the
corrected model), so a rerun only reads.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from surfbench.analysis.metrics import error_stats
from surfbench.analysis.predictions import slab_predictions
from surfbench.analysis.softening import frame_table, gamma_slopes, softening_slopes
from surfbench.data.frames import Frame
from surfbench.evaluation.frames import MLEARN_FRAMESET, evaluate_frames, frame_id
from surfbench.execution.runner import run
from surfbench.models.base import LoadedModel
from surfbench.models.correction import CorrectedModel, SofteningCorrection, fit_correction
from surfbench.records import BulkRecord, Dataset
from surfbench.store.results import ResultStore

REF_PREFIX = "ref/"


@dataclass
class SofteningResults:
    table: pd.DataFrame  # one row per (model, frame)
    slopes: dict[str, pd.DataFrame]  # "overall", "element", "group", "element_group"
    gamma_slopes: pd.DataFrame
    corrections: dict[str, SofteningCorrection]  # model name -> fitted correction
    correction_effect: pd.DataFrame  # per model: gamma RMSE/MAE/mean signed error before and after
    notes: list[str] = field(default_factory=list)

    def payload(self, model: str) -> dict:
        """One model's numbers, JSON-ready (for the store and the report)."""
        def rows(df: pd.DataFrame) -> list[dict]:
            if df.empty or "model" not in df:
                return []
            return json.loads(df[df["model"] == model].to_json(orient="records"))

        corr = self.corrections.get(model)
        cols = ["frame_id", "element", "split", "group", "status", "failure_kind", "de_dft_ev_per_atom", "de_pred_ev_per_atom"]
        return {
            "model": model, "slopes": {k: rows(v) for k, v in self.slopes.items()},
            "gamma_slopes": rows(self.gamma_slopes), "effect": rows(self.correction_effect),
            "correction": None if corr is None else json.loads(corr.to_json()),
            "frames": rows(self.table[["model", *cols]]) if len(self.table) else [], "notes": self.notes,
        }


def _geometry_key(atoms) -> bytes:
    """Species, positions and cell rounded to 1e-4 Angstrom (pbc flags ignored)."""
    return b"".join((np.asarray(atoms.numbers, dtype=np.int64).tobytes(),
                     np.round(np.asarray(atoms.positions, dtype=float), 4).tobytes(),
                     np.round(np.asarray(atoms.cell.array, dtype=float), 4).tobytes()))


def reference_bulks(dataset: Dataset) -> dict[str, BulkRecord]:
    """Per element, the bulk record its slabs are referenced to (the most used one)."""
    uses = Counter(s.bulk_id for s in dataset.surfaces if s.bulk_id)
    refs: dict[str, BulkRecord] = {}
    for bid, _ in uses.most_common():
        b = dataset.bulks[bid]
        refs.setdefault(b.element, b)
    for b in dataset.bulks.values():
        refs.setdefault(b.element, b)
    return refs


def subsample_frames(frames: Sequence[Frame], max_per_group: int | None, seed: int = 0) -> list[Frame]:
    """At most ``max_per_group`` frames per (element, split, group), seeded; None keeps all."""
    if max_per_group is None:
        return list(frames)
    from surfbench.analysis.softening import frame_group

    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[Frame]] = {}
    for f in frames:
        groups.setdefault((f.element, f.split, frame_group(f)), []).append(f)
    keep: list[Frame] = []
    for key in sorted(groups):
        g = groups[key]
        idx = sorted(rng.permutation(len(g))[:max_per_group])
        keep += [g[i] for i in idx]
    return keep


def softening_study(
    dataset: Dataset,
    frames: Sequence[Frame],
    models: Sequence[LoadedModel],
    store: ResultStore,
    *,
    frameset: str = MLEARN_FRAMESET,
    n_fit_frames: int = 10,
    seed: int = 0,
    per_element: bool = False,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
    threads: int | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> SofteningResults:
    refs = reference_bulks(dataset)
    ids = [frame_id(f) for f in frames]
    references = {el: (REF_PREFIX + b.id, b.energy_per_atom_ev, b.n_atoms) for el, b in refs.items()}
    items = [(fid, f.atoms) for fid, f in zip(ids, frames)] + [(REF_PREFIX + b.id, b.atoms) for b in refs.values()]
    slab_keys = {_geometry_key(s.atoms) for s in dataset.surfaces}
    judged_ids = {fid for fid, f in zip(ids, frames) if _geometry_key(f.atoms) in slab_keys}
    tables, corrections, effects, notes = [], {}, [], []
    for model in models:
        report = (lambda fid, out, m=model.name: progress(m, fid)) if progress else None
        evaluate_frames(items, model, store, frameset, threads=threads, progress=report)
        run(dataset, model, store, "static", threads=threads)
        pred = store.frame_results(frameset, model.fingerprint.id)
        pred["model"] = model.name
        table = frame_table(frames, ids, references, pred)
        tables.append(table)
        by_id = pred.set_index("frame_id")
        model_refs = {
            el: float(by_id.loc[rid, "energy_ev"]) / n for el, (rid, _, n) in references.items()
            if rid in by_id.index and by_id.loc[rid, "status"] == "ok"
        }
        try:
            corr = fit_correction(table, model_refs, n_frames=n_fit_frames, seed=seed, per_element=per_element,
                                  energy_weight=energy_weight, force_weight=force_weight, exclude_ids=judged_ids)
        except ValueError as exc:
            notes.append(f"{model.name}: no correction fitted ({exc})")
            continue
        corrections[model.name] = corr
        fixed = CorrectedModel(model, corr)
        run(dataset, fixed, store, "static", threads=threads)
        effects.append(_effect(store, dataset.name, model, fixed, corr))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    slopes = {
        "overall": softening_slopes(table, seed=seed),
        "element": softening_slopes(table, ["element"], seed=seed),
        "group": softening_slopes(table, ["group"], seed=seed),
        "element_group": softening_slopes(table, ["element", "group"], seed=seed),
    } if len(table) else {}
    slabs = pd.concat([slab_predictions(store.results(dataset.name, m.fingerprint.id, "static")) for m in models],
                      ignore_index=True)
    if judged_ids:
        notes.append(f"{len(judged_ids)} frames are structures of evaluated slabs; never used for fitting")
    results = SofteningResults(table, slopes, gamma_slopes(slabs, seed=seed), corrections, pd.DataFrame(effects), notes)
    settings = {"frameset": frameset, "n_frames": len(frames), "n_fit_frames": n_fit_frames, "seed": seed,
                "per_element": per_element, "energy_weight": energy_weight, "force_weight": force_weight}
    for model in models:
        store.put_analysis("softening", dataset.name, model.fingerprint.id, settings, results.payload(model.name))
    return results


def _effect(store: ResultStore, dataset: str, model: LoadedModel, fixed: CorrectedModel, corr: SofteningCorrection) -> dict:
    before = slab_predictions(store.results(dataset, model.fingerprint.id, "static"))
    after = slab_predictions(store.results(dataset, fixed.fingerprint.id, "static"))
    b, a = error_stats(before["error_gamma_j_per_m2"]), error_stats(after["error_gamma_j_per_m2"])
    scale = ", ".join(f"{k}: {v:.4f}" for k, v in corr.scale.items()) if len(corr.scale) > 1 else f"{next(iter(corr.scale.values())):.4f}"
    return {
        "model": model.name, "fingerprint": model.fingerprint.id, "corrected_fingerprint": fixed.fingerprint.id,
        "scale": scale, "n_fit_frames": len(corr.frames), "n_slabs": b["n_ok"],
        "rmse_before_j_per_m2": b["rmse"], "rmse_after_j_per_m2": a["rmse"],
        "mae_before_j_per_m2": b["mae"], "mae_after_j_per_m2": a["mae"],
        "mean_signed_error_before_j_per_m2": b["mean_signed_error"],
        "mean_signed_error_after_j_per_m2": a["mean_signed_error"],
    }
