"""Cell geometry of bulk crystals and slabs: vacuum gaps, surface areas, atomic layers,
point-group order, the conventional cell and the choice of a reference bulk frame (a slab's
Miller index is inferred in :mod:`surfbench.data.miller`).

All functions are pure (they never modify their arguments). Units: lengths in Angstrom,
areas in Angstrom^2, energies in eV, forces in eV/Angstrom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import spglib
from ase import Atoms

if TYPE_CHECKING:  # pymatgen is imported where it is used: its surface module alone costs 0.5 s
    from pymatgen.core import Structure

__all__ = [
    "MIN_VACUUM_A",
    "layer_indices",
    "select_reference_bulk",
    "surface_area",
    "symmetry_order",
    "unwrapped_heights",
    "vacuum_axis",
    "vacuum_gaps",
]

# Symmetry tolerance (Angstrom) used to idealise the bulk crystal before its Miller families and
# plane lattices are built; 0.1 is the value of the Materials Project. It has to be loose: the
# Mo "Ground state crystal" of the mlearn data is a 54-atom cell with atoms displaced by up to
# ~0.03 Angstrom, which is P1 at 0.01.
_BULK_SYMPREC = 0.1


# --------------------------------------------------------------------------- small helpers


def _other_axes(axis: int) -> tuple[int, int]:
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    return tuple(i for i in range(3) if i != axis)  # type: ignore[return-value]


def _cell_volume(cell: np.ndarray) -> float:
    volume = abs(float(np.linalg.det(cell)))
    if not volume > 1e-9:
        raise ValueError("the cell is degenerate (zero volume); a 3D-periodic cell is required")
    return volume


def _structure(atoms: Atoms) -> Structure:
    """A pymatgen Structure of the atoms alone (no calculator, no per-atom arrays such as
    magnetic moments, which would change the symmetry analysis)."""
    clean = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_structure(clean)



# --------------------------------------------------------------------------- vacuum and area


def vacuum_gaps(atoms: Atoms) -> np.ndarray:
    """Largest empty gap (Angstrom) between atomic planes along each lattice vector.

    For lattice vector ``i`` the atoms are projected on the unit normal of the plane spanned
    by the two other lattice vectors ``j``, ``k``; the cell repeats along that normal every
    ``V / |a_j x a_k|`` Angstrom (the interplanar repeat). The gap is the largest distance
    between consecutive projected atoms, the periodic wrap-around included. A cell with no
    atoms has gaps equal to the repeats.

    Returns an array of shape (3,), Angstrom.
    """
    cell = np.asarray(atoms.cell.array, dtype=float)
    volume = _cell_volume(cell)
    frac = np.linalg.solve(cell.T, np.asarray(atoms.positions, dtype=float).T).T
    gaps = np.empty(3)
    for i in range(3):
        j, k = _other_axes(i)
        repeat = volume / float(np.linalg.norm(np.cross(cell[j], cell[k])))
        if len(atoms) == 0:
            gaps[i] = repeat
            continue
        f = np.sort(np.mod(frac[:, i], 1.0))
        steps = np.append(np.diff(f), f[0] + 1.0 - f[-1])
        gaps[i] = float(steps.max()) * repeat
    return gaps


#: the least vacuum gap (Angstrom) that makes a cell a slab: a data set's slab needs one, and the
#: model-built protocol's slabs get at least this much (less lets the two faces interact
#: through the gap: EMT's model-built Cu(111) has a gamma of 0.0008 J/m^2 with 2 Angstrom of
#: vacuum, 1.0416 with 5 and 1.0443 with 15)
MIN_VACUUM_A = 5.0


def vacuum_axis(atoms: Atoms, min_gap: float = MIN_VACUUM_A) -> int | None:
    """Index of the one lattice vector along which the cell has a vacuum gap of at least
    ``min_gap`` Angstrom (a slab), or None if there is none (a bulk crystal).

    Raises ValueError if two or three lattice vectors have such a gap (a wire or a cluster,
    not a slab).
    """
    gaps = vacuum_gaps(atoms)
    axes = [i for i in range(3) if gaps[i] >= min_gap]
    if not axes:
        return None
    if len(axes) > 1:
        raise ValueError(
            f"vacuum gaps of at least {min_gap} Angstrom along lattice vectors {axes} "
            f"(gaps {np.round(gaps, 3).tolist()} Angstrom): a wire or a cluster, not a slab"
        )
    return axes[0]


def surface_area(atoms: Atoms, axis: int) -> float:
    """Area (Angstrom^2) of the cell face spanned by the two lattice vectors other than
    ``axis``: |a_j x a_k|. For a slab with vacuum along ``axis`` it is the area of one of its
    two surfaces."""
    j, k = _other_axes(axis)
    cell = np.asarray(atoms.cell.array, dtype=float)
    return float(np.linalg.norm(np.cross(cell[j], cell[k])))


# --------------------------------------------------------------------------- symmetry


def symmetry_order(atoms: Atoms, symprec: float = 1e-3) -> int:
    """Number of point-group operations of the crystal (48 for an fcc or bcc metal, 16 for
    one under tetragonal strain).

    spglib with distance tolerance ``symprec`` (Angstrom) and ``angle_tolerance=-1``
    (spglib's own rule: symprec governs the lattice too); the count is that of the distinct
    rotations, so a supercell gives the same order as its primitive cell. A 5 degree angle
    tolerance (pymatgen's default) would call a 2-atom bcc cell under 1% tetragonal strain
    cubic, which defeats the purpose: telling an undistorted crystal from a strained one.
    """
    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(wrap=True), atoms.numbers)
    sym = spglib.get_symmetry(cell, symprec=symprec, angle_tolerance=-1)
    if sym is None:
        return 1
    return len({np.asarray(r, dtype=int).tobytes() for r in sym["rotations"]})


def conventional_cell(atoms: Atoms) -> tuple[np.ndarray, int, str]:
    """Conventional standard lattice (3x3, rows, Angstrom), space-group number and crystal
    system of a bulk crystal (symprec 0.1 Angstrom, as for the Miller families): the frame in
    which Miller indices and Wulff shapes are defined."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    sga = SpacegroupAnalyzer(_structure(atoms), symprec=_BULK_SYMPREC)
    conv = sga.get_conventional_standard_structure()
    return np.array(conv.lattice.matrix), int(sga.get_space_group_number()), str(sga.get_crystal_system())


_LATTICE_ATTR = "_conventional_lattice"


def bulk_lattice(record) -> tuple[str | None, int | None]:
    """(conventional lattice as JSON, space-group number) of a bulk record, (None, None) when
    the symmetry analysis fails. Kept on the record (keyed by its structure hash, so an edited
    structure is analysed again); the data set cache stores it, so a new result store of a
    cached data set does not redo the analysis (about 15 ms per bulk)."""
    import json

    memo = getattr(record, _LATTICE_ATTR, None)
    if memo is not None and memo[0] == record.content_hash:
        return memo[1], memo[2]
    try:
        cell, spacegroup, _ = conventional_cell(record.atoms)
        out = (json.dumps(cell.tolist()), spacegroup)
    except Exception:  # symmetry analysis failing must not stop a run; Wulff shapes need it
        out = (None, None)
    object.__setattr__(record, _LATTICE_ATTR, (record.content_hash, *out))
    return out


# --------------------------------------------------------------------------- slab layers


def unwrapped_heights(slab: Atoms, axis: int) -> np.ndarray:
    """Per-atom height (Angstrom) of a slab's atoms along its surface normal, measured from the
    lowest atom: the slab made whole across the periodic boundary of the vacuum axis (the cell
    is cut in the largest gap between atoms along ``axis``)."""
    cell = np.asarray(slab.cell.array, dtype=float)
    j, k = _other_axes(axis)
    repeat = _cell_volume(cell) / float(np.linalg.norm(np.cross(cell[j], cell[k])))
    frac = np.mod(np.linalg.solve(cell.T, np.asarray(slab.positions, dtype=float).T).T[:, axis], 1.0)
    f = np.sort(frac)
    steps = np.append(np.diff(f), f[0] + 1.0 - f[-1])
    start = f[(int(np.argmax(steps)) + 1) % len(f)]  # the first atom above the vacuum gap
    return np.mod(frac - start, 1.0) * repeat


def layer_indices(slab: Atoms, axis: int, tol: float = 0.3) -> np.ndarray:
    """Per-atom index (0 = bottom) of the atomic layer each atom of a slab belongs to, along
    the slab's normal (the slab made whole across the periodic boundary of the vacuum axis;
    a new layer starts where a height is more than ``tol`` Angstrom above the layer's first)."""
    heights = unwrapped_heights(slab, axis)
    order = np.argsort(heights)
    layers = np.empty(len(slab), dtype=int)
    layer, first = 0, heights[order[0]]
    for i in order:
        if heights[i] - first > tol:
            layer, first = layer + 1, heights[i]
        layers[i] = layer
    return layers


# --------------------------------------------------------------------------- reference bulk


def _frame_forces(atoms: Atoms, given) -> np.ndarray | None:
    """Forces (eV/Angstrom) of a frame: ``given`` if not None, else ``atoms.arrays['forces']``
    (or ``'force'``, the extxyz name), else those stored on an attached calculator; None if
    unknown or malformed."""
    forces = given
    if forces is None:
        forces = atoms.arrays.get("forces", atoms.arrays.get("force"))
    if forces is None and atoms.calc is not None and "forces" in getattr(atoms.calc, "results", {}):
        try:
            forces = atoms.get_forces(apply_constraint=False)
        except Exception:  # a calculator that cannot give them without computing
            forces = None
    if forces is None:
        return None
    forces = np.asarray(forces, dtype=float)
    if forces.shape != (len(atoms), 3) or not np.all(np.isfinite(forces)):
        return None
    return forces


def select_reference_bulk(
    frames: Sequence[Atoms],
    energies: Sequence[float],
    max_force: float = 0.01,
    min_gap: float = 5.0,
    *,
    forces: Sequence[np.ndarray | None] | None = None,
) -> int:
    """Index of the reference bulk frame, for data with no frame labelled "Ground state crystal".

    Candidates: bulk frames (no vacuum gap of ``min_gap`` Angstrom, see :func:`vacuum_axis`)
    whose forces are known and all have a norm <= ``max_force`` eV/Angstrom. Forces come from
    ``forces[i]`` if given and not None, else ``atoms.arrays['forces']`` (or ``'force'``), else
    the results of an attached (single-point) calculator; frames without forces are excluded.
    Among the candidates those of the highest :func:`symmetry_order` (undistorted crystals) are
    kept, and the one with the lowest energy per atom (``energies``: total energies, eV) is
    returned (the first one on a tie).

    Raises ValueError if there is no candidate.
    """
    if len(frames) != len(energies):
        raise ValueError(f"{len(frames)} frames but {len(energies)} energies")
    if forces is not None and len(forces) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(forces)} force arrays")
    n_bulk = n_known = 0
    candidates = []
    for i, atoms in enumerate(frames):
        if len(atoms) == 0 or not math.isfinite(float(energies[i])):
            continue
        try:
            if vacuum_axis(atoms, min_gap) is not None:
                continue
        except ValueError:
            continue  # a wire or a cluster
        n_bulk += 1
        f = _frame_forces(atoms, None if forces is None else forces[i])
        if f is None:
            continue
        n_known += 1
        if float(np.linalg.norm(f, axis=1).max()) <= max_force:
            candidates.append(i)
    if not candidates:
        raise ValueError(
            f"no reference bulk frame among {len(frames)} frames: {n_bulk} without a vacuum gap "
            f"of {min_gap} Angstrom, {n_known} of them with known forces, none with all forces "
            f"<= {max_force} eV/Angstrom"
        )
    orders = {i: symmetry_order(frames[i]) for i in candidates}
    top = max(orders.values())
    best = [i for i in candidates if orders[i] == top]
    return min(best, key=lambda i: (float(energies[i]) / len(frames[i]), i))
