"""End to end: moment tensor potentials trained from scratch with motep through the pipeline
(``surfbench train --method mtp``): a two-point learning curve of level-4 MTPs on 3 and 6 Cu
frames (the unlabelled Cu training frames: their slabs are held out by their vacuum gap),
evaluated on the 12 held-out Cu slabs through the store; the command reuses what is recorded;
the report's training section shows the curve and the held-out frames."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from surfbench.models import registry
from surfbench.store.results import ResultStore
from surfbench.store.trainings import trainings
from surfbench.training.pipeline import train_curve
from tests.conftest import SHARED_MODELS, needs_mtp_inputs
from tests.training_checks import check_curve

pytest.importorskip("motep.calculator", reason="motep is not installed (pip install torch==2.13.0 'motep>=0.2,<0.3')")

MODEL_DIR = SHARED_MODELS
pytestmark = needs_mtp_inputs
# one chunk of 60 iterations that counts as converged (rel_tol 1): a not-converged fit would be
# continued by the rerun below instead of reused (tests/test_mtp_convergence.py)
OVERRIDES = {"n_valid": 1, "maxiter": 60, "chunk_iter": 60, "rel_tol": 1.0, "threads": 2}


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("SURFBENCH_MODEL_DIR", str(MODEL_DIR))
    yield
    registry.use_project(None)


@pytest.fixture(scope="module")
def curve(tmp_path_factory, data_dir, mlearn_surfaces):
    store_dir = tmp_path_factory.mktemp("mtp-store")
    mp = pytest.MonkeyPatch()
    mp.setenv("SURFBENCH_MODEL_DIR", str(MODEL_DIR))
    try:
        result = train_curve("mtp", "scratch", elements=["Cu"], store_dir=store_dir, dataset=mlearn_surfaces,
                             preset="tiny", sizes=[3, 6], overrides=OVERRIDES, data_dir=data_dir, download=False,
                             echo=lambda s: None)
    finally:
        mp.undo()
    return store_dir, result


def test_learning_curve_trained_registered_and_evaluated(curve, mlearn_surfaces):
    store_dir, result = curve
    check_curve(store_dir, result, mlearn_surfaces, "Cu", [3, 6])
    with ResultStore(store_dir) as store:
        tr = trainings(store).set_index("name")
    small, large = (tr.loc[m.name] for m in result.models)
    assert large["train_frames"][:3] == small["train_frames"]  # nested subsets
    assert small["settings"]["use_stress"] is False  # the Cu training frames carry no stress
    assert small["n_parameters"] == 11  # level 4: 8 radial + 1 species + 2 moment coefficients
    # motep's setting file beside the trained file names the element
    assert "species = [29]" in (store_dir / small["weights"]).with_name("motep.toml").read_text()


def test_command_reuses_and_reports(curve, data_dir, tmp_path):
    from surfbench.cli import app

    store_dir, result = curve
    runner = CliRunner(env={"COLUMNS": "250", "SURFBENCH_MODEL_DIR": str(MODEL_DIR)})
    args = ["train", "--method", "mtp", "--elements", "Cu", "--preset", "tiny", "--sizes", "6", "--store", str(store_dir),
            "--data-dir", str(data_dir)] + [a for k, v in OVERRIDES.items() for a in ("--set", f"{k}={v}")]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "trained before (same configuration)" in out.output and "reused" in out.output
    assert "12 frames held out" in out.output and "0 structures computed, 13 reused" in out.output
    out = runner.invoke(app, ["train", "--method", "mtp", "--from", "m3gnet-mp-2021.2.8-pes", "--elements", "Cu",
                              "--store", str(store_dir), "--data-dir", str(data_dir)])
    assert out.exit_code == 2 and "mode 'finetune' is not offered" in out.output

    from surfbench.report.html import SECTIONS, build_report

    with ResultStore(store_dir) as store:
        path = build_report(store, "mlearn-surfaces", "all", "static", tmp_path / "report.html", png=False, n_boot=50)
    html = path.read_text()
    assert '<section id="training">' in html and SECTIONS["training"].split(" (")[0] in html
    assert "ZuoEtAl2020/Cu_train.xyz#36" in html  # the held-out frames are listed
    payload = json.loads((tmp_path / "report-metrics.json").read_text())
    assert payload["training"]["n_trainings"] == 2 and payload["training"]["training_frames_equal_to_evaluated_slabs"] == 0
    assert {"learning-curves", "training-cost", "training-comparison"} <= set(payload["figures"]["in_report"])
    for name in ("training-comparison", "training-curves", "training-held-out"):
        assert (tmp_path / f"report-{name}.csv").is_file()
