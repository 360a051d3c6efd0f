"""The synthetic paper-scale rehearsal set: built reproducibly, and marked SYNTHETIC wherever it
shows (data set name, record ids, notes, console tables, report title and JSON) so that no one
takes it for DFT data. A few EMT elements only: no model weights are needed."""

import json
import math

import numpy as np
import pytest
from ase.calculators.emt import EMT
from typer.testing import CliRunner

from surfbench.cli import app
from surfbench.data import synthetic
from surfbench.data.errors import DataError
from surfbench.data.registry import load_dataset
from surfbench.units import EV_PER_A2_IN_J_PER_M2

runner = CliRunner(env={"COLUMNS": "250"})
ELEMENTS = ["Cu", "Au"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return synthetic.build(out, ELEMENTS)


def test_build_counts_manifest_and_tags(built):
    manifest = synthetic.read_manifest(built.manifest)
    assert manifest["synthetic"] is True and manifest["name"] == "synthetic-paper-scale"
    assert manifest["banner"] == synthetic.BANNER and "not DFT" in manifest["banner"]
    assert manifest["stand_ins"] == {"Au": "emt", "Cu": "emt"}
    assert manifest["seed"] is None and manifest["versions"]["pymatgen"] != "not-installed"
    # fcc up to Miller index 3: the 13 distinct families (one termination each for an fcc element)
    assert manifest["counts"] == {"elements": 2, "bulks": 2, "slabs": 26,
                                  "atoms_in_slabs": manifest["counts"]["atoms_in_slabs"]}
    ds = load_dataset(str(built.manifest))
    assert ds.name.startswith("synthetic") and synthetic.is_synthetic(ds.name)
    assert not synthetic.is_synthetic("/home/me/synthetic-dft.extxyz")  # a user's own DFT file is not tagged
    assert all(r.id.startswith("SYNTHETIC/") for r in [*ds.bulks.values(), *ds.surfaces])
    assert all(r.source.startswith("SYNTHETIC stand-in emt") for r in [*ds.bulks.values(), *ds.surfaces])
    assert any("not DFT" in n for n in ds.notes)
    families = {s.label for s in ds.surfaces if s.element == "Cu"}
    assert families == {"100", "110", "111", "210", "211", "221", "310", "311", "320", "321", "322", "331", "332"}


def test_reference_gamma_is_emt_by_hand(built):
    """The stored 'reference' energies are EMT's: gamma of Cu(111) recomputed here from EMT
    energies of the stored structures, and at the EMT value of the literature's order (about
    1.0-1.3 J/m^2 for EMT Cu close-packed facets)."""
    ds = load_dataset(str(built.manifest))
    bulk = ds.bulks["SYNTHETIC/Cu/fcc/bulk"]
    slab = next(s for s in ds.surfaces if s.id == "SYNTHETIC/Cu/fcc/111/0")
    e_bulk = bulk.atoms.copy()
    e_bulk.calc = EMT()
    per_atom = e_bulk.get_potential_energy() / len(bulk.atoms)
    atoms = slab.atoms.copy()
    atoms.calc = EMT()
    area = float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))
    by_hand = (atoms.get_potential_energy() - len(atoms) * per_atom) / (2 * area) * EV_PER_A2_IN_J_PER_M2
    assert math.isclose(slab.dft_gamma_j_per_m2, by_hand, rel_tol=1e-9)
    assert 0.9 < by_hand < 1.3


def test_build_is_reproducible(built, tmp_path):
    again = synthetic.build(tmp_path, ELEMENTS)
    assert synthetic.read_manifest(again.manifest)["sha256"] == synthetic.read_manifest(built.manifest)["sha256"]
    assert again.data.read_bytes() == built.data.read_bytes()


def test_resumes_from_finished_elements_and_records_skipped_ones(built, tmp_path):
    """A killed build keeps each finished element (parts/<El>.json, reused when the stand-in and
    the settings match); an element the stand-in cannot evaluate is left out with its reason."""
    import shutil

    shutil.copytree(built.data.parent / "parts", tmp_path / "parts")
    cu_part = (tmp_path / "parts" / "Cu.json").read_text()
    seen = []
    again = synthetic.build(tmp_path, ["Cu", "Fe"], stand_in="emt", progress=lambda el, n, s: seen.append((el, n)))
    assert (tmp_path / "parts" / "Cu.json").read_text() == cu_part  # reused, not rebuilt
    manifest = synthetic.read_manifest(again.manifest)
    assert seen == [("Cu", 13)] and manifest["counts"]["slabs"] == 13
    assert "stand-in emt failed" in manifest["skipped"]["Fe"] and "Fe" not in manifest["stand_ins"]
    with pytest.raises(DataError, match="no slab could be built"):
        synthetic.build(tmp_path / "fe", ["Fe"], stand_in="emt")


def test_edited_file_and_unmarked_manifest_are_refused(built, tmp_path):
    data = tmp_path / built.data.name
    data.write_bytes(built.data.read_bytes()[:-8] + b"\0" * 8)
    manifest = json.loads(built.manifest.read_text())
    (tmp_path / built.manifest.name).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="sha256 differs"):
        synthetic.load(tmp_path / built.manifest.name)
    manifest["synthetic"] = False
    (tmp_path / "x.manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="not a synthetic"):
        synthetic.read_manifest(tmp_path / "x.manifest.json")
    with pytest.raises(DataError, match="no crystalline ASE reference state for He"):
        synthetic.build(tmp_path / "he", ["He"])


def test_tagged_in_tables_and_report(built, tmp_path):
    """EMT on its own stand-in set: every error is zero by construction, and every table and the
    report say SYNTHETIC."""
    work = str(tmp_path / "w")
    out = runner.invoke(app, ["run", "--model", "emt", "--dataset", str(built.manifest), "--workdir", work])
    assert out.exit_code == 0, out.output
    assert "SYNTHETIC (not DFT)" in out.output and synthetic.BANNER in out.output.replace("\n", " ")
    assert "28 computed" in out.output
    out = runner.invoke(app, ["table", "--workdir", work, "--models", "all"])
    assert out.exit_code == 0, out.output
    assert "SYNTHETIC (not DFT): models on" in out.output
    out = runner.invoke(app, ["table", "--workdir", work])
    assert "SYNTHETIC (not DFT)" in out.output
    html = tmp_path / "r" / "report.html"
    out = runner.invoke(app, ["report", "--workdir", work, "--output", str(html), "--no-png", "--n-boot", "50"])
    assert out.exit_code == 0, out.output
    text = html.read_text()
    assert "<title>SYNTHETIC data, not DFT: surfbench report:" in text
    assert synthetic.BANNER in text
    payload = json.loads((html.parent / "report-metrics.json").read_text())
    assert payload["synthetic"] is True and payload["title"].startswith("SYNTHETIC")
    overall = {m["quantity"]: m for m in payload["metrics"]["overall"]}
    assert overall["gamma"]["n_ok"] == 26 and abs(overall["gamma"]["rmse"]) < 1e-9
