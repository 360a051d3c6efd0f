"""Users' own data files: the documented format, validation per record, same gamma as the
built-in loader."""

import pytest
from ase.build import bulk, fcc111
from ase.io import write

from surfbench.data.errors import DataError
from surfbench.data.userdata import load_user_dataset, parse_miller, validate, write_user_dataset
from tests.conftest import needs_data


@needs_data
def test_user_file_from_mlearn_frames_gives_the_same_gammas(mlearn_surfaces, tmp_path):
    path = write_user_dataset(mlearn_surfaces, tmp_path / "mine.extxyz")
    assert validate(path) == []
    mine = load_user_dataset(path)
    ref = {s.id: s for s in mlearn_surfaces.surfaces}
    assert len(mine.surfaces) == len(ref) == 75 and len(mine.bulks) == 6
    for s in mine.surfaces:
        r = ref[s.id]
        assert s.dft_gamma_j_per_m2 == pytest.approx(r.dft_gamma_j_per_m2, abs=1e-9)
        assert s.area_a2 == pytest.approx(r.area_a2, abs=1e-9)
        assert s.miller == r.miller and s.split == r.split and s.reconstructed == r.reconstructed


def _cu_files(tmp_path):
    b = bulk("Cu", "fcc", a=3.6, cubic=True)
    b.info.update(kind="bulk", name="cu-bulk", energy=-16.0)
    s = fcc111("Cu", size=(1, 1, 3), a=3.6, vacuum=6.0, periodic=True)
    s.info.clear()
    s.info.update(kind="slab", name="cu-111", energy=-10.5, miller="1 1 1", termination="Cu")
    return b, s


def test_a_small_hand_written_file(tmp_path):
    b, s = _cu_files(tmp_path)
    path = tmp_path / "cu.extxyz"
    write(path, [b, s], format="extxyz")
    ds = load_user_dataset(path)
    slab = ds.surfaces[0]
    assert slab.bulk_id == "cu-bulk" and slab.miller == (1, 1, 1) and slab.termination == "Cu"
    # (E - n e_bulk) / 2A with e_bulk = -16/4 = -4 eV/atom
    expected = (-10.5 + 3 * 4.0) / (2 * slab.area_a2)
    assert slab.dft_gamma_ev_per_a2 == pytest.approx(expected, rel=1e-12)


def test_ase_database_is_accepted(tmp_path):
    import ase.db

    b, s = _cu_files(tmp_path)
    path = tmp_path / "cu.db"
    with ase.db.connect(path) as db:
        for a in (b, s):
            info = dict(a.info)
            energy = info.pop("energy")
            from ase.calculators.singlepoint import SinglePointCalculator

            a = a.copy()
            a.calc = SinglePointCalculator(a, energy=energy)
            db.write(a, **info)
    ds = load_user_dataset(path)
    assert ds.surfaces[0].dft_gamma_ev_per_a2 == pytest.approx((-10.5 + 12.0) / (2 * ds.surfaces[0].area_a2))


def test_problems_are_reported_per_record(tmp_path):
    b, s = _cu_files(tmp_path)
    no_energy = s.copy()
    no_energy.info = {"kind": "slab", "name": "no-energy"}
    bulk_cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    bulk_cell.info.update(kind="slab", name="not-a-slab", energy=-16.0)
    orphan = fcc111("Au", size=(1, 1, 3), a=4.08, vacuum=6.0, periodic=True)
    orphan.info.clear()
    orphan.info.update(kind="slab", name="au-111", energy=-9.0)
    flat = s.copy()
    flat.info = {"kind": "slab", "name": "flat", "energy": -1.0}
    flat.cell[1] = flat.cell[0]  # in-plane vectors parallel: zero area
    dup = b.copy()
    dup.info = dict(b.info)
    path = tmp_path / "bad.extxyz"
    write(path, [b, s, no_energy, bulk_cell, orphan, dup], format="extxyz")
    problems = validate(path)
    text = "\n".join(f"{p.record}: {p.message}" for p in problems)
    assert "#2 (no-energy): missing energy" in text
    assert "#3 (not-a-slab): non-slab cell" in text
    assert "#4 (au-111): no bulk for element Au" in text
    assert "#5 (cu-bulk): duplicate name (also record #0)" in text
    assert len(problems) == 4
    with pytest.raises(DataError, match="4 problem") as info:
        load_user_dataset(path)
    assert str(path) in str(info.value)
    flat_path = tmp_path / "flat.extxyz"
    write(flat_path, [b, flat], format="extxyz")
    assert [p.message for p in validate(flat_path)] == ["not a slab or bulk cell: the cell is degenerate (zero volume); a 3D-periodic cell is required"]


def test_unreadable_file(tmp_path):
    path = tmp_path / "x.extxyz"
    path.write_text("3\nnot a comment line with lattice\nCu 0 0\n")
    with pytest.raises(DataError, match="cannot be read") as info:
        validate(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text, hkl", [("1 1 0", (1, 1, 0)), ("(1,-1,0)", (1, -1, 0)), ("1_1_1", (1, 1, 1)), ("210", (2, 1, 0)), ([3, 1, 1], (3, 1, 1))])
def test_parse_miller(text, hkl):
    assert parse_miller(text) == hkl
    with pytest.raises(ValueError):
        parse_miller("1 1")


@pytest.mark.parametrize("value, why", [
    ("000", r"\(0 0 0\) is not a Miller index of any plane"), ([0, 0, 0], r"\(0 0 0\)"),
    ([1.5, 0, 0], "1.5 is not a whole number"), ([True, 1, 0], "True is not a whole number"),
    ("1.5 0 0", "is not a Miller index like"),
])
def test_parse_miller_refuses_zero_and_fractional_indices(value, why):
    """(000) was accepted and "1.5 0 0" (a float array in an extxyz comment line) became (100)
    (issue 25, point 8)."""
    import numpy as np

    with pytest.raises(ValueError, match=why):
        parse_miller(value)
    assert parse_miller(np.array([1.0, 1.0, 0.0])) == (1, 1, 0)  # whole numbers written as floats are fine


def test_a_fractional_miller_index_in_a_file_is_a_problem(tmp_path):
    from surfbench.data.userdata import write_user_dataset
    from tests.workdirs import cu_dataset

    path = write_user_dataset(cu_dataset(), tmp_path / "cu.extxyz")
    path.write_text(path.read_text().replace('miller="1 1 1"', 'miller="1.5 0 0"'))
    problems = validate(path)
    assert [(p.record, p.severity) for p in problems] == [("#1 (Cu-111)", "error")]
    assert "1.5 is not a whole number" in problems[0].message


def test_empty_file_and_bulks_only_are_errors_naming_the_file(tmp_path):
    """An empty file and a file without slabs are refused (issue 17, point 4)."""
    from typer.testing import CliRunner

    from surfbench.cli import app

    b, _ = _cu_files(tmp_path)
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    bulks_only = tmp_path / "bulks.extxyz"
    write(bulks_only, [b], format="extxyz")
    assert [(p.record, p.message) for p in validate(empty)] == [("file", "no records: a data set needs slabs and their bulks")]
    assert [p.message for p in validate(bulks_only)] == [
        "no slab records (1 record(s), none of kind 'slab'): a data set needs at least one slab"]
    cli = CliRunner(env={"COLUMNS": "250"})
    for path, what in ((empty, "no records"), (bulks_only, "no slab records")):
        with pytest.raises(DataError, match=what) as info:
            load_user_dataset(path)
        assert str(path) in str(info.value)
        def says(output: str, text: str) -> bool:  # rich may wrap long paths at the console's width
            return "".join(text.split()) in "".join(output.split())

        out = cli.invoke(app, ["data", "validate", str(path)])
        assert out.exit_code == 1 and says(out.output, what) and says(out.output, str(path)), out.output
        out = cli.invoke(app, ["run", "--model", "emt", "--dataset", str(path), "--workdir", str(tmp_path / "w")])
        assert out.exit_code == 2 and says(out.output, what) and says(out.output, str(path)), out.output
        assert out.exception is None or isinstance(out.exception, SystemExit)


def test_no_slab_left_in_the_split_is_an_error(tmp_path):
    b, s = _cu_files(tmp_path)
    s.info["split"] = "train"
    path = tmp_path / "cu.extxyz"
    write(path, [b, s], format="extxyz")
    from typer.testing import CliRunner

    from surfbench.cli import app

    out = CliRunner(env={"COLUMNS": "250"}).invoke(
        app, ["run", "--model", "emt", "--dataset", str(path), "--split", "test", "--workdir", str(tmp_path / "w")])
    assert out.exit_code == 2 and "has no slabs in split 'test'" in out.output, out.output


@pytest.mark.parametrize("value", ["abc", "1.0.0", "nan eV"])
def test_non_numeric_energy_is_quoted(tmp_path, value):
    """The message quotes the value the file holds (issue 17, point 8)."""
    b, s = _cu_files(tmp_path)
    path = tmp_path / "cu.extxyz"
    write(path, [b, s], format="extxyz")
    text = path.read_text().replace("energy=-10.5", f'energy="{value}"' if " " in value else f"energy={value}", 1)
    assert text != path.read_text()
    path.write_text(text)
    problems = validate(path)
    assert [(p.record, p.message) for p in problems] == [
        ("#1 (cu-111)", f"energy {value!r} is not a number (total DFT energy in eV)")]
