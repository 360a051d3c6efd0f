"""Out-of-domain distance of slabs from a reference set, and its correlation with the errors.

Distance of one site: the mean Euclidean distance of its descriptor to its ``k`` nearest
neighbours among the reference set's sites of the same element (scikit-learn's
NearestNeighbors, brute force; ``k`` is capped at the number of such sites, and a site whose
element the reference set lacks has no distance, NaN). Site vectors are scaled to unit length first (as for the kernels), so the distance
of two sites is sqrt(2 - 2 cos theta): 0 for the same environment, sqrt(2) for orthogonal
ones (with SOAP: sites of different elements). Distance of a slab: the mean (``reduce="mean"``)
or the largest (``reduce="max"``) distance of its selected sites: all sites, or only those of
the outermost atomic layers on either face (``sites="surface"``; layers from
:func:`surfbench.data.geometry.layer_indices`).

Correlation: Spearman's rank correlation of the slab distance with |gamma error| (J/m^2) of a
model, over the slabs with both a finite distance and a model gamma; a slab whose gamma failed
is left out and counted (never taken as an error of 0). Interval: percentile bootstrap over the
slabs with the random stream of :mod:`surfbench.analysis.uncertainty` (fixed seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from ase import Atoms

from surfbench.analysis.kernels import unit_sites

SITES = ("all", "surface")
REDUCE = ("mean", "max")


def select_sites(atoms: Atoms, sites: str = "all", *, n_layers: int = 2, layer_tol_a: float = 0.3,
                 min_vacuum_a: float = 5.0) -> np.ndarray:
    """Indices of the sites to use: every atom (``"all"``), or for a slab the atoms of its
    ``n_layers`` outermost atomic layers on each face (``"surface"``; layers are separated by
    more than ``layer_tol_a`` Angstrom along the normal). A structure without a vacuum gap of
    ``min_vacuum_a`` Angstrom (a bulk) keeps all its atoms."""
    from surfbench.data.geometry import layer_indices, vacuum_axis

    if sites not in SITES:
        raise ValueError(f"unknown site selection {sites!r}; use one of {', '.join(SITES)}")
    n = len(atoms)
    if sites == "all":
        return np.arange(n)
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    axis = vacuum_axis(atoms, min_vacuum_a)
    if axis is None:
        return np.arange(n)
    layers = layer_indices(atoms, axis, layer_tol_a)
    top = layers.max()
    return np.flatnonzero((layers < n_layers) | (layers > top - n_layers))


def site_distances(query: Sequence[np.ndarray], reference: Sequence[np.ndarray], k: int = 5, *,
                   query_species: Sequence[Sequence[str]] | None = None,
                   reference_species: Sequence[Sequence[str]] | None = None) -> list[np.ndarray]:
    """For each query structure, the mean distance of each of its sites to its ``k`` nearest
    reference sites (unit-length site vectors; ``reference``: the site arrays of the reference
    structures, pooled).

    With ``query_species`` and ``reference_species`` (the element of every site, per
    structure) a site is compared only with reference sites of its own element, and ``k`` is
    capped at the number of those; a site whose element the reference set lacks gets NaN.
    """
    from sklearn.neighbors import NearestNeighbors

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ref = np.vstack(unit_sites(reference)) if len(reference) else np.empty((0, 0))
    query = unit_sites(query)
    if not len(ref):
        raise ValueError("the reference set has no sites")
    if query and query[0].shape[1] != ref.shape[1]:
        raise ValueError(f"query descriptors have {query[0].shape[1]} features, the reference {ref.shape[1]}")
    sizes = [len(q) for q in query]
    if not sum(sizes):
        return [np.empty(0) for _ in query]
    q_all = np.vstack(query)
    by_species = query_species is not None and reference_species is not None
    if by_species:
        q_el = np.concatenate([np.asarray(s, dtype=object) for s in query_species])
        r_el = np.concatenate([np.asarray(s, dtype=object) for s in reference_species])
        if len(q_el) != len(q_all) or len(r_el) != len(ref):
            raise ValueError("site_distances: one species per site is needed for the query and the reference")
    else:
        if len(ref) < k:
            raise ValueError(f"the reference set has {len(ref)} sites, fewer than k = {k}")
        q_el, r_el = np.zeros(len(q_all), dtype=object), np.zeros(len(ref), dtype=object)
    per_site = np.full(len(q_all), np.nan)
    for el in set(q_el.tolist()):
        qi, ri = np.flatnonzero(q_el == el), np.flatnonzero(r_el == el)
        if not len(ri):
            continue  # no reference site of this element: NaN
        nn = NearestNeighbors(n_neighbors=min(k, len(ri)), algorithm="brute", metric="euclidean").fit(ref[ri])
        dist, _ = nn.kneighbors(q_all[qi])
        per_site[qi] = dist.mean(axis=1)
    return np.split(per_site, np.cumsum(sizes)[:-1])


def reduce_distance(per_site: np.ndarray, reduce: str = "mean") -> float:
    """One distance per structure from its sites' distances."""
    if reduce not in REDUCE:
        raise ValueError(f"unknown reduction {reduce!r}; use one of {', '.join(REDUCE)}")
    per_site = np.asarray(per_site, dtype=float)
    if per_site.size == 0:
        return float("nan")
    return float(per_site.mean() if reduce == "mean" else per_site.max())


# ---------------------------------------------------------------------------- correlation
def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _within_groups(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Pearson correlation of the ranks of x and y taken within each group, centred and
    scaled to [-0.5, 0.5] per group (groups with fewer than 2 values left out): the rank
    correlation once differences between the groups are removed."""
    from scipy.stats import rankdata

    rx, ry = [], []
    for g in np.unique(groups):
        m = groups == g
        if m.sum() < 2:
            continue
        rx.append((rankdata(x[m]) - 0.5) / m.sum() - 0.5)
        ry.append((rankdata(y[m]) - 0.5) / m.sum() - 0.5)
    if not rx:
        return float("nan")
    rx, ry = np.concatenate(rx), np.concatenate(ry)
    if len(rx) < 3 or np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _row_pearson(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Pearson r of each row of a and b (only the ``valid`` entries); NaN for a constant row."""
    if valid is None:
        valid = np.ones(a.shape, dtype=bool)
    k = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = np.where(valid, a, 0.0).sum(axis=1) / k
        mb = np.where(valid, b, 0.0).sum(axis=1) / k
        da = np.where(valid, a - ma[:, None], 0.0)
        db = np.where(valid, b - mb[:, None], 0.0)
        saa, sbb = (da * da).sum(axis=1), (db * db).sum(axis=1)
        r = (da * db).sum(axis=1) / np.sqrt(saa * sbb)
    tiny = 1e-12 * np.maximum(k, 1)
    r[(k < 3) | (saa <= tiny) | (sbb <= tiny)] = np.nan
    return r


def _replica_rhos(x: np.ndarray, y: np.ndarray, codes: np.ndarray | None, counts: np.ndarray):
    """Spearman rho (and the within-group rho of :func:`_within_groups`) of each bootstrap
    replica, given as (replicas, n) draw counts; the same numbers as calling
    :func:`_spearman` / :func:`_within_groups` on each replica, vectorised."""
    from scipy.stats import rankdata

    m, n = counts.shape
    idx = np.repeat(np.tile(np.arange(n), m), counts.ravel()).reshape(m, n)
    xs, ys = x[idx], y[idx]
    pooled = _row_pearson(rankdata(xs, axis=1), rankdata(ys, axis=1))
    if codes is None:
        return pooled, np.full(m, np.nan)
    gs = codes[idx]
    rx, ry = np.zeros((m, n)), np.zeros((m, n))
    valid = np.zeros((m, n), dtype=bool)
    for code in np.unique(codes):
        inside = gs == code
        size = inside.sum(axis=1, keepdims=True)
        use = inside & (size >= 2)
        ranks_x = rankdata(np.where(inside, xs, np.inf), axis=1)
        ranks_y = rankdata(np.where(inside, ys, np.inf), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rx = np.where(use, (ranks_x - 0.5) / size - 0.5, rx)
            ry = np.where(use, (ranks_y - 0.5) / size - 0.5, ry)
        valid |= use
    return pooled, _row_pearson(rx, ry, valid)


def spearman_bootstrap(x, y, n_boot: int = 2000, seed: int = 0, ci: float = 0.95, groups=None) -> dict:
    """Spearman's rho of x and y (pairs with a NaN left out) with a percentile-bootstrap
    interval: ``n``, ``rho``, ``rho_lo``, ``rho_hi``, ``p_value`` (scipy, two-sided, no
    resampling), ``n_boot_used`` (replicas with a defined rho: not all values tied).

    With ``groups`` (e.g. the element of each slab) also ``rho_within``, ``rho_within_lo``,
    ``rho_within_hi``: the rank correlation within the groups (:func:`_within_groups`), from
    the same bootstrap replicas."""
    from scipy.stats import spearmanr

    from surfbench.analysis.uncertainty import _bootstrap_counts, _check_args, _percentiles

    _check_args(n_boot, ci)
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    ok = np.isfinite(x) & np.isfinite(y)
    g = None if groups is None else np.asarray(groups, dtype=object).ravel()
    if g is not None and g.shape != ok.shape:
        raise ValueError(f"groups has {g.size} entries, x has {ok.size}")
    x, y = x[ok], y[ok]
    g = None if g is None else g[ok]
    n = int(x.size)
    out = {"n": n, "rho": _spearman(x, y), "rho_lo": float("nan"), "rho_hi": float("nan"),
           "p_value": float("nan"), "n_boot_used": 0}
    if g is not None:
        out.update(rho_within=_within_groups(x, y, g), rho_within_lo=float("nan"), rho_within_hi=float("nan"))
    if not np.isfinite(out["rho"]):
        return out
    out["p_value"] = float(spearmanr(x, y).pvalue)
    rng = np.random.default_rng(seed)
    reps, reps_within = [], []
    codes = None if g is None else np.unique(g.astype(str), return_inverse=True)[1]
    for counts in _bootstrap_counts(rng, n, int(n_boot)):
        pooled, within = _replica_rhos(x, y, codes, counts.astype(int))
        reps.append(pooled)
        reps_within.append(within)
    q = _percentiles(ci)
    reps = np.concatenate(reps)
    reps_within = np.concatenate(reps_within)
    reps = reps[np.isfinite(reps)]
    if reps.size:
        lo, hi = np.percentile(reps, q)
        out.update(rho_lo=float(lo), rho_hi=float(hi), n_boot_used=int(reps.size))
    within = np.asarray(reps_within, dtype=float)
    within = within[np.isfinite(within)]
    if g is not None and within.size:
        lo, hi = np.percentile(within, q)
        out.update(rho_within_lo=float(lo), rho_within_hi=float(hi))
    return out


def distance_error_correlation(
    slabs: pd.DataFrame, distances: pd.DataFrame, *, distance_column: str = "distance",
    error_column: str = "error_gamma_j_per_m2", n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
) -> pd.DataFrame:
    """Spearman correlation of the out-of-domain distance with |error| per model.

    ``slabs``: :func:`surfbench.analysis.predictions.slab_predictions` (columns ``model``,
    ``record_id``, ``error_column``); ``distances``: ``record_id`` and ``distance_column``.
    One row per model: ``model``, ``n`` (slabs used), ``n_no_gamma`` (model gamma failed),
    ``n_no_distance`` (no finite distance), ``rho``, ``rho_lo``, ``rho_hi``, ``p_value``,
    ``n_boot_used``, and the same within elements (``rho_within_element`` with its interval;
    ``slabs`` needs an ``element`` column): whether, for one element, the slabs farther from
    the reference are the worse predicted ones.
    """
    cols = ["model", "n", "n_no_gamma", "n_no_distance", "rho", "rho_lo", "rho_hi", "p_value", "n_boot_used",
            "rho_within_element", "rho_within_element_lo", "rho_within_element_hi"]
    if slabs.empty:
        return pd.DataFrame(columns=cols)
    d = distances.drop_duplicates("record_id").set_index("record_id")[distance_column]
    rows = []
    for model, grp in slabs.groupby("model", sort=False):
        dist = grp["record_id"].map(d).to_numpy(dtype=float)
        err = np.abs(grp[error_column].to_numpy(dtype=float))
        stats = spearman_bootstrap(dist, err, n_boot=n_boot, seed=seed, ci=ci, groups=grp["element"].to_numpy())
        rows.append({"model": model, "n": stats["n"], "n_no_gamma": int((~np.isfinite(err)).sum()),
                     "n_no_distance": int((~np.isfinite(dist)).sum()),
                     **{k: stats[k] for k in ("rho", "rho_lo", "rho_hi", "p_value", "n_boot_used")},
                     "rho_within_element": stats["rho_within"], "rho_within_element_lo": stats["rho_within_lo"],
                     "rho_within_element_hi": stats["rho_within_hi"]})
    return pd.DataFrame(rows, columns=cols)
