"""The ``needs_shared`` marker of tests/conftest.py: a test needing missing shared files skips,
and fails instead under ``SURFBENCH_REQUIRE_SHARED=1`` (what .ci/run sets), so CI cannot
silently leave out the tests on the real data and model files."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

INNER = '''
from pathlib import Path

from tests.conftest import needs_shared

HERE = Path(__file__).parent


@needs_shared(HERE / "absent" / "model.bin", reason="no model.bin")
def test_missing_file():
    pass


@needs_shared(HERE / "present.txt", reason="no present.txt")
def test_present_file():
    assert (HERE / "present.txt").read_text() == "here"


def test_data_dir_fixture(data_dir):
    pass


def test_plain():
    pass
'''


def _pytest(folder, require: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SURFBENCH_REQUIRE_SHARED"}
    env.update(PYTHONPATH=str(REPO), SURFBENCH_TEST_DATA=str(folder / "no-data"))
    if require:
        env["SURFBENCH_REQUIRE_SHARED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-rs", "-q", "test_inner.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_missing_shared_files_skip_or_fail_when_required(tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "present.txt").write_text("here")

    free = _pytest(tmp_path, require=False)
    assert free.returncode == 0, free.stdout + free.stderr
    assert "2 passed, 2 skipped" in free.stdout
    assert "no model.bin" in free.stdout and "real mlearn data not found" in free.stdout

    required = _pytest(tmp_path, require=True)
    assert required.returncode == 1, required.stdout + required.stderr
    assert "2 passed, 2 errors" in required.stdout
    for test, missing in (("test_missing_file", tmp_path / "absent" / "model.bin"),
                          ("test_data_dir_fixture", tmp_path / "no-data" / "mlearn" / "Mo" / "training.json")):
        assert f"ERROR at setup of {test}" in required.stdout
        assert f"SURFBENCH_REQUIRE_SHARED=1 but this test's shared files are missing: {missing} (" in required.stdout
