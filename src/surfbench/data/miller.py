"""Miller indices: reading them (:func:`parse_miller`) and finding a slab's from its cell
(:func:`infer_miller_index`, matching its in-plane lattice to the bulk's planes).

Miller indices refer to the *conventional standard* cell of the bulk crystal as given by
pymatgen's ``SpacegroupAnalyzer(structure).get_conventional_standard_structure()``, the
convention of the Materials Project (e.g. (1, 1, 0) of bcc Mo is the close-packed plane of the
cubic cell, not of the primitive rhombohedral one). Units: lengths in Angstrom, areas in
Angstrom^2.

Strings are read as stored in data sets and results: one digit per index with an optional minus
sign (``"1-10"``), or separated indices (``"1 1 0"``, ``"(1,1,0)"``, ``"10_1_0"``); 3 (hkl) or 4
(hkil, hexagonal) indices.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

from surfbench.data.geometry import _BULK_SYMPREC, _other_axes, _structure, unwrapped_heights, vacuum_axis

if TYPE_CHECKING:  # pymatgen is imported where it is used: its surface module alone costs 0.5 s
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

__all__ = ["MillerMatch", "infer_miller_index", "parse_miller"]

# Two atoms of a slab are images of each other under an in-plane translation when their
# positions agree within this distance (Angstrom).
_TRANSLATION_TOL = 0.05
# A Miller family explains a slab's stacking of atomic layers when the median relative
# deviation of the slab's interior layer spacings from the bulk's is at most this (see
# _stacking_error). Two families matching one in-plane cell with n1 and n2 of their plane
# cells have layer spacings in the ratio n1 : n2, so the wrong one of the usual coincidence
# (a 1x3 cell of cubic (100) is the 1x1 cell of (221)) scores 2/3 or 2; in the mlearn slabs
# the wrong families score >= 0.53 and the true ones <= 0.27 (Li(321), a strongly relaxed
# 6-cell slab) where this test decides.
_STACKING_TOL = 0.4


_SEPARATED = re.compile(r"[\s,;_()\[\]]+")
_TOKEN = re.compile(r"-?\d+")
_DIGIT = re.compile(r"-?\d")


def parse_miller(miller) -> tuple[int, ...]:
    """Miller index as a tuple of ints (3 or 4 indices) from a string, list or tuple."""
    if isinstance(miller, (tuple, list, np.ndarray)):
        hkl = tuple(int(i) for i in miller)
    else:
        text = str(miller).strip()
        if _SEPARATED.search(text.strip("()[]")):
            hkl = tuple(int(t) for t in _TOKEN.findall(text))
        else:
            hkl = tuple(int(t) for t in _DIGIT.findall(text))
    if len(hkl) not in (3, 4) or not any(hkl):
        raise ValueError(f"cannot read a Miller index (3 or 4 indices, not all 0) from {miller!r}")
    return hkl


# --------------------------------------------------------------------------- plane lattices


def _gauss_reduce(v1: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lagrange-Gauss reduction of a 2D lattice basis (vectors in 3D Cartesian space):
    returns a basis of the same lattice with |v1| <= |v2| and |v1.v2| <= |v1|^2 / 2."""
    v1 = np.asarray(v1, dtype=float)
    v2 = np.asarray(v2, dtype=float)
    if v1 @ v1 > v2 @ v2:
        v1, v2 = v2, v1
    for _ in range(1000):
        mu = round(float(v1 @ v2) / float(v1 @ v1))
        v2 = v2 - mu * v1
        if v2 @ v2 < v1 @ v1 - 1e-12:
            v1, v2 = v2, v1
        else:
            break
    return v1, v2


def _invariants(v1: np.ndarray, v2: np.ndarray) -> tuple[float, float, float]:
    """Rotation-invariant shape of a 2D lattice: (|v1|, |v2|, |v1.v2|) of its reduced basis
    (Angstrom, Angstrom, Angstrom^2). Continuous in the lattice, so small strains give small
    changes."""
    r1, r2 = _gauss_reduce(v1, v2)
    return float(np.linalg.norm(r1)), float(np.linalg.norm(r2)), abs(float(r1 @ r2))


def _misfit(a: tuple[float, float, float], ref: tuple[float, float, float]) -> float:
    """Largest relative mismatch between two reduced 2D lattices: of the two lengths, and of
    the scalar product relative to |v1||v2| of the reference (a cosine difference)."""
    return max(
        abs(a[0] - ref[0]) / ref[0],
        abs(a[1] - ref[1]) / ref[1],
        abs(a[2] - ref[2]) / (ref[0] * ref[1]),
    )


def _hnf_2d(n: int):
    """All 2D Hermite normal forms ((a, b), (0, d)) with a*d = n, 0 <= b < d: each is one of
    the sigma(n) sublattices of index n of a 2D lattice, as the rows of its basis in units of
    the lattice's basis vectors."""
    for a in range(1, n + 1):
        if n % a:
            continue
        d = n // a
        for b in range(d):
            yield a, b, d


def _layers(heights: np.ndarray, tol: float) -> np.ndarray:
    """Mean heights (Angstrom) of the atomic layers of a set of heights: the sorted heights
    are cut, from the bottom up, into groups spanning at most ``tol`` each (no chaining of
    close neighbours into one thick layer)."""
    h = np.sort(np.asarray(heights, dtype=float))
    means: list[float] = []
    start = 0
    for i in range(1, h.size + 1):
        if i == h.size or h[i] - h[start] > tol:
            means.append(float(h[start:i].mean()))
            start = i
    return np.array(means)


# --------------------------------------------------------------------------- inference


@dataclass(frozen=True)
class MillerMatch:
    """Result of :func:`infer_miller_index`.

    hkl: the Miller family of the slab's surface (a representative from pymatgen's
        symmetrically distinct indices of the conventional standard cell), or None when no
        family or more than one family fits.
    candidates: every family whose plane lattice (or one of its sublattices) matches the
        slab's in-plane lattice, best first.
    supercell_index: how many primitive cells of the (hkl) plane lattice the slab's in-plane
        cell holds (1 for a 1x1 slab, 2 for a 2x1 reconstruction), None without hkl.
    misfit: largest relative mismatch between the slab's in-plane lattice and the matched
        bulk sublattice (lengths, and the scalar product relative to |v1||v2|), None without hkl.
    """

    hkl: tuple[int, int, int] | None
    candidates: tuple[tuple[int, int, int], ...]
    supercell_index: int | None
    misfit: float | None

    @property
    def ambiguous(self) -> bool:
        """True if more than one Miller family fits the slab's in-plane lattice."""
        return len(self.candidates) > 1


@dataclass(frozen=True)
class _Family:
    hkl: tuple[int, int, int]
    basis: np.ndarray  # (2, 3) reduced basis of the bulk translations in the plane, Angstrom
    area: float  # Angstrom^2, |basis[0] x basis[1]|
    spacing: float  # Angstrom, spacing of the lattice planes of the primitive lattice
    layer_gaps: np.ndarray  # Angstrom, spacings of the atomic layers within one period


def _plane_basis(prim: np.ndarray, q: np.ndarray, area: float) -> np.ndarray:
    """Reduced basis (2, 3) of the lattice vectors n @ prim with integer n, n . q = 0."""
    n_box = int(np.abs(q).max()) + 1
    while n_box <= 64:
        r = np.arange(-n_box, n_box + 1)
        grid = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
        grid = grid[(grid @ q == 0) & np.any(grid != 0, axis=1)]
        vecs = grid @ prim
        order = np.argsort(np.einsum("ij,ij->i", vecs, vecs), kind="stable")
        vecs = vecs[order]
        v1 = vecs[0]
        cross = np.linalg.norm(np.cross(v1, vecs), axis=1)
        independent = np.nonzero(cross > 1e-6 * area)[0]
        if independent.size:
            v2 = vecs[independent[0]]
            if abs(np.linalg.norm(np.cross(v1, v2)) - area) <= 1e-6 * area:
                return np.array(_gauss_reduce(v1, v2))
        n_box *= 2
    raise RuntimeError(f"no basis of the plane lattice normal to {q.tolist()} (primitive reciprocal units)")


def _primitive_in_conventional_frame(sga: SpacegroupAnalyzer, conv: Structure) -> np.ndarray:
    """Primitive lattice vectors (rows, Angstrom) in the Cartesian frame of ``conv``."""
    prim = sga.get_primitive_standard_structure().lattice.matrix
    frac = prim @ conv.lattice.inv_matrix
    if np.allclose(frac * 6, np.round(frac * 6), atol=1e-6):
        return prim
    # rhombohedral primitive cells are re-oriented by pymatgen; rebuild in the conventional frame
    transf = sga.get_conventional_to_primitive_transformation_matrix()
    return np.asarray(transf, dtype=float) @ conv.lattice.matrix


@functools.lru_cache(maxsize=32)
def _bulk_families(numbers: tuple, cell: tuple, positions: tuple, max_index: int) -> tuple[_Family, ...]:
    atoms = Atoms(numbers=numbers, cell=np.array(cell), positions=np.array(positions), pbc=True)
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    sga = SpacegroupAnalyzer(_structure(atoms), symprec=_BULK_SYMPREC)
    conv = sga.get_conventional_standard_structure()
    prim = _primitive_in_conventional_frame(sga, conv)
    frac_prim = prim @ conv.lattice.inv_matrix  # primitive vectors in conventional fractions
    prim_recip = np.linalg.inv(prim).T  # rows b_i with a_i . b_j = delta_ij (no 2 pi)
    prim_volume = abs(float(np.linalg.det(prim)))
    families = []
    from pymatgen.core.surface import get_symmetrically_distinct_miller_indices

    for hkl in get_symmetrically_distinct_miller_indices(conv, max_index):
        hkl = tuple(int(x) for x in hkl)
        # n . (P hkl) = 0 <=> the translation n @ prim lies in the (hkl) plane; P hkl is
        # rational with a denominator dividing 6, so this is an exact integer condition.
        g6 = 6 * frac_prim @ np.array(hkl, dtype=float)
        if not np.allclose(g6, np.rint(g6), atol=1e-6):
            raise RuntimeError(f"unexpected centring: primitive vectors {frac_prim.tolist()} (conventional units)")
        q = np.rint(g6).astype(int)
        q //= math.gcd(*(abs(int(x)) for x in q))
        g = q @ prim_recip
        spacing = 1.0 / float(np.linalg.norm(g))
        area = prim_volume / spacing
        basis = _plane_basis(prim, q, area)
        normal = g * spacing
        heights = _layers(np.mod(conv.cart_coords @ normal, spacing), 1e-3)
        if heights.size > 1 and heights[0] + spacing - heights[-1] < 1e-3:
            heights = heights[:-1]  # the same layer on both sides of the wrap-around
        layer_gaps = np.append(np.diff(heights), heights[0] + spacing - heights[-1])
        families.append(_Family(hkl, basis, area, spacing, layer_gaps))
    return tuple(families)


def _slab_heights(slab: Atoms, axis: int) -> np.ndarray:
    """Sorted heights (Angstrom) of a slab's atoms along its surface normal, measured from the
    lowest atom (the slab made whole across the periodic boundary of the vacuum axis)."""
    return np.sort(unwrapped_heights(slab, axis))


def _stacking_error(heights: np.ndarray, family: _Family) -> float | None:
    """How far a slab's stacking of atomic layers along its normal is from the bulk's stacking
    along the family's normal (dimensionless).

    The slab's atoms (``heights``, sorted, Angstrom) are grouped into layers spanning at most
    0.3 times the bulk's smallest layer spacing (relaxed and reconstructed layers are rumpled);
    the spacings of the layers in the central half of the slab's thickness (all but the
    outermost on each side of a thin slab) are compared with the bulk's layer spacings: the
    result is the median of their relative distances to the nearest bulk spacing. About 0 for a
    bulk-like interior; 1 - 1/r for a family whose layer spacing is r > 1 times the true one,
    r - 1 for one whose spacing is 1/r of it. None if the slab has fewer than two layers.
    """
    tol = max(0.3 * float(family.layer_gaps.min()), 0.02)
    layers = _layers(heights, tol)
    if layers.size < 2:
        return None
    lo, hi = layers[0], layers[-1]
    quarter = 0.25 * (hi - lo)
    inner = (layers >= lo + quarter - 1e-6) & (layers <= hi - quarter + 1e-6)
    if inner.sum() < 3:
        inner = np.ones(layers.size, dtype=bool)
        if layers.size > 4:
            inner[[0, -1]] = False
    gaps = np.diff(layers[inner])
    ref = family.layer_gaps
    return float(np.median((np.abs(gaps[:, None] - ref[None, :]) / ref[None, :]).min(axis=1)))


def _inplane_primitive(slab: Atoms, axis: int) -> tuple[np.ndarray, int]:
    """Reduced basis (2, 3) of the slab's own in-plane translation lattice (all in-plane
    translations, within 0.05 Angstrom, that map the slab onto itself) and the number m of its
    cells in the slab's cell. m > 1 for a slab built as a supercell of an unreconstructed
    surface. The slab's cell itself (m = 1) if the translations found do not form a group."""
    j, k = _other_axes(axis)
    cell = np.asarray(slab.cell.array, dtype=float)
    basis = np.array(_gauss_reduce(cell[j], cell[k]))
    n_atoms = len(slab)
    if n_atoms < 2:
        return basis, 1
    # fractional coordinates in (r1, r2, a_axis): in-plane translations are (f1, f2, 0)
    frame = np.array([basis[0], basis[1], cell[axis]])
    frac = np.linalg.solve(frame.T, np.asarray(slab.positions, dtype=float).T).T
    numbers = np.asarray(slab.numbers)
    diff0 = frac - frac[0]
    diff0 -= np.rint(diff0)
    found = [np.zeros(2)]
    for i in np.nonzero(numbers == numbers[0])[0][1:]:
        shift = np.array([diff0[i, 0], diff0[i, 1], 0.0])
        if np.linalg.norm(np.array([0.0, 0.0, diff0[i, 2]]) @ frame) > _TRANSLATION_TOL:
            continue  # not at the same height: no in-plane translation
        shift[:2] = [float(Fraction(x).limit_denominator(n_atoms)) for x in shift[:2]]
        if any(np.allclose(np.mod(shift[:2] - t + 0.5, 1.0) - 0.5, 0.0, atol=1e-9) for t in found):
            continue
        moved = frac + shift
        d = moved[:, None, :] - frac[None, :, :]
        d -= np.rint(d)
        dist = np.linalg.norm(d @ frame, axis=2)
        dist[numbers[:, None] != numbers[None, :]] = np.inf
        if float(dist.min(axis=1).max()) <= _TRANSLATION_TOL:
            found.append(np.mod(shift[:2], 1.0))
    m = len(found)
    if m == 1 or n_atoms % m:
        return basis, 1
    r = np.arange(-3, 4)
    grid = np.stack(np.meshgrid(r, r, indexing="ij"), axis=-1).reshape(-1, 2)
    points = np.concatenate([(grid + t) @ basis for t in found])
    norms = np.linalg.norm(points, axis=1)
    points = points[np.argsort(norms, kind="stable")][1:]  # drop the origin
    v1 = points[0]
    area = float(np.linalg.norm(np.cross(basis[0], basis[1]))) / m
    cross = np.linalg.norm(np.cross(v1, points), axis=1)
    independent = np.nonzero(cross > 1e-6 * area)[0]
    if independent.size == 0:
        return basis, 1
    v2 = points[independent[0]]
    if abs(float(np.linalg.norm(np.cross(v1, v2))) - area) > 1e-6 * area:
        return basis, 1  # the translations found are not a group (noise): keep the slab's cell
    return np.array(_gauss_reduce(v1, v2)), m


def infer_miller_index(
    slab: Atoms,
    bulk: Atoms,
    max_index: int = 3,
    rel_tol: float = 0.015,
    max_supercell: int = 16,
) -> MillerMatch:
    """Miller family of a slab's surface, found by matching its in-plane lattice to the bulk.

    The slab's in-plane lattice (the two lattice vectors other than ``vacuum_axis(slab)``) is,
    up to a rotation and a small strain, a sublattice of the bulk translations lying in the
    (hkl) plane. For each symmetrically distinct family (hkl) with indices up to ``max_index``
    of the bulk's conventional standard cell, the 2D lattice of translations of the primitive
    standard cell normal to G = (h, k, l) . (conventional reciprocal lattice) is built (its cell
    area is V_prim / d, d the spacing of the primitive lattice's (hkl) planes), and every
    sublattice of index n = round(A_slab / A_plane) <= ``max_supercell`` (2D Hermite normal
    forms) is Gauss-reduced and compared with the slab's reduced in-plane lattice: lengths and
    the scalar product (relative to |v1||v2|) within ``rel_tol``.

    The slab's cell is first reduced to its own in-plane translation lattice (a 2x2 supercell of
    an unreconstructed slab counts as 1x1). A family matching with n > 1 of its plane cells in
    that lattice makes the slab a reconstruction (or a symmetry-broken supercell) of that
    surface: it is believed only if the spacings of the atomic layers in the slab's interior
    (heights along the surface normal) are the bulk's spacings along that family's normal
    (median relative deviation <= 0.4). Several families can match one cell (the 1x3 cell of
    the (100) plane of a cubic crystal is the 1x1 cell of (221), with a third of its layer
    spacing); if more than one is believed, the layer spacings must fit for all of them and hkl
    is the one that fits, None if several do. If no family matches, hkl is None and
    ``candidates`` is empty. The layer test needs a slab of several layers; a slab of one or
    two atomic layers can only be matched with n = 1.

    ``bulk`` is any cell of the bulk crystal (a supercell, slightly rattled atoms: it is
    idealised with symprec 0.1 Angstrom). Raises ValueError if ``slab`` has no single vacuum
    axis (see :func:`vacuum_axis`).
    """
    axis = vacuum_axis(slab)
    if axis is None:
        raise ValueError("no vacuum gap of at least 5 Angstrom in the slab's cell: a bulk, not a slab")
    prim_basis, m = _inplane_primitive(slab, axis)
    prim_shape = _invariants(*prim_basis)
    prim_area = float(np.linalg.norm(np.cross(prim_basis[0], prim_basis[1])))

    families = _bulk_families(
        tuple(int(z) for z in bulk.numbers),
        tuple(map(tuple, np.round(np.asarray(bulk.cell.array, dtype=float), 8).tolist())),
        tuple(map(tuple, np.round(np.asarray(bulk.positions, dtype=float), 8).tolist())),
        int(max_index),
    )

    # (family, index in the slab's primitive in-plane cell, index in the slab's cell, misfit)
    matches: list[tuple[_Family, int, int, float]] = []
    for fam in families:
        ratio = prim_area / fam.area
        n = int(round(ratio))
        if n < 1 or n * m > max_supercell or abs(ratio / n - 1.0) > 2.5 * rel_tol:
            continue
        e1, e2 = fam.basis
        best = min(_misfit(prim_shape, _invariants(a * e1 + b * e2, d * e2)) for a, b, d in _hnf_2d(n))
        if best <= rel_tol:
            matches.append((fam, n, n * m, best))
    if not matches:
        return MillerMatch(hkl=None, candidates=(), supercell_index=None, misfit=None)

    # A family whose plane lattice is finer than the slab's own in-plane lattice (n > 1) makes
    # the slab a reconstruction of that surface; believe it only if the slab's stacking of atomic
    # layers is the bulk's along that family's normal. (A 1x3 cell of the (100) plane of a cubic
    # crystal is the 1x1 cell of (221), which has a third of the layer spacing.)
    heights = _slab_heights(slab, axis)
    errors = {fam.hkl: _stacking_error(heights, fam) for fam, *_ in matches}

    def plausible(match) -> bool:
        err = errors[match[0].hkl]
        return match[1] == 1 or (err is not None and err <= _STACKING_TOL)

    def rank(match) -> tuple:
        err = errors[match[0].hkl]
        return (not plausible(match), math.inf if err is None else err, match[3])

    matches.sort(key=rank)
    candidates = tuple(fam.hkl for fam, *_ in matches)
    fitting = [t for t in matches if plausible(t)]
    if len(fitting) > 1:  # the stacking decides between them
        fitting = [t for t in fitting if errors[t[0].hkl] is not None and errors[t[0].hkl] <= _STACKING_TOL]
    if len(fitting) == 1:
        fam, _, index, misfit = fitting[0]
        return MillerMatch(hkl=fam.hkl, candidates=candidates, supercell_index=index, misfit=misfit)
    return MillerMatch(hkl=None, candidates=candidates, supercell_index=None, misfit=None)
