"""MACE through mace-torch: a small random-weight MACE model built here stands in for the
MACE-MP-0 files, which cannot be downloaded on an offline machine.

The registry entries (mace-mp-0-medium, mace-mp-0-l2, mace-local) come from models.yaml, or
during development from ``SURFBENCH_REGISTRY_EXTRA=<fragment>``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, fcc111

pytest.importorskip("mace.calculators", reason="mace-torch is not installed")

from surfbench.models import ModelLoadError, get_spec, load_model  # noqa: E402
from surfbench.models.base import sha256_files  # noqa: E402
from surfbench.models.weights import resolve_weights  # noqa: E402
from tests.checks import assert_stress_is_strain_derivative  # noqa: E402

MEDIUM_FILE = "2023-12-03-mace-128-L1_epoch-199.model"
L2_FILE = "2024-01-07-mace-128-L2_epoch-199.model"
PINNED = {
    "mace-mp-0-medium": f"https://github.com/ACEsuit/mace-mp/releases/download/mace_mp_0/{MEDIUM_FILE}",
    "mace-mp-0-l2": f"https://github.com/ACEsuit/mace-foundations/releases/download/mace_mp_0/{L2_FILE}",
}


def _build_small_mace(path: Path) -> Path:
    """A ScaleShiftMACE for Cu and Mo, random weights (fixed seed), about 24k parameters,
    saved as mace_run_train saves a .model file: the whole module, torch.save'd, in float64."""
    import torch
    from e3nn import o3
    from mace import modules
    from mace.tools import torch_tools

    with torch_tools.default_dtype("float64"):
        torch.manual_seed(0)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=4.5,
            num_bessel=4,
            num_polynomial_cutoff=5,
            max_ell=2,
            interaction_cls=block,
            interaction_cls_first=block,
            num_interactions=2,
            num_elements=2,
            hidden_irreps=o3.Irreps("8x0e+8x1o"),
            MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.array([-4.1, -10.9]),  # E0 of Cu, Mo (eV), made up
            avg_num_neighbors=12.0,
            atomic_numbers=[29, 42],
            correlation=2,
            gate=torch.nn.functional.silu,
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
        )
    torch.save(model, path)
    return path


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    import torch

    dtype_before = torch.get_default_dtype()
    path = _build_small_mace(tmp_path_factory.mktemp("mace") / "small-cu-mo.model")
    assert torch.get_default_dtype() == dtype_before  # building does not leak a dtype
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt goes to a closed local port and fails at once, so the offline tests
    neither hang on a slow network nor fetch 90-300 MB where there is internet."""
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")


@pytest.fixture
def empty_dirs(tmp_path, monkeypatch):
    models, cache = tmp_path / "models", tmp_path / "cache"
    models.mkdir()
    cache.mkdir()
    monkeypatch.setenv("SURFBENCH_MODEL_DIR", str(models))
    monkeypatch.setenv("SURFBENCH_CACHE_DIR", str(cache))
    return models, cache


def _slab():
    return fcc111("Cu", size=(2, 2, 3), vacuum=8, periodic=False)


def _energy(atoms, calc) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


def test_registry_entries():
    from mace.calculators.foundations_models import mace_mp_urls

    for name, url in PINNED.items():
        spec = get_spec(name)
        assert spec.family == "MACE" and spec.package == "mace-torch"
        assert spec.backend == "surfbench.models.loaders.mace:MaceBackend"
        w = spec.weights
        assert w["source"] == "download" and w["url"] == url and w["sha256"] is None
        assert w["relpath"] == "mace/" + url.rsplit("/", 1)[1]
    # the same URL as mace-torch's mace_mp(model="medium")
    assert get_spec("mace-mp-0-medium").weights["url"] == mace_mp_urls["medium"]
    assert get_spec("mace-mp-0-medium").parameters == 4690000
    assert get_spec("mace-mp-0-l2").parameters is None  # not published in the package: not guessed
    local = get_spec("mace-local").weights
    assert "url" not in local and "relpath" not in local


def test_mace_local_needs_weights(empty_dirs):
    model = load_model("mace-local")
    with pytest.raises(ModelLoadError, match="--weights"):
        model.fingerprint
    with pytest.raises(ModelLoadError, match="--weights"):
        model.calculator
    with pytest.raises(ModelLoadError, match="not a file"):
        load_model("mace-local", weights=str(empty_dirs[0])).fingerprint
    junk = empty_dirs[0] / "not-a-model.model"
    junk.write_text("not a torch file")
    with pytest.raises(ModelLoadError, match="cannot load the MACE model file"):
        load_model("mace-local", weights=str(junk)).calculator


def test_local_model_slab_pbc_dtype_fingerprint(small_model):
    import torch
    from mace.calculators import MACECalculator

    model = load_model("mace-local", weights=str(small_model))
    assert model.backend.dtype == "float64"  # the default, first of supported_dtypes
    assert model.backend.weight_files() == [small_model]
    fp64 = model.fingerprint
    assert fp64.weights_sha256 == sha256_files([small_model])
    assert fp64.package == "mace-torch" and fp64.dtype == "float64"
    assert "calculator" not in model.__dict__  # fingerprinting does not load the model

    slab = _slab()
    assert tuple(slab.pbc) == (True, True, False)
    periodic = slab.copy()
    periodic.pbc = True
    e_mixed = _energy(slab, model.calculator)
    e_periodic = _energy(periodic, model.calculator)
    assert e_mixed == pytest.approx(e_periodic, abs=1e-6)

    # the wrapper changes nothing else: mace-torch's own calculator on the periodic slab
    direct = MACECalculator(model_paths=str(small_model), device="cpu", default_dtype="float64")
    ref = periodic.copy()
    ref.calc = direct
    assert e_periodic == pytest.approx(ref.get_potential_energy(), abs=1e-9)
    wrapped = slab.copy()
    wrapped.calc = model.calculator
    np.testing.assert_allclose(wrapped.get_forces(), ref.get_forces(), atol=1e-9)
    np.testing.assert_allclose(wrapped.get_stress(), ref.get_stress(), atol=1e-12)

    model32 = load_model("mace-local", weights=str(small_model), dtype="float32")
    fp32 = model32.fingerprint
    assert fp32.dtype == "float32" and fp32.weights_sha256 == fp64.weights_sha256
    assert fp32.id != fp64.id
    e32 = _energy(slab, model32.calculator)
    assert e32 == pytest.approx(e_periodic, abs=1e-3)
    assert next(model32.calculator.inner.models[0].parameters()).dtype == torch.float32
    assert next(model.calculator.inner.models[0].parameters()).dtype == torch.float64

    with pytest.raises(ModelLoadError, match="float16"):
        load_model("mace-local", weights=str(small_model), dtype="float16")


def test_stress_is_ev_per_a3(small_model):
    """stress = (1/V) dE/d(strain), checked by central differences (float64)."""
    model = load_model("mace-local", weights=str(small_model))
    calc = model.calculator
    base = bulk("Cu", "fcc", a=3.55, cubic=True)
    # a strained, sheared, rattled cell so that all six components differ
    strain = np.array([[1.02, 0.0, 0.025], [0.0, 0.99, 0.05], [0.025, 0.05, 1.015]])
    base.set_cell(base.cell @ strain, scale_atoms=True)
    base.rattle(0.05, seed=1)
    atoms = base.copy()
    atoms.calc = calc
    stress = atoms.get_stress(voigt=False)
    assert np.all(np.abs(np.diag(stress)) > 5e-3)  # about -0.008 eV/A^3 (-1.3 GPa)

    assert_stress_is_strain_derivative(base, calc, stress, h=1e-4)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_mace_mp0_offline_error(name, empty_dirs, no_network):
    spec = get_spec(name)
    url = PINNED[name]
    # without download: names where to put a copy
    with pytest.raises(ModelLoadError) as info:
        resolve_weights(spec, download=False)
    assert "--weights" in str(info.value) and "SURFBENCH_MODEL_DIR" in str(info.value)
    # the real path: resolve_weights tries the pinned download (pooch), which fails at once here
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        load_model(name).calculator
    elapsed = time.perf_counter() - start
    msg = str(info.value)
    assert url in msg and "--weights" in msg and "SURFBENCH_MODEL_DIR" in msg
    assert elapsed < 20
    # nothing half-downloaded is left where the next run would take it for the model
    assert not (empty_dirs[1] / "models" / spec.weights["relpath"]).exists()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_mace_mp0_from_model_dir(name, small_model, empty_dirs, no_network):
    """A copy in $SURFBENCH_MODEL_DIR/<relpath> is used without any download."""
    models, _ = empty_dirs
    local = models / get_spec(name).weights["relpath"]
    local.parent.mkdir(parents=True)
    shutil.copyfile(small_model, local)
    model = load_model(name)
    assert model.backend.weight_files() == [local]
    assert model.fingerprint.weights_sha256 == sha256_files([local])
    # the same file under another name: the same numbers, another fingerprint
    same = load_model("mace-local", weights=str(small_model))
    assert _energy(_slab(), model.calculator) == pytest.approx(_energy(_slab(), same.calculator), abs=1e-9)
    assert model.fingerprint.id != same.fingerprint.id
