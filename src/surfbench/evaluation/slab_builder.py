"""The structures of the model-built protocol: an element's crystal and the slabs of a facet.

* **Crystal**: ASE's :func:`ase.build.bulk` (primitive cell) for the structure type, with the
  lattice constant of :data:`ase.data.reference_states` when the element's reference state
  is that type; otherwise the cell is scaled to the reference state's volume per atom.
* **Slab** of a Miller index (of the conventional cubic cell) at the model's relaxed lattice:
  ASE's named builders for the fcc and bcc (100), (110) and (111) facets, 1x1 in-plane, with
  ``layers`` atomic layers; any other facet or structure type: pymatgen's
  :class:`~pymatgen.core.surface.SlabGenerator` on the conventional standard cell of the
  model's relaxed bulk, ``layers`` (hkl) planes of that cell thick (a plane holds one or
  more atomic layers), every termination it finds.

``vacuum_a`` is the whole gap between a slab and its periodic image along the normal (c axis,
Angstrom). Every slab is returned fully periodic (its vacuum separates the images), as
surfbench evaluates slabs.
"""

from __future__ import annotations

import math

from ase import Atoms
from ase.build import bcc100, bcc110, bcc111, bulk, fcc100, fcc110, fcc111
from ase.data import atomic_numbers, reference_states

from surfbench.records import Miller

#: (crystal, Miller index) -> ASE builder of that facet
ASE_BUILDERS = {
    ("fcc", (1, 0, 0)): fcc100, ("fcc", (1, 1, 0)): fcc110, ("fcc", (1, 1, 1)): fcc111,
    ("bcc", (1, 0, 0)): bcc100, ("bcc", (1, 1, 0)): bcc110, ("bcc", (1, 1, 1)): bcc111,
}


class BuildError(ValueError):
    """A crystal or slab that cannot be built (unknown element or structure type, bad index)."""


def reference_crystal(element: str) -> str:
    """The structure type of the element's reference state in ASE (``fcc``, ``bcc``, ...)."""
    try:
        state = reference_states[atomic_numbers[element]]
    except KeyError:
        raise BuildError(f"{element!r} is not an element symbol") from None
    if not state or "symmetry" not in state:
        raise BuildError(f"ASE has no reference crystal structure for {element}")
    return str(state["symmetry"])


def crystal(element: str, structure: str | None = None) -> tuple[Atoms, float]:
    """The primitive cell of ``element`` in ``structure`` (default: its reference state's) and
    the lattice constant a (Angstrom) it was built with."""
    reference = reference_crystal(element)
    structure = structure or reference
    if structure == reference:
        atoms = bulk(element, structure)
        return atoms, float(reference_states[atomic_numbers[element]]["a"])
    try:
        unit = bulk(element, structure, a=1.0)
        ref = bulk(element, reference)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise BuildError(f"ASE cannot build {element} as {structure}: {exc}") from None
    scale = (ref.get_volume() / len(ref) / (unit.get_volume() / len(unit))) ** (1.0 / 3.0)
    unit.set_cell(unit.cell.array * scale, scale_atoms=True)
    return unit, scale


def _fully_periodic(atoms: Atoms) -> Atoms:
    atoms.pbc = True
    return atoms


def facet_slabs(
    element: str, structure: str, miller: Miller, relaxed_bulk: Atoms, a: float, layers: int, vacuum_a: float,
) -> tuple[str, list[Atoms]]:
    """The builder's name and the slabs (one per termination) of a facet at the relaxed bulk
    (``relaxed_bulk``, lattice constant ``a`` in Angstrom for the ASE builders)."""
    if layers < 1 or not vacuum_a > 0:
        raise BuildError(f"need layers >= 1 and a positive vacuum, got layers={layers}, vacuum_a={vacuum_a}")
    miller = tuple(int(i) for i in miller)
    builder = ASE_BUILDERS.get((structure, miller))
    if builder is not None:
        slab = builder(element, size=(1, 1, layers), a=a, vacuum=vacuum_a / 2.0)  # each builder's smallest cell
        return f"ase.build.{builder.__name__}", [_fully_periodic(slab)]
    from pymatgen.core.surface import SlabGenerator
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    if not any(miller):
        raise BuildError(f"Miller index {miller} is all zeros")
    conventional = SpacegroupAnalyzer(AseAtomsAdaptor.get_structure(relaxed_bulk)).get_conventional_standard_structure()
    planes_of_vacuum = math.ceil(vacuum_a / conventional.lattice.d_hkl(miller))
    generator = SlabGenerator(conventional, miller, min_slab_size=layers, min_vacuum_size=planes_of_vacuum,
                              in_unit_planes=True, center_slab=True, primitive=True)
    slabs = generator.get_slabs()
    if not slabs:
        raise BuildError(f"pymatgen SlabGenerator found no slab of {element} {miller}")
    return "pymatgen.core.surface.SlabGenerator", [_fully_periodic(AseAtomsAdaptor.get_atoms(s)) for s in slabs]
