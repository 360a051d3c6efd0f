"""SevenNet-0 fine-tuning (surfbench.training.sevenn): a tiny end-to-end run on real mlearn Mo
frames (one epoch on three small cells), loaded through its registry entry and evaluated by the
normal runner into a result store."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest
import yaml

from surfbench.training.base import FINETUNE, SCRATCH, TrainingError, TrainJob, get_trainer
from tests.conftest import needs_data
from tests.training_checks import assert_evaluated_through_store, errors_per_atom, register_entries

FOUNDATION = "sevennet-0"
pytestmark = [needs_data, pytest.mark.skipif(find_spec("sevenn") is None, reason="the sevenn package is not installed")]

#: one epoch of one optimiser step (batch = the three training cells)
SETTINGS = {"epochs": 1, "patience": None, "batch_size": 3, "lr": 1e-3, "energy_weight": 1.0, "force_weight": 1.0,
            "stress_weight": 0.01, "loss": "huber", "huber_delta": 0.01, "threads": 2}


@pytest.fixture(scope="module")
def frames(data_dir):
    """Small Mo training cells: train = 2-, 6- and 8-atom cells, valid = the 12-atom one."""
    from surfbench.data.mlearn import load_mlearn_frames

    mo = [f for f in load_mlearn_frames(["Mo"], data_dir=data_dir, download=False) if f.split == "train"]
    small = {f.n_atoms: f for f in mo if f.n_atoms in (2, 6, 8, 12)}
    return [small[2], small[6], small[8]], [small[12]]


def _job(tmp_path, frames, name, mode=FINETUNE, **settings):
    train, valid = frames
    return TrainJob(method="sevennet", mode=mode, train=train, valid=valid, elements=("Mo",),
                    settings={**SETTINGS, **settings}, workdir=tmp_path / name, name=name, seed=0, foundation="7net-0")


def test_finetune_end_to_end(tmp_path, monkeypatch, frames, mlearn_surfaces):
    train = frames[0]
    result = get_trainer("sevennet").train(_job(tmp_path, frames, "sevennet-ft-mo"))
    entry = result.registry_entry
    out = tmp_path / "sevennet-ft-mo" / "checkpoint_best.pth"
    assert entry["weights"] == {"source": "local", "path": str(out.resolve())}
    assert result.n_parameters == entry["parameters"] == 842440  # SevenNet-0's architecture
    assert [r["epoch"] for r in result.history] == [1] and result.history[0]["kept"] == 1.0
    assert {"train_stress_rmse", "val_stress_rmse"} <= set(result.history[0])  # the Mo frames have stress
    cfg = yaml.safe_load((tmp_path / "sevennet-ft-mo" / "input.yaml").read_text())
    assert cfg["train"]["continue"]["checkpoint"] == "7net-0" and cfg["train"]["is_train_stress"] is True

    before = errors_per_atom(FOUNDATION, train)
    # the first epoch's training error is computed before the first optimiser step: it is the
    # foundation's error, so training started from the foundation's weights
    assert result.history[0]["train_energy_rmse"] == pytest.approx(np.sqrt(np.mean(before**2)), abs=2e-4)
    register_entries(monkeypatch, tmp_path, entry)
    from surfbench.models import load_model

    model = load_model("sevennet-ft-mo")
    after = errors_per_atom(model, train)
    assert np.abs(after).mean() < np.abs(before).mean() - 0.005

    assert model.name == "sevennet-ft-mo"
    assert_evaluated_through_store(model, mlearn_surfaces, tmp_path / "store.sqlite", abs_ev=1e-4)


def test_bad_jobs_are_refused(tmp_path, frames):
    trainer = get_trainer("sevennet")
    with pytest.raises(TrainingError, match="only fine-tuning"):
        trainer.train(_job(tmp_path, frames, "sevennet-scratch", mode=SCRATCH))
    with pytest.raises(TrainingError, match="multi-fidelity"):
        job = _job(tmp_path, frames, "sevennet-mf")
        job.foundation = "sevennet-mf-0"
        trainer.train(job)
    with pytest.raises(TrainingError, match="not a SevenNet model"):
        job = _job(tmp_path, frames, "sevennet-wrong")
        job.foundation = "emt"
        trainer.train(job)
