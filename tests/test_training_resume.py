"""Deep fine-tuning that stops and continues (issue 28): a checkpoint after every epoch, the
convergence rule, the wall-clock budget, ``--resume`` and SIGKILL, on SevenNet-0 fine-tuned on
three small real Mo cells (seconds per epoch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib.util import find_spec

import pytest
import torch

from surfbench.training.base import TrainingError, get_trainer
from surfbench.training.epochs import (
    BUDGET_STOPPED,
    CHECKPOINT_FILE,
    CONVERGED,
    EPOCH_CAP,
    KILLED,
    STATE_FILE,
    EpochRun,
    observed_state,
    read_state,
    run_states,
)
from tests.conftest import needs_data
from tests.test_training_sevenn import _job, frames  # noqa: F401  (the fixture)

pytestmark = [needs_data, pytest.mark.skipif(find_spec("sevenn") is None, reason="the sevenn package is not installed")]

#: one optimiser step per cell: three batches an epoch, shuffled (the RNG state matters on resume)
FAST = {"batch_size": 1, "patience": None, "threads": 1}


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model_state_dict"]


def test_a_continued_run_ends_where_an_uninterrupted_one_does(tmp_path, frames):  # noqa: F811
    trainer = get_trainer("sevennet")
    whole = trainer.train(_job(tmp_path, frames, "whole", epochs=3, **FAST))
    assert whole.state == EPOCH_CAP and whole.converged is False
    assert whole.registry_entry["note"].startswith("NOT CONVERGED (epoch-cap: reached the cap of 3 epochs")
    assert [r["epoch"] for r in whole.history] == [1, 2, 3]
    # one epoch, then the same training continued to three (the cap is not part of its identity)
    lines: list[str] = []
    first = _job(tmp_path, frames, "pieces", epochs=1, **FAST)
    trainer.train(first)
    assert read_state(first.workdir)["epochs_done"] == 1
    again = _job(tmp_path, frames, "pieces", epochs=3, **FAST)
    again.echo, again.resume = lines.append, True
    cont = trainer.train(again)
    assert any("continuing from its checkpoint after 1 epochs" in s for s in lines), lines
    assert [r["epoch"] for r in cont.history] == [1, 2, 3]
    for a, b in zip(whole.history, cont.history):
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-6, abs=1e-9)
        assert b["train_energy_rmse"] == pytest.approx(a["train_energy_rmse"], rel=1e-6, abs=1e-9)
    wa, wb = _weights(whole.weights_path), _weights(cont.weights_path)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa if wa[k].numel()) < 1e-6
    # a run at its cap continues to no further epoch
    lines.clear()
    same = _job(tmp_path, frames, "pieces", epochs=3, **FAST)
    same.echo = lines.append
    assert [r["epoch"] for r in trainer.train(same).history] == [1, 2, 3]
    assert not any("epoch 4" in s for s in lines)


def test_the_convergence_rule(tmp_path, frames):  # noqa: F811
    # lr 0: the validation loss never falls below the first epoch's, so patience 2 ends it after 3
    res = get_trainer("sevennet").train(_job(tmp_path, frames, "flat", epochs=10, lr=0.0, **{**FAST, "patience": 2}))
    assert res.state == CONVERGED and res.converged is True
    assert [r["epoch"] for r in res.history] == [1, 2, 3] and [r["kept"] for r in res.history] == [1.0, 0.0, 0.0]
    assert "NOT CONVERGED" not in res.registry_entry["note"]
    assert "2 epochs without a lower validation loss" in res.registry_entry["note"]


def test_the_budget(tmp_path, frames, monkeypatch):  # noqa: F811
    trainer = get_trainer("sevennet")
    # a budget spent before the first epoch's end: a clear error, not a model
    job = _job(tmp_path, frames, "budget", epochs=5, **FAST)
    job.deadline = time.time() - 1
    with pytest.raises(TrainingError, match=r"the time left of --max-minutes \(.* min when this training started\) is below one epoch: 1 of 3 batches"):
        trainer.train(job)
    # room for one epoch only: stopped cleanly, marked, and continued by the next run
    monkeypatch.setattr(EpochRun, "time_left_for_epoch", lambda self: not self.epoch_times)
    job = _job(tmp_path, frames, "budget", epochs=5, **FAST)
    job.deadline = time.time() + 3600
    res = trainer.train(job)
    assert res.state == BUDGET_STOPPED and res.converged is False and len(res.history) == 1
    assert res.registry_entry["note"].startswith("NOT CONVERGED (budget-stopped: the time budget left no room for epoch 2")
    assert run_states(tmp_path)[0]["state"] == BUDGET_STOPPED
    monkeypatch.undo()
    res = trainer.train(_job(tmp_path, frames, "budget", epochs=2, **FAST))
    assert res.state == EPOCH_CAP and [r["epoch"] for r in res.history] == [1, 2]


def test_resume_errors(tmp_path, frames):  # noqa: F811
    trainer = get_trainer("sevennet")
    job = _job(tmp_path, frames, "nothing", epochs=1, **FAST)
    job.resume = True
    with pytest.raises(TrainingError, match="--resume, but there is no checkpoint of this training"):
        trainer.train(job)
    trainer.train(_job(tmp_path, frames, "other", epochs=1, **FAST))
    job = _job(tmp_path, frames, "other", epochs=2, **{**FAST, "lr": 0.5})  # another training in that folder
    job.resume = True
    with pytest.raises(TrainingError, match="belongs to another training"):
        trainer.train(job)


_KILLED_RUN = """
import sys
from tests.test_training_sevenn import _job, SETTINGS
from surfbench.training.base import get_trainer
from surfbench.data.mlearn import load_mlearn_frames
mo = [f for f in load_mlearn_frames(["Mo"], data_dir=sys.argv[2], download=False) if f.split == "train"]
small = {f.n_atoms: f for f in mo if f.n_atoms in (2, 6, 8, 12)}
from pathlib import Path
get_trainer("sevennet").train(_job(Path(sys.argv[1]) / "trained", ([small[2], small[6], small[8]], [small[12]]), "killed",
                                   epochs=1000, batch_size=1, patience=None, threads=1))
"""


def test_a_run_killed_mid_way_is_seen_as_killed_and_resumes(tmp_path, frames, data_dir):  # noqa: F811
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(tmp_path), str(data_dir)], cwd=os.getcwd(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    state_file = tmp_path / "trained" / "killed" / STATE_FILE
    try:
        t0 = time.time()
        while time.time() - t0 < 300:
            if (st := read_state(state_file.parent)) and st.get("epochs_done", 0) >= 2:
                break
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail("no second checkpoint within 300 s")
        assert observed_state(read_state(state_file.parent)) == "running"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = read_state(state_file.parent)["epochs_done"]
    assert (tmp_path / "trained" / "killed" / CHECKPOINT_FILE).is_file()
    # seen as killed by the API and by 'table --trained' (no model recorded yet)
    from typer.testing import CliRunner

    import surfbench
    from surfbench.cli import app

    (row,) = surfbench.training_runs(tmp_path).to_dict("records")
    assert row["name"] == "killed" and row["state"] == KILLED and row["epochs_done"] == done
    out = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["table", "--trained", "-w", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert f"killed: killed after {done} epochs" in out.output
    job = _job(tmp_path / "trained", frames, "killed", epochs=done + 1, **FAST)
    job.resume = True
    res = get_trainer("sevennet").train(job)
    assert [r["epoch"] for r in res.history] == list(range(1, done + 2)) and res.state == EPOCH_CAP
    assert json.loads(state_file.read_text())["state"] == EPOCH_CAP
