"""Facet-level analysis: does a model order the facets like DFT, and the Wulff shapes.

One surface energy per Miller index: several slabs can share an index (different
terminations, reconstructed and unreconstructed surfaces, e.g. Si(111) and
Si(111)-reconstructed in mlearn). For each index the LOWEST gamma among its slabs is taken,
separately for DFT and for the model (so the two may come from different slabs of that
index: each side's most stable surface of that orientation).

Like for like: for a model, only the slabs whose gamma it computed (``gamma_status == "ok"``)
with a finite DFT gamma and a Miller index count, on the DFT side as well, so DFT and model
are compared on the same structures; ``n_failed`` / ``n_no_miller`` say how many slabs of a
bulk were left out for that reason.

Miller indices are compared as the strings of the data (``"110"``); symmetry-equivalent
spellings (``"101"`` vs ``"110"``) are not merged in :func:`facet_ordering` (the mlearn and
MP data give one spelling per family). Strings are parsed for the Wulff construction: one
digit per index with an optional minus sign (``"1-10"``), or separated indices
(``"1 1 0"``, ``"(1,1,0)"``, ``"10_1_0"``); 3 (hkl) or 4 (hkil, hexagonal) indices.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from surfbench.data.miller import parse_miller

_ORDER_COLUMNS = ["fingerprint", "model", "bulk_id", "element", "n_facets", "dft_top", "model_top",
                  "dft_lowest", "model_lowest", "lowest_correct", "lowest_excess_j_per_m2", "spearman", "kendall",
                  "top_overlap", "n_failed", "n_no_miller"]
_WULFF_COLUMNS = ["fingerprint", "model", "bulk_id", "element", "source", "n_facets",
                  "weighted_surface_energy", "shape_factor", "anisotropy", "area_fraction",
                  "delta_weighted_gamma", "problem"]


def _usable(group: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Slabs of one run/bulk that count: gamma ok, finite DFT and model gamma, a Miller index."""
    ok = (group["gamma_status"] == "ok") & np.isfinite(group["gamma_pred_j_per_m2"].astype(float)) \
        & np.isfinite(group["dft_gamma_j_per_m2"].astype(float))
    has_miller = group["miller"].notna() & (group["miller"].astype(str) != "unknown")
    n_failed = int((~ok).sum())
    n_no_miller = int((ok & ~has_miller).sum())
    return group[ok & has_miller], n_failed, n_no_miller


def _lowest_per_miller(slabs: pd.DataFrame) -> pd.DataFrame:
    """Index: Miller string; columns dft, model: the lowest gamma of that index's slabs."""
    per = slabs.groupby(slabs["miller"].astype(str)).agg(
        dft=("dft_gamma_j_per_m2", "min"), model=("gamma_pred_j_per_m2", "min"))
    per.index.name = "miller"
    return per


def _ranked(values: pd.Series) -> list[str]:
    """Facets from lowest to highest gamma (ties broken by the Miller string)."""
    frame = values.rename("g").reset_index()
    return frame.sort_values(["g", "miller"], kind="stable")["miller"].tolist()


def _group_keys(slabs: pd.DataFrame) -> list[str]:
    keys = ["fingerprint", "model", "bulk_id", "element"]
    missing = [k for k in keys if k not in slabs.columns]
    if missing:
        raise ValueError(f"slabs lacks columns {missing}")
    for col in ("dataset", "protocol"):
        if col in slabs.columns and slabs[col].nunique(dropna=False) > 1:
            raise ValueError(f"slabs holds several values of {col!r}: pass one dataset and protocol")
    return keys


def facet_ordering(slabs: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """Facet ordering by DFT and by the model, per (fingerprint, model, bulk_id, element).

    For each Miller index the LOWEST gamma among that index's slabs is used (several
    terminations or reconstructions may share an index), for DFT and for the model
    separately, over the slabs whose model gamma is ok (see the module docstring).

    Columns: ``n_facets`` (Miller indices with a gamma on both sides), ``dft_top`` /
    ``model_top`` (the ``n`` lowest facets, lowest first, Miller strings like ``"110"``),
    ``dft_lowest`` / ``model_lowest``, ``lowest_correct`` (the model's lowest facet is DFT's
    lowest; False when there is no facet), ``lowest_excess_j_per_m2`` (the DFT gamma of the
    model's lowest facet minus the DFT minimum, J/m^2: 0 when it is right, small when DFT's
    lowest facets lie close; NaN without a facet), ``spearman`` / ``kendall`` (scipy.stats
    ``spearmanr`` / ``kendalltau`` (tau-b) over all facets; NaN with fewer than 2 facets or a
    constant side), ``top_overlap`` (``len(set(dft_top) & set(model_top))``), ``n_failed``
    (slabs of the bulk without a model gamma) and ``n_no_miller`` (ok slabs without index).
    """
    from scipy.stats import ConstantInputWarning, kendalltau, spearmanr

    if slabs.empty:
        return pd.DataFrame(columns=_ORDER_COLUMNS)
    keys = _group_keys(slabs)
    rows = []
    for key, group in slabs.groupby(keys, dropna=False, sort=True):
        usable, n_failed, n_no_miller = _usable(group)
        per = _lowest_per_miller(usable)
        dft_rank, model_rank = _ranked(per["dft"]), _ranked(per["model"])
        dft_top, model_top = dft_rank[:n], model_rank[:n]
        spearman = kendall = np.nan
        if len(per) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConstantInputWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                spearman = float(spearmanr(per["dft"], per["model"]).statistic)
                kendall = float(kendalltau(per["dft"], per["model"]).statistic)
        dft_lowest = dft_rank[0] if dft_rank else None
        model_lowest = model_rank[0] if model_rank else None
        rows.append({
            **dict(zip(keys, key)),
            "n_facets": len(per),
            "dft_top": dft_top,
            "model_top": model_top,
            "dft_lowest": dft_lowest,
            "model_lowest": model_lowest,
            "lowest_correct": bool(dft_lowest is not None and dft_lowest == model_lowest),
            "lowest_excess_j_per_m2": (float(per.loc[model_lowest, "dft"] - per["dft"].min())
                                       if model_lowest is not None else np.nan),
            "spearman": spearman,
            "kendall": kendall,
            "top_overlap": len(set(dft_top) & set(model_top)),
            "n_failed": n_failed,
            "n_no_miller": n_no_miller,
        })
    frame = pd.DataFrame(rows, columns=_ORDER_COLUMNS)
    for col in ("dft_lowest", "model_lowest"):  # None (not NaN) where a side has no facet
        frame[col] = pd.Series([r[col] for r in rows], index=frame.index, dtype=object)
    return frame


def _lattice_of(records: pd.DataFrame):
    """bulk record id -> pymatgen Lattice (None where the record has no lattice)."""
    from pymatgen.core import Lattice

    out = {}
    if records is None or records.empty or "bulk_lattice" not in records.columns:
        return out
    bulks = records[records["kind"] == "bulk"] if "kind" in records.columns else records
    for rid, text in zip(bulks["record_id"], bulks["bulk_lattice"]):
        if text is None or (isinstance(text, float) and np.isnan(text)):
            out[rid] = None
            continue
        matrix = json.loads(text) if isinstance(text, str) else text
        out[rid] = Lattice(np.asarray(matrix, dtype=float))
    return out


def _wulff(lattice, energies: pd.Series):
    """(WulffShape or None, {hkl tuple: Miller string}, problem or None) from Miller string ->
    lowest gamma."""
    from pymatgen.analysis.wulff import WulffShape

    per_hkl: dict[tuple[int, ...], tuple[str, float]] = {}
    for miller, gamma in energies.items():
        try:
            hkl = parse_miller(miller)
        except ValueError as exc:
            return None, {}, str(exc)
        if hkl not in per_hkl or gamma < per_hkl[hkl][1]:
            per_hkl[hkl] = (miller, float(gamma))
    names = {hkl: m for hkl, (m, _) in per_hkl.items()}
    if len(per_hkl) < 2:
        return None, names, f"fewer than 2 facets with a surface energy ({len(per_hkl)})"
    bad = {m: g for m, g in per_hkl.values() if not g > 0}
    if bad:
        return None, names, "non-positive surface energy: " + ", ".join(f"{m}={g:.3g}" for m, g in bad.items())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shape = WulffShape(lattice, list(per_hkl), [g for _, g in per_hkl.values()])
            _ = shape.area_fraction_dict, shape.weighted_surface_energy  # fail here, not later
    except Exception as exc:  # noqa: BLE001 - any failure of the construction is reported
        return None, names, f"WulffShape failed: {type(exc).__name__}: {exc}"
    return shape, names, None


def _shape_row(shape, names: dict) -> dict:
    fractions = {names[tuple(hkl)]: float(f) for hkl, f in shape.area_fraction_dict.items()}
    return {
        "n_facets": len(names),
        "weighted_surface_energy": float(shape.weighted_surface_energy),
        "shape_factor": float(shape.shape_factor),
        "anisotropy": float(shape.anisotropy),
        "area_fraction": fractions,
    }


def wulff_analysis(slabs: pd.DataFrame, records: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Wulff shapes from DFT and from each model, per (fingerprint, model, bulk_id).

    The lattice is the bulk record's conventional standard lattice (``records.bulk_lattice``,
    JSON 3x3, Angstrom, rows), the Miller indices refer to it. Per Miller index the LOWEST gamma
    of its slabs is used (terminations / reconstructions), for DFT and for the model, over the
    slabs the model evaluated (see the module docstring); gammas in J/m^2.

    Returns ``(frame, shapes)``. ``frame``: two rows per (fingerprint, bulk), ``source`` "DFT"
    and "model", with ``fingerprint``, ``model``, ``bulk_id``, ``element``, ``n_facets``,
    ``weighted_surface_energy`` (J/m^2, area-weighted gamma of the Wulff shape),
    ``shape_factor``, ``anisotropy``, ``area_fraction`` (dict Miller string -> fraction of the
    area; 0 for facets not on the shape), ``delta_weighted_gamma`` (model - DFT, on the model
    rows; NaN on DFT rows or when a side is missing) and ``problem`` (None, or why no shape:
    no lattice, fewer than 2 facets, a non-positive gamma, WulffShape failing; the other
    columns are NaN then). ``shapes``: ``{(fingerprint, bulk_id, source): WulffShape}`` for the
    rows without a problem.
    """
    if slabs.empty:
        return pd.DataFrame(columns=_WULFF_COLUMNS), {}
    keys = ["fingerprint", "model", "bulk_id"]
    _group_keys(slabs)
    lattices = _lattice_of(records)
    cache: dict = {}
    rows, shapes = [], {}
    for (fingerprint, model, bulk_id), group in slabs.groupby(keys, dropna=False, sort=True):
        element = group["element"].iloc[0]
        usable, _, _ = _usable(group)
        per = _lowest_per_miller(usable)
        lattice = lattices.get(bulk_id)
        base = {"fingerprint": fingerprint, "model": model, "bulk_id": bulk_id, "element": element}
        side_rows = {}
        for source, column in (("DFT", "dft"), ("model", "model")):
            row = {**base, "source": source, "n_facets": len(per), "weighted_surface_energy": np.nan,
                   "shape_factor": np.nan, "anisotropy": np.nan, "area_fraction": None,
                   "delta_weighted_gamma": np.nan, "problem": None}
            if lattice is None:
                row["problem"] = ("no bulk lattice in the records" if bulk_id in lattices
                                  else "bulk record not in the records")
            else:
                energies = per[column]
                signature = (bulk_id, tuple(sorted(energies.items())))
                if signature not in cache:
                    cache[signature] = _wulff(lattice, energies)
                shape, names, problem = cache[signature]
                if problem is not None:
                    row["problem"] = problem
                else:
                    row.update(_shape_row(shape, names))
                    shapes[(fingerprint, bulk_id, source)] = shape
            side_rows[source] = row
        dft, mod = side_rows["DFT"], side_rows["model"]
        mod["delta_weighted_gamma"] = mod["weighted_surface_energy"] - dft["weighted_surface_energy"]
        rows += [dft, mod]
    frame = pd.DataFrame(rows, columns=_WULFF_COLUMNS)
    frame["problem"] = pd.Series([r["problem"] for r in rows], index=frame.index, dtype=object)
    return frame, shapes


def dft_facet_ordering(slabs: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The DFT facet ordering of every bulk over ALL its slabs with a DFT gamma and a Miller
    index (:func:`surfbench.analysis.facets.facet_ordering` of DFT against itself)."""
    import math

    s = slabs.drop_duplicates("record_id").copy()
    s = s[np.isfinite(s["dft_gamma_j_per_m2"].astype(float)) & s["bulk_id"].notna()]
    if s.empty:
        return pd.DataFrame()
    s["fingerprint"], s["model"] = "DFT", "DFT"
    s["gamma_status"], s["gamma_pred_j_per_m2"] = "ok", s["dft_gamma_j_per_m2"]
    out = facet_ordering(s, n=n)
    ok = s[s["miller"].notna()]
    lowest = ok.groupby(["bulk_id", ok["miller"].astype(str)])["dft_gamma_j_per_m2"].min()
    gaps = {b: (float(np.diff(np.sort(g.to_numpy())[:2])[0]) if len(g) >= 2 else math.nan)
            for b, g in lowest.groupby(level=0)}
    out["gap_1_2_j_per_m2"] = out["bulk_id"].map(gaps)
    return out


def dft_wulff(slabs: pd.DataFrame, records: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The DFT Wulff shape of every bulk from ALL its slabs with a DFT gamma (not only those a
    given model evaluated): ``(frame, {bulk_id: WulffShape})`` with the columns of
    :func:`surfbench.analysis.facets.wulff_analysis` (source "DFT", model "DFT")."""
    s = slabs.drop_duplicates("record_id").copy()
    s = s[np.isfinite(s["dft_gamma_j_per_m2"].astype(float)) & s["bulk_id"].notna()]
    if s.empty:
        return pd.DataFrame(), {}
    s["fingerprint"], s["model"] = "DFT", "DFT"
    s["gamma_status"], s["gamma_pred_j_per_m2"] = "ok", s["dft_gamma_j_per_m2"]
    frame, shapes = wulff_analysis(s, records)
    frame = frame[frame["source"] == "DFT"].reset_index(drop=True)
    return frame, {b: sh for (fp, b, src), sh in shapes.items() if src == "DFT"}


def missing_low_index(records: pd.DataFrame) -> dict[str, list[str]]:
    """Cubic bulks (space group 195-230) whose slabs lack a {100}, {110} or {111} surface:
    bulk id -> the missing families (their Wulff shapes and facet orderings lack them)."""
    import re

    out = {}
    bulks = records[(records["kind"] == "bulk") & records["spacegroup"].between(195, 230)]
    slabs = records[records["kind"] == "slab"]
    for bid in bulks["record_id"]:
        fams = set()
        for m in slabs.loc[slabs["bulk_id"] == bid, "miller"].dropna():
            digits = re.findall(r"-?\d", str(m))
            if len(digits) == 3:
                fams.add("".join(sorted((str(abs(int(d))) for d in digits), reverse=True)))
        missing = [f for f in ("100", "110", "111") if f not in fams]
        if missing and fams:
            out[bid] = missing
    return out
