"""Checks shared by the end-to-end training tests: a model trained by the pipeline is in the
store folder's registry, loads by name, was evaluated through the runner on every held-out slab
of its element, and its training record shows that no held-out frame was trained on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from surfbench.analysis.predictions import slab_predictions
from surfbench.models import load_model, registry
from surfbench.store.results import ResultStore
from surfbench.store.trainings import trainings
from surfbench.training.curves import curve_table, held_out_table
from surfbench.training.pipeline import CurveResult


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


def register_entries(monkeypatch, tmp_path: Path, *entries: dict) -> None:
    """Make trained models' registry entries known through ``$SURFBENCH_REGISTRY_EXTRA``."""
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump({"models": list(entries)}))
    monkeypatch.setenv("SURFBENCH_REGISTRY_EXTRA", str(path))
    registry._registry_for.cache_clear()


def errors_per_atom(model, frames) -> np.ndarray:
    """Model - DFT energy per atom (eV/atom) on frames; ``model`` a name or a LoadedModel."""
    calc = (load_model(model) if isinstance(model, str) else model).calculator
    out = []
    for f in frames:
        atoms = f.atoms.copy()
        atoms.calc = calc
        out.append((atoms.get_potential_energy() - f.energy_ev) / f.n_atoms)
    return np.array(out)


def assert_evaluated_through_store(model, mlearn_surfaces, store_path: Path, abs_ev: float) -> None:
    """The Mo bulk and the smallest Mo slab run through the normal pipeline into a store: both
    ok, and the stored slab energy equals a direct calculator call within ``abs_ev`` eV."""
    import pytest

    from surfbench.execution.runner import run
    from surfbench.records import Dataset

    mo = mlearn_surfaces.select(elements={"Mo"})
    slab = min(mo.surfaces, key=lambda s: len(s.atoms))
    tiny = Dataset("tiny-mo", {slab.bulk_id: mo.bulks[slab.bulk_id]}, [slab])
    with ResultStore(store_path) as store:
        summary = run(tiny, model, store, "static", threads=2)
        assert (summary.computed, summary.failed) == (2, 0)
        rows = store.results(dataset="tiny-mo", fingerprint=model.fingerprint.id).set_index("record_id")
    atoms = slab.atoms.copy()
    atoms.calc = model.calculator
    assert rows.loc[slab.id, "energy_ev"] == pytest.approx(atoms.get_potential_energy(), abs=abs_ev)
    assert rows.loc[slab.id, "status"] == "ok" and rows.loc[slab.id, "model"] == model.name


def train_stopped_by_budget_after(trainer, job, epochs: int):
    """Train ``job`` with a budget that leaves room for ``epochs`` epochs only (the budget's
    decision stubbed, so that the stop does not depend on the machine's speed)."""
    import time

    from surfbench.training.epochs import EpochRun

    job.deadline = time.time() + 3600
    original = EpochRun.time_left_for_epoch
    EpochRun.time_left_for_epoch = lambda self: len(self.epoch_times) < epochs
    try:
        return trainer.train(job)
    finally:
        EpochRun.time_left_for_epoch = original
