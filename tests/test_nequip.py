"""NequIP through its own environment: ``load_model('nequip-local', weights=FILE)`` runs the
model in a worker of ``env:nequip`` (made by ``surfbench env create nequip``; nequip 0.19 needs
e3nn 0.6, which the main environment cannot hold).

A tiny NequIP model (about 1.7k parameters) is trained here with ``nequip-train``
(tests/nequip_model.py, a few seconds on 2 cores), once per session, under pytest's basetemp.
It is then packaged (``nequip-package build``) and compiled (``nequip-compile --mode aotinductor
--device cpu --target ase``, about 40 s on 2 cores) to test every file kind; set
``SURFBENCH_TEST_NEQUIP_COMPILE=0`` to leave the compilation out.

The tests that need the environment skip where it is absent. The first few run anywhere: file
detection, dtype read from the file, and the install hint, on a stand-in checkpoint.

The registry entry comes from models.yaml, or during development from
``SURFBENCH_REGISTRY_EXTRA=<fragment>``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import zipfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, fcc111

from surfbench.models import ModelLoadError, get_spec, load_model
from surfbench.models.base import sha256_files
from surfbench.models.isolated import resolve_python
from surfbench.models.loaders.nequip import CHECKPOINT, NequipBackend, detect_format
from tests.checks import assert_stress_is_strain_derivative
from tests.conftest import SHARED_DATA
from tests.nequip_model import TYPE_NAMES, run_tool, train_tiny_model, training_frames


def _nequip_env() -> tuple[Path | None, str]:
    try:
        return resolve_python("env:nequip"), ""
    except ModelLoadError as exc:
        return None, str(exc)


NEQUIP_PYTHON, _WHY = _nequip_env()
needs_env = pytest.mark.skipif(
    NEQUIP_PYTHON is None,
    reason=f"the nequip environment is absent ({_WHY}; set SURFBENCH_ENV_DIR to where it was made)",
)
COMPILE = os.environ.get("SURFBENCH_TEST_NEQUIP_COMPILE", "1") != "0"


def _in_process_spec():
    """The registry entry without its environment: the backend runs in this process."""
    return dataclasses.replace(get_spec("nequip-local"), python=None)


def _energy(atoms, calc) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    return float(atoms.get_potential_energy())


def _slab():
    s = fcc111("Cu", size=(2, 2, 3), vacuum=8.0, periodic=False)  # pbc=(T, T, F)
    s.rattle(0.03, seed=3)
    return s


# --- anywhere: the registry entry, file detection, dtype, install hint --------------------


def test_registry_entry():
    spec = get_spec("nequip-local")
    assert spec.family == "NequIP" and spec.package == "nequip" and spec.version == ">=0.19,<0.20"
    assert spec.backend == "surfbench.models.loaders.nequip:NequipBackend"
    assert spec.python == "env:nequip"
    assert spec.weights == {"source": "local"}
    assert "2453" in spec.citation and spec.licence.startswith("MIT")


def test_needs_weights_and_a_nequip_file(tmp_path):
    spec = _in_process_spec()
    with pytest.raises(ModelLoadError, match="--weights"):
        NequipBackend(spec).fingerprint()
    with pytest.raises(ModelLoadError, match="not a file"):
        NequipBackend(spec, weights=tmp_path / "missing.ckpt").fingerprint()
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a model")
    with pytest.raises(ModelLoadError, match="not a NequIP model file"):
        NequipBackend(spec, weights=junk).fingerprint()
    other_zip = tmp_path / "other.nequip.zip"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("x/readme.txt", "hello")
    with pytest.raises(ModelLoadError, match="not a NequIP model file"):
        NequipBackend(spec, weights=other_zip).calculator()
    with pytest.raises(ModelLoadError, match="float16"):
        NequipBackend(spec, weights=junk, dtype="float16")


@pytest.fixture
def standin_checkpoint(tmp_path) -> Path:
    """A torch.save'd dict shaped like a nequip-train checkpoint (hyper-parameters and a
    tensor), float32, under a name that does not say what it is."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.bin"
    torch.save({
        "epoch": 1,
        "state_dict": {"w": torch.zeros(3)},
        "hyper_parameters": {"model": {"_target_": "nequip.model.NequIPGNNModel", "model_dtype": "float32",
                                       "type_names": ["Ni", "Cu"], "r_max": 4.0}},
    }, path)
    return path


def test_dtype_is_read_from_the_file(standin_checkpoint):
    spec = _in_process_spec()
    assert detect_format(standin_checkpoint) == CHECKPOINT
    backend = NequipBackend(spec, weights=standin_checkpoint)
    fp = backend.fingerprint()
    assert fp.dtype == "float32"  # the model's, not the base class's default float64
    assert fp.weights_sha256 == sha256_files([standin_checkpoint])
    assert backend.chemical_species_map() == {"Ni": "Ni", "Cu": "Cu"}
    assert NequipBackend(spec, weights=standin_checkpoint, dtype="float32").fingerprint().id == fp.id
    with pytest.raises(ModelLoadError, match="float32 model"):
        NequipBackend(spec, weights=standin_checkpoint, dtype="float64").fingerprint()
    with pytest.raises(ModelLoadError, match="float32 model"):
        NequipBackend(spec, weights=standin_checkpoint, dtype="float64").calculator()


def test_type_names_must_be_elements(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "custom.ckpt"
    torch.save({"hyper_parameters": {"model": {"model_dtype": "float64", "type_names": ["Cu1", "Cu2"]}}}, path)
    spec = _in_process_spec()
    with pytest.raises(ModelLoadError, match="species_map"):
        NequipBackend(spec, weights=path).chemical_species_map()
    mapped = NequipBackend(spec, weights=path, species_map={"Cu": "Cu1"})
    assert mapped.chemical_species_map() == {"Cu": "Cu1"}
    assert mapped.fingerprint().id != NequipBackend(spec, weights=path).fingerprint().id
    with pytest.raises(ModelLoadError, match="lacks"):
        NequipBackend(spec, weights=path, species_map={"Cu": "Cu3"}).chemical_species_map()
    with pytest.raises(ModelLoadError, match="element symbols"):
        NequipBackend(spec, weights=path, species_map={"Kryptonite": "Cu1"})


def test_missing_package_names_the_environment(standin_checkpoint):
    if find_spec("nequip") is not None:
        pytest.skip("nequip is installed in this environment")
    with pytest.raises(ModelLoadError) as info:
        NequipBackend(_in_process_spec(), weights=standin_checkpoint).calculator()
    assert "surfbench env create nequip" in str(info.value) and "env:nequip" in str(info.value)


# --- in the nequip environment -------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> dict:
    """The trained checkpoint, its packaged and (unless switched off) compiled forms, and the
    seconds each step took. Made once per session under pytest's basetemp."""
    if NEQUIP_PYTHON is None:
        pytest.skip(_WHY)
    folder = tmp_path_factory.getbasetemp() / "nequip-model"
    data = SHARED_DATA if SHARED_DATA.is_dir() else None
    ckpt, seconds = train_tiny_model(NEQUIP_PYTHON, folder, data)
    out = {"ckpt": ckpt, "train_s": seconds, "folder": folder}
    out["package"] = folder / "tiny.nequip.zip"
    out["package_s"] = run_tool(NEQUIP_PYTHON, "nequip-package", "build", str(ckpt), str(out["package"]))
    if COMPILE:
        out["compiled"] = folder / "tiny.nequip.pt2"
        out["compile_s"] = run_tool(NEQUIP_PYTHON, "nequip-compile", "--mode", "aotinductor", "--device", "cpu",
                                    "--target", "ase", str(ckpt), str(out["compiled"]))
    print(f"\nnequip tiny model: train {seconds:.1f} s, package {out['package_s']:.1f} s"
          + (f", compile {out['compile_s']:.1f} s" if COMPILE else ""))
    return out


@pytest.fixture(scope="module")
def ckpt_model(tiny_model):
    return load_model("nequip-local", weights=str(tiny_model["ckpt"]))


DIRECT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import ase.io
from nequip.data import AtomicDataDict, from_ase
from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform
from nequip.integrations.ase import NequIPCalculator
from nequip.model.saved_models.load_utils import load_saved_model

ckpt, xyz, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
frames = ase.io.read(xyz, ":")
identity = {n: n for n in names}
calc = NequIPCalculator._from_saved_model(ckpt, device="cpu", chemical_species_to_atom_type_map=identity)
out = {"calculator": [], "forces": [], "nequip": []}
for a in frames:
    a.calc = calc
    out["calculator"].append(float(a.get_potential_energy()))
    out["forces"].append(a.get_forces().tolist())
# nequip's own pipeline, as in training: type mapping and neighbour list transforms, then the model
model = load_saved_model(ckpt)
model.eval()
to_types = ChemicalSpeciesToAtomTypeMapper(model_type_names=names, chemical_species_to_atom_type_map=identity)
neighbours = NeighborListTransform(r_max=float(model.metadata["r_max"]))
for a in frames:
    a.calc = None
    result = model(neighbours(to_types(from_ase(a))))
    out["nequip"].append(float(result[AtomicDataDict.TOTAL_ENERGY_KEY].detach().reshape(())))
out["type_names"] = model.metadata["type_names"]
print(json.dumps(out))
"""


@needs_env
def test_slab_pbc_and_energies_match_nequip(ckpt_model, tiny_model, tmp_path):
    import ase.io

    # (1) a slab given with pbc=(T, T, F) is evaluated as the periodic slab
    slab = _slab()
    assert tuple(slab.pbc) == (True, True, False)
    periodic = slab.copy()
    periodic.pbc = True
    e_mixed, e_periodic = _energy(slab, ckpt_model.calculator), _energy(periodic, ckpt_model.calculator)
    assert e_mixed == pytest.approx(e_periodic, abs=1e-6)

    # (2) three Cu frames, a Cu slab with Ni in it, and the slab: the same energies as nequip's
    # calculator and nequip's own pipeline in the environment
    frames = [f.copy() for f in training_frames(SHARED_DATA if SHARED_DATA.is_dir() else None)
              if set(f.get_chemical_symbols()) == {"Cu"}][:3]
    mixed = periodic.copy()
    mixed.symbols[[0, 5, 7]] = "Ni"
    frames += [mixed, periodic]
    for f in frames:
        f.calc = None
        f.info = {}
    xyz = tmp_path / "frames.xyz"
    ase.io.write(xyz, frames, format="extxyz")
    proc = subprocess.run([str(NEQUIP_PYTHON), "-c", DIRECT, str(tiny_model["ckpt"]), str(xyz), ",".join(TYPE_NAMES)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    direct = json.loads(proc.stdout.strip().splitlines()[-1])
    assert direct["type_names"] == " ".join(TYPE_NAMES)

    ours, forces = [], []
    for f in frames:
        a = f.copy()
        a.calc = ckpt_model.calculator
        ours.append(a.get_potential_energy())
        forces.append(a.get_forces())
    print("\nnequip energies (eV):", [round(e, 6) for e in ours])
    np.testing.assert_allclose(ours, direct["calculator"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours, direct["nequip"], rtol=0, atol=1e-6)
    for mine, theirs in zip(forces, direct["forces"]):
        np.testing.assert_allclose(mine, np.array(theirs), rtol=0, atol=1e-6)
    assert ours[-1] == pytest.approx(e_periodic, abs=1e-9)
    # the species matter: Ni atoms are not evaluated as Cu
    assert abs(ours[-2] - ours[-1]) > 1e-4


@needs_env
def test_stress_is_ev_per_a3(ckpt_model):
    """stress = (1/V) dE/d(strain), checked by central differences (float64 model)."""
    calc = ckpt_model.calculator
    base = bulk("Cu", "fcc", a=3.45, cubic=True) * (2, 1, 1)
    base.symbols[1] = "Ni"
    strain = np.array([[1.02, 0.0, 0.025], [0.0, 0.99, 0.05], [0.025, 0.05, 1.015]])
    base.set_cell(base.cell @ strain, scale_atoms=True)
    base.rattle(0.05, seed=1)
    atoms = base.copy()
    atoms.calc = calc
    stress = atoms.get_stress(voigt=False)
    assert np.abs(np.diag(stress)).max() > 1e-3

    assert_stress_is_strain_derivative(base, calc, stress, h=1e-4)


@needs_env
def test_fingerprint(tiny_model):
    model = load_model("nequip-local", weights=str(tiny_model["ckpt"]))
    fp = model.fingerprint
    assert "calculator" not in model.__dict__  # fingerprinting does not build the model
    assert fp.weights_sha256 == sha256_files([tiny_model["ckpt"]])
    assert fp.package == "nequip" and fp.dtype == "float64"
    env_version = subprocess.run(
        [str(NEQUIP_PYTHON), "-c", "from importlib.metadata import version; print(version('nequip'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    # the version is the nequip environment's (the worker fingerprints), not this process's
    assert fp.package_version == env_version and env_version.startswith("0.19.")
    model.backend._worker().close()
    same = load_model("nequip-local", weights=str(tiny_model["ckpt"]), dtype="float64")
    assert same.fingerprint.id == fp.id
    same.backend._worker().close()


@needs_env
def test_errors_through_the_worker(tiny_model, tmp_path):
    with pytest.raises(ModelLoadError, match="float64 model"):
        load_model("nequip-local", weights=str(tiny_model["ckpt"]), dtype="float32").fingerprint
    with pytest.raises(ModelLoadError, match="not a file"):
        load_model("nequip-local", weights=str(tmp_path / "missing.nequip.pt2")).fingerprint
    junk = tmp_path / "junk.nequip.pt2"
    junk.write_bytes(b"\0" * 100)
    with pytest.raises(ModelLoadError, match="not a NequIP model file"):
        load_model("nequip-local", weights=str(junk)).calculator


@needs_env
def test_package_compiled_and_renamed_files(ckpt_model, tiny_model, tmp_path):
    """Every kind of file, also under a name that does not say which it is, gives the
    checkpoint's numbers; each has its own fingerprint."""
    slab = _slab()
    slab.symbols[[1, 4]] = "Ni"
    reference = _energy(slab, ckpt_model.calculator)
    files = [tiny_model["package"]] + ([tiny_model["compiled"]] if COMPILE else [])
    renamed = []
    for f in [tiny_model["ckpt"], *files]:
        copy = tmp_path / f"{f.name}.renamed"
        shutil.copyfile(f, copy)
        renamed.append(copy)
    ids = {ckpt_model.fingerprint.id}
    for f in files + renamed:
        model = load_model("nequip-local", weights=str(f))
        fp = model.fingerprint
        assert fp.dtype == "float64" and fp.weights_sha256 == sha256_files([f])
        ids.add(fp.id)
        assert _energy(slab, model.calculator) == pytest.approx(reference, abs=1e-6), f
        model.backend._worker().close()  # one worker at a time
    assert len(ids) == 1 + len(files) + len(renamed)


@needs_env
def test_float32_model(tmp_path_factory):
    """A model trained in float32 is a float32 model: recorded so, and float64 is refused."""
    folder = tmp_path_factory.getbasetemp() / "nequip-model-float32"
    ckpt, _ = train_tiny_model(NEQUIP_PYTHON, folder, SHARED_DATA if SHARED_DATA.is_dir() else None,
                               epochs=1, dtype="float32")
    model = load_model("nequip-local", weights=str(ckpt))
    assert model.fingerprint.dtype == "float32"
    e = _energy(_slab(), model.calculator)
    assert np.isfinite(e)
    model.backend._worker().close()
    with pytest.raises(ModelLoadError, match="float32 model"):
        load_model("nequip-local", weights=str(ckpt), dtype="float64").fingerprint


FALLBACK = r"""
import json, sys
from surfbench.models.base import ModelSpec
from surfbench.models.loaders import nequip as loader

spec = ModelSpec(name="nequip-test", backend="surfbench.models.loaders.nequip:NequipBackend", package="nequip",
                 weights={"source": "local"})
def no_config(path):
    raise KeyError("model_dtype")  # as for a fine-tuned model whose config names another file
loader._checkpoint_hparams = no_config
backend = loader.NequipBackend(spec, weights=sys.argv[1])
print(json.dumps({"info": backend.model_info, "dtype": backend.fingerprint().dtype}))
"""


@needs_env
def test_dtype_from_the_loaded_model(tiny_model):
    """Where the checkpoint's config does not name model_dtype, the model is loaded to read it."""
    proc = subprocess.run([str(NEQUIP_PYTHON), "-c", FALLBACK, str(tiny_model["ckpt"])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"info": {"model_dtype": "float64", "type_names": list(TYPE_NAMES)}, "dtype": "float64"}
