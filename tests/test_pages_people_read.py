"""The pages a person reads (issue 27): the API reference renders one docstring style with
parameter tables and no raw reST (``:func:``, ``::``), and, in headless Chromium at 1400 and
1000 px, no legend or title of the report's figures and nothing of the API page is cut at the
window's or the figure's edge. The screenshots are written to ``$SURFBENCH_SCREENSHOTS`` when
set (for a person to look at), else into the test's temporary folder."""

from __future__ import annotations

import base64
import html
import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.workdirs import cu_dataset

WIDTHS = (1400, 1000)
#: reST that a numpy/Markdown docstring must not show as text
RAW_REST = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj|py:\w+):`")


def _text(page: str) -> str:
    body = re.sub(r"<script.*?</script>|<style.*?</style>|<pre.*?</pre>|<code.*?</code>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def api_site(tmp_path_factory) -> Path:
    """The API page built with the project's mkdocstrings settings (mkdocs.yml), without the
    rest of the site (the full strict build, tutorial executed, is tests/test_docs.py's)."""
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is not installed (pip install -e '.[docs]')")
    root = tmp_path_factory.mktemp("api-site")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    plugins = [p for p in config["plugins"] if isinstance(p, dict) and "mkdocstrings" in p]
    handler = plugins[0]["mkdocstrings"]["handlers"]["python"]
    handler["paths"] = [str(REPO / "src")]
    (root / "docs").mkdir()
    shutil.copy(REPO / "docs" / "api.md", root / "docs" / "api.md")
    (root / "mkdocs.yml").write_text(yaml.safe_dump({
        "site_name": "api", "docs_dir": "docs", "theme": config["theme"], "nav": [{"Python API": "api.md"}],
        "markdown_extensions": config["markdown_extensions"], "plugins": ["search", *plugins],
        "validation": {"links": {"not_found": "ignore"}},  # the page links other pages of the site
    }))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--site-dir", str(root / "site")], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root / "site" / "api" / "index.html"


def test_the_api_page_shows_no_raw_rest_and_tables_of_parameters(api_site):
    import surfbench.api

    page = api_site.read_text()
    text = _text(page)
    assert not RAW_REST.findall(text), sorted(set(RAW_REST.findall(text)))
    assert "::" not in text, [text[max(0, m.start() - 80):m.end() + 20] for m in re.finditer("::", text)][:5]
    # evaluate's parameters as a table: one row per parameter of its signature, with its type
    start = page.index('id="surfbench.api.evaluate"')
    section = page[start:page.index('id="surfbench.api.load_results"')]
    assert re.search(r"<th>\s*Name\s*</th>\s*<th>\s*Type\s*</th>\s*<th>\s*Description\s*</th>", section), section[:3000]
    for name in inspect.signature(surfbench.api.evaluate).parameters:
        assert re.search(rf"<code>{name}</code>", section), f"evaluate's parameter {name} is not in its table"
    assert "Returns" in _text(section) and "Raises" in _text(section)


# ---------------------------------------------------------------------------- headless Chromium
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).is_file() or not Path(CHROMEDRIVER).is_file():
        return "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (the test extra)"
    return None


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}", "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SURFBENCH_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _screenshot(driver, path: Path, width: int) -> None:
    """The whole page at this window width, as PNG."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 16000), "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


#: every text of a figure (legend entries, title, axis titles) that lies outside the figure's
#: drawing, its container or the window, with its box: [] when nothing is cut
_CUT_TEXTS = """
const vw = document.documentElement.clientWidth;
const cut = [];
document.querySelectorAll('.js-plotly-plot').forEach(p => {
  const box = p.closest('.figure').getBoundingClientRect();
  const svg = p.querySelector('svg.main-svg').getBoundingClientRect();
  const left = Math.max(box.left, svg.left, 0), right = Math.min(box.right, svg.right, vw);
  p.querySelectorAll('.legendtext, .gtitle, .g-xtitle text, .g-ytitle text, .colorbar .cbtitle text').forEach(t => {
    const r = t.getBoundingClientRect();
    if (r.width > 0 && (r.left < left - 1 || r.right > right + 1))
      cut.push(p.id + ': "' + t.textContent + '" spans ' + Math.round(r.left) + '-' + Math.round(r.right)
               + ' px, visible ' + Math.round(left) + '-' + Math.round(right));
  });
  // a legend Plotly had to scroll (too many or too long entries for its box) hides entries too
  if (p.querySelector('.legend .scrollbar') && p.querySelector('.legend .scrollbar').getAttribute('height') > 0)
    cut.push(p.id + ': legend scrolls');
});
return cut;"""


@pytest.fixture(scope="module")
def two_model_report(tmp_path_factory) -> Path:
    """A report of two models with a long name (an ASE factory) and failures in its legends."""
    from surfbench.execution.runner import run
    from surfbench.models import load_model
    from surfbench.report.html import build_report
    from surfbench.store.results import ResultStore

    root = tmp_path_factory.mktemp("report")
    with ResultStore(root) as store:
        for name in ("emt", "ase.calculators.lj:LennardJones"):
            run(cu_dataset(), load_model(name), store)
        return build_report(store, None, "all", "static", root / "report.html", png=False, n_boot=50)


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_no_legend_or_title_of_the_report_is_cut_at_1400_and_1000_px(two_model_report, browser, tmp_path):
    shots = _shots_dir(tmp_path)
    problems = {}
    for width in WIDTHS:
        browser.set_window_size(width, 1000)
        browser.get(two_model_report.resolve().as_uri())
        deadline = time.time() + 60
        count = "return document.querySelectorAll('.js-plotly-plot svg.main-svg').length"
        while time.time() < deadline and browser.execute_script(count) < 4:
            time.sleep(0.3)
        time.sleep(1.0)  # responsive figures redraw at their container's width
        ids = browser.execute_script("return Array.from(document.querySelectorAll('.js-plotly-plot')).map(e => e.id)")
        assert {"fig-parity-gamma", "fig-error-correlation"} <= set(ids), ids
        cut = browser.execute_script(_CUT_TEXTS)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 1:  # a table or figure ran past the window's edge
            cut.append(f"the page is {overflow} px wider than the window")
        if cut:
            problems[width] = cut
        # the words themselves are on the page: the parity legend names each model with its RMSE
        legend = browser.execute_script(
            "return Array.from(document.querySelectorAll('#fig-parity-gamma .legendtext')).map(t => t.textContent)")
        assert any(t.startswith("ase.calculators.lj:LennardJones: RMSE") for t in legend), legend
        title = browser.execute_script("return document.querySelector('#fig-error-correlation .gtitle').textContent")
        assert title.startswith("Correlation of the γ errors between models"), title
        _screenshot(browser, shots / f"report-{width}.png", width)
    assert not problems, problems


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_the_api_page_fits_the_window_at_1400_and_1000_px(api_site, browser, tmp_path):
    shots = _shots_dir(tmp_path)
    for width in WIDTHS:
        browser.set_window_size(width, 1000)
        browser.get(api_site.resolve().as_uri())
        time.sleep(0.5)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{width} px: the page is {overflow} px wider than the window"
        # evaluate's parameter table lies inside the window, every cell readable
        outside = browser.execute_script("""
            const vw = document.documentElement.clientWidth;
            const sec = document.getElementById('surfbench.api.evaluate').closest('.doc-function') || document.body;
            return Array.from(sec.querySelectorAll('table td, table th')).filter(c => {
              const r = c.getBoundingClientRect(); return r.width > 0 && (r.right > vw + 1 || r.left < -1); }).length;""")
        assert outside == 0, f"{width} px: {outside} cells of evaluate's parameter table are outside the window"
        # a signature is formatted one parameter a line (ruff), not cut at the code block's edge
        cut = browser.execute_script("""
            return Array.from(document.querySelectorAll('.doc-signature code, .doc-signature pre'))
              .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent.slice(0, 60));""")
        assert cut == [], f"{width} px: signatures cut at the edge: {cut}"
        _screenshot(browser, shots / f"api-{width}.png", width)
