"""Systematic softening (Deng et al., npj Comput. Mater. 2025): slopes of predicted versus DFT
forces, energies and surface energies, fitted through the origin.

* forces: ``k_F = sum(F_pred . F_DFT) / sum(F_DFT . F_DFT)`` over all force components of
  the frames in a group (eV/Angstrom; k < 1: the model's forces are too small);
* energies: per frame ``dE = E/n - e_bulk`` (eV/atom) relative to the element's bulk
  reference, the model's against its own bulk energy and DFT's against DFT's;
  ``k_E = sum(dE_pred dE_DFT) / sum(dE_DFT^2)`` (k < 1: the energy landscape is too flat);
* surface energies: ``k_gamma = sum(gamma_pred gamma_DFT) / sum(gamma_DFT^2)``.

A force slope needs DFT forces to fit: for a group whose RMS DFT force component is below
``MIN_RMS_FORCE_EV_PER_A`` (e.g. the "Elastic" frames, strained perfect crystals) it is NaN.
Intervals are percentile bootstraps over frames (slabs for gamma) with a fixed seed. Failed
frames are counted and left out, never treated as zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from surfbench.data.frames import Frame
from surfbench.data.geometry import vacuum_axis

#: below this RMS DFT force component (eV/Angstrom) a group has no force slope
MIN_RMS_FORCE_EV_PER_A = 0.05

#: group given to frames of a source without labels (the Ni/Cu training extxyz)
UNLABELLED = "unlabelled"


def frame_group(frame: Frame) -> str:
    """The frame's data-set group; for unlabelled frames "Surface" if the cell has a vacuum
    gap, else "unlabelled"."""
    if frame.group:
        return frame.group
    try:
        return "Surface" if vacuum_axis(frame.atoms) is not None else UNLABELLED
    except ValueError:
        return UNLABELLED


def slope_through_origin(x, y) -> float:
    """Least-squares slope k of y = k x (no intercept); NaN without data."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    sxx = float(np.dot(x, x))
    return float(np.dot(x, y) / sxx) if sxx > 0 else float("nan")


def _bootstrap_ratio(num: np.ndarray, den: np.ndarray, n_boot: int, seed: int, ci: float) -> tuple[float, float]:
    """Percentile interval of sum(num)/sum(den) resampling the units (rows) with replacement."""
    n = num.size
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    lo, hi = np.nanpercentile(ratios, [50 * (1 - ci), 50 * (1 + ci)])
    return float(lo), float(hi)


def frame_table(
    frames: Sequence[Frame],
    ids: Sequence[str],
    references: Mapping[str, tuple[str, float, int]],
    predictions: pd.DataFrame,
) -> pd.DataFrame:
    """One row per (model, frame): DFT and predicted energy per atom (eV/atom), both relative to
    their bulk reference, and the per-frame force sums for the slope fits.

    ``references``: element -> (frame id of the bulk reference in ``predictions``, its DFT
    energy per atom in eV/atom, its number of atoms). ``predictions``: the store's frame results (one model or several).
    """
    rows = []
    dft = {fid: f for fid, f in zip(ids, frames)}
    for (fp, model), pred in predictions.groupby(["fingerprint", "model"], dropna=False):
        by_id = pred.set_index("frame_id")
        ref_pred = {}
        for el, (ref_id, _, n_ref) in references.items():
            r = by_id.loc[ref_id] if ref_id in by_id.index else None
            ref_pred[el] = (r["energy_ev"] / n_ref) if r is not None and r["status"] == "ok" else np.nan
        for fid, f in dft.items():
            if fid not in by_id.index:
                continue
            r = by_id.loc[fid]
            row = {
                "fingerprint": fp, "model": model, "frame_id": fid, "element": f.element, "split": f.split,
                "group": frame_group(f), "n_atoms": f.n_atoms, "status": r["status"], "failure_kind": r["failure_kind"],
                "e_dft_per_atom_ev": f.energy_per_atom_ev,
                "de_dft_ev_per_atom": f.energy_per_atom_ev - references[f.element][1] if f.element in references else np.nan,
                "e_pred_per_atom_ev": np.nan, "de_pred_ev_per_atom": np.nan,
                "f_sxy": np.nan, "f_sxx": np.nan, "f_syy": np.nan, "n_force_components": 0,
            }
            if r["status"] == "ok":
                e = r["energy_ev"] / f.n_atoms
                row["e_pred_per_atom_ev"] = e
                row["de_pred_ev_per_atom"] = e - ref_pred.get(f.element, np.nan)
                if f.forces_ev_per_a is not None and isinstance(r["forces_ev_per_a"], str):
                    fd = np.asarray(f.forces_ev_per_a, dtype=float).ravel()
                    fpred = np.asarray(json.loads(r["forces_ev_per_a"]), dtype=float).ravel()
                    row.update(f_sxy=float(fd @ fpred), f_sxx=float(fd @ fd), f_syy=float(fpred @ fpred),
                               n_force_components=int(fd.size))
            rows.append(row)
    return pd.DataFrame(rows)


def softening_slopes(
    table: pd.DataFrame, by: Iterable[str] = (), *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> pd.DataFrame:
    """Force and energy slopes (through the origin) per model and group (``by`` columns of
    :func:`frame_table`, e.g. ``["element"]`` or ``["group"]``), with bootstrap intervals."""
    keys = ["model", "fingerprint", *by]
    rows = []
    for key, g in table.groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, key))
        ok = g[g["status"] == "ok"]
        f = ok[ok["n_force_components"] > 0]
        row.update(n_frames=len(g), n_failed=int((g["status"] != "ok").sum()))
        n_c = int(f["n_force_components"].sum())
        rms = float(np.sqrt(f["f_sxx"].sum() / n_c)) if n_c else 0.0
        if rms >= MIN_RMS_FORCE_EV_PER_A:
            k_f = float(f["f_sxy"].sum() / f["f_sxx"].sum())
            lo, hi = _bootstrap_ratio(f["f_sxy"].to_numpy(), f["f_sxx"].to_numpy(), n_boot, seed, ci)
        else:
            k_f = lo = hi = np.nan
        row.update(force_slope=k_f, force_slope_lo=lo, force_slope_hi=hi, n_force_components=n_c, rms_dft_force_ev_per_a=rms)
        e = ok.dropna(subset=["de_dft_ev_per_atom", "de_pred_ev_per_atom"])
        x, y = e["de_dft_ev_per_atom"].to_numpy(), e["de_pred_ev_per_atom"].to_numpy()
        lo, hi = _bootstrap_ratio(x * y, x * x, n_boot, seed, ci)
        row.update(energy_slope=slope_through_origin(x, y), energy_slope_lo=lo, energy_slope_hi=hi, n_energy_frames=len(e))
        rows.append(row)
    return pd.DataFrame(rows)


def gamma_slopes(slabs: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Slope of predicted versus DFT gamma (J/m^2) through the origin, per model, from
    :func:`surfbench.analysis.predictions.slab_predictions`."""
    rows = []
    for (model, fp), g in slabs.groupby(["model", "fingerprint"], dropna=False, sort=True):
        ok = g.dropna(subset=["gamma_pred_j_per_m2", "dft_gamma_j_per_m2"])
        x, y = ok["dft_gamma_j_per_m2"].to_numpy(), ok["gamma_pred_j_per_m2"].to_numpy()
        lo, hi = _bootstrap_ratio(x * y, x * x, n_boot, seed, ci)
        rows.append({"model": model, "fingerprint": fp, "gamma_slope": slope_through_origin(x, y),
                     "gamma_slope_lo": lo, "gamma_slope_hi": hi, "n_slabs": len(ok), "n_failed": len(g) - len(ok)})
    return pd.DataFrame(rows)
