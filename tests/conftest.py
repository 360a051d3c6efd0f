"""Shared fixtures. Real data come from ``../shared/data`` beside the repository root;
tests that need them skip with a clear reason where that folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SURFBENCH_TEST_DATA", REPO.parent / "shared" / "data"))
HAVE_DATA = (SHARED_DATA / "mlearn" / "Mo" / "training.json").is_file()

needs_data = pytest.mark.skipif(
    not HAVE_DATA, reason=f"real mlearn data not found at {SHARED_DATA} (the shared/data folder beside the repository)"
)


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
