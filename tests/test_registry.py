"""The model registry: schema, lazy imports, install hints, comparison table."""

import subprocess
import sys
from importlib import resources

import jsonschema
import pytest
import yaml

from surfbench.models import ModelLoadError, list_specs, load_model
from surfbench.models.environments import PRESETS, install_commands
from surfbench.models.registry import ENV_EXTRA_REGISTRY, registry_entries, registry_schema


def test_packaged_registry_matches_schema():
    raw = yaml.safe_load(resources.files("surfbench.models").joinpath("models.yaml").read_text())
    jsonschema.validate(raw, registry_schema())
    names = [s.name for s in list_specs()]
    assert len(names) == len(set(names))
    assert "chgnet-0.3.0" in names


@pytest.mark.parametrize(
    "change, message",
    [
        ({"backend": "no colon"}, "field backend"),
        ({"weights": {"source": "download", "relpath": "x/y"}}, "'url' is a required property"),
        ({"parameters": -5}, "field parameters"),
        ({"surprise": 1}, "Additional properties"),
    ],
)
def test_bad_entries_are_refused_with_the_entry_named(tmp_path, monkeypatch, change, message):
    base = {e["name"]: e for e in registry_entries()}["emt"]
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump([{**base, "name": "broken", **change}]))
    monkeypatch.setenv(ENV_EXTRA_REGISTRY, str(path))
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model("broken")
    assert "'broken'" in str(info.value)


def test_model_packages_are_imported_only_on_load():
    code = (
        "import sys; from surfbench.models import list_specs, load_model; list_specs();"
        "m = load_model('chgnet-0.3.0'); m.fingerprint;"
        "print('chgnet' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_missing_package_gives_install_hint(tmp_path, monkeypatch):
    base = {e["name"]: e for e in registry_entries()}["chgnet-0.3.0"]
    entry = {**base, "name": "chgnet-missing", "package": "chgnet-not-installed", "version": ">=9"}
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump([entry]))
    monkeypatch.setenv(ENV_EXTRA_REGISTRY, str(path))
    monkeypatch.setattr("surfbench.models.base.find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install torch==2.13.0 'chgnet-not-installed>=9'"):
        load_model("chgnet-missing").fingerprint


def test_dtype_is_checked_and_in_the_fingerprint():
    with pytest.raises(ModelLoadError, match="dtype 'float64' is not supported"):
        load_model("chgnet-0.3.0", dtype="float64")
    assert load_model("chgnet-0.3.0", dtype="float32").fingerprint.dtype == "float32"


def test_environment_presets_pin_torch_first():
    for preset in PRESETS:
        cmds = install_commands("/x/bin/python", preset, with_surfbench=True)
        assert cmds[0][-1] == "torch==2.13.0"
        for cmd in cmds[1:]:
            if "--no-deps" not in cmd and "uninstall" not in cmd:
                assert "torch==2.13.0" in cmd, cmd
    assert any("e3nn==0.5.1" in c for c in install_commands("p", "universal", False)[1])
