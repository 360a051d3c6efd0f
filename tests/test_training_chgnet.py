"""CHGNet fine-tuning (surfbench.training.chgnet): a tiny end-to-end run on real mlearn Mo
frames (2 epochs on three small cells), loaded through its registry entry and evaluated by the
normal runner into a result store."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest
from ase.units import GPa

from surfbench.training.base import FINETUNE, SCRATCH, TrainingError, TrainJob, get_trainer
from tests.conftest import needs_data
from tests.training_checks import assert_evaluated_through_store, errors_per_atom, register_entries

FOUNDATION = "chgnet-0.3.0"
pytestmark = [needs_data, pytest.mark.skipif(find_spec("chgnet") is None, reason="the chgnet package is not installed")]

#: one optimiser step per epoch (batch = the three training cells)
SETTINGS = {"epochs": 2, "patience": None, "batch_size": 3, "lr": 1e-3, "energy_weight": 1.0, "force_weight": 1.0,
            "stress_weight": 0.1, "magmom_weight": 0.0, "threads": 2}


@pytest.fixture(scope="module")
def frames(data_dir):
    """Small Mo training cells: train = 2-, 6- and 8-atom cells, valid = the 12-atom one."""
    from surfbench.data.mlearn import load_mlearn_frames

    mo = [f for f in load_mlearn_frames(["Mo"], data_dir=data_dir, download=False) if f.split == "train"]
    small = {f.n_atoms: f for f in mo if f.n_atoms in (2, 6, 8, 12)}
    return [small[2], small[6], small[8]], [small[12]]


def _job(tmp_path, frames, name, mode=FINETUNE, **settings):
    train, valid = frames
    return TrainJob(method="chgnet", mode=mode, train=train, valid=valid, elements=("Mo",),
                    settings={**SETTINGS, **settings}, workdir=tmp_path / name, name=name, seed=0, foundation=FOUNDATION)


def test_stress_label_is_vasp_kbar():
    """StructureData multiplies the label by -0.1 to get CHGNet's GPa stress with ASE's sign."""
    from ase import Atoms

    from surfbench.data.frames import Frame
    from surfbench.training.chgnet import stress_label_kbar

    s = np.array([-0.01, 0.002, 0.003, 0.0004, 0.0005, 0.0006])  # eV/A^3, ASE (xx, yy, zz, yz, xz, xy)
    f = Frame(atoms=Atoms("Mo", cell=[3, 3, 3], pbc=True), energy_ev=-10.0, element="Mo", split="train", index=0,
              source="hand", stress_ev_per_a3=s)
    label = np.array(stress_label_kbar(f))
    assert label[0, 0] == pytest.approx(16.02176634, rel=1e-6)  # -10 x (-0.01 x 160.2 GPa) kBar: compressive > 0
    assert label[1, 2] == pytest.approx(-10 * 0.0004 / GPa) and label[0, 1] == pytest.approx(-10 * 0.0006 / GPa)
    assert np.allclose(-0.1 * label * GPa, [[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])


def test_finetune_end_to_end(tmp_path, monkeypatch, frames, mlearn_surfaces):
    train = frames[0]
    result = get_trainer("chgnet").train(_job(tmp_path, frames, "chgnet-ft-mo"))
    entry = result.registry_entry
    out = tmp_path / "chgnet-ft-mo" / "chgnet-ft-mo.pth.tar"
    assert entry["weights"] == {"source": "local", "path": str(out.resolve())}
    assert result.n_parameters == entry["parameters"] == 412525  # CHGNet 0.3.0's architecture
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert sum(r["kept"] for r in result.history) == 1
    assert {"train_s_mae", "val_s_mae"} <= set(result.history[0])  # the Mo frames have stress: targets efs
    assert "no magmom loss" in entry["note"]

    before = errors_per_atom(FOUNDATION, train)
    # the first epoch's training MAE is computed before the first optimiser step: it is the
    # foundation's error, so training started from the foundation's weights
    assert result.history[0]["train_e_mae"] == pytest.approx(np.abs(before).mean(), abs=2e-4)
    register_entries(monkeypatch, tmp_path, entry)
    from surfbench.models import load_model

    model = load_model("chgnet-ft-mo")
    after = errors_per_atom(model, train)
    assert np.abs(after).mean() < np.abs(before).mean() - 0.005

    assert model.name == "chgnet-ft-mo"
    assert_evaluated_through_store(model, mlearn_surfaces, tmp_path / "store.sqlite", abs_ev=1e-4)


def test_bad_jobs_are_refused(tmp_path, frames):
    trainer = get_trainer("chgnet")
    with pytest.raises(TrainingError, match="only fine-tuning"):
        trainer.train(_job(tmp_path, frames, "chgnet-scratch", mode=SCRATCH))
    with pytest.raises(TrainingError, match="magmom_weight must be 0"):
        trainer.train(_job(tmp_path, frames, "chgnet-mag", magmom_weight=0.1))
    with pytest.raises(TrainingError, match="not a CHGNet model"):
        job = _job(tmp_path, frames, "chgnet-wrong")
        job.foundation = "emt"
        trainer.train(job)


def test_a_continued_run_ends_where_an_uninterrupted_one_does(tmp_path, frames):
    """Checkpoint after every epoch (issue 28): three epochs in one run, or a run killed after
    two and continued (here: the state file said running, as a SIGKILL leaves it), give the same
    losses; the shuffling generator, optimiser and cosine schedule continue where they were."""
    import json
    import time

    from surfbench.training.epochs import STATE_FILE

    fast = {"batch_size": 1, "threads": 1, "epochs": 3}
    trainer = get_trainer("chgnet")
    whole = trainer.train(_job(tmp_path, frames, "whole", **fast))
    assert whole.state == "epoch-cap" and whole.converged is False and len(whole.history) == 3
    assert whole.registry_entry["note"].startswith("NOT CONVERGED (epoch-cap")
    # stop after epoch 2 as a budget does, then continue with --resume
    from tests.training_checks import train_stopped_by_budget_after

    part = train_stopped_by_budget_after(trainer, _job(tmp_path, frames, "pieces", **fast), 2)
    assert part.state == "budget-stopped" and len(part.history) == 2
    state = json.loads((tmp_path / "pieces" / STATE_FILE).read_text())
    assert state["epochs_done"] == 2
    job = _job(tmp_path, frames, "pieces", **fast)
    job.resume = True
    cont = trainer.train(job)
    assert [r["epoch"] for r in cont.history] == [1, 2, 3]
    for a, b in zip(whole.history, cont.history):
        assert b["val_score"] == pytest.approx(a["val_score"], rel=1e-5, abs=1e-7)
        assert b["train_e_mae"] == pytest.approx(a["train_e_mae"], rel=1e-5, abs=1e-7)
    # a budget that ends inside chgnet's first epoch: an error after it (its checkpoint kept)
    job = _job(tmp_path, frames, "short", **fast)
    job.deadline = time.time() - 1
    with pytest.raises(TrainingError, match="is below one epoch: 3 of 3 batches"):
        trainer.train(job)
    assert json.loads((tmp_path / "short" / STATE_FILE).read_text())["epochs_done"] == 1
