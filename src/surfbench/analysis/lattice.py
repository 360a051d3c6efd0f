"""The lattice type of an elemental bulk crystal: fcc, bcc, hcp, diamond or other.

From pymatgen's :class:`~pymatgen.symmetry.analyzer.SpacegroupAnalyzer` (spglib): the space
group number and the number of atoms in the primitive standard cell:

=========  ==================  ==========================
lattice    space group         atoms per primitive cell
=========  ==================  ==========================
fcc        Fm-3m (225)         1
bcc        Im-3m (229)         1
hcp        P6_3/mmc (194)      2
diamond    Fd-3m (227)         2
=========  ==================  ==========================

Anything else (other space group, several species, more atoms) is ``"other"``. ``hcp`` is
any P6_3/mmc crystal with two atoms per primitive cell, whatever its c/a.
"""

from __future__ import annotations

from ase import Atoms

#: the lattice types, in the order used for markers and legends
LATTICES = ("fcc", "bcc", "hcp", "diamond", "other")

#: (space group number, atoms per primitive cell) -> lattice type
_TYPES = {(225, 1): "fcc", (229, 1): "bcc", (194, 2): "hcp", (227, 2): "diamond"}

#: symmetry tolerance (Angstrom), as for surfbench's bulk symmetry analysis (data.geometry)
DEFAULT_SYMPREC = 0.1


def lattice_type(atoms: Atoms, symprec: float = DEFAULT_SYMPREC) -> str:
    """``"fcc"``, ``"bcc"``, ``"hcp"``, ``"diamond"`` or ``"other"`` for a periodic bulk crystal.

    ``symprec`` is spglib's distance tolerance (Angstrom): the default 0.1 Angstrom recognises
    slightly distorted DFT cells (e.g. mlearn's 54-atom Mo ground state). A cell that spglib
    cannot analyse (no atoms, not periodic) raises ValueError.
    """
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    if len(atoms) == 0:
        raise ValueError("lattice_type: the structure has no atoms")
    if not all(atoms.pbc):
        raise ValueError(f"lattice_type: a bulk crystal must be periodic in 3 directions, pbc={list(atoms.pbc)}")
    if len(set(atoms.get_chemical_symbols())) != 1:
        return "other"
    structure = AseAtomsAdaptor.get_structure(atoms)
    try:
        sga = SpacegroupAnalyzer(structure, symprec=symprec)
        number = int(sga.get_space_group_number())
        n_primitive = len(sga.get_primitive_standard_structure())
    except Exception as exc:  # spglib gives up with various errors
        raise ValueError(f"lattice_type: symmetry analysis failed ({type(exc).__name__}: {exc})") from exc
    return _TYPES.get((number, n_primitive), "other")
