"""Several models in one ``run`` (``-m a -m b``, ``--model offline``), ``--elements/--miller``
on run, table, report and export, and figures without a browser (issue 18, points 2 and 4).
Cheap: EMT and Lennard-Jones on a small Cu + Ni data file."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from ase.build import bulk, fcc111
from typer.testing import CliRunner

from surfbench.analysis.metrics import metrics
from surfbench.analysis.predictions import bulk_predictions, slab_predictions
from surfbench.cli import app
from surfbench.data.subset import Subset, SubsetError, parse_millers
from surfbench.data.userdata import write_user_dataset
from surfbench.models import registry
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.results import ResultStore
from tests.workdirs import cu_dataset

runner = CliRunner(env={"COLUMNS": "250"})
LJ = "ase.calculators.lj:LennardJones"


def cu_ni_dataset() -> Dataset:
    """Cu bulk, Cu(111), Cu(100) (tests.workdirs) plus a Ni bulk and Ni(111)."""
    cu = cu_dataset()
    nb = BulkRecord(id="Ni-bulk", element="Ni", atoms=bulk("Ni", "fcc", a=3.52, cubic=True), energy_ev=-22.0)
    ns = SurfaceRecord(id="Ni-111", element="Ni", atoms=fcc111("Ni", (1, 1, 3), a=3.52, vacuum=6.0, periodic=True),
                       energy_ev=-15.0, bulk_id=nb.id, bulk_energy_per_atom_ev=-5.5, miller=(1, 1, 1), split="test")
    return Dataset("cu-ni", {**cu.bulks, nb.id: nb}, [*cu.surfaces, ns])


@pytest.fixture
def data(tmp_path):
    return str(write_user_dataset(cu_ni_dataset(), tmp_path / "cu-ni.extxyz"))


def stored(workdir) -> dict[str, set[str]]:
    """model name -> stored record ids."""
    with ResultStore(workdir, read_only=True) as store:
        res = store.results()
    return {m: set(g["record_id"]) for m, g in res.groupby("model")}


# ---------------------------------------------------------------------------- the subset rule


def test_miller_forms_and_errors():
    assert parse_millers("110,211") == {(1, 1, 0), (2, 1, 1)}
    assert parse_millers("1 1 0") == parse_millers("(1,1,0)") == parse_millers("110") == {(1, 1, 0)}
    assert parse_millers("(1,-1,0), (2,1,1)") == {(1, -1, 0), (2, 1, 1)}
    assert parse_millers(None) is None
    for bad in ("1,1,0", "11", "abc", "(1,1)"):
        with pytest.raises(SubsetError, match="is not a Miller index"):
            parse_millers(bad)
    with pytest.raises(SubsetError, match="'Xx' is not a chemical symbol"):
        Subset.parse("Cu,Xx")


def test_subset_of_a_dataset_and_of_stored_rows():
    ds = cu_ni_dataset()
    sub = Subset.parse("Cu", None).dataset(ds)
    assert [s.id for s in sub.surfaces] == ["Cu-111", "Cu-100"] and list(sub.bulks) == ["Cu-bulk"]
    sub = Subset.parse(None, "111").dataset(ds)
    assert [s.id for s in sub.surfaces] == ["Cu-111", "Ni-111"] and set(sub.bulks) == {"Cu-bulk", "Ni-bulk"}
    assert Subset.parse("Ni", "100").dataset(ds).surfaces == []
    rows = pd.DataFrame({  # as stored: Miller index as text, bulks without one
        "record_id": ["Cu-bulk", "Cu-100", "Cu-111", "Ni-bulk", "Ni-111"],
        "kind": ["bulk", "slab", "slab", "bulk", "slab"], "element": ["Cu", "Cu", "Cu", "Ni", "Ni"],
        "miller": [None, "100", "111", None, "111"], "bulk_id": [None, "Cu-bulk", "Cu-bulk", None, "Ni-bulk"]})
    assert list(Subset.parse(None, "1 0 0").frame(rows)["record_id"]) == ["Cu-bulk", "Cu-100"]
    assert list(Subset.parse("Ni", None).frame(rows)["record_id"]) == ["Ni-bulk", "Ni-111"]
    assert Subset().frame(rows) is rows


# ---------------------------------------------------------------------------- run


def test_two_models_on_one_element(tmp_path, data):
    w = tmp_path / "w"
    out = runner.invoke(app, ["run", "-m", "emt", "-m", LJ, "-d", data, "--elements", "Cu", "-w", str(w)])
    assert out.exit_code == 0, out.output
    cu = {"Cu-bulk", "Cu-111", "Cu-100"}
    assert stored(w) == {"emt": cu, LJ: cu}  # both runs stored, Cu records only
    assert "emt: 3 computed, 0 reused, 0 failed" in out.output and f"{LJ}: 3 computed" in out.output
    assert out.output.count("━━ 3/3") == 2  # one progress bar per model
    # the comparison table: one column per model, Cu only, the numbers of the stored results
    assert "models on " in out.output and "(elements Cu)" in out.output  # the title wraps at the table's width
    assert "gamma Cu (J/m^2)" in out.output and "gamma Ni" not in out.output
    with ResultStore(w, read_only=True) as store:
        res = store.results()
    overall = metrics(bulk_predictions(res), slab_predictions(res))
    row = re.search(r"gamma all \(J/m\^2\)\s+│\s+(\S+) \(2/2\)\s+│\s+(\S+) \(2/2\)", out.output)
    rmse = overall[overall["quantity"] == "gamma"].set_index("model")["rmse"]
    assert row and [float(v) for v in row.groups()] == [round(rmse[LJ], 3), round(rmse["emt"], 3)]
    assert rmse["emt"] > 0.01 and abs(rmse[LJ] - rmse["emt"]) > 0.01  # two different models

    again = runner.invoke(app, ["run", "-m", "emt", "-m", LJ, "-d", data, "--elements", "Cu", "-w", str(w)])
    assert again.exit_code == 0 and "emt: 0 computed, 3 reused" in again.output


def test_miller_filters_what_run_evaluates(tmp_path, data):
    out = runner.invoke(app, ["run", "-m", "emt", "-d", data, "--miller", "(1,1,1)", "-w", str(tmp_path / "a")])
    assert out.exit_code == 0, out.output
    assert stored(tmp_path / "a") == {"emt": {"Cu-bulk", "Cu-111", "Ni-bulk", "Ni-111"}}
    out = runner.invoke(app, ["run", "-m", "emt", "-d", data, "--miller", "100", "--elements", "Ni,Cu",
                              "-w", str(tmp_path / "b")])
    assert out.exit_code == 0, out.output
    assert stored(tmp_path / "b") == {"emt": {"Cu-bulk", "Cu-100"}}
    out = runner.invoke(app, ["run", "-m", "emt", "-d", data, "--miller", "100", "--elements", "Ni",
                              "-w", str(tmp_path / "c")])
    assert out.exit_code == 2 and "no slabs with elements Ni; Miller 100" in out.output, out.output


def test_a_model_that_fails_to_load_does_not_stop_the_others(tmp_path, data):
    w = tmp_path / "w"
    out = runner.invoke(app, ["run", "-m", "nope", "-m", "emt", "-d", data, "--elements", "Ni", "-w", str(w)])
    assert out.exit_code == 1, out.output
    assert "error: nope: unknown model 'nope'" in out.output and "nope: not run" in out.output
    assert stored(w) == {"emt": {"Ni-bulk", "Ni-111"}}
    assert "(elements Ni)" in out.output and "gamma Ni (J/m^2)" in out.output and "Traceback" not in out.output


def test_several_models_refuse_one_models_options(tmp_path, data):
    out = runner.invoke(app, ["run", "-m", "emt", "-m", LJ, "--model-kwargs", '{"sigma": 2.3}', "-d", data,
                              "-w", str(tmp_path)])
    assert out.exit_code == 2 and "give a single --model with them" in out.output, out.output


def test_offline_runs_the_ready_models_and_lists_the_others(tmp_path, data, monkeypatch):
    """A temporary registry of three entries stands for the whole registry (no universal model
    is run): one ready, one whose package is missing, one whose local weights are missing."""
    entries = [
        {"name": "emt-here", "family": "EMT", "backend": "surfbench.models.loaders.ase_factory:AseFactoryBackend",
         "kwargs": {"factory": "ase.calculators.emt:EMT"}, "package": "ase",
         "weights": {"source": "code", "path": "ase/calculators/emt.py"}},
        {"name": "not-installed", "family": "EMT", "backend": "surfbench.models.loaders.ase_factory:AseFactoryBackend",
         "kwargs": {"factory": "ase.calculators.emt:EMT"}, "package": "surfbench-no-such-package",
         "weights": {"source": "code", "path": "x.py"}},
        {"name": "lost-weights", "family": "EMT", "backend": "surfbench.models.loaders.ase_factory:AseFactoryBackend",
         "kwargs": {"factory": "ase.calculators.emt:EMT"}, "package": "ase",
         "weights": {"source": "local", "path": str(tmp_path / "gone.pt")}},
    ]
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"models": [{**e, "licence": "LGPL-2.1-or-later", "citation": "-"} for e in entries]}))
    monkeypatch.setenv("SURFBENCH_REGISTRY_EXTRA", str(extra))
    registry._registry_for.cache_clear()
    mine = {e["name"] for e in entries}
    monkeypatch.setattr(registry, "list_specs", lambda: [s for s in registry._registry().values() if s.name in mine])

    w = tmp_path / "w"
    out = runner.invoke(app, ["run", "--model", "offline", "-d", data, "--elements", "Ni", "-w", str(w)])
    assert out.exit_code == 0, out.output
    assert "offline: 1 model(s) ready here: emt-here" in out.output
    assert "skipped not-installed: package missing" in out.output and "skipped lost-weights: weights missing" in out.output
    assert stored(w) == {"emt-here": {"Ni-bulk", "Ni-111"}}
    models = runner.invoke(app, ["models"])  # the same verdicts as 'surfbench models'
    assert re.search(r"emt-here .*│ ready", models.output) and re.search(r"lost-weights .*│ weights missing", models.output)


# ---------------------------------------------------------------------------- table, export, report


@pytest.fixture
def filled(tmp_path, data):
    w = tmp_path / "filled"
    out = runner.invoke(app, ["run", "-m", "emt", "-m", LJ, "-d", data, "-w", str(w)])
    assert out.exit_code == 0, out.output
    return w


def test_table_export_report_show_the_subset(tmp_path, filled):
    table = runner.invoke(app, ["table", "-w", str(filled), "--models", "all", "--elements", "Ni"])
    assert table.exit_code == 0, table.output
    assert "gamma Ni (J/m^2)" in table.output and "gamma Cu" not in table.output and "(1/1)" in table.output
    table = runner.invoke(app, ["table", "-w", str(filled), "-m", "emt", "--miller", "100"])
    assert table.exit_code == 0 and "(Miller 100)" in table.output, table.output
    assert "coverage: 2/2 structures evaluated ok; gamma for 1/1 slabs" in table.output  # Cu bulk and Cu(100)
    assert "│ Ni" not in table.output

    csv = tmp_path / "ni.csv"
    out = runner.invoke(app, ["export", "-o", str(csv), "-w", str(filled), "--miller", "111", "--elements", "Ni"])
    assert out.exit_code == 0, out.output
    df = pd.read_csv(csv)
    assert sorted(zip(df["model"], df["record_id"])) == sorted((m, r) for m in ("emt", LJ) for r in ("Ni-bulk", "Ni-111"))

    out = runner.invoke(app, ["report", "-w", str(filled), "--elements", "Cu", "--no-png", "--n-boot", "20",
                              "-o", str(tmp_path / "rep" / "cu.html")])
    assert out.exit_code == 0, out.output
    per_element = pd.read_csv(tmp_path / "rep" / "cu-metrics-per-element.csv")
    assert set(per_element["element"].dropna()) == {"Cu"}
    gamma = json.loads((tmp_path / "rep" / "cu-metrics.json").read_text())
    assert gamma["dataset"].endswith("cu-ni.extxyz")
    coverage = pd.read_csv(tmp_path / "rep" / "cu-coverage.csv")
    assert coverage[["bulk_n_total", "slab_n_total"]].values.tolist() == [[1, 2], [1, 2]]  # Cu bulk, (111), (100)
    out = runner.invoke(app, ["report", "-w", str(filled), "--elements", "Mo", "--no-png", "-o", str(tmp_path / "mo.html")])
    assert out.exit_code == 2 and "matches elements Mo" in out.output, out.output


@pytest.mark.parametrize("command", ["run", "table", "export", "report"])
def test_a_malformed_filter_is_a_clear_error(tmp_path, filled, data, command):
    args = {"run": ["run", "-m", "emt", "-d", data], "table": ["table"], "export": ["export", "-o", str(tmp_path / "x.csv")],
            "report": ["report", "--no-png", "-o", str(tmp_path / "r.html")]}[command]
    out = runner.invoke(app, [*args, "-w", str(filled), "--miller", "1,1,0"])
    assert out.exit_code == 2 and "--miller '1,1,0': '1' is not a Miller index" in out.output, out.output
    out = runner.invoke(app, [*args, "-w", str(filled), "--elements", "Cu,Qq"])
    assert out.exit_code == 2 and "'Qq' is not a chemical symbol" in out.output, out.output
    assert "Traceback" not in out.output and not (tmp_path / "x.csv").exists() and not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------------------- figures without a browser


@pytest.fixture
def no_browser(monkeypatch):
    """kaleido as it is without Chrome/Chromium: it raises ChromeNotFoundError (plotly turns it
    into a RuntimeError), also when its shared browser is started."""
    import kaleido
    from kaleido.errors import ChromeNotFoundError

    def missing(*args, **kwargs):
        raise ChromeNotFoundError("no Chrome/Chromium found (simulated)")

    monkeypatch.setattr(kaleido, "calc_fig_sync", missing)
    monkeypatch.setattr(kaleido, "start_sync_server", missing)


def warnings_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("warning:")]


def test_explore_without_a_browser_writes_html_and_warns_once(tmp_path, data, no_browser):
    out = runner.invoke(app, ["data", "explore", data, "-o", str(tmp_path / "ex")])
    assert out.exit_code == 0, out.output
    assert warnings_in(out.output) == [
        "warning: PNG not written for 2 figure(s), HTML only (RuntimeError: Kaleido requires Google Chrome to be "
        "installed.); PNG export needs Chrome/Chromium (e.g. Debian's 'chromium'); --no-png skips it"]
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == [
        "cu-ni.extxyz-gamma-per-element.html", "cu-ni.extxyz-surfaces-per-element.html"]
    assert "cu-ni.extxyz: 3 slabs, 2 bulks" in out.output

    strict = runner.invoke(app, ["data", "explore", data, "-o", str(tmp_path / "strict"), "--require-png"])
    assert strict.exit_code == 2 and "could not write" in strict.output and ".png" in strict.output, strict.output
    assert "Traceback" not in strict.output


def test_report_without_a_browser_writes_html_and_warns_once(tmp_path, filled, no_browser):
    out = runner.invoke(app, ["report", "-w", str(filled), "--n-boot", "20", "-o", str(tmp_path / "r.html")])
    assert out.exit_code == 0, out.output
    [warning] = [w for w in warnings_in(out.output) if "PNG" in w]
    n_html = len(list((tmp_path / "r-figures").glob("*.html")))
    assert n_html >= 5 and warning.startswith(f"warning: PNG not written for {n_html} figure(s), HTML only")
    assert (tmp_path / "r.html").is_file() and not list((tmp_path / "r-figures").glob("*.png"))

    strict = runner.invoke(app, ["report", "-w", str(filled), "--n-boot", "20", "--require-png",
                                 "-o", str(tmp_path / "s.html")])
    assert strict.exit_code == 2 and "could not write" in strict.output, strict.output
    both = runner.invoke(app, ["report", "-w", str(filled), "--require-png", "--no-png"])
    assert both.exit_code == 2 and "contradict" in both.output
