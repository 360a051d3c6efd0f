"""The documentation: every ```python block of README.md and docs/**/*.md runs, and the site
builds with ``mkdocs build --strict``, executing the tutorial (docs/tutorial.py), whose page
then carries a plotly figure with data.

A block preceded by the line ``<!-- no-exec -->`` is shown, not run (bash, yaml and other
blocks never run). The blocks of one file run in order in one namespace, in a fresh folder,
with the real data of ``../shared/data`` as ``SURFBENCH_DATA_DIR``."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_DATA, needs_data

NO_EXEC = "<!-- no-exec -->"
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the opening fence, code)`` of each fenced ``python`` block of a
    Markdown text, in order, leaving out blocks whose previous non-blank line is
    ``<!-- no-exec -->``."""
    lines = text.splitlines()
    blocks: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m["fence"]
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        before = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        if m["lang"] in ("python", "py") and before != NO_EXEC:
            blocks.append((i + 1, textwrap.dedent("\n".join(lines[i + 1:end]))))
        i = end + 1
    return blocks


def _doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def test_python_blocks_parser():
    text = textwrap.dedent("""\
        ```python
        a = 1
        ```
        <!-- no-exec -->

        ```python
        raise SystemExit
        ```
        ```bash
        rm -rf /
        ```
        - item

          ```py
          b = a + 1
          ```
        ~~~~python
        c = 3
        ~~~~
        """)
    assert python_blocks(text) == [(1, "a = 1"), (14, "b = a + 1"), (17, "c = 3")]


def test_readme_and_docs_have_python_blocks():
    """The README shows the Python API, and so do the docs: the test below is not empty."""
    assert python_blocks((REPO / "README.md").read_text()), "README.md has no ```python block"
    assert sum(len(python_blocks(p.read_text())) for p in _doc_files()[1:]) >= 2


@needs_data
@pytest.mark.parametrize(
    "doc", [p for p in _doc_files() if python_blocks(p.read_text())], ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_run(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SURFBENCH_DATA_DIR", str(SHARED_DATA))
    from surfbench.models import registry

    # evaluate() makes its work folder the registry's project folder: restored afterwards
    monkeypatch.setattr(registry, "_project_file", registry._project_file)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, code in python_blocks(doc.read_text()):
        exec(compile(code, f"{doc.relative_to(REPO)}:{line}", "exec"), namespace)  # noqa: S102


def _plotly_figures(html: str) -> list[list[dict]]:
    """The data (list of traces) of every ``Plotly.newPlot(id, data, layout, ...)`` of a page."""
    figures, decoder = [], json.JSONDecoder()
    for m in re.finditer(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*", html):
        data, _ = decoder.raw_decode(html, m.end())
        figures.append(data)
    return figures


def _finite_numbers(values) -> list[float]:
    if isinstance(values, dict) and "bdata" in values:  # plotly >= 6 packs arrays as base64
        import base64

        import numpy as np

        arr = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
        return [float(v) for v in arr if math.isfinite(v)]
    return [float(v) for v in values or [] if isinstance(v, int | float) and math.isfinite(v)]


@needs_data
def test_mkdocs_build_strict_with_executed_tutorial(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_jupyter"):
        pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[docs]' (CI installs it "
                                           "through the test extra)")
    env = {**os.environ, "SURFBENCH_DATA_DIR": str(SHARED_DATA), "NO_MKDOCS_2_WARNING": "1",
           # the tutorial's kernel is the "python" first on PATH: this interpreter's
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    assert "Converting notebook (execute=True)" in proc.stderr, "the tutorial was not executed"

    page = (site / "tutorial" / "index.html").read_text()
    assert "Traceback" not in page
    figures = _plotly_figures(page)
    assert figures, "the tutorial page has no plotly figure"
    # the parity plot: one point per Cu and Ni slab, at the data set's DFT gamma (customdata[0]
    # is the record id)
    from surfbench.execution.dataset_cache import load_dataset_cached

    slabs = {s.id: s for s in load_dataset_cached("mlearn-surfaces", SHARED_DATA).surfaces if s.element in ("Cu", "Ni")}
    points = [trace for fig in figures for trace in fig
              if trace.get("type") == "scatter" and trace.get("customdata")]
    assert points, f"no figure of the tutorial has data points: {figures!r:.2000}"
    ids = [row[0] for trace in points for row in trace["customdata"]]
    dft = [x for trace in points for x in _finite_numbers(trace["x"])]
    assert sorted(ids) == sorted(slabs)
    assert dft == pytest.approx([slabs[i].dft_gamma_j_per_m2 for i in ids], abs=1e-9)
    assert all(len(_finite_numbers(trace["y"])) == len(trace["customdata"]) for trace in points)

    api = (site / "api" / "index.html").read_text()
    assert 'id="surfbench.api.evaluate"' in api, "the API reference has no surfbench.api.evaluate"


def test_training_presets_table_is_the_code_s():
    """docs/commands/train.md shows the presets the training drivers use (``preset_table``)."""
    from surfbench.training.presets import preset_table

    assert preset_table() in (REPO / "docs" / "commands" / "train.md").read_text(), (
        "the presets table of docs/commands/train.md differs from surfbench.training.presets.preset_table(): "
        "paste its output there")


def _slug(heading: str) -> str:
    """The anchor of a Markdown heading, as GitHub and MkDocs' toc both make it for plain
    headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_links_resolve():
    """The README's relative links (to the docs pages, read on GitHub too) name existing files
    and, after '#', a heading of that file."""
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in relative), "the README links no docs page"
    for link in relative:
        path, _, anchor = link.partition("#")
        target = REPO / path if path else REPO / "README.md"
        assert target.is_file(), f"README.md links {link}: no such file"
        if anchor:
            headings = [ln.lstrip("#") for ln in target.read_text().splitlines() if re.match(r"#{1,6} ", ln)]
            assert anchor in {_slug(h) for h in headings}, f"README.md links {link}: {path} has no such heading"
