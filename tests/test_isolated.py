"""A model run through a worker in a second Python environment gives the in-process numbers."""

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from ase.build import bulk, fcc111

from surfbench.execution.runner import run
from surfbench.models import ModelLoadError, load_model
from surfbench.models.registry import ENV_EXTRA_REGISTRY, registry_entries
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.results import ResultStore


@pytest.fixture(scope="module")
def second_env(tmp_path_factory) -> Path:
    """A second venv (no pip) whose site-packages chain to this one's, so it runs the same
    packages from another interpreter process and prefix."""
    root = tmp_path_factory.mktemp("env") / "second"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next((root / "lib").glob("python3*/site-packages"))
    (site / "parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    python = root / "bin" / "python"
    out = subprocess.run([str(python), "-c", "import sys, surfbench; print(sys.prefix)"], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == root
    return python


@pytest.fixture
def isolated_registry(second_env, tmp_path, monkeypatch):
    entries = {e["name"]: e for e in registry_entries()}
    extra = []
    for name in ("emt", "chgnet-0.3.0"):
        e = dict(entries[name], name=f"{name}-isolated", python=str(second_env))
        extra.append(e)
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump(extra))
    monkeypatch.setenv(ENV_EXTRA_REGISTRY, str(path))


def _dataset() -> Dataset:
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    b = BulkRecord(id="Cu/bulk", element="Cu", atoms=cu, energy_ev=-4.0 * len(cu))
    s = fcc111("Cu", size=(2, 2, 3), a=3.6, vacuum=7.0, periodic=False)  # pbc=(T,T,F)
    slab = SurfaceRecord(id="Cu/111", element="Cu", atoms=s, energy_ev=-4.0 * len(s) + 1.5,
                         bulk_id=b.id, bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1))
    mo = SurfaceRecord(id="Mo/x", element="Mo", atoms=bulk("Mo", "bcc", a=3.16, cubic=True), energy_ev=-20.0,
                       bulk_id=None, bulk_energy_per_atom_ev=None)
    return Dataset("toy", {b.id: b}, [slab, mo])


@pytest.mark.parametrize("name", ["emt", "chgnet-0.3.0"])
def test_worker_matches_in_process(isolated_registry, tmp_path, name):
    ds = _dataset()
    with ResultStore(tmp_path) as store:
        local = load_model(name)
        remote = load_model(f"{name}-isolated")
        assert remote.fingerprint.weights_sha256 == local.fingerprint.weights_sha256
        assert remote.fingerprint.package_version == local.fingerprint.package_version
        run(ds, local, store)
        run(ds, remote, store)
        a = store.results("toy", local.fingerprint.id).set_index("record_id")
        b = store.results("toy", remote.fingerprint.id).set_index("record_id")
    ok = a.index[a["status"] == "ok"]
    assert len(ok) >= 2
    for rid in ok:
        assert b.loc[rid, "status"] == "ok"
        assert b.loc[rid, "energy_ev"] == pytest.approx(a.loc[rid, "energy_ev"], abs=1e-6)
    # a structure the model cannot do fails the same way through the worker
    assert (a["status"] == "failed").sum() == (b["status"] == "failed").sum()
    if name == "emt":
        assert b.loc["Mo/x", "failure_kind"] == "unsupported_element"


def test_forces_and_stress_come_back(isolated_registry):
    remote = load_model("emt-isolated")
    atoms = bulk("Cu", "fcc", a=3.5) * (2, 2, 2)
    atoms.rattle(0.05, seed=1)
    atoms.calc = remote.calculator
    f_remote, s_remote = atoms.get_forces(), atoms.get_stress()
    atoms.calc = load_model("emt").calculator
    assert f_remote == pytest.approx(atoms.get_forces(), abs=1e-10)
    assert s_remote == pytest.approx(atoms.get_stress(), abs=1e-10)


def test_missing_environment_is_a_clear_error(tmp_path, monkeypatch):
    entry = dict({e["name"]: e for e in registry_entries()}["emt"], name="emt-nowhere", python="env:does-not-exist")
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump([entry]))
    monkeypatch.setenv(ENV_EXTRA_REGISTRY, str(path))
    monkeypatch.setenv("SURFBENCH_ENV_DIR", str(tmp_path / "envs"))
    with pytest.raises(ModelLoadError, match="surfbench env create does-not-exist"):
        load_model("emt-nowhere").fingerprint
