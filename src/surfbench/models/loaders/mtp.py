"""Moment tensor potentials (MTP; Shapeev 2016, the MLIP-2 ``.mtp`` format) through motep's
ASE calculator (``motep.calculator.MTP``, its compiled ``cext`` engine, float64).

``mtp-local`` stands for any trained ``.mtp`` file, given with ``--weights PATH`` (or
``load_model("mtp-local", weights=PATH)``); the fingerprint hashes that file and records the
species mapping (below). A model is trained with motep itself, e.g. ``motep train motep.toml``
from an untrained ``levelNN-initial.mtp`` (see shared/models/SOURCES.md).

Species. An ``.mtp`` file numbers its species as types 0 .. species_count-1 and does not say
which chemical element each type is; surfbench never guesses it from the structure evaluated
(a Cu potential would otherwise happily evaluate Mo). The mapping (chemical symbols or atomic
numbers, in type order) is taken from, in this order:

1. the backend's ``species`` keyword, e.g. in a registry entry of one's own (a YAML fragment
   named by ``$SURFBENCH_REGISTRY_EXTRA``) ``kwargs: {species: [Cu]}``;
2. motep's own setting file beside the ``.mtp`` file: a ``*.toml`` in the same folder whose
   ``[potentials] final`` names the file (motep's default is ``final.mtp``), with
   ``[common] species = [29]`` -- the ``motep.toml`` that ``motep train`` (or
   ``motep evaluate``) was run with. Without ``species`` there, motep numbers types by atomic
   number (type i is the element with Z = i, species_count = largest Z + 1); surfbench then
   does the same, but accepts only the elements found in that setting's training
   configurations (the other types kept their random initial parameters).

A structure with an element outside the mapping raises :class:`UnknownElementError` (the
evaluation records it as a calculator error naming the element).

Why one motep calculator per number of atoms. motep's engine keeps an ASE
``PrimitiveNeighborList`` built with one cut-off radius per atom of the *first* structure it
saw, and per-atom work arrays sized the same way; it only calls ``neighbor_list.update`` for
later structures. For a structure with another number of atoms that update fails
(``ValueError: Wrong number of cutoff radii: 4 != 8``, or a broadcasting error when the cell
is unchanged). Another cell, other positions or other elements with the *same* number of atoms
are handled correctly (the list is rebuilt when the cell or pbc changes or an atom moved more
than the skin; the types are recomputed on every call). So :class:`MtpCalculator` keeps one
motep calculator per number of atoms (the last few used), which also keeps motep's
neighbour-list reuse within a relaxation.

motep 0.2.0 writes ``radial_funcs_count`` after the ``radial_coeffs`` block, but its reader
needs it before that block (``KeyError: 'radial_funcs_count'``); the text is normalised in a
temporary copy (:func:`normalise_mtp_text`) and the user's file is never changed.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.data import atomic_numbers, chemical_symbols

from surfbench.models.base import ModelBackend, ModelLoadError, ModelSpec, owned_results

#: motep calculators kept, one per number of atoms (least recently used dropped first)
MAX_CACHED_CALCULATORS = 16

_FUNCS_COUNT = re.compile(r"^\s*radial_funcs_count\s*=")
_SPECIES_COUNT = re.compile(r"^\s*species_count\s*=\s*(\d+)\s*$", re.MULTILINE)


class UnknownElementError(ValueError):
    """The structure holds an element the MTP has no parameters for."""


def normalise_mtp_text(text: str) -> str:
    """The ``.mtp`` text with the ``radial_funcs_count`` line moved above the
    ``radial_coeffs`` block, where motep's reader needs it (motep 0.2.0's writer puts it
    after). Text already in that order (MLIP-2 files, untrained files) comes back unchanged."""
    lines = text.splitlines(keepends=True)
    coeffs = next((i for i, line in enumerate(lines) if line.strip() == "radial_coeffs"), None)
    count = next((i for i, line in enumerate(lines) if _FUNCS_COUNT.match(line)), None)
    if coeffs is None or count is None or count < coeffs:
        return text
    line = lines.pop(count)
    if not line.endswith("\n"):
        line += "\n"
    lines.insert(coeffs, "\t" + line.lstrip())
    return "".join(lines)


def _species_count(path: Path) -> int:
    """``species_count`` from the file's header (no motep import: fingerprints stay cheap)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ModelLoadError(f"cannot read the MTP file {path}: {exc}") from exc
    if not text.lstrip().startswith("MTP"):
        raise ModelLoadError(f"{path} is not an MLIP/motep .mtp file (it does not start with 'MTP')")
    match = _SPECIES_COUNT.search(text)
    if not match:
        raise ModelLoadError(f"the MTP file {path} has no 'species_count = N' line")
    return int(match.group(1))


def _to_atomic_numbers(species: Iterable[str | int] | str, where: str) -> tuple[int, ...]:
    if isinstance(species, str):
        species = [s for s in re.split(r"[\s,]+", species) if s]
    out = []
    for s in species:
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 0 <= int(s) < len(chemical_symbols):
            out.append(int(s))
        elif isinstance(s, str) and s in atomic_numbers:
            out.append(atomic_numbers[s])
        else:
            raise ModelLoadError(f"{where}: {s!r} is neither a chemical symbol nor an atomic number")
    if len(set(out)) != len(out):
        raise ModelLoadError(f"{where}: an element is listed twice in {list(species)}")
    if not out:
        raise ModelLoadError(f"{where}: the species list is empty")
    return tuple(out)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _settings_beside(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """motep setting files (``*.toml``) in the folder of ``path`` whose ``[potentials] final``
    (motep's default: ``final.mtp``) is that file."""
    found = []
    for toml in sorted(path.parent.glob("*.toml")):
        try:
            data = tomllib.loads(toml.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if not isinstance(data.get("potentials", {}), dict) or not ("potentials" in data or "common" in data):
            continue
        final = data.get("potentials", {}).get("final", "final.mtp")
        if isinstance(final, str) and _same_file(toml.parent / final, path):
            found.append((toml, data))
    return found


class SpeciesMap:
    """Which element each MTP type is, and which elements the potential may be used for."""

    def __init__(self, type_numbers: Sequence[int], known: Iterable[int] | None, source: str,
                 training_setting: Path | None = None):
        self.type_numbers = tuple(type_numbers)  # atomic number of type 0, 1, ...
        self.known = frozenset(self.type_numbers if known is None else known)
        self.source = source
        #: motep setting whose training configurations tell the fitted elements (motep's
        #: atomic-number-as-type default, where types without training data stay unfitted)
        self.training_setting = training_setting

    @property
    def symbols(self) -> list[str]:
        return [chemical_symbols[z] for z in self.type_numbers]

    def describe_known(self) -> str:
        return ", ".join(chemical_symbols[z] for z in sorted(self.known)) or "none"


class MtpCalculator(Calculator):
    """motep's MTP calculator, one instance per number of atoms (see the module docs), with
    a check that every element of the structure is one the potential was trained for."""

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, mtp_data: Any, species: SpeciesMap, path: Path | str = "", *,
                 max_cached: int = MAX_CACHED_CALCULATORS, **kwargs: Any):
        super().__init__(**kwargs)
        self.mtp_data = mtp_data
        self.mtp_data.species = list(species.type_numbers)
        self.species = species
        self.path = str(path)
        self.max_cached = max(1, int(max_cached))
        self._by_natoms: OrderedDict[int, Calculator] = OrderedDict()

    def _motep_calculator(self, natoms: int) -> Calculator:
        calc = self._by_natoms.pop(natoms, None)
        if calc is None:
            from motep.calculator import MTP

            calc = MTP(self.mtp_data, engine="cext", mode="run")
        self._by_natoms[natoms] = calc  # most recently used last
        while len(self._by_natoms) > self.max_cached:
            self._by_natoms.popitem(last=False)
        return calc

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        present = set(int(z) for z in np.unique(self.atoms.numbers))
        unknown = sorted(present - self.species.known)
        if unknown:
            names = ", ".join(chemical_symbols[z] for z in unknown)
            raise UnknownElementError(
                f"the MTP potential {self.path} has no parameters for {names}: it knows "
                f"{self.species.describe_known()} (species mapping from {self.species.source})"
            )
        inner = self._motep_calculator(len(self.atoms))
        inner.calculate(self.atoms, list(properties), all_changes)
        self.results = owned_results(inner.results)
        if "stress" in properties and "stress" not in self.results:
            raise PropertyNotImplementedError("MTP stress needs a cell with three lattice vectors")


class MtpBackend(ModelBackend):
    """A local trained ``.mtp`` file (``--weights``), evaluated with motep in float64.

    ``species``: the elements of types 0, 1, ... (symbols or atomic numbers, a list or a
    ``"Cu,Mo"`` string). Default ``None``: read from motep's setting file beside the ``.mtp``
    file (module docs); without one, loading fails and says how to give it.
    """

    supported_dtypes = ("float64",)  # motep's engines compute in double precision
    stress_factor = 1.0  # motep returns ASE's convention: eV/Angstrom^3, Voigt order

    def __init__(self, spec: ModelSpec, species: Sequence[str | int] | str | None = None, **kwargs: Any):
        super().__init__(spec, **kwargs)
        self._species_arg = None if species is None else _to_atomic_numbers(species, f"model {spec.name}: species")

    def weight_files(self) -> list[Path]:
        return [self.resolved_weights("trained MTP (.mtp) file")]

    def _hint(self, path: Path) -> str:
        return (
            f"Give the elements of the MTP types in order: in a registry entry of your own "
            f"(YAML fragment named by $SURFBENCH_REGISTRY_EXTRA) with backend {self.spec.backend}, "
            f"weights {{source: local}} and kwargs: {{species: [Cu]}}; or keep motep's setting file "
            f"beside {path.name} (a *.toml with [potentials] final = \"{path.name}\" and "
            f"[common] species = [29], as used by 'motep train')"
        )

    @cached_property
    def _species_map(self) -> SpeciesMap:
        (path,) = self.weight_files()
        count = _species_count(path)
        if self._species_arg is not None:
            smap = SpeciesMap(self._species_arg, None,
                              f"the species option {[chemical_symbols[z] for z in self._species_arg]}")
        else:
            settings = _settings_beside(path)
            if not settings:
                raise ModelLoadError(
                    f"model {self.spec.name}: the MTP file {path} does not say which element each of its "
                    f"{count} types is, and no motep setting file beside it names it. " + self._hint(path)
                )
            maps = [self._map_from_setting(toml, data, count) for toml, data in settings]
            if len({m.type_numbers for m in maps}) > 1:
                raise ModelLoadError(
                    f"model {self.spec.name}: motep setting files beside {path} disagree on the species: "
                    + "; ".join(f"{m.source}: {m.symbols}" for m in maps) + ". " + self._hint(path)
                )
            smap = maps[0]
        if len(smap.type_numbers) != count:
            raise ModelLoadError(
                f"model {self.spec.name}: {smap.source} lists {len(smap.type_numbers)} species "
                f"({', '.join(smap.symbols)}) but {path} has species_count = {count}"
            )
        return smap

    def _map_from_setting(self, toml: Path, data: dict[str, Any], count: int) -> SpeciesMap:
        common = data.get("common")
        species = (common.get("species") if isinstance(common, dict) else None) or []
        if species:
            return SpeciesMap(_to_atomic_numbers(species, f"{toml} [common] species"), None,
                              f"[common] species of {toml}")
        # motep's default without species: type i is atomic number i (motep.io.utils.get_dummy_species);
        # only the elements of the training configurations have fitted parameters
        return SpeciesMap(range(count), None, f"{toml} (no [common] species: type i = atomic number i, "
                          "motep's default)", training_setting=toml)

    def _known_elements(self, smap: SpeciesMap) -> SpeciesMap:
        """For motep's atomic-number-as-type default: only the elements of the training
        configurations named by the setting file."""
        toml = smap.training_setting
        if toml is None:
            return smap
        (path,) = self.weight_files()
        data = tomllib.loads(toml.read_text(encoding="utf-8"))
        configurations = data.get("configurations")
        files = configurations.get("training", ["training.cfg"]) if isinstance(configurations, dict) else ["training.cfg"]
        files = [files] if isinstance(files, str) else list(files)
        try:
            import motep.io

            seen: set[int] = set()
            for f in files:
                name = f if Path(f).is_absolute() else str(toml.parent / f)
                for atoms in motep.io.read(name):
                    seen.update(int(z) for z in np.unique(atoms.numbers))
        except Exception as exc:  # missing file, unreadable format: the mapping cannot be trusted
            raise ModelLoadError(
                f"model {self.spec.name}: {toml} gives no [common] species, so motep numbered the MTP "
                f"types by atomic number; the training configurations {files} that tell which of them "
                f"were fitted cannot be read ({type(exc).__name__}: {exc}). " + self._hint(path)
            ) from exc
        return SpeciesMap(smap.type_numbers, seen & set(smap.type_numbers), smap.source)

    def options(self) -> dict[str, Any]:
        return {"species": self._species_map.symbols}

    def calculator(self) -> Calculator:
        (path,) = self.weight_files()
        smap = self._species_map
        with self.package_needed("motep"):
            from motep.io.mlip.mtp import read_mtp
            from motep.potentials.mmtp.data import MagMTPData
        try:
            text = normalise_mtp_text(path.read_text(encoding="utf-8"))
            with tempfile.TemporaryDirectory(prefix="surfbench-mtp-") as tmp:
                copy = Path(tmp) / path.name
                copy.write_text(text, encoding="utf-8")
                mtp_data = read_mtp(copy)
        except Exception as exc:  # motep's parser raises KeyError/ValueError/StopIteration on bad files
            raise ModelLoadError(
                f"model {self.spec.name}: cannot read the MTP file {path} ({type(exc).__name__}: {exc})"
            ) from exc
        if isinstance(mtp_data, MagMTPData):
            raise ModelLoadError(
                f"model {self.spec.name}: {path} is a magnetic MTP; surfbench evaluates non-magnetic "
                "potentials only (its structures carry no magnetic moments)"
            )
        if mtp_data.species_coeffs is None or mtp_data.moment_coeffs is None or mtp_data.radial_coeffs is None:
            raise ModelLoadError(
                f"model {self.spec.name}: {path} is an untrained MTP (no fitted coefficients); "
                "train it first, e.g. with 'motep train motep.toml'"
            )
        return MtpCalculator(mtp_data, self._known_elements(smap), path)
