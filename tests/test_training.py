"""Training data and bookkeeping (no training package needed): leakage-safe splits on the real
mlearn data (no frame of an evaluated slab ever reaches training or validation), nested
subsets, presets, model names and the trained-models registry file."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from ase.build import bulk, fcc100

from surfbench.data.frames import Frame
from surfbench.data.geometry import vacuum_axis
from surfbench.models import ModelLoadError, get_spec, load_model, registry
from surfbench.records import BulkRecord, Dataset, SurfaceRecord, structure_hash
from surfbench.training import presets
from surfbench.training.base import FINETUNE, SCRATCH, TRAINERS, TrainingError
from surfbench.training.pipeline import curve_id, model_name, write_registry_entry
from surfbench.training.splits import (
    EVALUATED_SLAB,
    SURFACE_GROUP,
    VACUUM_SLAB,
    load_frames,
    make_split,
    nested_subsets,
    read_labelled_frames,
    same_structure,
)
from tests.conftest import needs_data

ELEMENTS = ("Ni", "Cu", "Li", "Mo", "Si", "Ge")


@pytest.fixture(autouse=True)
def _no_project():
    yield
    registry.use_project(None)


# ---------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def splits(data_dir, mlearn_surfaces):
    return {el: (make_split(load_frames("mlearn", [el], data_dir, download=False), mlearn_surfaces, [el], seed=0),
                 mlearn_surfaces.select(elements={el}))
            for el in ELEMENTS}


@needs_data
@pytest.mark.parametrize("element", ELEMENTS)
def test_held_out_slabs_never_enter_training(splits, element):
    split, ds = splits[element]
    slab_hashes = {s.content_hash for s in ds.surfaces}
    assert len(ds.surfaces) > 0
    for f in split.pool + split.valid:
        assert f.group != "Surface", f.source
        assert vacuum_axis(f.atoms) is None, f"{f.source} has a vacuum gap (a slab) but is in the training data"
        assert structure_hash(f.atoms) not in slab_hashes, f.source
        assert not any(same_structure(f.atoms, s.atoms) for s in ds.surfaces if len(s.atoms) == len(f.atoms))
        assert f.split == "train"
    # every evaluated slab was found among the frames and held out, and nothing else was
    matched = {h.slab_id for h in split.held_out}
    assert matched == {s.id for s in ds.surfaces}
    assert len(split.held_out) == len(ds.surfaces)
    assert all(EVALUATED_SLAB in h.reasons for h in split.held_out)
    assert split.leaked == []
    # test frames: of the test split, none of them a slab
    assert split.test and all(f.split == "test" and vacuum_axis(f.atoms) is None for f in split.test)


@needs_data
def test_unlabelled_slabs_found_by_vacuum_gap(splits):
    """The Ni and Cu training frames (extxyz) carry no group: their slabs are held out by the
    vacuum gap (10 Cu, 11 Ni), the labelled test slabs by group."""
    for el, n_train_slabs in (("Cu", 10), ("Ni", 11)):
        split, _ = splits[el]
        by_reason = {r: [h for h in split.held_out if r in h.reasons] for r in (VACUUM_SLAB, SURFACE_GROUP)}
        assert len(by_reason[VACUUM_SLAB]) == n_train_slabs
        assert all(h.frame.group is None and h.frame.split == "train" for h in by_reason[VACUUM_SLAB])
        assert len(by_reason[SURFACE_GROUP]) == 2 and all(h.frame.split == "test" for h in by_reason[SURFACE_GROUP])
    split, _ = splits["Mo"]
    assert sum(SURFACE_GROUP in h.reasons for h in split.held_out) == 11
    assert split.summary()["held_out_reasons"] == {EVALUATED_SLAB: 11, SURFACE_GROUP: 11}


@needs_data
def test_include_surfaces_opt_in(data_dir, mlearn_surfaces):
    frames = load_frames("mlearn", ["Cu"], data_dir, download=False)
    split = make_split(frames, mlearn_surfaces, ["Cu"], seed=0, include_surfaces=True)
    # the 10 training-split slabs go to the pool (and are reported); the 2 test-split slabs stay held out
    assert len(split.leaked) == 10 and split.summary()["n_leaked"] == 10
    assert {h.frame.split for h in split.held_out} == {"test"} and len(split.held_out) == 2
    in_pool = {id(f) for f in split.pool + split.valid}
    assert all(id(h.frame) in in_pool for h in split.leaked)


@needs_data
def test_validation_split_and_nested_subsets(splits):
    split, _ = splits["Mo"]
    assert len(split.valid) == round(0.1 * (len(split.pool) + len(split.valid)))
    keys = lambda frames: [f.source for f in frames]  # noqa: E731
    assert not set(keys(split.valid)) & set(keys(split.pool))
    subsets = nested_subsets(split, [40, 10, 20])
    assert [len(s) for s in subsets] == [10, 20, 40]
    for small, large in zip(subsets, subsets[1:]):
        assert keys(large)[: len(small)] == keys(small)
    with pytest.raises(ValueError, match="pool holds"):
        split.subset(len(split.pool) + 1)


@needs_data
def test_split_is_seeded(data_dir, mlearn_surfaces):
    frames = load_frames("mlearn", ["Mo"], data_dir, download=False)
    a = make_split(frames, mlearn_surfaces, ["Mo"], seed=1, max_valid=5)
    b = make_split(list(reversed(frames)), mlearn_surfaces, ["Mo"], seed=1, max_valid=5)
    c = make_split(frames, mlearn_surfaces, ["Mo"], seed=2, max_valid=5)
    src = lambda s: [f.source for f in s.valid + s.pool]  # noqa: E731
    assert src(a) == src(b)  # the loading order does not matter, only the seed
    assert src(a) != src(c) and sorted(src(a)) == sorted(src(c))
    assert len(a.valid) == 5


# ---------------------------------------------------------------------------- synthetic


def _labelled(atoms, energy=-1.0) -> Frame:
    return Frame(atoms=atoms, energy_ev=energy, element="Cu", split="train", index=0, source="x.xyz#0",
                 forces_ev_per_a=np.zeros((len(atoms), 3)))


def test_same_structure_sees_through_order_wrapping_and_shifts():
    slab = fcc100("Cu", (2, 2, 4), vacuum=6.0, periodic=True)
    moved = slab.copy()
    moved.translate([0.7, -0.3, 1.1])
    moved.wrap()
    order = np.random.default_rng(0).permutation(len(moved))
    shuffled = moved[order]
    assert same_structure(shuffled, slab)
    rattled = slab.copy()
    rattled.positions[3] += [0.01, 0, 0]
    assert not same_structure(rattled, slab)
    assert not same_structure(slab[:-1], slab)


def test_user_frames_copy_of_a_slab_is_held_out(tmp_path):
    """A user's extxyz frame that is a shifted, reordered copy of an evaluated slab is held out,
    although it carries no group label; its bulk frame is kept."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    slab = fcc100("Cu", (2, 2, 4), vacuum=6.0, periodic=True)
    slab.info.clear()
    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    record = SurfaceRecord(id="Cu/100", element="Cu", atoms=slab, energy_ev=-50.0, bulk_id="Cu/bulk",
                           bulk_energy_per_atom_ev=-3.7, miller=(1, 0, 0))
    ds = Dataset("toy", {"Cu/bulk": BulkRecord(id="Cu/bulk", element="Cu", atoms=cell, energy_ev=-14.8)}, [record])
    copy = slab.copy()
    copy.translate([0.4, 0.2, 0.0])
    copy.wrap()
    copy = copy[::-1]
    images = []
    for atoms, e in ((copy, -50.0), (cell.copy(), -14.8), ((cell * (2, 1, 1)).copy(), -29.5)):
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=np.zeros((len(atoms), 3)))
        images.append(atoms)
    path = tmp_path / "mine.xyz"
    write(path, images, format="extxyz")
    frames = read_labelled_frames(path)
    assert [f.energy_ev for f in frames] == [-50.0, -14.8, -29.5]
    split = make_split(frames, ds, ["Cu"], seed=0, n_valid=1)
    assert [h.slab_id for h in split.held_out] == ["Cu/100"]
    assert set(split.held_out[0].reasons) == {VACUUM_SLAB, EVALUATED_SLAB}
    assert len(split.pool) + len(split.valid) == 2


# ---------------------------------------------------------------------------- presets, names, registry


def test_presets():
    for method in presets.METHODS:
        assert method in TRAINERS
        if method == "readout":  # a closed-form ridge fit of energies: no epochs, no loss weights
            for preset in presets.PRESET_NAMES:
                s = presets.resolve(method, preset, FINETUNE)
                assert s["alpha_grid"] == [1e-8, 1e3, 23] and s["cv_folds"] == 5 and s["n_valid"] == 0
            continue
        if method in ("snap", "qsnap"):  # linear least squares: the force weight is chosen on validation frames
            for preset in presets.PRESET_NAMES:
                s = presets.resolve(method, preset, SCRATCH)
                assert s["force_weights"] == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0] and s["force_tolerance"] == 1.5
            continue
        paper = presets.resolve(method, "paper", FINETUNE if method in ("chgnet", "sevennet") else SCRATCH)
        assert paper["epochs"] == 200 and paper["patience"] == 50 and paper["preset"] == "paper"
        for preset in presets.PRESET_NAMES:
            s = presets.resolve(method, preset, FINETUNE if method in ("chgnet", "sevennet") else SCRATCH)
            assert {"energy_weight", "force_weight", "stress_weight"} <= set(s)
    assert presets.resolve("mace", "cpu-quick", FINETUNE)["lr"] < presets.resolve("mace", "cpu-quick", SCRATCH)["lr"]
    s = presets.resolve("mace", "tiny", overrides={"epochs": 2, "num_channels": 4})
    assert s["epochs"] == 2 and s["num_channels"] == 4
    assert presets.resolve("chgnet", "paper", FINETUNE)["magmom_weight"] == 0.0  # no magnetic moments in the data
    with pytest.raises(TrainingError, match="unknown preset"):
        presets.resolve("mace", "fast")
    assert presets.parse_overrides(["epochs=3", "lr=1e-3", "patience=none", "dtype=float32"]) == {
        "epochs": 3, "lr": 1e-3, "patience": None, "dtype": "float32"}
    with pytest.raises(TrainingError, match="key=value"):
        presets.parse_overrides(["epochs"])
    assert "| mace | scratch | paper | 200 | 50 |" in presets.preset_table()
    assert "| readout | finetune | paper | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | frozen foundation" in presets.preset_table()


def test_names_are_registry_names():
    curve = curve_id("m3gnet", FINETUNE, "m3gnet-mp-2021.2.8-pes", "cpu-quick", ["Si"], 3, False)
    assert curve == "m3gnet-ft-m3gnet-mp-2021.2.8-pes-si-cpu-quick-s3"
    assert model_name(curve, 40) == "m3gnet-ft-m3gnet-mp-2021.2.8-pes-si-cpu-quick-n40-s3"
    scratch = curve_id("mace", SCRATCH, None, "tiny", ["Cu", "Ni"], 0, True, {"epochs": 1})
    assert scratch.startswith("mace-scratch-cu-ni-tiny-with-surfaces-x") and scratch.endswith("-s0")
    assert curve_id("mace", FINETUNE, "/data/My Model.model", "paper", ["Cu"], 0, False).startswith("mace-ft-my-model-cu")
    import re

    pattern = registry.registry_schema()["$defs"]["model"]["properties"]["name"]["pattern"]
    assert re.fullmatch(pattern, model_name(scratch, 5))


def test_trained_models_file(tmp_path):
    """The store folder's trained-models.yaml: relative weights paths, replaced by name, picked up
    by use_project and reread when it changes; load_model uses the entry's local path."""
    weights = tmp_path / "trained" / "m" / "final.mtp"
    weights.parent.mkdir(parents=True)
    weights.write_text("MTP\nspecies_count = 1\n")
    entry = {"name": "mtp-test-cu", "family": "MTP", "backend": "surfbench.models.loaders.mtp:MtpBackend",
             "kwargs": {"species": ["Cu"]}, "package": "motep", "weights": {"source": "local", "path": str(weights)},
             "licence": "MIT", "citation": "test"}
    path = write_registry_entry(tmp_path, entry)
    raw = yaml.safe_load(path.read_text())
    assert raw["models"][0]["weights"]["path"] == "trained/m/final.mtp"
    assert get_spec("mtp-test-cu").weights["path"] == str(weights)
    model = load_model("mtp-test-cu")
    assert model.backend.weight_files() == [weights]
    write_registry_entry(tmp_path, {**entry, "note": "again"})
    write_registry_entry(tmp_path, {**entry, "name": "mtp-test-cu-2"})
    assert [m["name"] for m in yaml.safe_load(path.read_text())["models"]] == ["mtp-test-cu", "mtp-test-cu-2"]
    assert get_spec("mtp-test-cu").note == "again" and get_spec("mtp-test-cu-2")
    registry.use_project(None)
    with pytest.raises(ModelLoadError, match="unknown model"):
        get_spec("mtp-test-cu")
    assert registry.use_project(tmp_path) == path.resolve()
    assert get_spec("mtp-test-cu-2").weights["path"] == str(weights)
    with pytest.raises(ModelLoadError, match="entry 'bad'"):
        write_registry_entry(tmp_path, {**entry, "name": "bad", "weights": {"source": "nowhere"}})


@needs_data
def test_trained_on_names_the_slabs_a_trained_model_saw(data_dir, mlearn_surfaces, tmp_path):
    """A model trained with --include-surfaces records the evaluated slabs among its frames
    (trained_on.records), so that its metrics on them are reported apart (analysis/seen.py);
    one trained without surfaces records none."""
    from surfbench.analysis.seen import is_seen
    from surfbench.training.base import TrainJob
    from surfbench.training.pipeline import trained_on_entry

    frames = load_frames("mlearn", ["Cu"], data_dir, download=False)
    for include, n_expected in ((True, 10), (False, 0)):
        split = make_split(frames, mlearn_surfaces, ["Cu"], seed=0, include_surfaces=include)
        job = TrainJob(method="mtp", mode=SCRATCH, train=split.pool, valid=list(split.valid), elements=("Cu",),
                       settings={}, workdir=tmp_path, name="x")
        entry = trained_on_entry(job, mlearn_surfaces, "mlearn")
        assert entry["dataset"] == mlearn_surfaces.name and len(entry["records"]) == n_expected
        assert sorted(entry["records"]) == sorted(h.slab_id for h in split.leaked)
        cu = [s for s in mlearn_surfaces.surfaces if s.element == "Cu"]
        n_seen = sum(is_seen(entry, mlearn_surfaces.name, s.id, s.element, s.split) for s in cu)
        assert n_seen == n_expected
        assert all(s.split == "train" for s in cu if s.id in entry["records"])
