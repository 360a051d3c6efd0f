"""Checks shared by the end-to-end training tests: a model trained by the pipeline is in the
store folder's registry, loads by name, was evaluated through the runner on every held-out slab
of its element, and its training record shows that no held-out frame was trained on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from surfbench.analysis.predictions import slab_predictions
from surfbench.evaluation.store import ResultStore
from surfbench.models import load_model, registry
from surfbench.training.curves import curve_table, held_out_table
from surfbench.training.pipeline import CurveResult, trainings


def check_curve(store_dir: Path, result: CurveResult, dataset, element: str, sizes: list[int]) -> None:
    slab_ids = {s.id for s in dataset.select(elements={element}).surfaces}
    assert len(slab_ids) >= 10
    assert [m.n_train for m in result.models] == sizes
    entries = {e["name"]: e for e in yaml.safe_load((store_dir / "trained-models.yaml").read_text())["models"]}
    registry.use_project(None)  # as a later process would: the folder's file makes the names known
    registry.use_project(store_dir)
    with ResultStore(store_dir) as store:
        tr = trainings(store).set_index("name")
        for m in result.models:
            assert m.name in entries and not Path(entries[m.name]["weights"]["path"]).is_absolute()
            model = load_model(m.name)
            assert model.fingerprint.id == m.fingerprint
            res = store.results(dataset.name, m.fingerprint, "static")
            assert slab_ids <= set(res["record_id"])
            slabs = slab_predictions(res)
            slabs = slabs[slabs["record_id"].isin(slab_ids)]
            assert (slabs["gamma_status"] == "ok").all() and np.isfinite(slabs["gamma_pred_j_per_m2"]).all()
            assert math.isfinite(m.surface["gamma_rmse"]) and m.surface["n_gamma"] == m.surface["n_slabs"] == len(slab_ids)
            assert math.isfinite(m.frames["energy_rmse_ev_per_atom"]) and math.isfinite(m.frames["force_rmse_ev_per_a"])
            row = tr.loc[m.name]
            assert row["fingerprint"] == m.fingerprint and row["n_train"] == m.n_train
            assert row["wall_s"] > 0 and row["n_parameters"] > 0 and row["peak_rss_mb"] > 10
            held = {h["frame"] for h in row["split"]["held_out"]}
            assert row["split"]["n_held_out"] == len(slab_ids) and not held & set(row["train_frames"])
            assert len(row["train_frames"]) == m.n_train
        held = held_out_table(store, dataset.name)
        assert (held["training frames equal to an evaluated slab"] == 0).all()
        curves = curve_table(store, dataset.name)
        assert result.curve in set(curves["curve"])
