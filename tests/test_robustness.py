"""Surviving faults: a coordinator or a Dask worker SIGKILLed mid-run, models that raise,
return NaN, hang inside a C call or crash their process, and a model whose fingerprint
changed under the same name. Every record ends up in the store exactly once, with the
numbers of an undisturbed run, and every failure with its kind."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from ase.build import bulk, fcc100, fcc111
from ase.calculators.lj import LennardJones

from surfbench.execution.executors import InProcessExecutor, make_executor
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.results import STORE_NAME, FingerprintChanged, ResultStore
from tests.conftest import REPO, needs_data

# ---------------------------------------------------------------------------- calculators


def _dataset() -> Dataset:
    """A 4-atom Cu bulk and slabs of 6, 8 and 3 atoms (in this order: the small one comes last)."""
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    b = BulkRecord(id="Cu/bulk", element="Cu", atoms=cu, energy_ev=-16.0)
    slabs = [
        SurfaceRecord(id="Cu/111-6", element="Cu", atoms=fcc111("Cu", (1, 1, 6), a=3.6, vacuum=6.0, periodic=True),
                      energy_ev=-23.0, bulk_id=b.id, bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1)),
        SurfaceRecord(id="Cu/100-8", element="Cu", atoms=fcc100("Cu", (1, 1, 8), a=3.6, vacuum=6.0, periodic=True),
                      energy_ev=-31.0, bulk_id=b.id, bulk_energy_per_atom_ev=-4.0, miller=(1, 0, 0)),
        SurfaceRecord(id="Cu/111-3", element="Cu", atoms=fcc111("Cu", (1, 1, 3), a=3.6, vacuum=6.0, periodic=True),
                      energy_ev=-11.0, bulk_id=b.id, bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1)),
    ]
    return Dataset("toy", {b.id: b}, slabs)


def _one_bad() -> Dataset:
    """The bulk, the 6-atom slab (a large cell) and the 3-atom slab after it."""
    ds = _dataset()
    return Dataset("toy", ds.bulks, [ds.surfaces[0], ds.surfaces[2]])


def _lj_energy(atoms) -> float:
    a = atoms.copy()
    a.pbc = True
    a.calc = LennardJones()
    return a.get_potential_energy()


# ---------------------------------------------------------------------------- failing models


def test_raising_and_nan_models_are_recorded_and_the_run_goes_on(tmp_path):
    ds = _dataset()
    with ResultStore(tmp_path) as store:
        s = run(ds, load_model("tests.calcs:Raising"), store)
        assert (s.computed, s.failed, s.failure_kinds) == (4, 4, {"calculator_error": 4})
        s = run(ds, load_model("tests.fault_calcs:NaNOnLarge"), store)
        assert (s.computed, s.failed, s.failure_kinds) == (4, 2, {"non_finite_energy": 2})
        res = store.results("toy", s.fingerprint).set_index("record_id")
    # the small cells went on after the failures, with the calculator's -1 eV/atom
    assert res.loc["Cu/bulk", "energy_ev"] == -4.0 and res.loc["Cu/111-3", "energy_ev"] == -3.0
    assert res.loc["Cu/111-6", "failure_kind"] == "non_finite_energy" and pd.isna(res.loc["Cu/111-6", "energy_ev"])


def test_timeout_kills_a_call_stuck_in_c_and_the_run_goes_on(tmp_path):
    """The model hangs in C on the 6-atom slab: it is killed after 3 s (a signal could not
    stop it) and recorded as 'timeout'; the 4-atom bulk (before) and the 3-atom slab (after,
    in a fresh child process) get their Lennard-Jones energies."""
    ds = _one_bad()
    with ResultStore(tmp_path) as store:
        s = run(ds, load_model("tests.fault_calcs:BusyInC"), store, timeout_s=3.0)
        res = store.results("toy", s.fingerprint).set_index("record_id")
    assert s.failure_kinds == {"timeout": 1} and s.computed == 3
    assert res.loc["Cu/111-6", "failure_kind"] == "timeout" and pd.isna(res.loc["Cu/111-6", "energy_ev"])
    # the timeout fired (3 s) and the evaluating child was killed: that process is gone
    message = res.loc["Cu/111-6", "message"]
    killed = re.search(r"\(pid (\d+)\) was killed", message)
    assert "no result within 3 s" in message and killed, message
    assert not Path(f"/proc/{killed.group(1)}").exists()
    for rec in (ds.bulks["Cu/bulk"], ds.surfaces[1]):
        assert res.loc[rec.id, "status"] == "ok"
        assert res.loc[rec.id, "energy_ev"] == pytest.approx(_lj_energy(rec.atoms), abs=1e-10)


def test_timeout_does_not_charge_a_fresh_process_its_warm_up(tmp_path):
    """The model's first call in a process takes 2 s, every later one milliseconds, and the
    6-atom slab hangs; with a 1 s timeout only the hanging slab times out: neither the first
    structure nor the one after the kill (in a fresh process, which warms up again) is charged
    the warm-up, and the message says how long the structure itself ran."""
    ds = _one_bad()
    model = load_model("tests.fault_calcs:SlowFirstCall", kwargs={"first_call_s": 2.0, "max_atoms": 4})
    with ResultStore(tmp_path) as store:
        s = run(ds, model, store, timeout_s=1.0)
        res = store.results("toy", s.fingerprint).set_index("record_id")
    assert s.failure_kinds == {"timeout": 1} and s.computed == 3
    for rec in (ds.bulks["Cu/bulk"], ds.surfaces[1]):
        assert res.loc[rec.id, "status"] == "ok"
        assert res.loc[rec.id, "energy_ev"] == pytest.approx(_lj_energy(rec.atoms), abs=1e-10)
        assert res.loc[rec.id, "wall_s"] < 1.0  # the timed evaluation on the warm process, not the 2 s sleep
    hung = res.loc["Cu/111-6"]
    assert hung["failure_kind"] == "timeout" and "was killed" in hung["message"]
    ran = re.search(r"^no result within 1 s: the structure ran (\d+\.\d\d) s;", hung["message"])
    assert ran, hung["message"]
    assert float(ran.group(1)) == pytest.approx(hung["wall_s"], abs=0.006)  # the stored run time
    assert float(ran.group(1)) >= 1.0  # the whole limit went to the structure


def test_a_first_structure_slower_than_limit_and_allowance_times_out(tmp_path):
    """The warm-up allowance is a limit too: a first call of 2 s against 0.3 s + 0.3 s."""
    from surfbench.evaluation.protocols import StaticProtocol
    from surfbench.execution.guarded import GuardedEvaluator
    from surfbench.execution.tasks import portable

    model = load_model("tests.fault_calcs:SlowFirstCall", kwargs={"first_call_s": 2.0, "max_atoms": 4})
    guard = GuardedEvaluator(portable(model), warmup_allowance_s=0.3)
    try:
        out = guard.evaluate(StaticProtocol(), _dataset().bulks["Cu/bulk"], None, 0.3)
    finally:
        guard.close()
    assert out.failure_kind == "timeout", out
    assert re.search(r"^no result within 0.3 s: the structure ran 0\.[6-9]\d s in a fresh process \(0.3 s allowed "
                     r"beyond the limit for the model's one-off warm-up\)", out.message), out.message


def test_a_crashing_process_is_recorded_as_crashed(tmp_path):
    ds = _one_bad()
    with ResultStore(tmp_path) as store:
        s = run(ds, load_model("tests.fault_calcs:CrashOnLarge"), store, timeout_s=60)
        res = store.results("toy", s.fingerprint).set_index("record_id")
    assert s.failure_kinds == {"crashed": 1}
    assert "died" in res.loc["Cu/111-6", "message"]
    assert res.loc["Cu/111-3", "energy_ev"] == pytest.approx(_lj_energy(ds.surfaces[1].atoms), abs=1e-10)


@pytest.fixture(scope="module")
def dask2():
    """A local Dask cluster of two worker processes, shared by this module's tests."""
    with make_executor(2) as ex:
        yield ex


def test_timeout_on_dask_workers(tmp_path, dask2):
    """The same hang on a local Dask cluster: the worker's guard child is killed."""
    from surfbench.execution.executors import DaskExecutor

    ds = _one_bad()
    # the hanging slab may be a worker's first structure: 5 s allowed beyond the limit then, not 30
    ex = DaskExecutor(dask2.client, timeout_s=3.0, warmup_allowance_s=5.0)
    with ResultStore(tmp_path) as store:
        s = run(ds, load_model("tests.fault_calcs:BusyInC"), store, executor=ex)
        res = store.results("toy", s.fingerprint).set_index("record_id")
    assert s.failure_kinds == {"timeout": 1}
    assert res.loc["Cu/111-3", "energy_ev"] == pytest.approx(_lj_energy(ds.surfaces[1].atoms), abs=1e-10)


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout must be positive"):
        InProcessExecutor(timeout_s=0)


# ---------------------------------------------------------------------------- fingerprints


def test_store_refuses_a_changed_fingerprint_under_the_same_name(tmp_path):
    ds = _dataset()
    first = load_model("tests.calcs:SlowLJ", kwargs={"delay": 0.0})
    changed = load_model("tests.calcs:SlowLJ", kwargs={"delay": 0.001})
    assert first.name == changed.name and first.fingerprint.id != changed.fingerprint.id
    with ResultStore(tmp_path) as store:
        run(ds, first, store)
        with pytest.raises(FingerprintChanged, match=r"changed: options.*--keep-both-fingerprints"):
            run(ds, changed, store)
        assert len(store.results("toy")) == 4  # nothing of the changed model was written
        s = run(ds, changed, store, keep_both_fingerprints=True)
        assert s.computed == 4
        both = store.results("toy")
        assert len(both) == 8 and set(both["fingerprint"]) == {first.fingerprint.id, changed.fingerprint.id}
        run(ds, first, store)  # a fingerprint already kept is accepted again


def test_cli_refuses_a_changed_fingerprint(tmp_path):
    from surfbench.data.userdata import write_user_dataset

    data = write_user_dataset(_dataset(), tmp_path / "toy.extxyz")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    base = [sys.executable, "-m", "surfbench.cli", "run", "--model", "tests.calcs:SlowLJ", "--dataset", str(data),
            "--workdir", str(tmp_path)]
    ok = subprocess.run([*base, "--model-kwargs", '{"delay": 0.0}'], env=env, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    bad = subprocess.run([*base, "--model-kwargs", '{"delay": 0.001}'], env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "--keep-both-fingerprints" in bad.stderr, bad.stdout[-2000:] + bad.stderr[-2000:]
    both = subprocess.run([*base, "--model-kwargs", '{"delay": 0.001}', "--keep-both-fingerprints"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert both.returncode == 0 and "4 computed, 0 reused" in both.stdout, both.stdout[-2000:] + both.stderr[-2000:]


# ---------------------------------------------------------------------------- kills


def _rows(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT record_id, status, energy_ev, created_at FROM results").fetchall()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a record appears twice"
    return {r[0]: r[1:] for r in rows}


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@needs_data
@pytest.mark.slow
def test_sigkill_of_the_coordinator_of_a_dask_run(tmp_path, data_dir):
    """``surfbench run --workers 2`` killed (SIGKILL) after a few results; the rerun computes
    only the rest, every record is stored once, and the numbers equal the in-process run's."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}

    def cmd(work: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "surfbench.cli", "run", "--model", "tests.calcs:SlowLJ", "--model-kwargs",
                '{"delay": 0.4}', "--split", "test", "--workdir", str(work), "--data-dir", str(data_dir), *extra]

    work = tmp_path / "killed"
    db = work / STORE_NAME
    proc = subprocess.Popen(cmd(work, "--workers", "2"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while _count(db) < 3:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.time() < deadline, "the run never got going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:  # the coordinator's Dask workers are in its session: end them too
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = _rows(db)
    assert 3 <= len(before) < 17, f"killed too late: {len(before)} results"

    done = subprocess.run(cmd(work, "--workers", "2"), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{17 - len(before)} computed, {len(before)} reused" in done.stdout
    after = _rows(db)
    assert len(after) == 17
    for rid, row in before.items():
        assert after[rid] == row

    ref = subprocess.run(cmd(tmp_path / "clean"), env={**env}, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stdout[-3000:]
    expected = _rows(tmp_path / "clean" / STORE_NAME)
    assert set(expected) == set(after)
    for rid in expected:
        assert after[rid][0] == expected[rid][0] == "ok"
        assert after[rid][1] == pytest.approx(expected[rid][1], abs=1e-9)


@pytest.mark.slow
def test_sigkill_of_a_dask_worker_mid_run(tmp_path, dask2):
    """One of two workers is SIGKILLed after the first result: Dask replaces it and runs its
    task again; every record is stored once with the in-process numbers, and a rerun
    computes nothing."""
    ds = _dataset()
    for i in range(8):  # more records, so that the kill lands mid-run
        ds.surfaces.append(SurfaceRecord(
            id=f"Cu/111-{i}-x", element="Cu", atoms=fcc111("Cu", (1, 1, 3 + i % 3), a=3.55 + 0.01 * i, vacuum=6.0,
                                                             periodic=True),
            energy_ev=-10.0, bulk_id="Cu/bulk", bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1)))
    model = load_model("tests.calcs:SlowLJ", kwargs={"delay": 0.5})
    killed: list[int] = []
    ex = dask2
    with ResultStore(tmp_path / "dask") as store:
        pids = sorted(set(ex.client.run(os.getpid).values()))
        assert len(pids) == 2

        def progress(record_id, outcome) -> None:
            if not killed:
                killed.append(pids[0])
                threading.Thread(target=os.kill, args=(pids[0], signal.SIGKILL)).start()

        s = run(ds, model, store, executor=ex, progress=progress)
        assert killed and s.computed == 12 and s.failed == 0
        after = sorted(set(ex.client.run(os.getpid).values()))
        assert pids[0] not in after  # the killed worker was replaced
        assert run(ds, model, store, executor=ex).computed == 0
        got = store.results("toy").set_index("record_id")["energy_ev"]
    assert got.index.is_unique and len(got) == 12
    with ResultStore(tmp_path / "ref") as ref:
        run(ds, model, ref)
        want = ref.results("toy").set_index("record_id")["energy_ev"]
    for rid, e in want.items():
        assert got[rid] == pytest.approx(e, abs=1e-12)
