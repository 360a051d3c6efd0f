"""M3GNet training through matgl (surfbench.training.matgl): tiny end-to-end runs on real mlearn
Mo frames (1-2 epochs on three small cells), the result loaded through its registry entry and
evaluated by the normal runner into a result store."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from ase.units import GPa

from surfbench.training.base import FINETUNE, SCRATCH, TrainingError, TrainJob, get_trainer
from tests.conftest import REPO, needs_data, needs_shared
from tests.training_checks import assert_evaluated_through_store, register_entries

SHARED_MODELS = REPO.parent / "shared" / "models"
FOUNDATION = "m3gnet-mp-2021.2.8-pes"

pytestmark = [
    needs_data,
    pytest.mark.skipif(find_spec("matgl") is None, reason="the matgl package is not installed"),
    needs_shared(SHARED_MODELS / "matgl", reason=f"no matgl model folders at {SHARED_MODELS}"),
]

#: one optimiser step per epoch (batch = the three training cells)
SETTINGS = {"epochs": 2, "patience": None, "batch_size": 3, "lr": 3e-4, "energy_weight": 1.0, "force_weight": 1.0,
            "stress_weight": 0.1, "threads": 2, "units": 16, "nblocks": 2}


@pytest.fixture(autouse=True)
def _model_dir(monkeypatch):
    monkeypatch.setenv("SURFBENCH_MODEL_DIR", str(SHARED_MODELS))


@pytest.fixture(scope="module")
def frames(data_dir):
    """Small Mo training cells: train = 2-, 6- and 8-atom cells, valid = the 12-atom one."""
    from surfbench.data.mlearn import load_mlearn_frames

    mo = [f for f in load_mlearn_frames(["Mo"], data_dir=data_dir, download=False) if f.split == "train"]
    small = {f.n_atoms: f for f in mo if f.n_atoms in (2, 6, 8, 12)}
    assert sorted(small) == [2, 6, 8, 12]
    return [small[2], small[6], small[8]], [small[12]]


def _job(tmp_path, frames, mode, name, **settings):
    train, valid = frames
    return TrainJob(method="m3gnet", mode=mode, train=train, valid=valid, elements=("Mo",),
                    settings={**SETTINGS, **settings}, workdir=tmp_path / name, name=name, seed=0,
                    foundation=FOUNDATION if mode == FINETUNE else None)


def _energies(name, frames):
    from surfbench.models import load_model

    calc = load_model(name).calculator
    out = []
    for f in frames:
        atoms = f.atoms.copy()
        atoms.calc = calc
        out.append(atoms.get_potential_energy())
    return np.array(out)


def _rmse_per_atom(pred, frames):
    return float(np.sqrt(np.mean([((p - f.energy_ev) / f.n_atoms) ** 2 for p, f in zip(pred, frames)])))


def test_stress_label_is_matgl_stress_in_gpa(data_dir):
    """Labels: ASE's Voigt stress (eV/A^3) as a 3x3 tensor in GPa, sign unchanged, which is the
    convention of matgl's own Potential output (negative for a compressed cell)."""
    import matgl
    from matgl.ext.ase import PESCalculator

    from surfbench.data.mlearn import load_mlearn_frames
    from surfbench.training.matgl import stress_label_gpa

    (f,) = [f for f in load_mlearn_frames(["Mo"], data_dir=data_dir, download=False)
            if f.description == "Mo 3x3x3 cell, mode 1, strain -0.0600"]  # 54 atoms, compressed 6 % along x
    s = np.asarray(f.stress_ev_per_a3)
    label = np.array(stress_label_gpa(f))
    # Voigt (xx, yy, zz, yz, xz, xy) -> symmetric 3x3; eV/A^3 -> GPa is x 160.2
    assert label[0, 0] == pytest.approx(s[0] / GPa) and label[1, 2] == pytest.approx(s[3] / GPa)
    assert label[0, 1] == pytest.approx(s[5] / GPa) and label[1, 0] == pytest.approx(s[5] / GPa)
    assert 1 / GPa == pytest.approx(160.2176634, rel=1e-6)
    assert label[0, 0] == pytest.approx(-34.63, abs=0.01)  # DFT: compressed along x

    potential = matgl.load_model(SHARED_MODELS / "matgl" / "M3GNet-MP-2021.2.8-PES")
    atoms = f.atoms.copy()
    atoms.calc = PESCalculator(potential, stress_unit="GPa")  # the Potential's raw stress
    raw = atoms.get_stress(voigt=False)
    assert raw[0, 0] == pytest.approx(-25.0, abs=0.1)  # same sign and scale as the label
    assert np.abs(raw - label).max() < 10.0


def test_finetune_end_to_end(tmp_path, monkeypatch, frames, mlearn_surfaces):
    train = frames[0]
    result = get_trainer("m3gnet").train(_job(tmp_path, frames, FINETUNE, "m3gnet-ft-mo"))
    entry = result.registry_entry
    assert entry["weights"] == {"source": "local", "path": str((tmp_path / "m3gnet-ft-mo" / "model").resolve()),
                                "files": ["model.json", "model.pt", "state.pt"]}
    assert result.n_parameters == entry["parameters"] == 288157  # the foundation's architecture
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert all(np.isfinite(r["train_total_loss"]) and np.isfinite(r["val_total_loss"]) for r in result.history)
    assert sum(r["kept"] for r in result.history) == 1
    assert result.wall_s > 0 and result.peak_rss_mb > 100

    register_entries(monkeypatch, tmp_path, entry)
    before = _rmse_per_atom(_energies(FOUNDATION, train), train)  # 0.144 eV/atom
    # the first epoch's training error is computed before the first optimiser step: the model
    # starts from the foundation's weights, element references and scale
    assert result.history[0]["train_energy_rmse"] == pytest.approx(before, rel=1e-4)
    after = _rmse_per_atom(_energies("m3gnet-ft-mo", train), train)
    assert after < before - 0.01  # 0.114 eV/atom after two steps at lr 3e-4

    # through the normal pipeline: the Mo bulk and one Mo slab, stored and equal to a direct call
    from surfbench.models import load_model

    model = load_model("m3gnet-ft-mo")
    assert_evaluated_through_store(model, mlearn_surfaces, tmp_path / "store.sqlite", abs_ev=1e-5)


def test_scratch_end_to_end(tmp_path, monkeypatch, frames):
    train, valid = frames
    result = get_trainer("m3gnet").train(_job(tmp_path, frames, SCRATCH, "m3gnet-scratch-mo"))
    entry = result.registry_entry
    assert entry["elements"] == ["Mo"]
    assert 1000 < result.n_parameters < 100_000  # units 16, 2 blocks
    register_entries(monkeypatch, tmp_path, entry)
    pred = _energies("m3gnet-scratch-mo", train + valid)
    # the fitted Mo reference energy (about -10.9 eV/atom here) is in the model: without it the
    # error per atom would be about 10 eV/atom
    assert _rmse_per_atom(pred, train + valid) < 0.5


def test_bad_jobs_are_refused_before_training(tmp_path, frames):
    trainer = get_trainer("m3gnet")
    with pytest.raises(TrainingError, match="not a valid registry name"):
        trainer.train(_job(tmp_path, frames, SCRATCH, "M3GNet-Mo"))
    with pytest.raises(TrainingError, match="no training frames"):
        trainer.train(_job(tmp_path, ([], frames[1]), SCRATCH, "m3gnet-empty"))
    bad = _job(tmp_path, frames, FINETUNE, "m3gnet-bad-foundation")
    bad.foundation = str(tmp_path)  # a folder without model files
    with pytest.raises(TrainingError, match="not a matgl model folder"):
        trainer.train(bad)
    assert not Path(tmp_path / "M3GNet-Mo").exists()


def test_a_continued_run_ends_where_an_uninterrupted_one_does(tmp_path, frames):
    """Checkpoint after every epoch (issue 28), one Lightning fit per epoch: three epochs in one
    run, or two (stopped as a budget stops them) continued with --resume, give the same losses."""
    import json

    from surfbench.training.epochs import STATE_FILE

    fast = {"batch_size": 1, "threads": 1, "epochs": 3}
    trainer = get_trainer("m3gnet")
    whole = trainer.train(_job(tmp_path, frames, FINETUNE, "whole", **fast))
    assert whole.state == "epoch-cap" and whole.converged is False and len(whole.history) == 3
    assert whole.registry_entry["note"].startswith("NOT CONVERGED (epoch-cap")
    from tests.training_checks import train_stopped_by_budget_after

    part = train_stopped_by_budget_after(trainer, _job(tmp_path, frames, FINETUNE, "pieces", **fast), 2)
    assert part.state == "budget-stopped" and len(part.history) == 2
    assert json.loads((tmp_path / "pieces" / STATE_FILE).read_text())["epochs_done"] == 2
    assert [p.name for p in (tmp_path / "pieces").glob("lightning-epoch*.ckpt")] == ["lightning-epoch0002.ckpt"]
    job = _job(tmp_path, frames, FINETUNE, "pieces", **fast)
    job.resume = True
    cont = trainer.train(job)
    assert [r["epoch"] for r in cont.history] == [1, 2, 3]
    for a, b in zip(whole.history, cont.history):
        assert b["val_total_loss"] == pytest.approx(a["val_total_loss"], rel=1e-5, abs=1e-8)
        assert b["train_total_loss"] == pytest.approx(a["train_total_loss"], rel=1e-5, abs=1e-8)
