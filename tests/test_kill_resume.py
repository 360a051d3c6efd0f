"""A run killed mid-way (SIGKILL) loses nothing: the rerun completes it, every record once,
with the numbers of an uninterrupted run."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from surfbench.store.results import STORE_NAME
from tests.conftest import REPO, needs_data

pytestmark = needs_data


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _rows(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT record_id, status, energy_ev, created_at FROM results").fetchall()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a record appears twice"
    return {r[0]: r[1:] for r in rows}


def _cmd(workdir: Path, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "surfbench.cli", "run", "--model", "chgnet-0.3.0", "--split", "test",
            "--workdir", str(workdir), "--data-dir", str(data_dir)]


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path, data_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    work = tmp_path / "killed"
    db = work / STORE_NAME
    proc = subprocess.Popen(_cmd(work, data_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while _count(db) < 5:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "the run never got going"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _rows(db)
    assert 5 <= len(before) < 17, f"killed too late: {len(before)} results"

    done = subprocess.run(_cmd(work, data_dir), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{17 - len(before)} computed, {len(before)} reused" in done.stdout
    after = _rows(db)
    assert len(after) == 17  # 11 test slabs + 6 bulks, each exactly once
    for rid, row in before.items():
        assert after[rid] == row  # finished work is kept, not redone

    clean = tmp_path / "clean"
    ref = subprocess.run(_cmd(clean, data_dir), env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stdout[-3000:]
    expected = _rows(clean / STORE_NAME)
    assert set(expected) == set(after)
    for rid in expected:
        assert after[rid][0] == expected[rid][0] == "ok"
        assert after[rid][1] == pytest.approx(expected[rid][1], abs=1e-6)
