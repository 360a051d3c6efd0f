"""A new user's first hour (issue 27): no fixed cost for cheap potentials (torch is imported only
for torch models, one module's distribution found without scanning them all), ``--threads``
caps every BLAS/OpenMP pool, a cached rerun says so, names a user types get did-you-mean
suggestions and one form for several models, the mean signed error is never called ``mse``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from surfbench.cli import app
from tests.conftest import SHARED_DATA, needs_shared
from tests.workdirs import fill_store, write_cu_file

runner = CliRunner(env={"COLUMNS": "250"})
LJ_FACTORY = "ase.calculators.lj:LennardJones"


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------- fixed cost (point 4)


def test_a_run_of_a_model_without_torch_never_imports_torch(tmp_path):
    """EMT through the CLI, in a fresh interpreter: torch (1-2 s to import) stays unloaded; it
    was imported only to record a thread count."""
    data = write_cu_file(tmp_path)
    code = ("import sys\nfrom surfbench.cli import app\n"
            f"try:\n    app(['run', '-m', 'emt', '-d', {str(data)!r}, '-w', {str(tmp_path)!r}, '--threads', '1'])\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print('TORCH', 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "TORCH False" in out.stdout, out.stdout[-2000:]
    assert "3 computed, 0 reused" in _flat(out.stdout)


def test_a_module_distribution_is_found_without_scanning_every_distribution(monkeypatch):
    """``module:factory`` fingerprints name the distribution holding the module; finding it
    must not call packages_distributions (3.4 s in a venv of ML packages)."""
    import ase.calculators.emt
    import yaml

    import tests.calcs
    from surfbench.models.loaders import ase_factory

    def scan():
        raise AssertionError("packages_distributions scans every installed distribution")

    monkeypatch.setattr(metadata, "packages_distributions", scan)
    ase_factory._owner.cache_clear()
    assert ase_factory.module_distribution(ase.calculators.emt) == f"ase {metadata.version('ase')}"
    # a distribution named otherwise than its top-level package (PyYAML holds yaml)
    assert ase_factory.module_distribution(yaml) == f"PyYAML {metadata.version('PyYAML')}"
    # a local module (a top-level name several distributions may ship) is no distribution's
    assert ase_factory.module_distribution(tests.calcs).startswith("unversioned (")


def test_threads_caps_blas_and_openmp_pools_too(tmp_path):
    """--threads N caps numpy's OpenBLAS (threadpoolctl) and sets the variables libraries loaded
    later read, not only torch's count; in a fresh interpreter so that the cap stays there."""
    code = ("import json, os, numpy\nfrom threadpoolctl import threadpool_info\n"
            "from surfbench.models.model_info import cap_threads\n"
            "n = cap_threads(1)\n"
            "print(json.dumps({'n': n, 'pools': [p['num_threads'] for p in threadpool_info()],"
            " 'env': [os.environ.get(v) for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')]}))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["n"] == 1 and got["pools"] and set(got["pools"]) == {1}, got
    assert got["env"] == ["1", "1", "1"], got


# ---------------------------------------------------------------------------- time and messages (point 3)


def test_a_cached_rerun_says_all_results_were_reused(tmp_path):
    data = write_cu_file(tmp_path)
    first = runner.invoke(app, ["run", "-m", "emt", "-d", str(data), "-w", str(tmp_path)])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["run", "-m", "emt", "-d", str(data), "-w", str(tmp_path)])
    assert again.exit_code == 0, again.output
    text = _flat(again.output)
    assert f"emt on {data} (static): all 3 results reused from {tmp_path}" in text, text
    assert "0/0" not in text, text


@needs_shared(SHARED_DATA / "mse21", reason="the mSE21 copy of the shared folder")
def test_a_reference_only_data_set_is_refused_before_the_model_is_loaded(tmp_path, monkeypatch):
    """mSE21 holds reference values (no structures): under the static protocol the clear error
    comes before any model is loaded or progress bar drawn."""
    from surfbench.models import registry

    loads = []
    real = registry.load_model
    monkeypatch.setattr(registry, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    out = runner.invoke(app, ["run", "-m", "emt", "-d", "mse21", "-w", str(tmp_path), "--data-dir", str(SHARED_DATA)])
    text = _flat(out.output)
    assert out.exit_code == 2, text
    assert "data set mse21 holds reference values only" in text and "--protocol model-built" in text
    assert "(static)" not in text and not loads  # no bar "emt on mse21 (static)", no model loaded


# ---------------------------------------------------------------------------- names (point 5)


def test_unknown_model_element_and_data_set_names_get_suggestions(tmp_path):
    data = write_cu_file(tmp_path)
    cases = {
        ("run", "-m", "chgnet", "-d", str(data)): "unknown model 'chgnet' (did you mean 'chgnet-0.3.0' or 'chgnet-0.2.0'?)",
        ("run", "-m", "Sevennet-0", "-d", str(data)): "unknown model 'Sevennet-0' (did you mean 'sevennet-0'?)",
        ("run", "-m", "emt", "-d", str(data), "--elements", "cu"): "'cu' is not a chemical symbol (did you mean 'Cu'?)",
        ("run", "-m", "emt", "-d", str(data), "--elements", "Cu,Xx"): "'Xx' is not a chemical symbol (did you mean 'Xe'?)",
        ("run", "-m", "emt", "-d", "mlearn"): "unknown data set 'mlearn' (did you mean 'mlearn-surfaces'?)",
    }
    for args, message in cases.items():
        out = runner.invoke(app, [*args, "-w", str(tmp_path / "w")])
        assert out.exit_code == 2 and message in _flat(out.output), (args, out.output)
        assert "Traceback" not in out.output
    assert not (tmp_path / "w").exists()  # refused before a store was made


def test_table_of_a_model_not_stored_lists_the_stored_runs(tmp_path):
    fill_store(tmp_path)
    out = runner.invoke(app, ["table", "-w", str(tmp_path), "-m", "EMT"])
    text = _flat(out.output)
    assert out.exit_code == 2, text
    assert "no stored run of 'EMT' (did you mean 'emt'?)" in text
    assert "holds: emt (emt@" in text and "on cu-toy, static: 3 results" in text
    out = runner.invoke(app, ["table", "-w", str(tmp_path), "--protocol", "relaxed"])
    assert out.exit_code == 2 and "no stored run matches protocol 'relaxed'" in _flat(out.output)
    assert "on cu-toy, static: 3 results" in _flat(out.output)


def test_several_models_are_named_the_same_way_in_run_and_table(tmp_path):
    """-m a -m b, -m a,b and --models a,b: each accepted by run and by table."""
    data = write_cu_file(tmp_path)
    pair = ["emt", LJ_FACTORY]
    for i, form in enumerate((["-m", pair[0], "-m", pair[1]], ["-m", ",".join(pair)], ["--models", ",".join(pair)])):
        w = tmp_path / f"w{i}"
        out = runner.invoke(app, ["run", *form, "-d", str(data), "-w", str(w)])
        assert out.exit_code == 0, (form, out.output)
        text = _flat(out.output)
        assert "emt: 3 computed" in text and f"{LJ_FACTORY}: 3 computed" in text, (form, text)
    w = str(tmp_path / "w0")
    separate = [runner.invoke(app, ["table", "-w", w, *form]) for form in (["-m", "emt", "-m", LJ_FACTORY],
                                                                          ["-m", f"emt,{LJ_FACTORY}"])]
    for out in separate:
        assert out.exit_code == 0 and _flat(out.output).count(": overall") == 2, out.output
    compared = runner.invoke(app, ["table", "-w", w, "--models", f"emt,{LJ_FACTORY}"])
    assert compared.exit_code == 0 and "2 models compared on 2 common slabs" in _flat(compared.output), compared.output


@pytest.mark.parametrize("columns", [120, 100, 80])
def test_models_never_cuts_a_name_a_user_must_type(columns):
    from surfbench.models import list_specs

    out = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, ["models"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert max(len(line) for line in lines) <= columns
    for spec in list_specs():
        assert any(f"│ {spec.name} " in line for line in lines), (spec.name, out.output)
    assert "…" not in "".join(line.split("│")[1] for line in lines if line.startswith("│"))


# ---------------------------------------------------------------------------- the mean signed error (point 5)


def test_the_mean_signed_error_is_never_called_mse(tmp_path):
    """Tables, CSV, JSON and the API say mean signed error (``mean_signed_error``), never
    ``mse``, which an ML reader takes for the mean squared error."""
    from ase.calculators.emt import EMT

    import surfbench
    from tests.workdirs import cu_dataset

    res = surfbench.evaluate(EMT(), name="emt-obj", dataset=cu_dataset(), workdir=tmp_path, progress=False)
    m = res.metrics()
    assert "mean_signed_error" in m.columns and "mse" not in m.columns
    errors = res.predictions()
    gamma = errors[errors["kind"] == "slab"]["error_gamma_j_per_m2"].to_numpy(dtype=float)
    got = m.set_index("quantity").loc["gamma", "mean_signed_error"]
    assert got == pytest.approx(np.mean(gamma), rel=1e-12) and got != pytest.approx(np.mean(gamma ** 2))
    comp = res.compare(n_boot=50)
    assert {"gamma_mean_signed_error", "gamma_mean_signed_error_lo", "gamma_mean_signed_error_hi"} <= set(comp.columns)
    assert not [c for c in comp.columns if c.endswith("_mse") or "_mse_" in c]
    out = runner.invoke(app, ["table", "-w", str(tmp_path)])
    assert out.exit_code == 0 and "mean signed error" in out.output, out.output
    assert not re.search(r"\bMSE\b", out.output), out.output


def test_softening_studies_stored_with_the_old_keys_still_report():
    """A store written before the rename holds softening payloads with ``mse_*`` keys: the report
    reads them under the new names."""
    from surfbench.report.sections.softening import _renamed

    old = {"model": "m", "rmse_before_j_per_m2": 0.3, "mse_before_j_per_m2": -0.2, "mse_after_j_per_m2": 0.01}
    new = _renamed(old)
    assert new["mean_signed_error_before_j_per_m2"] == -0.2 and new["mean_signed_error_after_j_per_m2"] == 0.01
    assert "mse_before_j_per_m2" not in new and new["rmse_before_j_per_m2"] == 0.3
    eff = pd.DataFrame([new])
    assert list(eff["mean_signed_error_before_j_per_m2"]) == [-0.2]
