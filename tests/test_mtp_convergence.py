"""MTP fits to convergence (issue 26): chunked L-BFGS-B with checkpoints, resume after SIGKILL,
the iteration cap and the --max-minutes budget that stop cleanly, and the "not converged" mark in
the registry, the trainings table and the tables of trained models. Level-4 MTPs on the Cu
training frames of mlearn (a few seconds per chunk)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from surfbench.models import registry
from surfbench.store.results import ResultStore
from surfbench.store.trainings import trainings
from surfbench.training.base import TrainingError
from surfbench.training.mtp import CHECKPOINT, STATE_FILE, chunk_outcome, fit_chunks
from surfbench.training.pipeline import train_curve
from tests.conftest import SHARED_MODELS, needs_mtp_inputs

pytest.importorskip("motep.calculator", reason="motep is not installed (pip install torch==2.13.0 'motep>=0.2,<0.3')")

MODEL_DIR = SHARED_MODELS
pytestmark = needs_mtp_inputs


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("SURFBENCH_MODEL_DIR", str(MODEL_DIR))
    yield
    registry.use_project(None)


def test_chunk_outcome_reads_motep_output():
    log = ("loss 0: 12.5\nloss 1: 3.25\nloss 2: 3.0e-1\n\nOptimization result:\n  Message: CONVERGENCE: "
           "REL_REDUCTION_OF_F_<=_FACTR*EPSMCH\n  Success: True\n  Status code: 0\n")
    assert chunk_outcome(log) == ([12.5, 3.25, 0.3], True)
    assert chunk_outcome("loss 0: 1.0\nloss 1: 0.5\n  Success: False\n") == ([1.0, 0.5], False)
    assert chunk_outcome("no optimisation printed") == ([], None)
    # with the pre-fits of init = "lls": each step counts from 0, L-BFGS-B's are the last
    pre = "{'method': 'Level2MTP'}\nloss 0: 1548684.6\nloss 1: 0.0021\n{'method': 'LLS'}\nloss 0: 0.0021\nloss 1: 0.0018\n"
    assert chunk_outcome(pre + log) == ([12.5, 3.25, 0.3], True)
    from surfbench.training.mtp import loss_before_init

    assert loss_before_init(pre + log) == 1548684.6


def test_the_linear_prefits_start_far_below_the_random_start(tmp_path, data_dir):
    """``init = "lls"`` (every preset): motep's Level2MTP and LLS before the first L-BFGS-B
    iteration; on 6 Cu frames at level 4 the L-BFGS-B start is orders of magnitude below the
    untrained loss (measured: 3.3e4 -> 1.8e-5, after which L-BFGS-B converges in one iteration),
    and only the first chunk runs them."""
    from surfbench.training.mtp import setting_toml

    s = {"maxiter": 4, "chunk_iter": 2, "rel_tol": 0.0, "energy_weight": 1.0, "force_weight": 0.01,
         "stress_weight": 0.0, "threads": 1, "init": "lls"}
    state = fit_chunks(_fit_folder(tmp_path / "lls", data_dir), s, [29], 0, False, name="t")
    first = state["chunks"][0]
    assert state["loss_untrained"] > 1e6 * first["loss_start"]
    assert state["converged"] and state["reason"] == "L-BFGS-B stopped on its own convergence criterion"
    assert "method = \"LLS\"" in setting_toml([29], 0, s, False)
    assert "LLS" not in setting_toml([29], 0, s, False, init=False)
    with pytest.raises(TrainingError, match="init must be one of lls, random"):
        setting_toml([29], 0, {**s, "init": "zero"}, False)


def _train(store_dir, data_dir, dataset, overrides, **kw):
    return train_curve("mtp", "scratch", elements=["Cu"], store_dir=store_dir, dataset=dataset, preset="tiny",
                       sizes=[6], overrides={"n_valid": 1, "threads": 1, **overrides}, data_dir=data_dir,
                       download=False, echo=kw.pop("echo", lambda s: None), **kw)


def test_iteration_cap_marks_not_converged_and_a_rerun_continues(tmp_path, data_dir, mlearn_surfaces):
    lines: list[str] = []
    # rel_tol 0, a cap of 2 chunks of 3 iterations and the random start (the linear pre-fits of
    # init = "lls" converge a level-4 fit of 6 frames at once): the fit cannot converge
    res = _train(tmp_path, data_dir, mlearn_surfaces, {"maxiter": 6, "chunk_iter": 3, "rel_tol": 0.0, "init": "random"}, echo=lines.append)
    (m,) = res.models
    assert m.converged is False
    work = tmp_path / "trained" / m.name
    state = json.loads((work / STATE_FILE).read_text())
    assert [c["iterations"] for c in state["chunks"]] == [3, 3] and not state["converged"]
    assert "reached maxiter=6" in state["reason"]
    assert state["chunks"][1]["loss_start"] == pytest.approx(state["chunks"][0]["loss_end"], rel=1e-9)  # continued
    assert (work / CHECKPOINT).read_text() == (work / "final.mtp").read_text()
    # the mark: registry note, trainings table, the tables of trained models and the train command's table
    entry = next(e for e in registry.load_yaml((tmp_path / "trained-models.yaml").read_text())["models"]
                 if e["name"] == m.name)
    assert entry["note"].startswith("NOT CONVERGED: reached maxiter=6")
    with ResultStore(tmp_path) as store:
        tr = trainings(store).set_index("name")
        assert tr.loc[m.name, "converged"] == 0 and tr.loc[m.name, "state"] == "iteration-cap"
        from surfbench.training.curves import curve_table, protocol_table

        assert curve_table(store).query("n_train > 0")["model"].str.endswith("[NOT CONVERGED (iteration-cap)]").all()
        pt = protocol_table(store, "mlearn-surfaces", n_boot=10)
        assert (pt.loc[pt["method"] == "mtp", "label"].str.endswith("[NOT CONVERGED (iteration-cap)]")).all()
        from surfbench.report.sections.training import convergence_html

        assert "<b>1 of 1 trained models did not converge</b>" in convergence_html(store, curve_table(store))
    assert any("NOT CONVERGED (iteration-cap) (a rerun continues it)" in s for s in lines)
    from surfbench.cli import app

    out = CliRunner(env={"COLUMNS": "250", "SURFBENCH_MODEL_DIR": str(MODEL_DIR)}).invoke(
        app, ["table", "--trained", "-w", str(tmp_path)])
    assert out.exit_code == 0, out.output
    flat = " ".join(line.strip("│ ") for line in out.output.splitlines())  # the model column wraps
    assert "[NOT CONVERGED (iteration-cap)]" in " ".join(flat.split())

    # the same command again is not reused: it continues from the checkpoint (here: at its cap)
    lines.clear()
    res = _train(tmp_path, data_dir, mlearn_surfaces, {"maxiter": 6, "chunk_iter": 3, "rel_tol": 0.0, "init": "random"}, echo=lines.append)
    assert any("continuing from its checkpoint after 6 iterations" in s for s in lines), lines
    assert res.models[0].converged is False
    # a higher cap continues the same fit (the cap is not part of the checkpoint's key)
    lines.clear()
    res = _train(tmp_path, data_dir, mlearn_surfaces, {"maxiter": 9, "chunk_iter": 3, "rel_tol": 0.0, "init": "random"}, echo=lines.append)
    state = json.loads((tmp_path / "trained" / res.models[0].name / STATE_FILE).read_text())
    assert any("continuing from its checkpoint after 6 iterations" in s for s in lines), lines
    assert sum(c["iterations"] for c in state["chunks"]) == 9


def test_budget_stops_at_the_last_checkpoint(tmp_path, data_dir):
    from surfbench.training.io import write_extxyz
    from surfbench.training.splits import load_frames

    frames = load_frames("mlearn", ["Cu"], data_dir, download=False)[:6]
    work = tmp_path / "fit"
    work.mkdir()
    write_extxyz(frames, work / "training.xyz", "calc", stress=False)
    from surfbench.training.mtp import initial_mtp, prepare_initial

    (work / "initial.mtp").write_text(prepare_initial(initial_mtp(4).read_text(), 1.6, 5.0, 1))
    s = {"maxiter": 100, "chunk_iter": 4, "rel_tol": 0.0, "energy_weight": 1.0, "force_weight": 0.01,
         "stress_weight": 0.0, "threads": 1}
    # a budget already spent: no chunk runs, and without a checkpoint that is an error that says so
    with pytest.raises(TrainingError, match="time budget after 0 iterations, before its first checkpoint"):
        fit_chunks(work, s, [29], 0, False, name="t", deadline=time.time() - 1)
    one = fit_chunks(work, {**s, "maxiter": 4}, [29], 0, False, name="t")
    assert len(one["chunks"]) == 1
    # seed 0 is a seed (motep itself would draw a random one for 0): the same start, the same loss
    again = tmp_path / "again"
    again.mkdir()
    for name in ("training.xyz", "initial.mtp"):
        (again / name).write_bytes((work / name).read_bytes())
    two = fit_chunks(again, {**s, "maxiter": 4}, [29], 0, False, name="t")
    assert two["chunks"][0]["loss_start"] == pytest.approx(one["chunks"][0]["loss_start"], rel=1e-12)
    assert (again / CHECKPOINT).read_text() == (work / CHECKPOINT).read_text()
    # then the budget runs out: the fit stops cleanly at that checkpoint, not converged
    state = fit_chunks(work, s, [29], 0, False, name="t", deadline=time.time() - 1)
    assert len(state["chunks"]) == 1 and not state["converged"]
    assert state["reason"] == "stopped at its time budget after 4 iterations"


def _fit_folder(folder, data_dir, n_frames=6):
    from surfbench.training.io import write_extxyz
    from surfbench.training.mtp import initial_mtp, prepare_initial
    from surfbench.training.splits import load_frames

    folder.mkdir()
    write_extxyz(load_frames("mlearn", ["Cu"], data_dir, download=False)[:n_frames], folder / "training.xyz", "calc",
                 stress=False)
    (folder / "initial.mtp").write_text(prepare_initial(initial_mtp(4).read_text(), 1.6, 5.0, 1))
    return folder


def test_two_mpi_ranks_give_the_fit_of_one(tmp_path, data_dir):
    """``threads=2`` runs motep under ``mpiexec -n 2`` (the frames split over the ranks): the same
    losses, iteration by iteration, as one process, to the rounding of the sums."""
    from surfbench.training.mtp import motep_launcher

    if not motep_launcher(2):
        pytest.skip("no MPI here (mpi4py and mpiexec: pip install mpi4py mpich)")
    s = {"maxiter": 5, "chunk_iter": 5, "rel_tol": 0.0, "energy_weight": 1.0, "force_weight": 0.01,
         "stress_weight": 0.0}
    one = fit_chunks(_fit_folder(tmp_path / "one", data_dir), {**s, "threads": 1}, [29], 0, False, name="t")
    two = fit_chunks(_fit_folder(tmp_path / "two", data_dir), {**s, "threads": 2}, [29], 0, False, name="t")
    assert one["chunks"][0]["ranks"] == 1 and two["chunks"][0]["ranks"] == 2
    l1 = chunk_outcome((tmp_path / "one" / "chunk-000.log").read_text())[0]
    l2 = chunk_outcome((tmp_path / "two" / "chunk-000.log").read_text())[0]
    assert len(l1) == len(l2) == 6
    assert l2 == pytest.approx(l1, rel=1e-9)
    assert "mpiexec" in (tmp_path / "two" / "chunk-000.log").read_text().splitlines()[0]


def _processes_in(folder) -> list[int]:
    """Processes whose working directory lies in ``folder`` (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_fit_killed_mid_way_continues_from_its_checkpoint(tmp_path, data_dir):
    """SIGKILL of the whole ``surfbench train`` process group during the fit, then the same
    command continues from the last checkpoint and finishes."""
    args = [sys.executable, "-m", "surfbench.cli", "train", "--method", "mtp", "-e", "Cu", "--preset", "tiny",
            "--sizes", "6", "--store", str(tmp_path), "--data-dir", str(data_dir), "--set", "n_valid=1",
            "--set", "chunk_iter=2", "--set", "rel_tol=0", "--set", "threads=2", "--set", "init=random"]
    env = {**os.environ, "SURFBENCH_MODEL_DIR": str(MODEL_DIR)}
    proc = subprocess.Popen(args + ["--set", "maxiter=400"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        t0 = time.time()
        states = list(tmp_path.glob(f"trained/*/{STATE_FILE}"))
        while time.time() - t0 < 300:
            states = list(tmp_path.glob(f"trained/*/{STATE_FILE}"))
            if states and len(json.loads(states[0].read_text()).get("chunks", [])) >= 2:
                break
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint within 300 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # nothing of the fit outlives it (under MPI the ranks sit in sessions of their own: they end
    # with their mpiexec), so nothing writes into the folder behind the next run's back
    t0 = time.time()
    while _processes_in(tmp_path) and time.time() - t0 < 20:
        time.sleep(0.2)
    assert not _processes_in(tmp_path)
    state = json.loads(states[0].read_text())
    done = sum(c["iterations"] for c in state["chunks"])
    assert done >= 4 and not state["converged"]
    with ResultStore(tmp_path) as store:
        assert trainings(store).empty  # nothing recorded: the fit was killed
    out = subprocess.run(args + ["--set", f"maxiter={done + 4}"], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"continuing from its checkpoint after {done} iterations" in out.stdout
    state = json.loads(states[0].read_text())
    assert sum(c["iterations"] for c in state["chunks"]) == done + 4
    with ResultStore(tmp_path) as store:
        tr = trainings(store)
    assert len(tr) == 1 and tr.iloc[0]["converged"] == 0  # at its cap: usable, marked
