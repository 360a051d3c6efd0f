"""End to end: NequIP from scratch through the pipeline, trained by the nequip environment's
``nequip-train`` (nequip needs e3nn 0.6: ``surfbench env create nequip``; CI makes it in
``$SURFBENCH_ENV_DIR``) on 3 Mo frames (with stress) for 1 epoch, registered with ``python:
env:nequip`` and evaluated through the isolated worker on the 11 held-out Mo slabs."""

from __future__ import annotations

import pytest

from surfbench.models import ModelLoadError, get_spec, registry
from surfbench.models.isolated import resolve_python
from surfbench.store.results import ResultStore
from surfbench.store.trainings import trainings
from surfbench.training.pipeline import train_curve
from tests.conftest import needs_data
from tests.training_checks import check_curve


def _nequip_env() -> str:
    try:
        resolve_python("env:nequip")
        return ""
    except ModelLoadError as exc:
        return str(exc)


_WHY = _nequip_env()
pytestmark = [
    needs_data,
    pytest.mark.skipif(bool(_WHY), reason=f"the nequip environment is absent ({_WHY}; set SURFBENCH_ENV_DIR to where "
                                          "'surfbench env create nequip' made it)"),
]


@pytest.fixture(autouse=True)
def _reset():
    yield
    registry.use_project(None)


def test_scratch_end_to_end(tmp_path, data_dir, mlearn_surfaces):
    result = train_curve("nequip", "scratch", elements=["Mo"], store_dir=tmp_path, dataset=mlearn_surfaces,
                         preset="tiny", sizes=[3], overrides={"n_valid": 1, "threads": 2}, data_dir=data_dir,
                         download=False, echo=lambda s: None)
    check_curve(tmp_path, result, mlearn_surfaces, "Mo", [3])
    name = result.models[0].name
    spec = get_spec(name)
    assert spec.python == "env:nequip" and spec.family == "NequIP"
    assert spec.weights["path"].endswith(".ckpt")
    with ResultStore(tmp_path) as store:
        row = trainings(store).set_index("name").loc[name]
    assert row["settings"]["use_stress"] is True
    assert 500 < row["n_parameters"] < 10_000  # 2 layers, l_max 1, 8 features
    assert [h["epoch"] for h in row["history"]] == [0] and row["history"][0]["valid_rmse_f_ev_per_a"] > 0
