"""Evaluation protocols of trained models on the real mlearn data: what each may train on and the
slabs it is judged on (no judged facet on both sides, printed counts), the pooled facet-cv
table, clear errors for bad combinations, and ``surfbench train --method readout`` end to end."""

from __future__ import annotations

import dataclasses
from importlib.util import find_spec

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk, fcc100
from typer.testing import CliRunner

from surfbench.models import registry
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.training.protocols import FACET_CV, MLEARN_SPLIT, NO_SURFACES, ProtocolError, facet_family, make_folds
from surfbench.training.splits import SlabIndex, load_frames
from tests.conftest import REPO, needs_shared

MODELS = REPO.parent / "shared" / "models"
ELEMENTS = ("Ni", "Cu", "Li", "Mo", "Si", "Ge")


@pytest.fixture(autouse=True)
def _no_project():
    yield
    registry.use_project(None)


@pytest.fixture(scope="module")
def all_frames(data_dir):
    return load_frames("mlearn", ELEMENTS, data_dir, download=False)


def _families(ds):
    return {s.id: (s.element, facet_family(s, ds)) for s in ds.surfaces}


def test_no_surfaces(all_frames, mlearn_surfaces):
    lines = []
    (fold,) = make_folds(NO_SURFACES, all_frames, mlearn_surfaces, ELEMENTS, echo=lines.append)
    assert len(fold.judged) == 75 and fold.split.slab_frames == []
    index = SlabIndex(mlearn_surfaces.surfaces)
    assert not any(index.match(f.atoms) for f in fold.split.pool + fold.split.valid)
    assert all(f.group != "Surface" for f in fold.split.pool)


def test_mlearn_split(all_frames, mlearn_surfaces):
    """Judged on the 11 test-split slabs; the 64 training-split slabs are trained on; no judged
    slab's structure and no judged Miller family among the training slabs (printed)."""
    lines = []
    (fold,) = make_folds(MLEARN_SPLIT, all_frames, mlearn_surfaces, ELEMENTS, echo=lines.append)
    test_slabs = {s.id for s in mlearn_surfaces.surfaces if s.split == "test"}
    assert set(fold.judged) == test_slabs and len(test_slabs) == 11
    assert len(fold.split.slab_frames) == 64
    trained_ids = {h.slab_id for h in fold.split.slab_frames}
    assert trained_ids == {s.id for s in mlearn_surfaces.surfaces if s.split == "train"}
    judged_index = SlabIndex([s for s in mlearn_surfaces.surfaces if s.id in test_slabs])
    assert not any(judged_index.match(f.atoms) for f in fold.split.pool + fold.split.valid)
    fam = _families(mlearn_surfaces)
    assert not {fam[i] for i in test_slabs} & {fam[i] for i in trained_ids}
    assert any("11 test-split slabs judged, 64 training-split slab frames trained on; Miller check: passed" in x
               for x in lines)
    assert sum("no judged facet among them" in x for x in lines) == 6
    assert all(f.split == "test" and f.group != "Surface" for f in fold.split.test)


def test_facet_cv(all_frames, mlearn_surfaces):
    """One fold per (element, facet): 74 folds, each of the 75 slabs judged exactly once (Si(111)
    and Si(111)-reconstructed share a fold), no fold trains on a slab of its own facet, every
    fold trains on all the element's other slabs and its non-slab training frames."""
    lines = []
    folds = make_folds(FACET_CV, all_frames, mlearn_surfaces, ELEMENTS, echo=lines.append)
    assert len(folds) == 74
    judged = [j for f in folds for j in f.judged]
    assert sorted(judged) == sorted(s.id for s in mlearn_surfaces.surfaces)
    fam = _families(mlearn_surfaces)
    by_el = {el: [s for s in mlearn_surfaces.surfaces if s.element == el] for el in ELEMENTS}
    si111 = next(f for f in folds if f.name == "Si(111)")
    assert len(si111.judged) == 2
    for fold in folds:
        (el,) = fold.elements
        own = {fam[j] for j in fold.judged}
        assert len(own) == 1
        trained = {h.slab_id for h in fold.split.slab_frames}
        assert not {fam[t] for t in trained} & own
        assert trained == {s.id for s in by_el[el] if s.id not in fold.judged}
        judged_index = SlabIndex([s for s in by_el[el] if s.id in fold.judged])
        assert not any(judged_index.match(f.atoms) for f in fold.split.pool + fold.split.valid)
        assert all(set(f.atoms.get_chemical_symbols()) == {el} for f in fold.split.pool)
    assert sum(line.startswith("facet-cv ") for line in lines) == 6
    assert any("facet-cv Mo: 11 folds (one per facet), 11 slabs judged once each; 10-10 slab frames" in x for x in lines)


def test_facet_family_uses_the_bulk_symmetry(mlearn_surfaces):
    mo = next(s for s in mlearn_surfaces.surfaces if s.element == "Mo" and s.miller == (2, 1, 0))
    assert facet_family(dataclasses.replace(mo, miller=(0, -1, 2)), mlearn_surfaces) == (2, 1, 0)
    assert facet_family(dataclasses.replace(mo, miller=(1, 2, 0)), mlearn_surfaces) == (2, 1, 0)


def _one_facet_dataset() -> Dataset:
    cu = bulk("Cu", "fcc", a=3.61)
    slabs = [SurfaceRecord(f"cu-100-{i}", "Cu", fcc100("Cu", size=(1, 1, 4 + i), a=3.61, vacuum=6.0), -14.0 - 3.7 * i,
                           "cu-bulk", -3.7, (1, 0, 0), split="test") for i in range(2)]
    return Dataset("one-facet", {"cu-bulk": BulkRecord("cu-bulk", "Cu", cu, -3.7)}, slabs)


def test_bad_combinations(all_frames, mlearn_surfaces):
    ds = _one_facet_dataset()
    cu_frames = [f for f in all_frames if f.element == "Cu"]
    with pytest.raises(ProtocolError, match="Cu has 1 facet"):
        make_folds(FACET_CV, cu_frames, ds, ["Cu"], echo=lambda _: None)
    with pytest.raises(ProtocolError, match="unknown protocol 'facet'"):
        make_folds("facet", cu_frames, ds, ["Cu"])
    with pytest.raises(ProtocolError, match="--include-surfaces applies to the no-surfaces protocol only"):
        make_folds(MLEARN_SPLIT, cu_frames, mlearn_surfaces, ["Cu"], include_surfaces=True)
    no_miller = Dataset("no-miller", ds.bulks, [dataclasses.replace(s, miller=None) for s in ds.surfaces])
    with pytest.raises(ProtocolError, match="has no Miller index"):
        make_folds(FACET_CV, cu_frames, no_miller, ["Cu"], echo=lambda _: None)


# ---------------------------------------------------------------------------- the command


needs_tensornet = [pytest.mark.skipif(find_spec("matgl") is None, reason="the 'matgl' package is not installed"),
                   needs_shared(MODELS / "matgl" / "TensorNet-MatPES-PBE-v2025.1-PES" / "model.pt",
                                reason="the TensorNet-MatPES model folder of ../shared/models is missing")]


@pytest.mark.slow
@pytest.mark.parametrize("base", [pytest.param("tensornet-matpes-pbe-v2025.1-pes", marks=needs_tensornet)])
def test_train_readout_facet_cv_end_to_end(base, data_dir, tmp_path, monkeypatch):
    """``surfbench train --method readout --from <base> --protocol facet-cv -e Mo``: 11 folds, one
    prediction per Mo slab, each by the fold that never saw its facet; the fold's gamma is
    (E_slab - n e_bulk) / 2A from that fold's own slab and bulk energies; ``table --trained``
    prints the pooled row beside the base model; a rerun trains nothing and reuses every result."""
    from surfbench.cli import app
    from surfbench.store.results import ResultStore
    from surfbench.store.trainings import trainings
    from surfbench.training.curves import judged_predictions, protocol_table
    from surfbench.units import EV_PER_A2_IN_J_PER_M2

    monkeypatch.setenv("SURFBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SURFBENCH_MODEL_DIR", str(MODELS))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    args = ["train", "--method", "readout", "--from", base, "--protocol", "facet-cv", "-e", "Mo", "--store",
            str(tmp_path), "--threads", "2"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "facet-cv Mo: 11 folds" in out.output
    assert out.output.count("fold Mo(") == 11
    with ResultStore(tmp_path, read_only=True) as store:
        tr = trainings(store)
        assert len(tr) == 11 and set(tr["protocol"]) == {"facet-cv"}
        preds = judged_predictions(store, "mlearn-surfaces")
        assert len(preds) == 11 and preds["record_id"].is_unique
        # one fold by hand: gamma from the fold model's stored slab and bulk energies
        row = tr[tr["fold"] == "Mo(110)"].iloc[0]
        res = store.results("mlearn-surfaces", row["fingerprint"], "static").set_index("record_id")
        (slab_id,) = row["judged"]
        slab, bulk_row = res.loc[slab_id], res[res["kind"] == "bulk"].iloc[0]
        gamma = (slab["energy_ev"] - slab["n_atoms"] * bulk_row["energy_ev"] / bulk_row["n_atoms"]) / (2 * slab["area_a2"])
        mine = preds.set_index("record_id").loc[slab_id]
        assert mine["gamma_pred_j_per_m2"] == pytest.approx(gamma * EV_PER_A2_IN_J_PER_M2, rel=1e-12)
        assert set(res.index) == {slab_id, bulk_row.name}  # evaluated on its judged slab and the bulk only
        table = protocol_table(store, "mlearn-surfaces", n_boot=200)
    allrow = table[(table["element"] == "all") & (table["kind"] == "fine-tuned")].iloc[0]
    assert allrow["n_judged"] == 11 and allrow["n_ok"] == 11 and allrow["n_folds"] == 11
    errors = preds["error_gamma_j_per_m2"].to_numpy()
    assert allrow["gamma_rmse"] == pytest.approx(float(np.sqrt(np.mean(errors ** 2))), rel=1e-12)
    assert allrow["gamma_rmse_lo"] < allrow["gamma_rmse"] < allrow["gamma_rmse_hi"]
    zs = table[(table["element"] == "all") & (table["kind"] == "zero-shot")]
    assert list(zs["label"]) == [base] and int(zs["n_common"].iloc[0]) == 11
    import surfbench

    api = surfbench.trained_models(tmp_path, n_boot=200)  # the Python API: the same table
    pd.testing.assert_frame_equal(api.drop(columns="dataset"), table)

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "trained in" not in again.output and again.output.count("reused") >= 11
    shown = runner.invoke(app, ["table", "--trained", "-w", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "facet-cv" in shown.output and "11 folds" in shown.output


def test_readout_of_a_model_without_features_is_a_clear_error(data_dir, tmp_path, monkeypatch):
    from surfbench.cli import app

    monkeypatch.setenv("SURFBENCH_DATA_DIR", str(data_dir))
    runner = CliRunner()
    out = runner.invoke(app, ["train", "--method", "readout", "--from", "emt", "-e", "Cu", "--store", str(tmp_path)])
    assert out.exit_code == 2
    assert "emt" in out.output and "no per-atom read-out features" in out.output
    out = runner.invoke(app, ["train", "--method", "readout", "-e", "Cu", "--store", str(tmp_path)])
    assert out.exit_code == 2 and "needs a model to start from: --from NAME" in out.output
    out = runner.invoke(app, ["train", "--method", "readout", "--from", "emt", "--protocol", "leave-one-out", "-e", "Cu",
                              "--store", str(tmp_path)])
    assert out.exit_code == 2 and "unknown protocol 'leave-one-out'" in out.output
