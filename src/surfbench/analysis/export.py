"""``surfbench export``: every current result of a store, one row per result, with each slab's
gamma and the reference-value facets' errors, written to CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from surfbench.data.subset import Subset


def export_table(store, *, subset: Subset | None = None) -> pd.DataFrame:
    """Every current result of ``store`` (a :class:`~surfbench.store.results.ResultStore`;
    ``subset``: of those slabs and their bulks, or facets), one row per result: on DFT records
    joined with the record, with each slab's gamma (model, DFT, error, status and failure kind,
    :func:`surfbench.analysis.predictions.export_frame`); on reference-value records (mSE21,
    ``kind`` ``reference_facet``) the model's gamma beside the reference ones
    (``gamma_pbe_j_per_m2``, ``gamma_exp_j_per_m2``) with the errors ``error_pbe_j_per_m2`` and
    ``error_exp_j_per_m2``. Miller indices as text."""
    from surfbench.analysis.predictions import export_frame, miller_text
    from surfbench.analysis.reference_gamma import reference_predictions

    results = store.results()
    dft = export_frame(results if subset is None else subset.frame(results))
    reference = store.reference_results()
    if subset is not None:
        reference = subset.frame(reference)
    if reference.empty:
        return dft
    ref = reference_predictions(reference)
    ref.insert(ref.columns.get_loc("element"), "kind", "reference_facet")
    ref["miller"] = ref["miller"].map(miller_text).astype(object)
    ref["gamma_status"] = ref["status"]
    ref["gamma_failure"] = ref["failure_kind"]
    if dft.empty:
        return ref.reset_index(drop=True)
    columns = list(dft.columns) + [c for c in ref.columns if c not in dft.columns]
    return pd.concat([dft, ref], ignore_index=True).reindex(columns=columns)


def export_results(store, path: str | Path, fmt: str | None = None, *, subset: Subset | None = None) -> Path:
    """Write :func:`export_table` to CSV or Parquet (by ``fmt`` or the file's suffix). Nothing
    is written, and a ValueError says why, when no result matches (an empty store, or a
    ``subset`` that leaves nothing)."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown export format {fmt!r}; use csv or parquet")
    df = export_table(store, subset=subset)
    if df.empty:
        if subset is not None and not subset.everything:
            raise ValueError(f"no stored result matches {subset.describe()}: nothing written to {path}")
        raise ValueError(f"the store {store.path} holds no results (on records still in their data sets): nothing "
                         f"written to {path}")
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path
