"""The command-line interface on the real data set, with cheap models."""

import re

import pandas as pd
from typer.testing import CliRunner

from surfbench.cli import app
from tests.conftest import needs_data

runner = CliRunner(env={"COLUMNS": "250"})


def test_models_lists_registry():
    out = runner.invoke(app, ["models"])
    assert out.exit_code == 0, out.output
    assert "chgnet-0.3.0" in out.output and "412,525" in out.output and "emt" in out.output


def test_unknown_model_is_a_clear_error(tmp_path):
    out = runner.invoke(app, ["run", "--model", "nope", "--dataset", "nope", "--workdir", str(tmp_path)])
    assert out.exit_code == 2
    assert "unknown data set 'nope'" in out.output


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
