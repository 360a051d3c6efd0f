"""End to end: MACE through ``mace_run_train`` in the pipeline, on Mo frames (with stress):
a tiny MACE trained from scratch (3 frames, 1 epoch, 8 channels), then fine-tuned from that
model's file (the code path of fine-tuning MACE-MP-0 from a local file: the MACE-MP-0 files
cannot be downloaded here), each registered in the store folder, evaluated on the 11 held-out
Mo slabs through the store and recorded with its cost."""

from __future__ import annotations

import pytest

from surfbench.models import registry
from surfbench.store.results import ResultStore
from surfbench.store.trainings import trainings
from surfbench.training.base import TrainingError
from surfbench.training.pipeline import train_curve
from tests.conftest import needs_data
from tests.training_checks import check_curve

pytest.importorskip("mace.calculators", reason="mace-torch is not installed ('surfbench env install universal')")

pytestmark = needs_data
OVERRIDES = {"n_valid": 1, "epochs": 1, "threads": 2}


@pytest.fixture(autouse=True)
def _reset():
    yield
    registry.use_project(None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir, mlearn_surfaces):
    store_dir = tmp_path_factory.mktemp("mace-store")
    kw = dict(elements=["Mo"], store_dir=store_dir, dataset=mlearn_surfaces, preset="tiny", sizes=[3],
              overrides=OVERRIDES, data_dir=data_dir, download=False, echo=lambda s: None)
    scratch = train_curve("mace", "scratch", **kw)
    weights = store_dir / "trained" / scratch.models[0].name / f"{scratch.models[0].name}.model"
    finetuned = train_curve("mace", str(weights), **kw)
    return store_dir, scratch, finetuned, weights


def test_scratch_and_finetuned(trained, mlearn_surfaces):
    store_dir, scratch, finetuned, weights = trained
    check_curve(store_dir, scratch, mlearn_surfaces, "Mo", [3])
    check_curve(store_dir, finetuned, mlearn_surfaces, "Mo", [3])
    assert finetuned.zero_shot is None  # a file, not a registry model: no zero-shot run
    with ResultStore(store_dir) as store:
        tr = trainings(store).set_index("name")
    s, f = tr.loc[scratch.models[0].name], tr.loc[finetuned.models[0].name]
    assert s["mode"] == "scratch" and f["mode"] == "finetune" and f["foundation"] == str(weights)
    assert s["settings"]["use_stress"] is True  # the Mo frames carry stress: trained with it
    assert s["train_frames"] == f["train_frames"]  # same seed, same subset
    # fine-tuning keeps the foundation's architecture (8 channels, r_max 4): the same size
    assert abs(f["n_parameters"] - s["n_parameters"]) < 0.01 * s["n_parameters"]
    assert s["history"] and s["history"][0]["epoch"] == 0 and s["history"][0]["valid_rmse_f_ev_per_a"] > 0
    assert scratch.models[0].fingerprint != finetuned.models[0].fingerprint


def test_bad_foundation_is_a_clear_error(tmp_path, data_dir, mlearn_surfaces):
    # emt: a registry model that is not a MACE model (cheap: its zero-shot run fails on Mo at once)
    with pytest.raises(TrainingError, match="emt.*not a MACE model"):
        train_curve("mace", "emt", elements=["Mo"], store_dir=tmp_path, dataset=mlearn_surfaces,
                    preset="tiny", sizes=[2], overrides=OVERRIDES, data_dir=data_dir, download=False,
                    echo=lambda s: None)


def test_budget_and_resume_through_maces_checkpoints(tmp_path, data_dir):
    """Issue 28: a training continues from mace's latest checkpoint (--restart_latest), a larger
    epoch cap continues it, and a budget that runs out stops mace and writes the model of its
    best checkpoint, marked budget-stopped."""
    import time

    from surfbench.data.mlearn import load_mlearn_frames
    from surfbench.training.base import SCRATCH, TrainJob, get_trainer
    from surfbench.training.epochs import read_state
    from surfbench.training.presets import resolve

    mo = [f for f in load_mlearn_frames(["Mo"], data_dir=data_dir, download=False) if f.split == "train"]
    small = {f.n_atoms: f for f in mo if f.n_atoms in (2, 6, 8, 12)}

    def job(epochs, **kw):
        settings = resolve("mace", "tiny", SCRATCH, {"epochs": epochs, "threads": 1, "patience": None})
        return TrainJob(method="mace", mode=SCRATCH, train=[small[2], small[6], small[8]], valid=[small[12]],
                        elements=("Mo",), settings=settings, workdir=tmp_path / "m", name="m", seed=0, **kw)

    trainer = get_trainer("mace")
    first = trainer.train(job(2))
    assert first.state == "epoch-cap" and first.converged is False
    assert [r["epoch"] for r in first.history] == [0, 1]
    assert first.registry_entry["note"].startswith("NOT CONVERGED (epoch-cap: reached the cap of 2 epochs")
    lines: list[str] = []
    more = trainer.train(job(3, echo=lines.append, resume=True))
    assert any("continuing from mace's checkpoint m_run-0_epoch-" in s for s in lines), lines
    assert [r["epoch"] for r in more.history] == [0, 1, 2] and more.state == "epoch-cap"
    # the budget is spent at once: mace is stopped, the model written from its best checkpoint
    stopped = trainer.train(job(10, deadline=time.time() - 1))
    assert stopped.state == "budget-stopped" and stopped.converged is False
    assert stopped.weights_path.is_file() and [r["epoch"] for r in stopped.history] == [0, 1, 2]
    assert read_state(tmp_path / "m")["state"] == "budget-stopped"
    with pytest.raises(TrainingError, match="--resume, but there is no checkpoint"):
        get_trainer("mace").train(TrainJob(**{**job(2).__dict__, "workdir": tmp_path / "none", "resume": True}))
