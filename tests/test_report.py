"""The HTML report: files, numbers equal to analysis.metrics, self-contained page, sections,
and the page rendered in a headless Chromium (console errors, every figure drawn, not blank).

The store is built here from a small synthetic data set (Cu, Ni fcc and Mo bcc slabs whose
"DFT" energies are made from chosen surface energies) evaluated with three cheap models: EMT
(knows Cu and Ni, fails on Mo), Lennard-Jones and a calculator that always raises.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk, surface

from surfbench.analysis.metrics import failure_counts, metrics
from surfbench.analysis.predictions import bulk_predictions, slab_predictions
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.records import BulkRecord, Dataset, SurfaceRecord, in_plane_area_a2
from surfbench.report.html import SECTIONS, ReportError, build_report
from surfbench.store.results import ResultStore
from surfbench.units import EV_PER_A2_IN_J_PER_M2
from tests.conftest import needs_data

#: element -> (lattice, a, bulk energy per atom (eV), {Miller index: DFT gamma (J/m^2)})
SYNTHETIC = {
    "Cu": ("fcc", 3.61, -3.7, {(1, 1, 1): 1.30, (1, 0, 0): 1.45, (1, 1, 0): 1.55, (3, 1, 1): 1.58, (2, 1, 0): 1.62}),
    "Ni": ("fcc", 3.52, -5.5, {(1, 1, 1): 1.92, (1, 0, 0): 2.21, (1, 1, 0): 2.29, (3, 1, 1): 2.30}),
    "Mo": ("bcc", 3.15, -10.9, {(1, 1, 0): 2.82, (1, 0, 0): 3.20, (1, 1, 1): 2.97, (2, 1, 0): 3.11}),
}
MODELS = [("emt", None), ("ase.calculators.lj:LennardJones", {"sigma": 2.3, "epsilon": 0.4, "rc": 6.0}),
          ("tests.calcs:Raising", None)]


def synthetic_dataset() -> Dataset:
    bulks, slabs = {}, []
    for el, (lattice, a, e_b, gammas) in SYNTHETIC.items():
        cell = bulk(el, lattice, a=a, cubic=True)
        b = BulkRecord(id=f"{el}/bulk", element=el, atoms=cell, energy_ev=e_b * len(cell), split="train")
        bulks[b.id] = b
        for hkl, gamma in gammas.items():
            atoms = surface(cell, hkl, 4, vacuum=7.0, periodic=True)
            area = in_plane_area_a2(atoms, 2)
            energy = e_b * len(atoms) + 2.0 * area * gamma / EV_PER_A2_IN_J_PER_M2
            slabs.append(SurfaceRecord(
                id=f"{el}/{''.join(map(str, hkl))}", element=el, atoms=atoms, energy_ev=energy, bulk_id=b.id,
                bulk_energy_per_atom_ev=e_b, miller=hkl, split="test",
            ))
    return Dataset("toy-surfaces", bulks, slabs)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-store")
    ds = synthetic_dataset()
    with ResultStore(root) as store:
        for name, kwargs in MODELS:
            run(ds, load_model(name, kwargs=kwargs), store)
    return root


@pytest.fixture(scope="module")
def report(store_dir) -> Path:
    with ResultStore(store_dir) as store:
        return build_report(store, "toy-surfaces", None, "static", store_dir / "out" / "report.html", n_boot=500)


@pytest.fixture(scope="module")
def payload(report) -> dict:
    return json.loads(report.with_name("report-metrics.json").read_text())


def _results(store_dir: Path) -> pd.DataFrame:
    with ResultStore(store_dir) as store:
        return store.results("toy-surfaces", protocol="static")


def test_files_sections_and_self_contained(report, payload):
    html = report.read_text()
    # one self-contained page: no external script, no CDN, plotly.js embedded exactly once
    assert re.search(r"<script[^>]*\bsrc=", html) is None
    head, body = html.split("</head>", 1)
    assert "<script type='text/javascript'>/**" in head  # plotly.js, inline in the head
    assert "cdn.plot.ly" not in body and "cdn.jsdelivr" not in body and "mathjax" not in body.lower()
    assert body.count("Plotly.newPlot") == len(payload["figures"]["in_report"])
    for sid, heading in SECTIONS.items():
        assert f'<section id="{sid}">' in html, sid
        assert heading.split(" (")[0].replace("&", "&amp;") in html
    assert f"<meta name='surfbench-figures' content='{len(payload['figures']['in_report'])}'>" in html
    # title, data set, date
    assert "surfbench report: toy-surfaces" in html and payload["generated_utc"][:10] in html
    # the three models, their fingerprints and versions
    for m in payload["models"]:
        assert m["fingerprint"] in html
    assert "ase" in html and payload["models"][0]["details"].get("python", "") in html
    # files beside the HTML
    stem = report.with_suffix("")
    for name in ("metrics-overall", "metrics-per-element", "metrics-per-miller", "comparison", "comparison-pairs",
                 "coverage", "failures", "error-correlation", "facets", "facets-dft", "wulff"):
        assert Path(f"{stem}-{name}.csv").is_file(), name
    fig_dir = Path(f"{stem}-figures")
    names = payload["figures"]["in_report"] + payload["figures"]["files_only"]
    assert {"parity-bulk-energy", "parity-slab-energy", "parity-gamma", "gamma-error-distribution",
            "rmse-per-miller", "error-correlation", "facet-ordering-kendall", "wulff-shapes-1",
            "comparison-table", "facet-ordering-table"} <= set(names)
    assert sum(n.startswith("ptable-") for n in names) == 3  # one periodic table per model
    for n in names:
        assert (fig_dir / f"{n}.html").is_file(), n
        png = fig_dir / f"{n}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", n
    assert payload["warnings"] == []


def _key(row, keys):
    return tuple(None if isinstance(row[k], float) and math.isnan(row[k]) else row[k] for k in keys)


def _by_key(rows, keys):
    return {_key(r, keys): r for r in rows}


def test_json_numbers_equal_analysis_metrics(store_dir, report, payload):
    res = _results(store_dir)
    bulks, slabs = bulk_predictions(res), slab_predictions(res)
    for name, by in (("overall", None), ("per_element", "element"), ("per_miller", "miller")):
        ref = metrics(bulks, slabs, by=by)
        keys = ["fingerprint", "quantity"] + ([by] if by else [])
        got = _by_key(payload["metrics"][name], keys)
        assert len(got) == len(ref) > 0
        for row in ref.to_dict(orient="records"):
            g = got[_key(row, keys)]
            for col in ("n_ok", "n_failed", "n_total"):
                assert g[col] == row[col]
            for col in ("mae", "rmse", "mean_signed_error", "max_abs"):
                if math.isnan(row[col]):
                    assert g[col] is None
                else:
                    assert g[col] == pytest.approx(row[col], rel=1e-12, abs=0)
    # the CSV holds the same numbers
    csv = pd.read_csv(report.with_name("report-metrics-overall.csv"))
    ref = metrics(bulks, slabs).sort_values(["fingerprint", "quantity"]).reset_index(drop=True)
    csv = csv.sort_values(["fingerprint", "quantity"]).reset_index(drop=True)
    np.testing.assert_allclose(csv["rmse"], ref["rmse"], rtol=1e-12)
    # failure kinds as analysis.metrics.failure_counts counts them
    fails = failure_counts(bulks, slabs)
    assert sum(r["count"] for r in payload["failures"]) == int(fails["count"].sum()) > 0


def test_comparison_confidence_intervals_and_coverage(store_dir, report, payload):
    from surfbench.analysis.uncertainty import bootstrap_stats

    res = _results(store_dir)
    slabs = slab_predictions(res)
    comp = {r["model"]: r for r in payload["comparison"]}
    emt = slabs[slabs["model"] == "emt"]["error_gamma_j_per_m2"].to_numpy(dtype=float)
    ref = bootstrap_stats(emt, n_boot=500, seed=0, ci=0.95)
    row = comp["emt"]
    assert row["gamma_n_ok"] == ref["n"] == 9  # Mo fails under EMT
    for k in ("rmse", "rmse_lo", "rmse_hi", "mae", "mean_signed_error_lo"):
        assert row[f"gamma_{k}"] == pytest.approx(ref[k], rel=1e-12)
    assert row["gamma_rmse_lo"] <= row["gamma_rmse"] <= row["gamma_rmse_hi"]
    # paired comparison on the common slabs: emt and LJ only (the raising model has no gamma)
    pairs = [p for p in payload["comparison_pairs"] if p["quantity"] == "gamma"]
    assert len(pairs) == 1 and pairs[0]["n_common"] == 9
    # coverage: EMT fails on Mo with unsupported_element, the raising model everywhere
    cov = {r["model"]: r for r in payload["coverage"]}
    assert (cov["emt"]["gamma_n_ok"], cov["emt"]["gamma_n_failed"], cov["emt"]["gamma_n_total"]) == (9, 4, 13)
    assert "unsupported_element" in cov["emt"]["failures"]
    raising = next(m for m in cov if m.startswith("tests.calcs:Raising") or "Raising" in m)
    assert cov[raising]["bulk_n_ok"] == 0 and cov[raising]["slab_n_failed"] == 13
    html = report.read_text()
    assert "unsupported_element" in html and "calculator_error" in html


def test_facets_and_wulff(payload):
    facets = payload["facets"]
    cu = [f for f in facets if f["bulk_id"] == "Cu/bulk" and f["model"] == "emt"]
    assert len(cu) == 1 and cu[0]["dft_top"][0] == "111" and cu[0]["n_facets"] == 5
    dft = [w for w in payload["wulff"] if w["bulk_id"] == "Cu/bulk" and w["source"] == "DFT" and w["model"] == "DFT"]
    assert len(dft) == 1 and dft[0]["problem"] is None
    assert 1.3 <= dft[0]["weighted_surface_energy"] <= 1.62
    assert dft[0]["area_fraction"]["111"] == max(dft[0]["area_fraction"].values())


def test_selection_and_cli_errors(store_dir, tmp_path):
    from typer.testing import CliRunner

    from surfbench.cli import app

    with ResultStore(store_dir) as store:
        with pytest.raises(ReportError, match="no stored run of 'nope'"):
            build_report(store, "toy-surfaces", ["nope"], "static", tmp_path / "r.html", png=False)
        with pytest.raises(ReportError, match="protocol 'relax'"):
            build_report(store, "toy-surfaces", None, "relax", tmp_path / "r.html", png=False)
    runner = CliRunner(env={"COLUMNS": "200"})
    out = runner.invoke(app, ["report", "--workdir", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")])
    assert out.exit_code == 2 and "no result store" in out.output
    out = runner.invoke(app, ["report", "--workdir", str(store_dir), "--models", "emt,nope", "-o", str(tmp_path / "r.html")])
    assert out.exit_code == 2 and "nope" in out.output
    lj = "ase.calculators.lj:LennardJones"
    out = runner.invoke(app, ["report", "--workdir", str(store_dir), "--models", f"emt,{lj}", "--no-png",
                              "--n-boot", "200", "-o", str(tmp_path / "two.html")])
    assert out.exit_code == 0, out.output
    payload = json.loads((tmp_path / "two-metrics.json").read_text())
    assert sorted(payload["model_order"]) == sorted(["emt", lj])
    assert not list((tmp_path / "two-figures").glob("*.png"))


# ---------------------------------------------------------------------------- browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return "chromium not installed (Debian package 'chromium')"
    if not Path(CHROMEDRIVER).is_file():
        return "chromedriver not installed (Debian package 'chromium-driver')"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install selenium)"
    return None


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_report_renders_in_headless_chromium(report, payload, tmp_path):
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(dir=tmp_path)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--window-size=1500,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(report.resolve().as_uri())
        expected = len(payload["figures"]["in_report"])
        count_js = ("return Array.from(document.querySelectorAll('.js-plotly-plot'))"
                    ".filter(e => e.querySelector('svg.main-svg')).length")
        deadline = time.time() + 90
        while time.time() < deadline and driver.execute_script(count_js) < expected:
            time.sleep(0.5)
        assert driver.execute_script("return document.querySelectorAll('.js-plotly-plot').length") == expected
        assert driver.execute_script(count_js) == expected
        # every figure has drawn marks (traces or tables), not only an empty frame
        empty = driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot')).filter(e => "
            "!e.querySelector('.trace, .table, .heatmaplayer image, .shapelayer path')).map(e => e.id)")
        assert empty == []
        # nothing was fetched from the network
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
        assert [r for r in resources if not r.startswith(("file:", "data:", "blob:"))] == []
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe
        width = driver.execute_script("return document.documentElement.scrollWidth")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    finally:
        driver.quit()
    path = tmp_path / "report.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    img = Image.open(path).convert("L")
    assert img.size[1] > 3000  # the whole page, not one screen
    lo, hi = img.getextrema()
    assert hi - lo > 100
    pixels = np.asarray(img)
    assert (pixels < 245).mean() > 0.05


# ---------------------------------------------------------------------------- real data
@needs_data
def test_report_on_mlearn_subset(mlearn_surfaces, tmp_path):
    ds = mlearn_surfaces.select(elements={"Cu", "Ni"})
    with ResultStore(tmp_path) as store:
        for name, kwargs in MODELS[:2]:
            run(ds, load_model(name, kwargs=kwargs), store)
        path = build_report(store, None, "all", "static", tmp_path / "mlearn.html", png=False, n_boot=200)
        res = store.results(ds.name, protocol="static")
    payload = json.loads((tmp_path / "mlearn-metrics.json").read_text())
    ref = metrics(bulk_predictions(res), slab_predictions(res))
    got = _by_key(payload["metrics"]["overall"], ["model", "quantity"])
    for row in ref.to_dict(orient="records"):
        assert got[(row["model"], row["quantity"])]["rmse"] == pytest.approx(row["rmse"], rel=1e-12)
    assert payload["dataset"] == ds.name and len(payload["facets"]) == 4
    # mlearn has no Cu(111) slab: the report says so
    assert "no {111} slab" in path.read_text()


def test_wulff_shapes_drawn_for_the_bulks_models_get_most_wrong():
    """Beyond MAX_WULFF_BULKS bulks the report draws the shapes of the bulks with the largest
    |area-weighted gamma, model - DFT| of any model (bulks without a model shape last); every
    bulk's numbers stay in the tables."""
    import numpy as np
    import pandas as pd

    from surfbench.report.sections import wulff as html

    n = html.MAX_WULFF_BULKS + 3
    rows = []
    for k in range(n):
        for model, d in (("a", 0.01 * k), ("b", -0.02 * k if k % 2 else np.nan)):
            rows.append({"bulk_id": f"b{k:02d}", "source": "model", "model": model, "delta_weighted_gamma": d})
        rows.append({"bulk_id": f"b{k:02d}", "source": "DFT", "model": "a", "delta_weighted_gamma": np.nan})
    wulff = pd.DataFrame(rows)
    shown, total = html._wulff_shown(wulff, pd.DataFrame({"bulk_id": ["extra"]}))
    assert total == n + 1 and len(shown) == html.MAX_WULFF_BULKS
    # b13 (0.26), b11 (0.22), b09 (0.18), ...; 'extra' (no model row) is left out
    assert shown[:3] == ["b13", "b11", "b09"] and "extra" not in shown and "b00" not in shown
    few = wulff[wulff["bulk_id"].isin(["b01", "b02"])]
    assert html._wulff_shown(few, pd.DataFrame()) == (None, 2)
