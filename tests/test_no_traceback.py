"""The no-traceback rule: every ``surfbench`` command, in an empty, a damaged and a read-only
project folder, ends with a clear message (and exit code 2 where it cannot do its job), never
a Python traceback; bad options (device, thread count, export path) are refused up front."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from surfbench.cli import app
from surfbench.models import load_model
from surfbench.models.device import DeviceError, check_device
from surfbench.store.results import STORE_NAME
from tests.workdirs import damage, fill_store, read_only, write_cu_file

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The Cu data file, a folder for outputs, and a store of EMT's results on the data."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "data").mkdir()
    (root / "out").mkdir()
    (root / "filled").mkdir()
    fill_store(root / "filled")
    return {"data": write_cu_file(root / "data"), "out": root / "out", "filled": root / "filled"}


def _commands(w: Path, data: Path, out: Path) -> dict[str, list[str]]:
    """Every command that takes a project folder, with cheap arguments."""
    return {
        "run": ["run", "-m", "emt", "-d", str(data), "-w", str(w)],
        "softening": ["softening", "-m", "emt", "-d", "mlearn-nope", "-w", str(w)],
        "table": ["table", "-w", str(w)],
        "table --trained": ["table", "--trained", "-w", str(w)],
        # a data set the store lacks: the store is opened and read, no figure is drawn (seconds of imports)
        "report": ["report", "-w", str(w), "-d", "nope", "-o", str(out / "report.html")],
        "map": ["map", "-w", str(w), "-d", str(data), "-o", str(out / "map.html"), "--no-png", "--n-boot", "20"],
        "models": ["models", "-w", str(w)],
        "export": ["export", "-o", str(out / "x.csv"), "-w", str(w)],
        "md": ["md", "-m", "emt", "-d", str(data), "-w", str(w), "--steps", "2"],
        "train": ["train", "-m", "mace", "-e", "Cu", "--data", str(data), "-w", str(w), "--preset", "tiny"],
    }


NO_STORE, DAMAGED, NOT_WRITABLE = "no result store at", "is damaged", "cannot write the result store"
NO_DATASET = "unknown data set 'mlearn-nope'"
NEEDS_RUN, NEEDS_DATASET = "run 'surfbench run --model emt", "give the surface data set to evaluate on"
#: command -> (exit code, message) in an empty, a damaged and a read-only folder
EXPECTED = {
    "run": {"empty": (0, "3 computed, 0 reused"), "damaged": (2, DAMAGED), "read-only": (2, NOT_WRITABLE)},
    "softening": {"empty": (2, NO_DATASET), "damaged": (2, DAMAGED), "read-only": (2, NOT_WRITABLE)},
    "table": {"empty": (2, NO_STORE), "damaged": (2, DAMAGED), "read-only": (0, "coverage: 3/3 structures evaluated ok")},
    "table --trained": {"empty": (2, NO_STORE), "damaged": (2, DAMAGED), "read-only": (2, "no training recorded in")},
    "report": {"empty": (2, NO_STORE), "damaged": (2, DAMAGED), "read-only": (2, "no stored run on data set 'nope'; stored: cu-toy")},
    "map": {"empty": (2, NO_STORE), "damaged": (2, DAMAGED), "read-only": (2, "surfbench-descriptors")},
    "models": {"empty": (0, "emt"), "damaged": (0, "emt"), "read-only": (0, "emt")},
    "export": {"empty": (2, NO_STORE), "damaged": (2, DAMAGED), "read-only": (0, "wrote")},
    "md": {"empty": (2, NEEDS_RUN), "damaged": (2, DAMAGED), "read-only": (2, NOT_WRITABLE)},
    "train": {"empty": (2, NEEDS_DATASET), "damaged": (2, NEEDS_DATASET), "read-only": (2, NEEDS_DATASET)},
}


def _clean(out) -> bool:
    """No traceback printed and no exception but the command's own exit."""
    return "Traceback" not in out.output and (out.exception is None or isinstance(out.exception, SystemExit))


def _check(out, code: int, message: str) -> str | None:
    """What is wrong with a command's result, or None."""
    text = " ".join(out.output.split())
    if not _clean(out):
        return f"traceback / {out.exception!r}"
    if out.exit_code != code or message not in text:
        return f"exit {out.exit_code} (want {code}), {message!r} not in: {text[-400:]}"
    if code != 0 and "error:" not in text:
        return f"no 'error:' line: {text[-400:]}"
    return None


def _workdir(state: str, filled: Path, where: Path) -> Path:
    if state == "empty":
        where.mkdir()
    else:
        shutil.copytree(filled, where)
        if state == "damaged":
            damage(where / STORE_NAME, "truncate")
    return where


@pytest.mark.parametrize("state", ["empty", "damaged", "read-only"])
def test_every_command_in_an_empty_damaged_and_read_only_folder(state, inputs, tmp_path):
    assert set(EXPECTED) == set(_commands(tmp_path, inputs["data"], inputs["out"]))
    problems = {}
    for name in EXPECTED:
        w = _workdir(state, inputs["filled"], tmp_path / name)
        args = _commands(w, inputs["data"], inputs["out"])[name]
        if state == "read-only":
            with read_only(w):
                out = runner.invoke(app, args)
        else:
            out = runner.invoke(app, args)
        problem = _check(out, *EXPECTED[name][state])
        if problem:
            problems[name] = problem
    assert not problems, problems


def test_commands_without_a_project_folder_in_a_read_only_folder(inputs, tmp_path, monkeypatch):
    """Commands that read or write beside the current folder, run in one the user cannot write."""
    data = str(inputs["data"])
    expected = {
        ("datasets",): (0, "mlearn-surfaces"),
        ("data", "build", "mp-surfaces", "--api-key", ""): (2, "no Materials Project API key"),
        ("data", "validate", data): (0, "OK, 2 slabs, 1 bulks"),
        ("data", "explore", data, "--no-png"): (2, "explore"),  # writes ./explore: the folder is named
        ("env", "list"): (0, "universal"),
        ("env", "create", "universal", "--dry-run"): (0, "python -m venv"),
        ("env", "install", "nope"): (2, "unknown preset 'nope'"),
    }
    problems = {}
    with read_only(tmp_path):
        monkeypatch.chdir(tmp_path)
        for args, (code, message) in expected.items():
            problem = _check(runner.invoke(app, list(args)), code, message)
            if problem:
                problems[args] = problem
    assert not problems, problems


# ---------------------------------------------------------------------------- options


def test_an_unknown_device_is_refused_before_any_loading(tmp_path):
    out = runner.invoke(app, ["run", "-m", "emt", "-d", "nope", "--device", "gpu0", "-w", str(tmp_path)])
    assert out.exit_code == 2 and "unknown device 'gpu0'; use cpu, cuda, cuda:N" in out.output, out.output
    assert "unknown data set" not in out.output and not (tmp_path / STORE_NAME).exists()
    with pytest.raises(DeviceError, match="unknown device 'cuda0'"):
        load_model("emt", device="cuda0")  # every command loads its models through load_model
    assert check_device("cpu") == "cpu"


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = runner.invoke(app, ["run", "-m", "emt", "-d", "nope", "--device", "cuda", "-w", str(tmp_path)])
    assert out.exit_code == 2, out.output
    assert "device 'cuda': CUDA is not available on this machine" in " ".join(out.output.split())
    assert _clean(out)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda") == "cuda" and check_device("cuda:1") == "cuda:1"
    with pytest.raises(DeviceError, match=r"2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        check_device("cuda:2")


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_threads_must_be_positive(tmp_path, threads):
    for command in (["run", "-m", "emt", "-d", "nope"], ["softening", "-m", "emt"]):
        out = runner.invoke(app, [*command, "--threads", threads, "-w", str(tmp_path)])
        assert out.exit_code == 2 and f"--threads must be at least 1, got {threads}" in out.output, out.output


def test_export_into_a_missing_folder_is_a_clear_error(inputs, tmp_path):
    target = tmp_path / "nonexistent" / "dir" / "x.csv"
    out = runner.invoke(app, ["export", "-o", str(target), "-w", str(inputs["filled"])])
    assert out.exit_code == 2 and _clean(out)
    assert f"cannot write {target}: the folder {target.parent} does not exist" in " ".join(out.output.split())


# ---------------------------------------------------------------------------- issue 25: crash paths, lax input

def _option_cases(w: Path, filled: Path, data: Path, out: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, the message of the refusal, exit code 2)."""
    d, fw = str(data), str(filled)
    many = "99999"
    return {
        "run --threads 99999": (["run", "-m", "emt", "-d", d, "-w", str(w), "--threads", many], "--threads 99999 is more than"),
        "softening --threads 99999": (["softening", "-m", "emt", "-w", str(w), "--threads", many], "--threads 99999 is more than"),
        "md --threads 99999": (["md", "-m", "emt", "-d", d, "-w", fw, "--threads", many], "--threads 99999 is more than"),
        "run --timeout inf": (["run", "-m", "emt", "-d", d, "-w", str(w), "--timeout", "inf"],
                              "--timeout must be a positive, finite number of seconds, got inf"),
        "run --timeout 1e300": (["run", "-m", "emt", "-d", d, "-w", str(w), "--timeout", "1e300"],
                                "longer than the longest timeout"),
        "run --elements ''": (["run", "-m", "emt", "-d", d, "-w", str(w), "--elements", ""], "--elements '' names no element"),
        "table --elements ''": (["table", "-w", fw, "--elements", ""], "--elements '' names no element"),
        "report --elements ','": (["report", "-w", fw, "--elements", ",", "-o", str(out / "e.html")],
                                  "--elements ',' names no element"),
        "export --miller ''": (["export", "-w", fw, "--miller", "", "-o", str(out / "m.csv")], "--miller '' names no Miller index"),
        "run --miller ''": (["run", "-m", "emt", "-d", d, "-w", str(w), "--miller", " "], "--miller ' ' names no Miller index"),
        "run --miller 000": (["run", "-m", "emt", "-d", d, "-w", str(w), "--miller", "000"], "'000' is (0 0 0), which is no plane"),
        "run --miller '1.5 0 0'": (["run", "-m", "emt", "-d", d, "-w", str(w), "--miller", "1.5 0 0"],
                                   "'1.5 0 0' is not a Miller index"),
        "run model-built --vacuum 2": (["run", "-m", "emt", "-d", d, "-w", str(w), "--protocol", "model-built", "--vacuum", "2"],
                                       "the vacuum gap must be at least 5 Angstrom"),
        "run relaxed --fix-bottom-layers 3": (["run", "-m", "emt", "-d", d, "-w", str(w), "--protocol", "relaxed",
                                               "--fix-bottom-layers", "3"],
                                              "--fix-bottom-layers 3 would hold every atomic layer of 1 slab(s)"),
        "export a filter that leaves nothing": (["export", "-w", fw, "--elements", "Ni", "-o", str(out / "ni.csv")],
                                                "no stored result matches elements Ni: nothing written"),
        "map --elements ''": (["map", "-w", fw, "-d", d, "--elements", "", "-o", str(out / "e-map.html"), "--no-png"],
                              "--elements '' names no element"),
        # issue 27: names a user types, with did-you-mean suggestions, before anything is loaded
        "run -m chgnet (no such model)": (["run", "-m", "chgnet", "-d", d, "-w", str(w)],
                                          "unknown model 'chgnet' (did you mean 'chgnet-0.3.0' or 'chgnet-0.2.0'?)"),
        "run --elements cu": (["run", "-m", "emt", "-d", d, "-w", str(w), "--elements", "cu"],
                              "'cu' is not a chemical symbol (did you mean 'Cu'?)"),
        "run -d mlearn (no such data set)": (["run", "-m", "emt", "-d", "mlearn", "-w", str(w)],
                                             "unknown data set 'mlearn' (did you mean 'mlearn-surfaces'?)"),
        "table -m EMT (not stored)": (["table", "-w", fw, "-m", "EMT"], "no stored run of 'EMT' (did you mean 'emt'?)"),
        "table --models a,b with one not stored": (["table", "-w", fw, "--models", "emt,lj"],
                                                   "no stored run of 'lj'"),
        "report -m Emt (not stored)": (["report", "-w", fw, "-m", "Emt", "-o", str(out / "emt.html")],
                                       "no stored run of 'Emt' (did you mean 'emt'?) on 'cu-toy' (static); stored: emt"),
    }


def test_bad_options_are_refused_before_anything_runs(inputs, tmp_path):
    """--threads 99999 (a MemoryError), --timeout inf (an OverflowError), empty --elements/--miller
    (which ran everything), (000) and fractional Miller indices, a model-built vacuum of 2
    Angstrom, --fix-bottom-layers beyond the slab, an export filter that leaves no row."""
    problems = {}
    for name, (args, message) in _option_cases(tmp_path / "w", inputs["filled"], inputs["data"], inputs["out"]).items():
        problem = _check(runner.invoke(app, args), 2, message)
        if problem:
            problems[name] = problem
    assert not problems, problems
    assert not (tmp_path / "w" / STORE_NAME).exists()  # refused before a store was made
    assert not (inputs["out"] / "ni.csv").exists()  # nothing written for an empty export


def test_a_foreign_sqlite_file_is_refused_and_left_untouched(inputs, tmp_path):
    """Another program's SQLite database named surfbench.sqlite: every command that opens the
    store refuses it, naming it, and nothing is written into it (surfbench added its tables)."""
    import sqlite3

    foreign = tmp_path / "w"
    foreign.mkdir()
    con = sqlite3.connect(foreign / STORE_NAME)
    with con:
        con.execute("CREATE TABLE patients (id INTEGER, name TEXT)")
        con.execute("INSERT INTO patients VALUES (1, 'x')")
    con.close()
    before = (foreign / STORE_NAME).read_bytes()
    out = inputs["out"]
    commands = {
        "run": ["run", "-m", "emt", "-d", str(inputs["data"]), "-w", str(foreign)],
        "table": ["table", "-w", str(foreign)],
        "report": ["report", "-w", str(foreign), "-o", str(out / "f.html"), "--no-png"],
        "export": ["export", "-w", str(foreign), "-o", str(out / "f.csv")],
        "md": ["md", "-m", "emt", "-d", str(inputs["data"]), "-w", str(foreign), "--steps", "2"],
        "map": ["map", "-w", str(foreign), "-d", str(inputs["data"]), "-o", str(out / "f-map.html"), "--no-png"],
    }
    problems = {}
    for name, args in commands.items():
        problem = _check(runner.invoke(app, args), 2, "is an SQLite database but not a surfbench result store")
        if problem:
            problems[name] = problem
    assert not problems, problems
    assert (foreign / STORE_NAME).read_bytes() == before and sorted(p.name for p in foreign.iterdir()) == [STORE_NAME]
