"""The command-line interface on the real data set, with cheap models."""

import re

import pandas as pd
from ase.build import bulk, fcc111
from ase.io import write
from typer.testing import CliRunner

from surfbench.cli import app
from surfbench.store.results import ResultStore
from tests.conftest import needs_data

runner = CliRunner(env={"COLUMNS": "250"})


def test_models_lists_registry():
    out = runner.invoke(app, ["models"])
    assert out.exit_code == 0, out.output
    assert "chgnet-0.3.0" in out.output and "412,525" in out.output and "emt" in out.output


def test_unknown_dataset_is_a_clear_error(tmp_path):
    out = runner.invoke(app, ["run", "--model", "emt", "--dataset", "nope", "--workdir", str(tmp_path)])
    assert out.exit_code == 2
    assert "unknown data set 'nope'" in out.output


def test_unknown_model_is_a_clear_error(tmp_path):
    """A valid data set (a user file: a Cu bulk and a slab) and a model name the registry lacks."""
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.info.update(kind="bulk", name="cu-bulk", energy=-16.0)
    slab = fcc111("Cu", size=(1, 1, 3), a=3.6, vacuum=6.0, periodic=True)
    slab.info.update(kind="slab", name="cu-111", energy=-10.5, miller="1 1 1")
    data = tmp_path / "cu.extxyz"
    write(data, [cu, slab], format="extxyz")
    out = runner.invoke(app, ["run", "--model", "nope", "--dataset", str(data), "--workdir", str(tmp_path / "w")])
    assert out.exit_code == 2, out.output
    assert "unknown model 'nope'" in out.output and "emt" in out.output  # the known names are listed
    assert "Traceback" not in out.output
    with ResultStore(tmp_path / "w") as store:
        assert store.results().empty


def test_table_without_store(tmp_path):
    out = runner.invoke(app, ["table", "--workdir", str(tmp_path)])
    assert out.exit_code == 2 and "no result store" in out.output


@needs_data
def test_run_table_export_on_mlearn_with_emt(tmp_path, data_dir):
    args = ["run", "--model", "emt", "--split", "test", "--workdir", str(tmp_path), "--data-dir", str(data_dir)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    text = out.output
    # 11 test slabs + the 6 bulk references; EMT knows Ni and Cu only
    assert "17 computed, 0 reused" in text
    assert "unsupported_element" in text
    assert re.search(r"Cu\s+│\s+2/2", text) and re.search(r"Mo\s+│\s+0/2", text)
    assert "coverage: 6/17 structures evaluated ok; gamma for 4/11 slabs" in text

    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "0 computed, 17 reused" in again.output

    table = runner.invoke(app, ["table", "--workdir", str(tmp_path)])
    assert table.exit_code == 0
    # the reprinted per-element table equals the one printed by run
    def per_element(s):
        return s[s.index("per element"): s.index("gamma per Miller")]

    assert per_element(table.output) == per_element(text)

    csv = tmp_path / "out.csv"
    exp = runner.invoke(app, ["export", "-o", str(csv), "--workdir", str(tmp_path)])
    assert exp.exit_code == 0, exp.output
    df = pd.read_csv(csv)
    assert len(df) == 17 and set(df["status"]) == {"ok", "failed"}
    assert df.loc[df["status"] == "failed", "energy_ev"].isna().all()


@needs_data
def test_data_explore_writes_both_figures(tmp_path, data_dir):
    import shutil

    from PIL import Image

    if not (shutil.which("chromium") or shutil.which("google-chrome")):
        import pytest

        pytest.skip("PNG export needs Chrome/Chromium (Debian package 'chromium'; .ci/run installs it)")
    out = runner.invoke(app, ["data", "explore", "mlearn-surfaces", "-o", str(tmp_path), "--data-dir", str(data_dir)])
    assert out.exit_code == 0, out.output
    assert "75 slabs, 6 bulks, 6 elements" in out.output and "13 Miller indices" in out.output
    assert "5 reconstructed (6.7 %)" in out.output
    for stem in ("mlearn-surfaces-surfaces-per-element", "mlearn-surfaces-gamma-per-element"):
        html = (tmp_path / f"{stem}.html").read_text()
        # self-contained: plotly.js embedded, no script fetched from the network
        assert len(html) > 1_000_000 and re.search(r"<script[^>]*\bsrc=", html) is None
        img = Image.open(tmp_path / f"{stem}.png").convert("L")
        lo, hi = img.getextrema()
        assert img.size[0] > 800 and hi - lo > 100  # not blank
    html = (tmp_path / "mlearn-surfaces-gamma-per-element.html").read_text()
    assert "surface energy γ (J\\u002fm²)" in html and "n=13" in html


@needs_data
def test_data_validate_cli(tmp_path, mlearn_surfaces):
    from surfbench.data.userdata import write_user_dataset

    good = write_user_dataset(mlearn_surfaces, tmp_path / "good.extxyz")
    out = runner.invoke(app, ["data", "validate", str(good)])
    assert out.exit_code == 0 and "OK, 75 slabs, 6 bulks" in out.output
    bad = tmp_path / "bad.extxyz"
    bad.write_text(good.read_text().replace("energy=", "enrgy=", 1))
    out = runner.invoke(app, ["data", "validate", str(bad)])
    assert out.exit_code == 1 and "#0" in out.output and "missing energy" in out.output
