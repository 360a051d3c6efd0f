"""Join stored results with the DFT records: per-atom energies and surface energies.

Surface energy of the model: gamma_ML = (E_slab^ML - n * e_bulk^ML) / (2 A), with the model's
own bulk energy per atom on the same bulk record as DFT (so constant energy offsets cancel).
A is the DFT slab's area, or for protocols that change the in-plane cell (relaxed) the area
the protocol stored with the result (``extra.area_a2``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from surfbench.units import EV_PER_A2_IN_J_PER_M2

NO_BULK_REFERENCE = "no_bulk_reference"
BULK_MISSING = "bulk_not_evaluated"
BULK_FAILED = "bulk_failed"


def _extra_area(extra, area_a2: float) -> float:
    """The protocol's slab area (Angstrom^2) from a result's extras, else the DFT area."""
    if isinstance(extra, str) and extra:
        value = json.loads(extra).get("area_a2")
        if value is not None:
            return float(value)
    return float(area_a2)


def bulk_predictions(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, bulk record): DFT and predicted energy per atom (eV/atom)."""
    b = results[results["kind"] == "bulk"].copy()
    b["e_dft_per_atom_ev"] = b["dft_energy_ev"] / b["n_atoms"]
    b["e_pred_per_atom_ev"] = np.where(b["status"] == "ok", b["energy_ev"] / b["n_atoms"], np.nan)
    b["error_e_per_atom_ev"] = b["e_pred_per_atom_ev"] - b["e_dft_per_atom_ev"]
    return b.reset_index(drop=True)


def slab_predictions(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, slab record) with slab energy per atom (eV/atom) and gamma (J/m^2),
    DFT and predicted, and ``gamma_status`` / ``gamma_failure`` for the gamma."""
    keys = ["dataset", "fingerprint", "protocol"]
    bulks = bulk_predictions(results)[keys + ["record_id", "status", "failure_kind", "e_pred_per_atom_ev"]]
    bulks = bulks.rename(columns={
        "record_id": "bulk_id", "status": "bulk_status", "failure_kind": "bulk_failure_kind",
        "e_pred_per_atom_ev": "bulk_e_pred_per_atom_ev",
    })
    s = results[results["kind"] == "slab"].copy()
    s = s.merge(bulks, on=keys + ["bulk_id"], how="left")
    s["e_dft_per_atom_ev"] = s["dft_energy_ev"] / s["n_atoms"]
    ok = s["status"] == "ok"
    s["e_pred_per_atom_ev"] = np.where(ok, s["energy_ev"] / s["n_atoms"], np.nan)
    s["error_e_per_atom_ev"] = s["e_pred_per_atom_ev"] - s["e_dft_per_atom_ev"]
    s["pred_area_a2"] = [_extra_area(e, a) for e, a in zip(s.get("extra", [None] * len(s)), s["area_a2"])]
    gamma = (s["energy_ev"] - s["n_atoms"] * s["bulk_e_pred_per_atom_ev"]) / (2.0 * s["pred_area_a2"])
    failure = pd.Series([None] * len(s), index=s.index, dtype=object)
    failure[~ok] = s.loc[~ok, "failure_kind"]
    no_ref = ok & s["bulk_id"].isna()
    failure[no_ref] = NO_BULK_REFERENCE
    missing = ok & s["bulk_id"].notna() & s["bulk_status"].isna()
    failure[missing] = BULK_MISSING
    bulk_bad = ok & (s["bulk_status"] == "failed")
    failure[bulk_bad] = BULK_FAILED + ":" + s.loc[bulk_bad, "bulk_failure_kind"].astype(str)
    s["gamma_failure"] = failure
    s["gamma_status"] = np.where(failure.isna(), "ok", "failed")
    s["gamma_pred_j_per_m2"] = np.where(s["gamma_status"] == "ok", gamma * EV_PER_A2_IN_J_PER_M2, np.nan)
    s["error_gamma_j_per_m2"] = s["gamma_pred_j_per_m2"] - s["dft_gamma_j_per_m2"]
    return s.reset_index(drop=True)
