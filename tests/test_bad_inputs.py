"""Bad inputs give clear errors naming the file and record, or recorded failures."""

import json
import shutil

import pytest

from surfbench.data.errors import DataError
from surfbench.data.mlearn import ACEDATA_TARBALL, load_mlearn_frames, pinned_json, read_mlearn_json, read_zuo_extxyz
from surfbench.data.sources import PinnedFile, fetch
from tests.conftest import needs_data


@needs_data
def test_truncated_json_names_the_file(data_dir, tmp_path):
    src = (data_dir / "mlearn/Mo/test.json").read_bytes()
    bad = tmp_path / "test.json"
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(DataError) as info:
        read_mlearn_json(bad, "Mo", "test")
    msg = str(info.value)
    assert str(bad) in msg and "not valid JSON" in msg and "line" in msg


@needs_data
def test_frame_without_energy_names_file_and_record(data_dir, tmp_path):
    docs = json.loads((data_dir / "mlearn/Mo/test.json").read_text())
    del docs[3]["outputs"]["energy"]
    bad = tmp_path / "test.json"
    bad.write_text(json.dumps(docs))
    with pytest.raises(DataError) as info:
        read_mlearn_json(bad, "Mo", "test")
    msg = str(info.value)
    assert str(bad) in msg and "record #3" in msg and docs[3]["description"] in msg
    assert "no DFT energy" in msg


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d[0]["outputs"].__setitem__("energy", "abc"), "not a number"),
        (lambda d: d[0]["outputs"].__setitem__("energy", float("inf")), "not finite"),
        (lambda d: d[0].__setitem__("num_atoms", 999), "num_atoms=999"),
        (lambda d: d[0]["outputs"].__setitem__("forces", [[0.0, 0.0]]), "forces must be"),
        (lambda d: d[0]["outputs"].__setitem__("virial_stress", [1.0]), "virial_stress"),
        (lambda d: d[0]["structure"].__setitem__("sites", "x"), "structure cannot be read"),
        (lambda d: d[0]["structure"]["sites"][0]["species"][0].__setitem__("element", "W"), "expected only Mo"),
    ],
)
@needs_data
def test_malformed_records(data_dir, tmp_path, mutate, expected):
    docs = json.loads((data_dir / "mlearn/Mo/test.json").read_text())
    mutate(docs)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(docs))
    with pytest.raises(DataError, match=expected) as info:
        read_mlearn_json(bad, "Mo", "test")
    assert "record #0" in str(info.value) and str(bad) in str(info.value)


def test_not_a_list(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"a": 1}')
    with pytest.raises(DataError, match="expected a JSON list"):
        read_mlearn_json(bad, "Mo", "test")


@needs_data
def test_modified_local_copy_is_refused(data_dir, tmp_path):
    folder = tmp_path / "data"
    target = folder / "mlearn/Mo/test.json"
    target.parent.mkdir(parents=True)
    target.write_bytes((data_dir / "mlearn/Mo/test.json").read_bytes()[:-10])
    with pytest.raises(DataError, match="sha256") as info:
        fetch(pinned_json("Mo", "test"), folder, download=False)
    assert str(target) in str(info.value)


def test_offline_download_fails_clearly(tmp_path):
    # port 9 (discard) on loopback refuses the connection at once: an offline machine
    pinned = PinnedFile(relpath="mlearn/Xx/test.json", url="http://127.0.0.1:9/test.json", sha256="0" * 64)
    with pytest.raises(DataError) as info:
        fetch(pinned, tmp_path / "empty")
    msg = str(info.value)
    assert "download" in msg and "SURFBENCH_DATA_DIR" in msg and "--data-dir" in msg


def test_missing_without_download(tmp_path):
    with pytest.raises(DataError, match="not found in any data folder"):
        fetch(pinned_json("Mo", "test"), tmp_path, download=False)


def test_unknown_element():
    with pytest.raises(DataError, match="unknown mlearn element"):
        load_mlearn_frames(["Xx"], download=False)


@needs_data
def test_search_order_prefers_the_given_folder(data_dir, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    (folder / "mlearn/Mo").mkdir(parents=True)
    shutil.copy(data_dir / "mlearn/Mo/test.json", folder / "mlearn/Mo/test.json")
    monkeypatch.setenv("SURFBENCH_DATA_DIR", str(data_dir))
    assert fetch(pinned_json("Mo", "test"), folder).parent.parent.parent == folder
    assert fetch(pinned_json("Mo", "test")).is_relative_to(data_dir)


def test_broken_tarball(tmp_path):
    bad = tmp_path / "ZuoEtAl2020.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="cannot read ZuoEtAl2020/Ni_train.xyz") as info:
        read_zuo_extxyz(bad, "Ni", "training")
    assert str(bad) in str(info.value)
    assert ACEDATA_TARBALL.relpath.endswith("ZuoEtAl2020.tar.gz")
