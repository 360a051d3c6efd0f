"""A cheap correction of systematic softening: scale the model's energy landscape about its
own bulk reference.

For a structure with atoms i of elements el_i, reference energies e_ref (the model's energy per
atom of each element's bulk reference, eV/atom) and a scale s:

    E' = sum_i e_ref[el_i] + s (E - sum_i e_ref[el_i])      (eV)
    F' = s F                                                 (eV/Angstrom)
    stress' = s stress                                       (eV/Angstrom^3)

The corrected landscape is conservative (forces and stress remain the derivatives of E'), keeps
the model's bulk reference energies and minima where they are, and multiplies the model's
surface energies on any fixed geometry by s (gamma' = s gamma). ``s`` is fitted by least
squares on a few DFT frames of the training split (never on slabs: frames of the "Surface"
group, frames with a vacuum gap and frames whose structure is an evaluated slab are excluded):

    s = (w_E <y x>_E + w_F <Fp . Fd>_F) / (w_E <y^2>_E + w_F <Fp . Fp>_F)

with y, x the model's and DFT's energies per atom relative to their bulk references (eV/atom),
averages over frames (energies) and force components (forces), so the fit minimises
``w_E MSE_E + w_F MSE_F`` in (eV/atom)^2 and (eV/Angstrom)^2. With ``per_element`` one scale is
fitted per element from that element's frames (structures with several elements are then
refused).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from ase.calculators.calculator import Calculator, all_changes

from surfbench.models.base import Fingerprint, LoadedModel

SURFACE_GROUP = "Surface"


@dataclass(frozen=True)
class SofteningCorrection:
    """A fitted scale (or one per element) about the model's bulk reference energies."""

    model: str
    fingerprint: str  # the uncorrected model's fingerprint id
    scale: dict[str, float]  # element -> s; the key "*" means one scale for every element
    reference_ev_per_atom: dict[str, float]  # the model's bulk energy per atom per element
    frames: tuple[str, ...] = ()  # ids of the frames it was fitted on
    energy_weight: float = 1.0
    force_weight: float = 1.0
    seed: int = 0
    note: str = field(default="", compare=False)

    def scale_for(self, elements: set[str]) -> float:
        if "*" in self.scale:
            return self.scale["*"]
        if len(elements) != 1:
            raise ValueError(f"per-element softening correction of {self.model} cannot scale a structure of {sorted(elements)}")
        (el,) = elements
        if el not in self.scale:
            raise ValueError(f"softening correction of {self.model} has no scale for {el} (fitted for {sorted(self.scale)})")
        return self.scale[el]

    def to_json(self) -> str:
        """The correction as JSON (without the free-text note)."""
        d = dataclasses.asdict(self)
        d.pop("note", None)
        return json.dumps(d, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "correction") -> SofteningCorrection:
        try:
            d = json.loads(text)
            d["frames"] = tuple(d.get("frames", ()))
            return cls(**d)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{source}: not a softening correction ({exc})") from exc

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> SofteningCorrection:
        return cls.from_json(Path(path).read_text(), str(path))


class ScaledCalculator(Calculator):
    """Wraps a calculator and applies a :class:`SofteningCorrection`."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, base: Calculator, correction: SofteningCorrection):
        super().__init__()
        self.base = base
        self.correction = correction

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.base
        symbols = work.get_chemical_symbols()
        c = self.correction
        missing = sorted(set(symbols) - set(c.reference_ev_per_atom))
        if missing:
            raise ValueError(f"softening correction of {c.model} has no bulk reference for {missing}")
        s = c.scale_for(set(symbols))
        e_ref = float(sum(c.reference_ev_per_atom[el] for el in symbols))
        energy = float(work.get_potential_energy())
        self.results["energy"] = self.results["free_energy"] = e_ref + s * (energy - e_ref)
        if "forces" in properties or "stress" in properties:
            self.results["forces"] = s * np.asarray(work.get_forces())
        if "stress" in properties:
            self.results["stress"] = s * np.asarray(work.get_stress())


class CorrectedModel(LoadedModel):
    """A loaded model behind a softening correction; its fingerprint adds the correction."""

    def __init__(self, base: LoadedModel, correction: SofteningCorrection):
        if base.fingerprint.id != correction.fingerprint:
            raise ValueError(
                f"correction was fitted for {correction.fingerprint}, not for {base.fingerprint.id}")
        # the name carries the correction's digest: a correction fitted differently is another model
        digest = hashlib.sha256(correction.to_json().encode()).hexdigest()[:8]
        super().__init__(dataclasses.replace(base.spec, name=f"{base.name}+softening-fix-{digest}"), base.backend)
        self.base = base
        self.correction = correction

    @cached_property
    def fingerprint(self) -> Fingerprint:
        fp = self.base.fingerprint
        options = json.loads(fp.options or "{}")
        options["softening_correction"] = json.loads(self.correction.to_json())
        return dataclasses.replace(fp, model=self.name, options=json.dumps(options, sort_keys=True))

    @cached_property
    def calculator(self) -> Calculator:
        return ScaledCalculator(self.base.calculator, self.correction)


def eligible_fit_frames(table: pd.DataFrame, exclude_ids: set[str] = frozenset()) -> pd.DataFrame:
    """Frames of :func:`surfbench.analysis.softening.frame_table` allowed for fitting: training
    split, not the "Surface" group (unlabelled frames with a vacuum gap count as surfaces), not
    excluded by id, predicted without failure."""
    ok = (table["split"] == "train") & (table["group"] != SURFACE_GROUP) & (table["status"] == "ok")
    ok &= ~table["frame_id"].isin(exclude_ids) & table["de_dft_ev_per_atom"].notna()
    return table[ok]


def choose_fit_frames(eligible_ids: pd.DataFrame, n_frames: int, seed: int, per_element: bool) -> list[str]:
    """``n_frames`` frame ids (``per_element``: per element), drawn with a seeded RNG, spread
    over the elements in turn."""
    rng = np.random.default_rng(seed)
    pools = {el: list(rng.permutation(sorted(g["frame_id"]))) for el, g in eligible_ids.groupby("element", sort=True)}
    if per_element:
        return [fid for pool in pools.values() for fid in pool[:n_frames]]
    chosen: list[str] = []
    while len(chosen) < n_frames and any(pools.values()):
        for pool in pools.values():
            if pool and len(chosen) < n_frames:
                chosen.append(pool.pop(0))
    return chosen


def fit_scale(rows: pd.DataFrame, energy_weight: float = 1.0, force_weight: float = 1.0) -> float:
    """The least-squares scale s of the module docstring from frame-table rows."""
    y, x = rows["de_pred_ev_per_atom"].to_numpy(), rows["de_dft_ev_per_atom"].to_numpy()
    f = rows[rows["n_force_components"] > 0]
    n_c = max(int(f["n_force_components"].sum()), 1)
    num = energy_weight * float(np.mean(y * x)) + force_weight * float(f["f_sxy"].sum()) / n_c
    den = energy_weight * float(np.mean(y * y)) + force_weight * float(f["f_syy"].sum()) / n_c
    if not den > 0:
        raise ValueError("cannot fit a softening scale: the fitting frames have zero predicted energy differences and forces")
    return num / den


def fit_correction(
    table: pd.DataFrame,
    references_ev_per_atom: dict[str, float],
    *,
    n_frames: int = 10,
    seed: int = 0,
    per_element: bool = False,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
    exclude_ids: set[str] = frozenset(),
) -> SofteningCorrection:
    """Fit the correction of one model (``table`` holds that model's frame rows)."""
    models = table["fingerprint"].unique()
    if len(models) != 1:
        raise ValueError(f"fit one model at a time (got {len(models)} fingerprints)")
    eligible = eligible_fit_frames(table, set(exclude_ids))
    if eligible.empty:
        raise ValueError("no frame is eligible for fitting the softening correction (training split, not surfaces)")
    ids = choose_fit_frames(eligible, n_frames, seed, per_element)
    rows = eligible[eligible["frame_id"].isin(ids)]
    if per_element:
        scale = {el: fit_scale(g, energy_weight, force_weight) for el, g in rows.groupby("element", sort=True)}
    else:
        scale = {"*": fit_scale(rows, energy_weight, force_weight)}
    return SofteningCorrection(
        model=str(table["model"].iloc[0]), fingerprint=str(models[0]), scale=scale,
        reference_ev_per_atom={k: float(v) for k, v in sorted(references_ev_per_atom.items())},
        frames=tuple(str(i) for i in ids), energy_weight=energy_weight, force_weight=force_weight, seed=seed,
    )
