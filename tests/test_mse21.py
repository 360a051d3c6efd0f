"""mSE21 and the model-built protocol (issue 16): the loader against the csv, gamma by hand
with EMT, ASE builder against pymatgen's SlabGenerator, thickness convergence, failures,
metrics against PBE/experiment and the report section."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from surfbench.analysis.reference_gamma import pbe_experiment_gap, reference_metrics, reference_predictions
from surfbench.data.errors import DataError
from surfbench.data.mse21 import CSV, ZIP, load_mse21, parse_csv
from surfbench.evaluation import slab_builder
from surfbench.evaluation.model_built import ModelBuiltProtocol
from surfbench.evaluation.thickness import converged_layers, thickness_convergence
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.records import BulkRecord, Dataset, ReferenceSurfaceRecord, SurfaceRecord
from surfbench.store.results import ResultStore
from tests.conftest import SHARED_DATA

HAVE_MSE21 = (SHARED_DATA / CSV.relpath).is_file()
needs_mse21 = pytest.mark.skipif(not HAVE_MSE21, reason=f"mSE21 copy not found at {SHARED_DATA / 'mse21'}")


def _facet(element: str, crystal: str, miller, pbe: float, exp: float) -> ReferenceSurfaceRecord:
    return ReferenceSurfaceRecord(id=f"{element}{''.join(map(str, miller))}", element=element, crystal=crystal,
                                  miller=miller, gamma_pbe_j_per_m2=pbe, gamma_exp_j_per_m2=exp)


# ---------------------------------------------------------------------------- loader
@needs_mse21
def test_loader_against_the_csv():
    ds = load_mse21(SHARED_DATA, download=False)
    assert ds.name == "mse21" and len(ds.surfaces) == 21 and not ds.bulks
    by_id = {r.id: r for r in ds.surfaces}
    # two rows read by hand from mSE21.csv (J/m^2)
    assert by_id["Cu111"].gamma_pbe_j_per_m2 == 1.272773232 and by_id["Cu111"].gamma_exp_j_per_m2 == 1.8075
    assert by_id["W110"].gamma_pbe_j_per_m2 == 3.332021865 and by_id["W110"].gamma_exp_j_per_m2 == 3.47
    assert (by_id["Cu111"].crystal, by_id["Cu111"].miller) == ("fcc", (1, 1, 1))
    assert (by_id["W110"].crystal, by_id["W110"].miller) == ("bcc", (1, 1, 0))
    assert sorted(r.id for r in ds.surfaces if r.crystal == "bcc") == sorted(
        f"{e}110" for e in ("Li", "Na", "K", "Rb", "Ba", "Nb", "Ta", "Mo", "W", "Fe"))
    assert all(r.miller == (1, 1, 1) for r in ds.surfaces if r.crystal == "fcc")
    # J/m^2, not eV/Angstrom^2: the lowest is Rb's PBE value, the highest W's experimental one
    values = [v for r in ds.surfaces for v in (r.gamma_pbe_j_per_m2, r.gamma_exp_j_per_m2)]
    assert min(values) == 0.081340637 and max(values) == 3.47
    # the data set's 4-layer slabs come along
    assert all(len(r.atoms) == 4 and set(r.atoms.get_chemical_symbols()) == {r.element} for r in ds.surfaces)


@needs_mse21
def test_loader_reads_the_zip_and_checks_sha256(tmp_path):
    (tmp_path / "mse21").mkdir()
    shutil.copy(SHARED_DATA / ZIP.relpath, tmp_path / ZIP.relpath)  # only the zip: members read from it
    from_zip = load_mse21(tmp_path, download=False)
    assert [(r.id, r.gamma_pbe_j_per_m2) for r in from_zip.surfaces] == \
        [(r.id, r.gamma_pbe_j_per_m2) for r in load_mse21(SHARED_DATA, download=False).surfaces]
    (tmp_path / CSV.relpath).write_bytes((SHARED_DATA / CSV.relpath).read_bytes().replace(b"1.8075", b"1.9075"))
    with pytest.raises(DataError, match=r"mSE21\.csv.*sha256"):
        load_mse21(tmp_path, download=False)


def test_loader_offline_error_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"mse21/mSE21\.zip.*not found"):
        load_mse21(tmp_path, download=False)


def test_bad_csv_rows_name_the_line():
    head = "sysnames,cell_type,Exp_SE,PBE_SE\n"
    with pytest.raises(DataError, match=r"line 3.*'Xx111'"):
        parse_csv(head + "Cu111,fcc,1.8,1.27\nXx111,fcc,1.0,1.0\n", "t.csv")
    with pytest.raises(DataError, match=r"record Cu111.*PBE_SE 'n/a'"):
        parse_csv(head + "Cu111,fcc,1.8,n/a\n", "t.csv")
    with pytest.raises(DataError, match=r"record Cu111.*cell_type 'hcp'"):
        parse_csv(head + "Cu111,hcp,1.8,1.2\n", "t.csv")


# ---------------------------------------------------------------------------- protocol
def _gamma_by_hand_cu111(layers: int, vacuum_a: float) -> tuple[float, float]:
    """Cu(111) with EMT built and relaxed here with ASE alone: (a in Angstrom, gamma in J/m^2)."""
    from ase import units

    cu = bulk("Cu", "fcc", a=3.6)
    cu.calc = EMT()
    BFGS(FrechetCellFilter(cu), logfile=None).run(fmax=1e-4)
    a = (4.0 * cu.get_volume()) ** (1.0 / 3.0)  # fcc primitive cell: a^3 / 4
    e_bulk = cu.get_potential_energy() / len(cu)
    slab = fcc111("Cu", size=(1, 1, layers), a=a, vacuum=vacuum_a / 2)
    slab.pbc = True
    slab.calc = EMT()
    BFGS(slab, logfile=None).run(fmax=1e-3)
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    gamma = (slab.get_potential_energy() - len(slab) * e_bulk) / (2 * area)
    return a, gamma * units._e * 1e20


def test_gamma_by_hand_cu111_emt():
    proto = ModelBuiltProtocol()
    out = proto.calc_record(_facet("Cu", "fcc", (1, 1, 1), 1.27, 1.81), EMT())
    assert out.status == "ok", out.message
    a, gamma = _gamma_by_hand_cu111(proto.settings.layers, proto.settings.vacuum_a)
    assert out.extra["lattice_a"] == pytest.approx(a, abs=1e-3)
    assert out.extra["gamma_j_per_m2"] == pytest.approx(gamma, abs=2e-3)
    assert 0.9 < gamma < 1.2  # EMT Cu(111), well below PBE's 1.27
    assert out.extra["n_atoms"] == out.extra["atomic_layers"] == proto.settings.layers
    assert out.extra["builder"] == "ase.build.fcc111"


def test_ase_builder_and_slabgenerator_agree(monkeypatch):
    """Cu(100): ASE fcc100 and pymatgen's SlabGenerator give the same relaxed gamma."""
    proto = ModelBuiltProtocol(layers=6)
    ase_out = proto.facet("Cu", "fcc", (1, 0, 0), EMT())
    monkeypatch.setattr(slab_builder, "ASE_BUILDERS", {})
    pmg_out = proto.facet("Cu", "fcc", (1, 0, 0), EMT())
    assert ase_out.extra["builder"] == "ase.build.fcc100"
    assert pmg_out.extra["builder"] == "pymatgen.core.surface.SlabGenerator"
    assert pmg_out.extra["gamma_j_per_m2"] == pytest.approx(ase_out.extra["gamma_j_per_m2"], abs=1e-3)


def test_failures_are_recorded_not_raised(tmp_path):
    proto = ModelBuiltProtocol()
    mo = _facet("Mo", "bcc", (1, 1, 0), 2.70, 2.95)
    out = proto.calc_record(mo, EMT())  # EMT has no Mo parameters
    assert (out.status, out.failure_kind) == ("failed", "calculator_error") and out.message.startswith("bulk:")
    assert proto.facet("Cu", "fcc", None, EMT()).failure_kind == "no_miller_index"
    unknown = proto.facet("Cu", "xyz", (1, 1, 1), EMT())
    assert unknown.failure_kind == "build_error" and "xyz" in unknown.message
    ds = Dataset("ref-toy", {}, [_facet("Cu", "fcc", (1, 1, 1), 1.27, 1.81), mo])
    with ResultStore(tmp_path) as store:
        summary = run(ds, load_model("emt"), store, proto)
        res = store.reference_results("ref-toy").set_index("record_id")
    assert summary.failure_kinds == {"unsupported_element": 1} and summary.computed == 2
    assert res.loc["Mo110", "status"] == "failed" and res.loc["Mo110", "failure_kind"] == "unsupported_element"
    assert res.loc["Cu111", "status"] == "ok" and res.loc["Cu111", "protocol"] == "model-built"
    assert res.loc["Cu111", "gamma_pbe_j_per_m2"] == 1.27
    with ResultStore(tmp_path) as store, pytest.raises(ValueError, match="ref-toy holds reference values only"):
        run(ds, load_model("emt"), store, "static")  # nothing to evaluate statically


def test_mlearn_style_records_use_the_protocols_own_gamma(tmp_path):
    """On a DFT data set the slab is the protocol's, not the record's: the gamma in the
    analysis is the stored one, and the bulk energy per atom is that of the model's own cell."""
    cu = bulk("Cu", "fcc", a=3.61, cubic=True)  # 4 atoms: not the protocol's 1-atom cell
    b = BulkRecord(id="Cu/bulk", element="Cu", atoms=cu, energy_ev=-3.7 * 4)
    slab = fcc111("Cu", size=(1, 1, 4), a=3.61, vacuum=5.0)
    s = SurfaceRecord(id="Cu/210", element="Cu", atoms=slab, energy_ev=-13.0, bulk_id=b.id,
                      bulk_energy_per_atom_ev=-3.7, miller=(2, 1, 0))
    from surfbench.analysis.predictions import bulk_predictions, slab_predictions

    with ResultStore(tmp_path) as store:
        run(Dataset("toy", {b.id: b}, [s]), load_model("emt"), store, ModelBuiltProtocol(layers=4))
        res = store.results("toy")
    slabs, bulks = slab_predictions(res), bulk_predictions(res)
    extra = json.loads(res.set_index("record_id").loc["Cu/210", "extra"])
    assert extra["builder"] == "pymatgen.core.surface.SlabGenerator" and extra["n_atoms"] != len(slab)
    assert slabs["gamma_pred_j_per_m2"].iloc[0] == pytest.approx(extra["gamma_j_per_m2"], rel=1e-12)
    assert bulks["e_pred_per_atom_ev"].iloc[0] == pytest.approx(extra["bulk_energy_per_atom_ev"], rel=1e-12)


# ---------------------------------------------------------------------------- thickness
def test_thickness_convergence_emt():
    table = thickness_convergence(ModelBuiltProtocol(), "Cu", "fcc", (1, 1, 1), EMT(), layers=range(3, 6))
    assert list(table["layers"]) == [3, 4, 5] and list(table["atomic_layers"]) == [3, 4, 5]
    assert (table["status"] == "ok").all() and table["delta_j_per_m2"].iloc[-1] == 0.0
    # EMT is short-ranged: Cu(111) is converged to 1e-3 J/m^2 from 3 layers on
    assert table["delta_j_per_m2"].abs().max() < 1e-3 and 0.9 < table["gamma_j_per_m2"].iloc[0] < 1.2
    assert converged_layers(table, 0.02) == 3


def test_converged_layers_rule():
    t = pd.DataFrame({"layers": [3, 4, 5, 6, 7], "status": ["ok"] * 5,
                      "gamma_j_per_m2": [1.20, 1.05, 1.01, 1.00, 1.00]})
    t["delta_j_per_m2"] = t["gamma_j_per_m2"] - 1.00
    assert converged_layers(t, 0.02) == 5 and converged_layers(t, 0.06) == 4 and converged_layers(t, 0.001) == 6
    t.loc[3, "status"] = "failed"  # a failed thickness breaks the run of converged ones
    assert converged_layers(t, 0.02) is None


# ---------------------------------------------------------------------------- metrics and report
def _results_frame() -> pd.DataFrame:
    rows = [("Cu111", "fcc", 1.3, 1.8, "ok", 1.0), ("Ag111", "fcc", 0.7, 1.2, "ok", 0.6),
            ("W110", "bcc", 3.3, 3.5, "ok", 3.0), ("Mo110", "bcc", 2.7, 3.0, "failed", None)]
    return pd.DataFrame([{
        "dataset": "ref", "record_id": r, "fingerprint": "m@1", "model": "m", "protocol": "model-built",
        "element": r[:-3], "crystal": c, "miller": r[-3:], "gamma_pbe_j_per_m2": pbe, "gamma_exp_j_per_m2": exp,
        "status": st, "failure_kind": None if st == "ok" else "calculator_error", "message": None, "wall_s": 1.0,
        "extra": json.dumps({"gamma_j_per_m2": g, "lattice_a": 3.6}) if g is not None else None,
    } for r, c, pbe, exp, st, g in rows])


def test_reference_metrics_by_hand():
    preds = reference_predictions(_results_frame())
    m = reference_metrics(preds, n_boot=200).set_index(["crystal", "reference"])
    pbe_err = np.array([1.0 - 1.3, 0.6 - 0.7, 3.0 - 3.3])
    assert m.loc[("all", "PBE"), "rmse"] == pytest.approx(math.sqrt(np.mean(pbe_err**2)), rel=1e-12)
    assert m.loc[("all", "PBE"), "mean_signed_error"] == pytest.approx(pbe_err.mean(), rel=1e-12)
    assert m.loc[("all", "experiment"), "mae"] == pytest.approx(np.mean([0.8, 0.6, 0.5]), rel=1e-12)
    assert (m.loc[("all", "PBE"), "n_ok"], m.loc[("all", "PBE"), "failed"]) == (3, 1)
    assert (m.loc[("bcc", "PBE"), "n_ok"], m.loc[("bcc", "PBE"), "rmse"]) == (1, pytest.approx(0.3))
    assert m.loc[("all", "PBE"), "rmse_lo"] <= m.loc[("all", "PBE"), "rmse"] <= m.loc[("all", "PBE"), "rmse_hi"]
    # floor on the same (ok) facets: PBE - exp = -0.5, -0.5, -0.2
    assert m.loc[("all", "experiment"), "floor_rmse"] == pytest.approx(math.sqrt((0.25 + 0.25 + 0.04) / 3))
    gap = pbe_experiment_gap(preds, n_boot=200).set_index("crystal")
    assert gap.loc["all", "n"] == 4 and gap.loc["bcc", "mean_signed_error"] == pytest.approx((-0.2 - 0.3) / 2)


def _tiny_dft() -> Dataset:
    """One Cu bulk and one Cu(111) slab with made-up DFT energies (a DFT data set to report on)."""
    cu = bulk("Cu", "fcc", a=3.61, cubic=True)
    b = BulkRecord(id="Cu/bulk", element="Cu", atoms=cu, energy_ev=-3.7 * 4)
    s = SurfaceRecord(id="Cu/111", element="Cu", atoms=fcc111("Cu", size=(1, 1, 4), a=3.61, vacuum=5.0),
                      energy_ev=-13.0, bulk_id=b.id, bulk_energy_per_atom_ev=-3.7, miller=(1, 1, 1))
    return Dataset("toy", {b.id: b}, [s])


def test_report_section(tmp_path):
    from surfbench.report.html import build_report

    refs = Dataset("ref-toy", {}, [_facet("Cu", "fcc", (1, 1, 1), 1.27, 1.81), _facet("Ni", "fcc", (1, 1, 1), 1.95, 2.42),
                                   _facet("Mo", "bcc", (1, 1, 0), 2.70, 2.95)])
    with ResultStore(tmp_path) as store:
        emt = load_model("emt")
        run(_tiny_dft(), emt, store)
        run(refs, emt, store, ModelBuiltProtocol(layers=3))
        expected = reference_metrics(reference_predictions(store.reference_results("ref-toy")), n_boot=100)
        path = build_report(store, "toy", None, "static", tmp_path / "r.html", png=False, n_boot=100)
    page = path.read_text()
    section = page.split('<section id="reference">', 1)[1].split("</section>", 1)[0]
    row = expected[(expected["crystal"] == "all") & (expected["reference"] == "PBE")].iloc[0]
    assert row["n_ok"] == 2 and f"{row['rmse']:.3f}" in section and "2/3" in section
    assert "Mo110: unsupported_element" in section and "Plotly.newPlot" in section
    payload = json.loads(path.with_name("r-metrics.json").read_text())
    assert payload["reference"]["metrics"][0]["model"] == "emt"


def test_cli_table_and_report_on_reference_runs(tmp_path):
    """'surfbench table' prints reference runs beside DFT ones; 'report' on one explains where
    its results are."""
    from typer.testing import CliRunner

    from surfbench.cli import app

    with ResultStore(tmp_path) as store:
        run(_tiny_dft(), load_model("emt"), store)
        run(Dataset("ref-toy", {}, [_facet("Cu", "fcc", (1, 1, 1), 1.27, 1.81)]), load_model("emt"), store,
            ModelBuiltProtocol(layers=3))
        gamma = json.loads(store.reference_results("ref-toy")["extra"].iloc[0])["gamma_j_per_m2"]
    cli = CliRunner(env={"COLUMNS": "250"})
    out = cli.invoke(app, ["table", "--workdir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "ref-toy (reference values)" in out.output and "emt@" in out.output  # both runs
    assert f"{abs(gamma - 1.27):.3f}" in out.output and f"{abs(gamma - 1.81):.3f}" in out.output  # |error|, n=1
    rep = cli.invoke(app, ["report", "--workdir", str(tmp_path), "--dataset", "ref-toy", "--protocol", "model-built",
                           "-o", str(tmp_path / "r.html")])
    assert rep.exit_code != 0 and "reference values only" in rep.output


def test_export_writes_reference_results_and_refuses_an_empty_selection(tmp_path):
    """`export` of a store holding only a reference-value run wrote the header alone and said
    "wrote" (issue 25, point 9): it writes every protocol's results, the reference facets with
    the model's gamma beside PBE and experiment; a filter that leaves nothing is an error and
    writes no file."""
    from typer.testing import CliRunner

    from surfbench.cli import app

    refs = Dataset("ref-toy", {}, [_facet("Cu", "fcc", (1, 1, 1), 1.27, 1.81), _facet("Mo", "bcc", (1, 1, 0), 2.70, 2.95)])
    with ResultStore(tmp_path) as store:
        run(refs, load_model("emt"), store, ModelBuiltProtocol(layers=3))
        gamma = json.loads(store.reference_results("ref-toy").set_index("record_id").loc["Cu111", "extra"])["gamma_j_per_m2"]
    cli = CliRunner(env={"COLUMNS": "250"})
    out = cli.invoke(app, ["export", "-w", str(tmp_path), "-o", str(tmp_path / "x.csv")])
    assert out.exit_code == 0, out.output
    df = pd.read_csv(tmp_path / "x.csv").set_index("record_id")
    assert sorted(df.index) == ["Cu111", "Mo110"] and set(df["kind"]) == {"reference_facet"}
    cu = df.loc["Cu111"]
    assert cu["protocol"] == "model-built(layers=3,vacuum_a=15.0,bulk_fmax_ev_per_a=0.005,fmax_ev_per_a=0.05,steps=500," \
                              "optimizer=FIRE,fix_bottom_layers=0,max_displacement_a=5.0,max_volume_ratio=2.0)"
    assert cu["miller"] == "1 1 1" and cu["gamma_pred_j_per_m2"] == pytest.approx(gamma, rel=1e-12)
    assert cu["error_pbe_j_per_m2"] == pytest.approx(gamma - 1.27, rel=1e-12)
    assert cu["error_exp_j_per_m2"] == pytest.approx(gamma - 1.81, rel=1e-12)
    assert df.loc["Mo110", "gamma_status"] == "failed" and df.loc["Mo110", "gamma_failure"] == "unsupported_element"
    # with a DFT run beside it, both are exported, every protocol
    with ResultStore(tmp_path) as store:
        run(_tiny_dft(), load_model("emt"), store)
    out = cli.invoke(app, ["export", "-w", str(tmp_path), "-o", str(tmp_path / "y.csv")])
    df = pd.read_csv(tmp_path / "y.csv")
    assert out.exit_code == 0 and sorted(df["kind"]) == ["bulk", "reference_facet", "reference_facet", "slab"]
    assert set(df["protocol"]) == {"static", cu["protocol"]}
    out = cli.invoke(app, ["export", "-w", str(tmp_path), "--elements", "Ni", "-o", str(tmp_path / "z.csv")])
    assert out.exit_code == 2 and "no stored result matches elements Ni: nothing written" in " ".join(out.output.split())
    assert not (tmp_path / "z.csv").exists()


def test_provenance_of_mse21_is_said_as_it_is():
    """ml-peg has no surface-energy benchmark (issue 25, point 10): mSE21 is the 21-metal set of
    Tran et al. as packaged in a public data repository of an ml-peg author, at a pinned commit;
    no text of the code, the docs or the README says otherwise."""
    import re
    from pathlib import Path

    from surfbench.data import mse21
    from surfbench.data.registry import DATASETS

    for text in (mse21.REFERENCE, DATASETS["mse21"].reference):
        assert "Tran et al." in text and "235162" in text and "benshi97/ml-peg-transition-metal-data" in text
    root = Path(__file__).resolve().parents[1]
    wrong = re.compile(r"ml-peg(?:'s)?\s+surface[- ]energy\s+benchmark|as used by ml-peg", re.IGNORECASE)
    files = [root / "README.md", *(root / "docs").rglob("*.md"), *(root / "src").rglob("*.py"),
             *(root / "benchmarks").glob("*.py")]
    offending = [str(f.relative_to(root)) for f in files if wrong.search(f.read_text(encoding="utf-8"))]
    assert not offending, offending
    ds_doc = (root / "docs" / "commands" / "data.md").read_text()
    assert "the 21-metal set of Tran et al." in ds_doc and "ml-peg itself has no surface-energy benchmark" in ds_doc
