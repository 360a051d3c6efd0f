"""Join stored results with the DFT records: per-atom energies and surface energies.

Surface energy of the model: gamma_ML = (E_slab^ML - n * e_bulk^ML) / (2 A), with the model's
own bulk energy per atom on the same bulk record as DFT (so constant energy offsets cancel).
A is the DFT slab's area, or for protocols that change the in-plane cell (relaxed) the area
the protocol stored with the result (``extra.area_a2``). A protocol that builds its own
structures (model-built) stores the bulk energy per atom (``extra.energy_per_atom_ev``), the
slab's atom count (``extra.n_atoms``) and its gamma (``extra.gamma_j_per_m2``); these are used
as they are, since its slab is not the record's.
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


def _from_extra(extras, key: str) -> np.ndarray:
    """``key`` of each result's extras (JSON text) as floats, NaN where absent."""
    values = []
    for extra in extras:
        value = json.loads(extra).get(key) if isinstance(extra, str) and extra else None
        values.append(np.nan if value is None else float(value))
    return np.asarray(values, dtype=float)


def bulk_predictions(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, bulk record): DFT and predicted energy per atom (eV/atom)."""
    b = results[results["kind"] == "bulk"].copy()
    b["e_dft_per_atom_ev"] = b["dft_energy_ev"] / b["n_atoms"]
    own = _from_extra(b.get("extra", [None] * len(b)), "energy_per_atom_ev")  # model-built: its own cell
    per_atom = np.where(np.isfinite(own), own, b["energy_ev"] / b["n_atoms"])
    b["e_pred_per_atom_ev"] = np.where(b["status"] == "ok", per_atom, np.nan)
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
    extras = list(s.get("extra", [None] * len(s)))
    own_n = _from_extra(extras, "n_atoms")  # model-built: its own slab
    s["e_pred_per_atom_ev"] = np.where(ok, s["energy_ev"] / np.where(np.isfinite(own_n), own_n, s["n_atoms"]), np.nan)
    s["error_e_per_atom_ev"] = s["e_pred_per_atom_ev"] - s["e_dft_per_atom_ev"]
    s["pred_area_a2"] = [_extra_area(e, a) for e, a in zip(s.get("extra", [None] * len(s)), s["area_a2"])]
    gamma = (s["energy_ev"] - s["n_atoms"] * s["bulk_e_pred_per_atom_ev"]) / (2.0 * s["pred_area_a2"])
    own_gamma_ev_per_a2 = _from_extra(extras, "gamma_j_per_m2") / EV_PER_A2_IN_J_PER_M2
    gamma = gamma.where(~np.isfinite(own_gamma_ev_per_a2), own_gamma_ev_per_a2)
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


#: the gamma columns :func:`export_frame` adds to the stored results
GAMMA_EXPORT_COLUMNS = ["gamma_pred_j_per_m2", "error_gamma_j_per_m2", "gamma_status", "gamma_failure"]


def miller_text(miller: object) -> str | None:
    """A stored Miller index ("332", "1-10", "10 1 0") as space-separated text ("3 3 2",
    "1 -1 0", "10 1 0"): never read as a number, unambiguous for negative and multi-digit
    indices; None for a slab without one."""
    from surfbench.data.miller import parse_miller

    if not isinstance(miller, str) or not miller or miller == "unknown":
        return None
    return " ".join(str(i) for i in parse_miller(miller))


def export_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Stored results (one row per result, as :meth:`ResultStore.results`) with, for each
    slab, the model's gamma (``gamma_pred_j_per_m2``, J/m^2) beside the DFT one
    (``dft_gamma_j_per_m2``), the error (model - DFT, ``error_gamma_j_per_m2``), the gamma's
    ``gamma_status`` and ``gamma_failure`` (e.g. ``bulk_failed:unsupported_element``), all as
    :func:`slab_predictions` computes them; and the Miller index as text (:func:`miller_text`).
    Bulk rows have no gamma."""
    keys = ["dataset", "record_id", "fingerprint", "protocol"]
    out = results.copy()
    out["miller"] = out["miller"].map(miller_text).astype(object)
    gamma = slab_predictions(results)[keys + GAMMA_EXPORT_COLUMNS] if len(results) else \
        pd.DataFrame(columns=keys + GAMMA_EXPORT_COLUMNS)
    out = out.merge(gamma, on=keys, how="left", validate="one_to_one")
    at = list(out.columns).index("dft_gamma_j_per_m2") + 1
    order = [c for c in out.columns if c not in GAMMA_EXPORT_COLUMNS]
    return out[order[:at] + GAMMA_EXPORT_COLUMNS + order[at:]]
