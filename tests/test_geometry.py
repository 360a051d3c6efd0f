"""surfbench.data.geometry: vacuum gaps, Miller indices, symmetry order and the reference bulk,
on synthetic cells and on every slab of the real mlearn data (JSON and the ACEData extxyz copy).

Real data are read from ``shared/data`` beside the repository root; the tests that need them
skip with a reason where that folder is absent.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk as ase_bulk
from ase.build import fcc100, fcc111
from ase.calculators.singlepoint import SinglePointCalculator

REPO = Path(__file__).resolve().parents[1]

from pymatgen.core import Structure  # noqa: E402
from pymatgen.core.surface import SlabGenerator, get_symmetrically_equivalent_miller_indices  # noqa: E402
from pymatgen.io.ase import AseAtomsAdaptor  # noqa: E402
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer  # noqa: E402

from surfbench.data.geometry import (  # noqa: E402
    select_reference_bulk,
    surface_area,
    symmetry_order,
    vacuum_axis,
    vacuum_gaps,
)
from surfbench.data.miller import MillerMatch, infer_miller_index  # noqa: E402
from tests.conftest import needs_shared  # noqa: E402

# spglib (through pymatgen) warns on every call about its old error handling
pytestmark = pytest.mark.filterwarnings("ignore:Set OLD_ERROR_HANDLING:DeprecationWarning")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MLEARN = DATA / "mlearn"
TARBALL = DATA / "ace_zuo2020" / "ZuoEtAl2020.tar.gz"

# the ten JSON files of the mlearn repository held in shared/data
JSON_FILES = [(el, split) for el in ("Li", "Mo", "Si", "Ge") for split in ("training", "test")] + [
    ("Ni", "test"),
    ("Cu", "test"),
]
# Ni and Cu have no "Ground state crystal" in their test JSON; their bulk is this frame of the
# extxyz training file (the 108-atom fcc cell of lowest energy; checked below)
XYZ_BULK_FRAME = {"Cu": 261, "Ni": 262}
XYZ_SLAB_FRAMES = {"Cu": range(36, 46), "Ni": range(36, 47)}
CU_A = 3.61  # Angstrom, a round fcc lattice constant for synthetic cells
LABEL = re.compile(r"\((-?\d+)_(-?\d+)_(-?\d+)\)")


needs_mlearn = needs_shared(
    MLEARN, TARBALL, reason=f"real mlearn data not found at {DATA} (the shared/data folder beside the repository)")


@cache
def _docs(element: str, split: str) -> tuple[dict, ...]:
    return tuple(json.loads((MLEARN / element / f"{split}.json").read_text()))


@cache
def _json_frames(element: str, split: str) -> tuple[Atoms, ...]:
    """Structure, total energy and forces only (no group or description)."""
    frames = []
    for doc in _docs(element, split):
        atoms = AseAtomsAdaptor.get_atoms(Structure.from_dict(doc["structure"]))
        atoms.calc = SinglePointCalculator(
            atoms, energy=doc["outputs"]["energy"], forces=np.array(doc["outputs"]["forces"], dtype=float)
        )
        frames.append(atoms)
    return tuple(frames)


@cache
def _xyz_frames(element: str, split: str = "train") -> tuple[Atoms, ...]:
    from ase.io import read

    with tarfile.open(TARBALL) as tf:
        text = tf.extractfile(f"ZuoEtAl2020/{element}_{split}.xyz").read().decode()
    return tuple(read(io.StringIO(text), index=":", format="extxyz"))


def _labelled_ground_state(element: str) -> int:
    (i,) = [k for k, d in enumerate(_docs(element, "training")) if d["description"] == "Ground state crystal"]
    return i


def _bulk(element: str) -> Atoms:
    if element in XYZ_BULK_FRAME:
        return _xyz_frames(element)[XYZ_BULK_FRAME[element]]
    return _json_frames(element, "training")[_labelled_ground_state(element)]


@cache
def _conventional(element: str) -> Structure:
    atoms = _bulk(element)
    clean = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    sga = SpacegroupAnalyzer(AseAtomsAdaptor.get_structure(clean), symprec=0.1)
    return sga.get_conventional_standard_structure()


def _same_family(element: str, hkl, label) -> bool:
    if hkl is None:
        return False
    equivalents = get_symmetrically_equivalent_miller_indices(_conventional(element), label)
    equivalents = {tuple(int(x) for x in h) for h in equivalents}
    return tuple(hkl) in equivalents


def _surfaces(element: str):
    """(split, index, description, label hkl, atoms) of every "Surface" frame of the element's JSON files."""
    out = []
    for el, split in JSON_FILES:
        if el != element:
            continue
        for i, doc in enumerate(_docs(el, split)):
            if doc["group"] == "Surface":
                label = tuple(int(x) for x in LABEL.search(doc["description"]).groups())
                out.append((split, i, doc["description"].split("/", 1)[1], label, _json_frames(el, split)[i]))
    return out


# ------------------------------------------------------------------ vacuum gaps and areas


def test_vacuum_gaps_and_area_of_a_synthetic_slab():
    slab = fcc100("Cu", size=(1, 1, 4), a=CU_A, vacuum=6.0)  # ABAB layers, 6 Angstrom each side
    gaps = vacuum_gaps(slab)
    assert gaps.shape == (3,)
    # along the surface normal: 6 + 6 Angstrom between the top layer and the bottom one's image
    assert gaps[2] == pytest.approx(12.0, abs=1e-9)
    # in-plane: A and B columns half a cell apart, cell a/sqrt(2)
    assert gaps[0] == pytest.approx(CU_A / np.sqrt(2) / 2, abs=1e-9)
    assert gaps[1] == pytest.approx(CU_A / np.sqrt(2) / 2, abs=1e-9)
    assert vacuum_axis(slab) == 2
    assert vacuum_axis(slab, min_gap=12.5) is None
    assert surface_area(slab, 2) == pytest.approx(CU_A**2 / 2, rel=1e-12)
    assert surface_area(slab, 0) == pytest.approx(CU_A / np.sqrt(2) * slab.cell[2, 2], rel=1e-12)

    # the same slab straddling the periodic boundary: same gaps
    moved = slab.copy()
    moved.translate([0.0, 0.0, -9.0])
    moved.wrap()
    assert np.allclose(vacuum_gaps(moved), gaps, atol=1e-9)

    # a slanted vacuum vector: the gap is measured along the normal, not along c
    slanted = slab.copy()
    cell = slanted.cell.array.copy()
    cell[2] += 0.5 * cell[0]
    slanted.set_cell(cell, scale_atoms=False)
    assert vacuum_gaps(slanted)[2] == pytest.approx(12.0, abs=1e-9)


def test_vacuum_gaps_of_bulk_wire_and_cluster():
    prim = ase_bulk("Cu", "fcc", a=CU_A)  # one atom: every gap is the full (111) repeat a/sqrt(3)
    assert np.allclose(vacuum_gaps(prim), CU_A / np.sqrt(3), atol=1e-9)
    assert vacuum_axis(prim) is None

    wire = Atoms("Cu", positions=[[0, 0, 0]], cell=[12.0, 12.0, 2.5], pbc=True)
    assert np.allclose(vacuum_gaps(wire), [12.0, 12.0, 2.5])
    with pytest.raises(ValueError, match=r"lattice vectors \[0, 1\].*a wire or a cluster, not a slab"):
        vacuum_axis(wire)
    cluster = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[10.0, 10.0, 10.0], pbc=True)
    with pytest.raises(ValueError, match=r"\[0, 1, 2\]"):
        vacuum_axis(cluster)
    with pytest.raises(ValueError, match="zero volume"):
        vacuum_gaps(Atoms("Cu", cell=[1.0, 1.0, 0.0]))


@needs_mlearn
def test_vacuum_axis_on_every_json_file():
    """The frames with a vacuum gap are exactly the "Surface" frames, always along c; the
    ground-state crystals have none."""
    n_surface = 0
    for el, split in JSON_FILES:
        docs = _docs(el, split)
        axes = [vacuum_axis(a) for a in _json_frames(el, split)]
        surface = [i for i, d in enumerate(docs) if d["group"] == "Surface"]
        assert [i for i, ax in enumerate(axes) if ax is not None] == surface, (el, split)
        assert all(axes[i] == 2 for i in surface), (el, split)
        for i, d in enumerate(docs):
            if d["description"] == "Ground state crystal":
                assert axes[i] is None
                assert vacuum_gaps(_json_frames(el, split)[i]).max() < 3.0
        n_surface += len(surface)
    assert n_surface == 54  # Li 13, Mo 11, Si 14, Ge 12, Ni 2, Cu 2


@needs_mlearn
def test_vacuum_axis_finds_the_extxyz_slabs():
    for el, slabs in XYZ_SLAB_FRAMES.items():
        frames = _xyz_frames(el)
        assert [i for i, a in enumerate(frames) if vacuum_axis(a) is not None] == list(slabs)
        assert all(vacuum_axis(frames[i]) == 2 for i in slabs)
        assert vacuum_axis(frames[XYZ_BULK_FRAME[el]]) is None


# ------------------------------------------------------------------ symmetry order


def test_symmetry_order_tells_strained_from_undistorted():
    prim = ase_bulk("Cu", "fcc", a=CU_A)
    cubic = ase_bulk("Cu", "fcc", a=CU_A, cubic=True)
    assert symmetry_order(prim) == 48
    assert symmetry_order(cubic.repeat((2, 2, 2))) == 48
    tetragonal = cubic.copy()
    tetragonal.set_cell(cubic.cell.array * [1.0, 1.0, 1.01], scale_atoms=True)  # 1 % along c
    assert symmetry_order(tetragonal) == 16  # 4/mmm (pymatgen's default 5 degree angle tolerance says 48)
    sheared = cubic.copy()
    sheared.set_cell(cubic.cell.array + [[0, 0, 0], [0, 0, 0], [0.03, 0, 0]], scale_atoms=True)
    assert symmetry_order(sheared) < 16


@needs_mlearn
def test_symmetry_order_of_real_bulk_frames():
    assert symmetry_order(_xyz_frames("Cu")[261]) == 48
    assert symmetry_order(_xyz_frames("Ni")[262]) == 48
    assert symmetry_order(_bulk("Si")) == 48  # diamond m-3m
    # the Mo "Ground state crystal" is a 54-atom cell with atoms displaced by up to ~0.03 Angstrom
    assert symmetry_order(_bulk("Mo")) == 1
    assert symmetry_order(_bulk("Mo"), symprec=0.1) == 48


# ------------------------------------------------------------------ Miller index: synthetic


def test_miller_index_of_synthetic_slabs():
    cu = ase_bulk("Cu", "fcc", a=CU_A)
    m = infer_miller_index(fcc111("Cu", size=(2, 2, 6), a=CU_A, vacuum=7.0), cu)
    assert m == MillerMatch((1, 1, 1), ((1, 1, 1),), supercell_index=4, misfit=pytest.approx(0, abs=1e-9))
    assert not m.ambiguous

    conv = AseAtomsAdaptor.get_structure(ase_bulk("Cu", "fcc", a=CU_A, cubic=True))
    for hkl, n_atoms in [((1, 1, 0), 8), ((3, 2, 1), 24), ((2, 2, 1), 20)]:
        slab = SlabGenerator(conv, hkl, 10, 10, center_slab=True).get_slab().get_orthogonal_c_slab()
        atoms = AseAtomsAdaptor.get_atoms(slab)
        assert len(atoms) == n_atoms
        m = infer_miller_index(atoms, cu)
        assert m.hkl == hkl and m.supercell_index == 1 and m.misfit < 1e-9
    # the 1x1 cell of (221) is a 1x3 cell of (100): both match in-plane, the layer spacing decides
    assert m.candidates == ((2, 2, 1), (1, 0, 0)) and m.ambiguous


def test_miller_index_of_a_100_supercell_is_not_mistaken_for_221():
    cu = ase_bulk("Cu", "fcc", a=CU_A)
    slab = fcc100("Cu", size=(1, 3, 8), a=CU_A, vacuum=7.0)
    # its own in-plane lattice is the 1x1 (100) cell: (221) cannot match
    assert infer_miller_index(slab, cu) == MillerMatch((1, 0, 0), ((1, 0, 0),), 3, pytest.approx(0, abs=1e-9))
    # break the 1x1 translations (one atom of each layer 0.1 Angstrom up): now (221) matches the
    # cell too, and the layer spacing (a/2 = 1.8, not a/6 = 0.6 Angstrom) rejects it
    broken = slab.copy()
    first_column = np.isclose(broken.get_scaled_positions()[:, 1], 0.0, atol=1e-6)
    broken.positions[first_column, 2] += 0.1
    m = infer_miller_index(broken, cu)
    assert m.hkl == (1, 0, 0) and m.supercell_index == 3
    assert set(m.candidates) == {(1, 0, 0), (2, 2, 1)}


def test_miller_index_rejects_strain_and_bulk():
    cu = ase_bulk("Cu", "fcc", a=CU_A)
    slab = fcc100("Cu", size=(1, 1, 6), a=CU_A, vacuum=7.0)
    strained = slab.copy()
    strained.set_cell(slab.cell.array * [1.03, 1.0, 1.0], scale_atoms=True)  # 3 % along a
    assert infer_miller_index(strained, cu) == MillerMatch(None, (), None, None)
    assert infer_miller_index(strained, cu, rel_tol=0.04).hkl == (1, 0, 0)
    with pytest.raises(ValueError, match="not a slab"):
        infer_miller_index(cu.repeat((2, 2, 2)), cu)


# ------------------------------------------------------------------ Miller index: real data

# Ge "Surface" frames whose in-plane cell is strained by more than rel_tol = 1.5 % relative to
# the Ge ground-state crystal (a = 5.754 Angstrom): the largest principal in-plane Green strain
# of each is -4.2 % (210), -1.9 % (321), -2.2 % (310), -4.6 % (211), -7.6/+5.6 % (311),
# -2.4 % (331), -2.8 % (322), -2.0 % (320). These frames also carry forces up to 0.37 eV/A: they
# are not relaxed slabs of that crystal. No sublattice of any plane lattice fits them at 1.5 %;
# all are found at rel_tol = 0.08.
GE_STRAINED = {
    "Ge_mp-32_(2_1_0)",
    "Ge_mp-32_(3_2_1)",
    "Ge_mp-32_(3_1_0)",
    "Ge_mp-32_(2_1_1)",
    "Ge_mp-32_(3_1_1)",
    "Ge_mp-32_(3_3_1)",
    "Ge_mp-32_(3_2_2)",
    "Ge_mp-32_(3_2_0)",
}
EXPECTED_SUPERCELL = {
    "Li_mp-135_(3_2_1)": 6,
    "Mo_mp-129_(2_1_1)": 2,
    "Si_mp-149_(1_0_0)_reconstructed": 2,
    "Si_mp-149_(1_1_1)_reconstructed": 2,
    "Si_mp-149_(1_1_0)_reconstructed": 1,
    "Ge_mp-32_(1_0_0)_reconstructed": 2,
    "Ge_mp-32_(1_1_0)_reconstructed": 1,
}


@pytest.mark.parametrize(
    "element, n_surfaces, unmatched",
    [
        ("Li", 13, set()),
        ("Mo", 11, set()),
        ("Si", 14, set()),
        ("Ge", 12, GE_STRAINED),
        ("Ni", 2, set()),
        ("Cu", 2, set()),
    ],
)
@needs_mlearn
def test_miller_index_reproduces_every_labelled_surface(element, n_surfaces, unmatched):
    bulk = _bulk(element)
    surfaces = _surfaces(element)
    assert len(surfaces) == n_surfaces
    matched, missed = [], []
    for split, i, name, label, atoms in surfaces:
        m = infer_miller_index(atoms, bulk)
        if m.hkl is None:
            missed.append(name)
            assert all(not _same_family(element, c, label) or name in unmatched for c in m.candidates)
            continue
        # never a wrong family
        assert _same_family(element, m.hkl, label), f"{element} {split} #{i} {name}: inferred {m.hkl}"
        assert m.misfit <= 0.015
        assert m.candidates[0] == m.hkl
        assert m.supercell_index == EXPECTED_SUPERCELL.get(name, 1), name
        if label in {(2, 2, 1)}:  # the (221) / 1x3 (100) coincidence, resolved by the layer spacing
            assert set(m.candidates) == {(2, 2, 1), (1, 0, 0)}
        else:
            assert not m.ambiguous, (name, m.candidates)
        matched.append(name)
    print(f"{element}: {len(matched)}/{len(surfaces)} labelled slabs matched; not matched: {sorted(missed)}")
    assert set(missed) == unmatched
    assert len(matched) == n_surfaces - len(unmatched)


@needs_mlearn
def test_miller_index_of_strained_ge_slabs_with_a_looser_tolerance():
    bulk = _bulk("Ge")
    found = {}
    for _, _, name, label, atoms in _surfaces("Ge"):
        m = infer_miller_index(atoms, bulk, rel_tol=0.08)
        assert _same_family("Ge", m.hkl, label), (name, m)
        found[name] = m.misfit
    assert len(found) == 12
    assert max(found[n] for n in GE_STRAINED) > 0.05  # (311): the most strained
    assert min(found[n] for n in GE_STRAINED) > 0.015


EXPECTED_XYZ = {
    "Cu": {36: (1, 1, 0), 37: (2, 2, 1), 38: (3, 3, 2), 39: (3, 2, 1), 40: (1, 0, 0),
           41: (3, 3, 1), 42: (3, 2, 2), 43: (3, 1, 0), 44: (3, 1, 1), 45: (2, 1, 1)},
    "Ni": {36: (2, 1, 1), 37: (3, 2, 0), 38: (1, 1, 1), 39: (2, 1, 0), 40: (1, 0, 0), 41: (3, 2, 2),
           42: (3, 1, 0), 43: (1, 1, 0), 44: (2, 2, 1), 45: (3, 3, 2), 46: (3, 2, 1)},
}  # fmt: skip


@pytest.mark.parametrize("element, n_slabs", [("Cu", 10), ("Ni", 11)])
@needs_mlearn
def test_miller_index_of_unlabelled_extxyz_slabs(element, n_slabs):
    frames = _xyz_frames(element)
    bulk = frames[XYZ_BULK_FRAME[element]]
    found = {}
    for i in XYZ_SLAB_FRAMES[element]:
        m = infer_miller_index(frames[i], bulk)
        assert m.hkl is not None, (i, m)
        assert m.misfit < 0.003
        found[i] = m.hkl
    print(f"{element} training slabs (extxyz frame: hkl): {found}")
    assert len(found) == n_slabs
    expected = EXPECTED_XYZ[element]
    assert all(_same_family(element, found[i], expected[i]) for i in expected)
    # with the two labelled test-set slabs, each family occurs once: Ni has all 13 families of
    # indices up to 3, Cu all but (111)
    test_labels = [label for _, _, _, label, _ in _surfaces(element)]
    families = [tuple(sorted(h)) for h in list(found.values()) + test_labels]
    assert len(set(families)) == len(families) == {"Cu": 12, "Ni": 13}[element]


# ------------------------------------------------------------------ reference bulk


@pytest.mark.parametrize("element", ["Li", "Si", "Ge"])
@needs_mlearn
def test_select_reference_bulk_finds_the_labelled_ground_state(element):
    frames = _json_frames(element, "training")
    energies = [d["outputs"]["energy"] for d in _docs(element, "training")]
    assert select_reference_bulk(frames, energies) == _labelled_ground_state(element)
    # the same with bare structures and the forces passed alongside (as the mlearn loader does)
    bare = [Atoms(numbers=a.numbers, positions=a.positions, cell=a.cell, pbc=True) for a in frames]
    forces = [np.array(d["outputs"]["forces"]) for d in _docs(element, "training")]
    assert select_reference_bulk(bare, energies, forces=forces) == _labelled_ground_state(element)


@needs_mlearn
def test_select_reference_bulk_for_mo_picks_the_relaxed_2_atom_cell():
    """Mo's labelled "Ground state crystal" (frame 193) is a 54-atom cell with displaced atoms
    (forces up to 0.59 eV/A, point group 1 at symprec 1e-3), so the rule cannot pick it; it picks
    frame 192, "Mo 3x3x3 cell relaxed" (2 atoms, forces 0), 1.6 meV/atom above frame 193."""
    docs = _docs("Mo", "training")
    frames = _json_frames("Mo", "training")
    energies = [d["outputs"]["energy"] for d in docs]
    assert _labelled_ground_state("Mo") == 193
    assert np.linalg.norm(docs[193]["outputs"]["forces"], axis=1).max() == pytest.approx(0.594, abs=1e-3)
    i = select_reference_bulk(frames, energies)
    assert i == 192
    assert docs[i]["description"] == "Mo 3x3x3 cell relaxed" and len(frames[i]) == 2
    assert energies[192] / 2 - energies[193] / 54 == pytest.approx(0.0016, abs=1e-4)
    assert select_reference_bulk(frames, energies, max_force=1.0) == 192  # still: frame 193 has order 1


@pytest.mark.parametrize("element", ["Cu", "Ni"])
@needs_mlearn
def test_select_reference_bulk_in_the_extxyz_training_sets(element):
    frames = _xyz_frames(element)
    energies = [a.calc.results["energy"] for a in frames]
    expected = XYZ_BULK_FRAME[element]
    assert select_reference_bulk(frames, energies) == expected  # forces from arrays["force"]
    bare = [Atoms(numbers=a.numbers, positions=a.positions, cell=a.cell, pbc=True) for a in frames]
    assert select_reference_bulk(bare, energies, forces=[a.arrays["force"] for a in frames]) == expected
    assert len(frames[expected]) == 108


def test_select_reference_bulk_rules_on_synthetic_frames():
    prim = ase_bulk("Cu", "fcc", a=CU_A)
    cubic = ase_bulk("Cu", "fcc", a=CU_A, cubic=True)
    strained = cubic.copy()
    strained.set_cell(cubic.cell.array * [1.0, 1.0, 1.01], scale_atoms=True)
    slab = fcc100("Cu", size=(1, 1, 4), a=CU_A, vacuum=6.0)
    frames = [slab, strained, cubic, prim, cubic.copy()]
    for a in frames:
        a.arrays["forces"] = np.zeros((len(a), 3))
    frames[4].arrays["forces"][0, 0] = 0.02  # over max_force
    energies = [-100.0, -4.0 * 3.8, -4.0 * 3.7, -3.6, -4.0 * 3.9]  # eV
    # the slab is lowest per atom but not bulk, the strained cell is lower but not undistorted,
    # frame 4 is lowest of the bulk frames but not at rest: frame 2 (-3.7 eV/atom) wins over 3
    assert select_reference_bulk(frames, energies) == 2
    assert select_reference_bulk(frames, energies, max_force=0.05) == 4
    del frames[2].arrays["forces"]  # unknown forces: excluded
    assert select_reference_bulk(frames, energies) == 3
    with pytest.raises(ValueError, match="no reference bulk frame among 1 frames"):
        select_reference_bulk([slab], [-10.0])
    with pytest.raises(ValueError, match="2 frames but 1 energies"):
        select_reference_bulk([prim, cubic], [-3.6])
