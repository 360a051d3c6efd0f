"""Shared fixtures. Real data come from ``../shared/data`` beside the repository root;
tests that need them skip with a clear reason where that folder is absent.

Tests that need files of the ``shared`` folder (data, model files) carry the ``needs_shared``
marker (:func:`needs_shared`; tests using the ``data_dir`` fixture get it automatically). Where
a file is missing they skip, unless ``SURFBENCH_REQUIRE_SHARED=1`` (set by ``.ci/run``: CI has
the folder): then they fail, so that no such test is silently left out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SURFBENCH_TEST_DATA", REPO.parent / "shared" / "data"))
HAVE_DATA = (SHARED_DATA / "mlearn" / "Mo" / "training.json").is_file()

REQUIRE_SHARED = "SURFBENCH_REQUIRE_SHARED"


def needs_shared(*paths: Path, reason: str) -> pytest.MarkDecorator:
    """Mark a test that needs ``paths`` (files or folders of the shared folder beside the
    repository): skipped with ``reason`` where one is missing, failed instead when the
    environment variable ``SURFBENCH_REQUIRE_SHARED`` is ``1``."""
    return pytest.mark.needs_shared(*paths, reason=reason)


needs_data = needs_shared(
    SHARED_DATA / "mlearn" / "Mo" / "training.json",
    reason=f"real mlearn data not found at {SHARED_DATA} (the shared/data folder beside the repository)",
)

#: model files of the shared folder (untrained MTPs, matgl folders, ...)
SHARED_MODELS = REPO.parent / "shared" / "models"
#: the MTP trainings: the real data and motep's untrained level-4 MTP
needs_mtp_inputs = [
    needs_data,
    needs_shared(SHARED_MODELS / "mtp" / "level04-initial.mtp",
                 reason=f"no untrained MTP files at {SHARED_MODELS / 'mtp'} (shared/models beside the repository)"),
]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs_shared(*paths, reason): needs files of ../shared (data, models); skipped where they are "
        f"missing, failed instead with {REQUIRE_SHARED}=1 (.ci/run)")


def pytest_collection_modifyitems(config, items):
    for item in items:  # the data_dir fixture skips without the data: same rule as needs_data
        if "data_dir" in getattr(item, "fixturenames", ()) and item.get_closest_marker("needs_shared") is None:
            item.add_marker(needs_data)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_shared"):
        missing = [str(p) for p in mark.args if not Path(p).exists()]
        if not missing:
            continue
        if os.environ.get(REQUIRE_SHARED) == "1":
            pytest.fail(f"{REQUIRE_SHARED}=1 but this test's shared files are missing: {', '.join(missing)} "
                        f"({mark.kwargs.get('reason', '')})", pytrace=False)
        pytest.skip(mark.kwargs.get("reason") or f"missing: {', '.join(missing)}")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """No test touches the user's cache or inherits a data folder from the environment."""
    monkeypatch.setenv("SURFBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("SURFBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not HAVE_DATA:
        pytest.skip(f"real mlearn data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mlearn_surfaces(data_dir):
    from surfbench.data.mlearn import load_mlearn_surfaces

    return load_mlearn_surfaces(data_dir, download=False)
