"""Fuzzing the input readers with hypothesis: corrupt mlearn JSON (bytes and documents), corrupt
user extxyz files and odd in-memory Datasets given to ``surfbench.evaluate`` give a clear
:class:`DataError` (or, for the validator, a list of problems), never another exception.
Deterministic (``derandomize``) and small."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from ase.build import bulk, fcc111
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from surfbench.data.errors import DataError
from surfbench.data.mlearn import parse_mlearn_docs, read_mlearn_json
from surfbench.data.userdata import load_user_dataset, validate, write_user_dataset
from surfbench.records import BulkRecord, Dataset, SurfaceRecord

FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _mlearn_doc() -> dict:
    """One valid mlearn document: a 2-atom Mo cell, energy, forces and virial stress."""
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = bulk("Mo", "bcc", a=3.16, cubic=True)
    return {
        "structure": AseAtomsAdaptor.get_structure(atoms).as_dict(), "num_atoms": 2,
        "outputs": {"energy": -21.7, "forces": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.1]],
                    "virial_stress": [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]},
        "element": "Mo", "group": "Elastic", "tag": "train", "description": "Mo bcc",
    }


VALID = _mlearn_doc()


def _paths(obj, prefix=()):
    """Every key path into a nested document."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(VALID) if p]


def _set(doc, path, value):
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), JSON_VALUES), min_size=1, max_size=3))
def test_mutated_mlearn_documents(edits):
    doc = copy.deepcopy(VALID)
    for path, value in edits:
        try:
            _set(doc, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier edit removed the container
            pass
    try:
        frames = parse_mlearn_docs([VALID, doc], "fuzz.json", "Mo", "training")
    except DataError as exc:
        assert "fuzz.json" in str(exc)
    else:
        assert len(frames) == 2 and all(len(f.atoms) > 0 for f in frames)


@FUZZ
@given(docs=JSON_VALUES)
def test_arbitrary_json(docs):
    try:
        parse_mlearn_docs(docs, "fuzz.json", "Mo", "test")
    except DataError as exc:
        assert "fuzz.json" in str(exc)


def _corrupt(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data[: max(0, len(data) - cut)])
    for pos, byte in flips:
        if out:
            out[pos % len(out)] = byte
    return bytes(out)


CORRUPTION = dict(cut=st.integers(0, 400), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                           max_size=6))


@FUZZ
@given(**CORRUPTION)
def test_corrupt_mlearn_file(tmp_path_factory, cut, flips):
    path = tmp_path_factory.mktemp("json") / "training.json"
    path.write_bytes(_corrupt(json.dumps([VALID, VALID]).encode(), cut, flips))
    try:
        read_mlearn_json(path, "Mo", "training")
    except DataError as exc:
        assert str(path) in str(exc)


@pytest.fixture(scope="module")
def user_file(tmp_path_factory) -> bytes:
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    b = BulkRecord(id="Cu-bulk", element="Cu", atoms=cu, energy_ev=-16.0)
    slab = SurfaceRecord(id="Cu-111", element="Cu", atoms=fcc111("Cu", (1, 1, 3), a=3.6, vacuum=6.0, periodic=True),
                         energy_ev=-11.0, bulk_id=b.id, bulk_energy_per_atom_ev=-4.0, miller=(1, 1, 1), split="test")
    path = write_user_dataset(Dataset("toy", {b.id: b}, [slab]), tmp_path_factory.mktemp("u") / "toy.extxyz")
    assert len(load_user_dataset(path).surfaces) == 1  # the uncorrupted file loads
    return Path(path).read_bytes()


def _check_user_file(path: Path) -> None:
    try:
        problems = validate(path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert all(p.record and p.message for p in problems)
    try:
        ds = load_user_dataset(path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert all(s.bulk_id in ds.bulks for s in ds.surfaces)


@FUZZ
@given(**CORRUPTION)
def test_corrupt_user_file_bytes(tmp_path_factory, user_file, cut, flips):
    path = tmp_path_factory.mktemp("x") / "data.extxyz"
    path.write_bytes(_corrupt(user_file, cut, flips))
    _check_user_file(path)


INFO_KEYS = ["kind", "name", "energy", "bulk_id", "miller", "split", "reconstructed", "termination", "Lattice", "pbc"]
TOKENS = st.sampled_from(["", "nan", "inf", "-1", "0", "1e400", "slab", "bulk", "x", "1 1", "1 1 0", '""', "T", "F",
                          "Cu-bulk", "Cu-111", "0 0 0", "(1,1,1)", "2 0 0 0 2 0 0 0 0"])


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 1), st.sampled_from(INFO_KEYS), TOKENS), min_size=1, max_size=4))
def test_user_file_with_bad_values(tmp_path_factory, user_file, edits):
    """Comment-line values replaced by odd ones (NaN energies, empty names, unknown kinds,
    degenerate lattices, broken Miller indices)."""
    import re

    text = user_file.decode()
    lines = text.splitlines()
    comment_rows = [i for i, line in enumerate(lines) if "Lattice=" in line]
    for frame, key, value in edits:
        row = comment_rows[frame % len(comment_rows)]
        quoted = f'"{value}"' if (" " in value or not value) and not value.startswith('"') else value
        new, n = re.subn(rf'(^|\s){key}=("[^"]*"|\S+)', lambda m: f"{m.group(1)}{key}={quoted}", lines[row])
        lines[row] = new if n else f"{lines[row]} {key}={quoted}"
    path = tmp_path_factory.mktemp("v") / "data.extxyz"
    path.write_text("\n".join(lines) + "\n")
    _check_user_file(path)


# ---------------------------------------------------------------------------- random geometry

def _mostly(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """``usual`` four times in five, else ``odd``."""
    return st.tuples(st.integers(0, 4), usual, odd).map(lambda t: t[2] if t[0] == 4 else t[1])


def _geometry(c_lengths, fills) -> st.SearchStrategy[dict]:
    """A lattice (Angstrom; degenerate and too-short lengths included), fractional positions
    squeezed along c by ``fill`` (a vacuum gap above them when < 1), and whether a copy of the
    first atom sits on top of it (distance 0)."""
    ab = _mostly(st.floats(2.0, 5.0), st.sampled_from([0.0, 0.3]))
    return st.fixed_dictionaries({
        "lengths": st.tuples(ab, ab, c_lengths),
        "shear": st.floats(-0.6, 0.6),
        "fractions": st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
                              min_size=1, max_size=4),
        "fill": st.sampled_from(fills),
        "overlap": st.sampled_from([False, False, False, True]),
    })


BULK_GEOMETRY = _geometry(_mostly(st.floats(2.0, 5.0), st.sampled_from([0.0, 0.3])), [1.0])
SLAB_GEOMETRY = _geometry(_mostly(st.floats(10.0, 30.0), st.sampled_from([0.0, 4.0])), [0.2, 0.5, 1.0])


def _frame(kind: str, name: str, geometry: dict, extra: str) -> tuple[str, bool]:
    """An extxyz frame of Cu atoms in a random cell; whether it holds two atoms at one point."""
    import numpy as np

    a, b, c = geometry["lengths"]
    cell = np.array([[a, 0.0, 0.0], [geometry["shear"] * b, b, 0.0], [0.0, 0.0, c]])
    fractions = list(geometry["fractions"]) + ([geometry["fractions"][0]] if geometry["overlap"] else [])
    positions = (np.array(fractions) * [1.0, 1.0, geometry["fill"]]) @ cell
    lattice = " ".join(f"{x:.10g}" for x in cell.ravel())
    lines = [str(len(positions)), f'Lattice="{lattice}" Properties=species:S:1:pos:R:3 kind={kind} name={name} '
                                  f'energy={-4.0 * len(positions)} {extra} pbc="T T T"']
    lines += [f"Cu {x:.8f} {y:.8f} {z:.8f}" for x, y, z in positions]
    return "\n".join(lines), geometry["overlap"]


@FUZZ
@given(bulk_geometry=BULK_GEOMETRY, slab_geometry=SLAB_GEOMETRY)
def test_user_file_with_random_geometry(tmp_path_factory, bulk_geometry, slab_geometry):
    """Random cells (degenerate ones included) and positions (two atoms at one point
    included): a clear DataError naming the file, or a data set with no two atoms (periodic
    images included) closer than the documented minimum distance."""
    from ase.neighborlist import neighbor_list

    from surfbench.data.contacts import MIN_DISTANCE_A

    bulk_text, bulk_overlap = _frame("bulk", "Cu-bulk", bulk_geometry, "")
    slab_text, slab_overlap = _frame("slab", "Cu-111", slab_geometry, 'bulk_id=Cu-bulk miller="1 1 1"')
    path = tmp_path_factory.mktemp("g") / "data.extxyz"
    path.write_text(f"{bulk_text}\n{slab_text}\n")
    _check_user_file(path)
    if bulk_overlap or slab_overlap:
        event("overlapping atoms")
        assert any(p.severity == "error" for p in validate(path))
        with pytest.raises(DataError, match=str(path)):
            load_user_dataset(path)
        return
    try:
        ds = load_user_dataset(path)
    except DataError as exc:
        event("refused" + (": overlapping atoms" if "overlap" in str(exc) else ""))
        return
    event("loaded")
    for rec in [*ds.bulks.values(), *ds.surfaces]:
        assert len(neighbor_list("d", rec.atoms, MIN_DISTANCE_A)) == 0, rec.id


# ---------------------------------------------------------------------------- result store

STORE_FUZZ = settings(FUZZ, max_examples=40)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """A small result store: EMT's three results on a Cu bulk and two slabs."""
    from tests.workdirs import fill_store

    return fill_store(tmp_path_factory.mktemp("store"))


@STORE_FUZZ
@given(cut=st.one_of(st.just(0), st.integers(1, 60_000)),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8))
def test_corrupt_result_store(tmp_path_factory, small_store, cut, flips):
    """A copy of a store, truncated and with bytes overwritten: opening and reading it (as the
    reading commands do) gives the damaged-store error naming the file, or a valid read."""
    from typer.testing import CliRunner

    from surfbench.cli import app
    from surfbench.store.file import StoreError
    from surfbench.store.results import STORE_NAME, ResultStore

    folder = tmp_path_factory.mktemp("db")
    path = folder / STORE_NAME
    path.write_bytes(_corrupt(small_store.read_bytes(), cut, flips))
    out = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["table", "--workdir", str(folder)])
    assert "Traceback" not in out.output and (out.exception is None or isinstance(out.exception, SystemExit)), \
        repr(out.exception)
    assert out.exit_code in (0, 2) and (out.exit_code == 0 or "error:" in out.output), out.output
    try:
        with ResultStore(folder, read_only=True) as store:
            results, records, runs = store.results(), store.records(), store.runs()
    except StoreError as exc:
        event(f"store error: {type(exc).__name__}")
        assert str(path) in str(exc)
    else:
        event("read")
        assert len(results) <= 3 and len(records) <= 3 and int(runs["n"].sum()) == len(results)


# ---------------------------------------------------------------------------- in-memory data sets

def _odd_atoms(kind: str, atoms):
    """``atoms`` changed the way a hand-built Dataset can be wrong."""
    import numpy as np
    from ase import Atoms

    out = atoms.copy()
    if kind == "other element":
        out.symbols[:] = "Ni"
    elif kind == "alloy":
        out.symbols[0] = "Ni"
    elif kind == "overlap":
        out += Atoms("Cu", positions=[out.positions[0] + [0.3, 0.0, 0.0]])
    elif kind == "vacuum":
        out.center(vacuum=4.0, axis=0)
    elif kind == "no vacuum":
        out.set_cell(np.diag([out.cell.lengths()[0], out.cell.lengths()[1], 3.0]) @ np.eye(3), scale_atoms=True)
    elif kind == "empty":
        out = Atoms(cell=out.cell, pbc=True)
    return out


RECORD_EDITS = st.one_of(
    st.tuples(st.just("element"), st.sampled_from(["Ni", "Xx", ""])),
    st.tuples(st.just("vacuum_axis"), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("energy_ev"), st.sampled_from([float("nan"), float("inf"), "12.5", True, -1e9, 1e9, -11.0])),
    st.tuples(st.just("bulk_energy_per_atom_ev"), st.sampled_from([-3.5, None, float("nan"), -4.0])),
    st.tuples(st.just("bulk_id"), st.sampled_from(["nope", None, "Cu-bulk"])),
    st.tuples(st.just("atoms"), st.sampled_from(["other element", "alloy", "overlap", "vacuum", "no vacuum", "empty"])),
    st.tuples(st.just("miller"), st.sampled_from([(0, 0, 0), (1.5, 0, 0), (1, 1, 1), None])),
)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 2), RECORD_EDITS), min_size=1, max_size=3))
def test_in_memory_dataset_with_odd_records(tmp_path_factory, edits):
    """A Dataset built in Python with odd records (another element, a wrong vacuum axis, energies
    that are NaN, text or a bool, a bulk energy that disagrees with the bulk record, a missing
    bulk, alloys, overlapping atoms, a bulk with vacuum, a (000) or fractional Miller index),
    given to surfbench.evaluate: a DataError naming the record, or an evaluation whose slabs all
    have a finite gamma and a DFT gamma that is not negative; never another exception (the issue
    saw a raw sqlite3 IntegrityError)."""
    import dataclasses
    import warnings

    from ase.calculators.emt import EMT

    import surfbench
    from tests.workdirs import cu_dataset

    ds = cu_dataset()
    records = [*ds.bulks.values(), *ds.surfaces]
    for index, (field_name, value) in edits:
        rec = records[index]
        if not hasattr(rec, field_name):
            continue
        if field_name == "atoms":
            value = _odd_atoms(value, rec.atoms)
        records[index] = dataclasses.replace(rec, **{field_name: value})
    bulks = {r.id: r for r in records if isinstance(r, BulkRecord)}
    odd = Dataset("cu-toy", bulks, [r for r in records if isinstance(r, SurfaceRecord)])
    work = tmp_path_factory.mktemp("mem")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = surfbench.evaluate(EMT(), odd, workdir=work, name="emt-mem", progress=False)
    except DataError as exc:
        event("refused")
        assert "data set 'cu-toy'" in str(exc) and "record " in str(exc)
        return
    event("evaluated")
    preds = res.predictions()
    slabs = preds[preds["kind"] == "slab"]
    assert len(slabs) == len(odd.surfaces)
    ok = slabs[slabs["status"] == "ok"]
    assert (ok["dft_gamma_j_per_m2"].dropna() >= 0).all()
    with_bulk = ok[ok["failure_kind"].isna()]
    assert with_bulk["model_gamma_j_per_m2"].map(math.isfinite).all()
