"""``surfbench train --method readout --from <model>``: a frozen universal model plus a
per-element linear correction of its energy on its own per-atom features, fitted in closed form.

Model (:class:`surfbench.models.features.Readout`)::

    E = E_base + sum_i (w_Z . h_i + b_Z)        (eV)

with ``h_i`` the input of the base model's per-atom energy read-out (its features, taken by
:mod:`surfbench.models.features` from the same forward pass that gives ``E_base``). Forces and
stress of the trained model are the exact derivatives of ``E`` through the frozen network.

Fit: ridge regression of the energy error per atom. For frame ``k`` with ``n_k`` atoms, of which
``n_kZ`` of element ``Z``,

    y_k = (E_DFT,k - E_base,k) / n_k    (eV/atom)
        = sum_Z  w_Z . (sum_{i in Z} h_i) / n_k  +  b_Z n_kZ / n_k

minimising ``sum_k (y_k - fit_k)^2 + alpha |w~|^2``, where ``w~`` are the weights on
standardised features and the per-element biases ``b_Z`` are not penalised (they are solved
for exactly: the features and ``y`` are first projected off the composition columns,
Frisch-Waugh-Lovell; scikit-learn's ``Ridge`` fits the rest). ``alpha`` is chosen by
``cv_folds``-fold cross-validation (scikit-learn ``KFold``, shuffled with the run's seed) over
the training frames only: never on a judged slab. The training and validation frames of the
split are both fitting frames (a closed-form fit needs no early stopping). Energies only: no
force or stress term.

Settings: ``alpha_grid`` (smallest, largest, count of a log-spaced grid of alpha,
dimensionless, on standardised features), ``cv_folds``, ``slab_weight``: the weight of the
training frames that are slabs (group "Surface", or a vacuum gap) in the fit and its CV score
(default 1: every frame alike), or ``cv``: chosen with alpha among 1, 3, 10, 30 by the
cross-validated error over the held-out *slab* frames of the training data (gamma is a
difference of slab and bulk energies, so the slab frames are what it needs right). Only
protocols that train on slabs (mlearn-split, facet-cv) have slab frames to weight.
Base models: any family with a tapped read-out (SevenNet, CHGNet, matgl TensorNet / M3GNet).
Features are cached by structure hash in ``<store folder>/surfbench-descriptors`` (the
descriptor cache), so the facet-cv folds and reruns reuse them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from surfbench.data.frames import Frame
from surfbench.training.base import FINETUNE, TrainedModel, Trainer, TrainingError, TrainJob

#: the ridge grid (smallest, largest, count; log-spaced; standardised features, y in eV/atom)
ALPHA_GRID = (1e-8, 1e3, 23)

#: slab weights tried by ``slab_weight: cv``
SLAB_WEIGHT_GRID = (1.0, 3.0, 10.0, 30.0)

_SETTINGS = {"alpha_grid": list(ALPHA_GRID), "cv_folds": 5, "n_valid": 0}  # slab_weight: 1 unless set
#: presets (a closed-form fit converges in every preset; ``tiny`` evaluates fewer test frames)
DEFAULT_SETTINGS = {"paper": dict(_SETTINGS), "cpu-quick": dict(_SETTINGS), "tiny": dict(_SETTINGS)}


def design(energies_dft_ev: np.ndarray, energies_base_ev: np.ndarray, features: Sequence[np.ndarray],
           numbers: Sequence[np.ndarray], elements: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, C, y) of the module docs: per-frame mean features per element (n_frames, n_el * d),
    composition fractions (n_frames, n_el) and the energy error per atom y (eV/atom)."""
    from ase.data import atomic_numbers

    zs = [atomic_numbers[e] for e in elements]
    d = features[0].shape[1]
    X = np.zeros((len(features), len(zs) * d))
    C = np.zeros((len(features), len(zs)))
    for k, (h, z) in enumerate(zip(features, numbers)):
        n = len(z)
        for j, zj in enumerate(zs):
            mask = np.asarray(z) == zj
            X[k, j * d:(j + 1) * d] = h[mask].sum(axis=0) / n
            C[k, j] = mask.sum() / n
    n_atoms = np.array([len(z) for z in numbers], dtype=float)
    y = (np.asarray(energies_dft_ev, dtype=float) - np.asarray(energies_base_ev, dtype=float)) / n_atoms
    return X, C, y


def _solve(X: np.ndarray, C: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge weights w (raw feature units) and unpenalised composition coefficients b."""
    from sklearn.linear_model import Ridge

    Q, _ = np.linalg.qr(C)
    Xr = X - Q @ (Q.T @ X)
    yr = y - Q @ (Q.T @ y)
    scale = Xr.std(axis=0)
    scale[scale < 1e-12] = 1.0
    ridge = Ridge(alpha=alpha, fit_intercept=False, solver="auto").fit(Xr / scale, yr)
    w = ridge.coef_ / scale
    b, *_ = np.linalg.lstsq(C, y - X @ w, rcond=None)
    return w, b


def choose_alpha(X: np.ndarray, C: np.ndarray, y: np.ndarray, alphas: Sequence[float], folds: int,
                 seed: int, weights: np.ndarray | None = None,
                 scored: np.ndarray | None = None) -> tuple[float, list[dict[str, float]]]:
    """The alpha of least cross-validated RMSE of y (eV/atom; the fit weighted by ``weights``,
    the score over the held-out frames in ``scored``, all when None, with the same weights),
    and the CV curve."""
    from sklearn.model_selection import KFold

    k = min(int(folds), len(y))
    if k < 2:
        raise TrainingError(f"readout: {len(y)} training frame(s); cross-validation needs at least 2")
    wts = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    mask = np.ones(len(y), dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    root = np.sqrt(wts)[:, None]
    splits = list(KFold(n_splits=k, shuffle=True, random_state=seed).split(X))
    curve = []
    for alpha in alphas:
        sq = 0.0
        for tr, te in splits:
            w, b = _solve(X[tr] * root[tr], C[tr] * root[tr], y[tr] * root[tr, 0], alpha)
            te = te[mask[te]]
            sq += float(np.sum(wts[te] * (y[te] - X[te] @ w - C[te] @ b) ** 2))
        curve.append({"alpha": float(alpha), "cv_rmse_ev_per_atom": float(np.sqrt(sq / wts[mask].sum()))})
    best = min(curve, key=lambda c: (c["cv_rmse_ev_per_atom"], -c["alpha"]))
    return best["alpha"], curve


def alphas_of(grid: Sequence[float] = ALPHA_GRID) -> list[float]:
    """The alphas of an ``alpha_grid`` setting (smallest, largest, count)."""
    try:
        lo, hi, n = float(grid[0]), float(grid[1]), int(grid[2])
    except (TypeError, ValueError, IndexError):
        raise TrainingError(f"readout: alpha_grid must be [smallest, largest, count], got {grid!r}") from None
    if not (0 < lo <= hi and n >= 1):
        raise TrainingError(f"readout: alpha_grid needs 0 < smallest <= largest and count >= 1, got {grid!r}")
    return [float(a) for a in np.logspace(np.log10(lo), np.log10(hi), n)]


def fit_readout(energies_dft_ev, energies_base_ev, features, numbers, *, alphas: Sequence[float] | None = None,
                cv_folds: int = 5, seed: int = 0, base_fingerprint: str = "", slab: Sequence[bool] | None = None,
                slab_weight: float | str = 1.0):
    """Fit a :class:`~surfbench.models.features.Readout` (module docs); returns it with the
    cross-validation curve and training RMSE in its ``info``.

    ``slab``: which training frames are slabs; ``slab_weight``: their weight in the fit (a
    number), or ``"cv"``: the weight of :data:`SLAB_WEIGHT_GRID` and the alpha whose
    cross-validated RMSE over the held-out *slab* frames is least (model selection on the
    training frames only)."""
    from ase.data import chemical_symbols

    from surfbench.models.features import Readout

    elements = tuple(sorted({chemical_symbols[int(z)] for zz in numbers for z in np.asarray(zz)}))
    alphas = alphas_of() if alphas is None else list(alphas)
    X, C, y = design(energies_dft_ev, energies_base_ev, features, numbers, elements)
    if not np.all(np.isfinite(y)):
        raise TrainingError("readout: a training frame has a non-finite energy")
    is_slab = np.zeros(len(y), dtype=bool) if slab is None else np.asarray(slab, dtype=bool)
    if slab_weight == "cv" and is_slab.any():
        trials = []
        for sw in SLAB_WEIGHT_GRID:
            a, c = choose_alpha(X, C, y, alphas, cv_folds, seed, np.where(is_slab, sw, 1.0), scored=is_slab)
            trials.append((min(x["cv_rmse_ev_per_atom"] for x in c), sw, a))
        score, chosen, _ = min(trials)
        selection = [{"slab_weight": sw, "alpha": a, "cv_slab_rmse_ev_per_atom": sc} for sc, sw, a in trials]
    else:
        try:
            chosen = 1.0 if slab_weight == "cv" else float(slab_weight)
        except (TypeError, ValueError):
            raise TrainingError(f"readout: slab_weight must be a number or 'cv', got {slab_weight!r}") from None
        if not chosen > 0:
            raise TrainingError(f"readout: slab_weight must be positive, got {slab_weight!r}")
        selection = []
    wts = np.where(is_slab, chosen, 1.0)
    alpha, curve = choose_alpha(X, C, y, alphas, cv_folds, seed, wts)
    root = np.sqrt(wts)
    w, b = _solve(X * root[:, None], C * root[:, None], y * root, alpha)
    d = features[0].shape[1]
    resid = y - X @ w - C @ b
    info = {
        "alpha": alpha, "cv_folds": int(min(cv_folds, len(y))), "n_frames": int(len(y)),
        "train_rmse_ev_per_atom": float(np.sqrt(np.mean(resid ** 2))),
        "base_rmse_ev_per_atom": float(np.sqrt(np.mean((y - C @ np.linalg.lstsq(C, y, rcond=None)[0]) ** 2))),
        "cv_rmse_ev_per_atom": min(c["cv_rmse_ev_per_atom"] for c in curve), "cv_curve": curve,
        "alpha_at_grid_edge": bool(alpha in (min(alphas), max(alphas))),
        "slab_weight": float(chosen), "n_slab_frames": int(is_slab.sum()), "slab_weight_selection": selection,
    }
    return Readout(elements=elements, weights=w.reshape(len(elements), d), bias_ev=b,
                   base_fingerprint=base_fingerprint, info=info)


def cache_dir_for(job: TrainJob) -> Path:
    """The descriptor cache of the store folder (``<store>/trained/<name>`` -> ``<store>/surfbench-descriptors``)."""
    from surfbench.analysis.descriptors import CACHE_FOLDER

    explicit = job.settings.get("feature_cache")
    return Path(explicit) if explicit else Path(job.workdir).parent.parent / CACHE_FOLDER


#: descriptor caches by folder, kept for this process (the folds of facet-cv read one cache)
_CACHES: dict[Path, Any] = {}


def frame_features(base, frames: Sequence[Frame], cache_dir: Path):
    """(base energies in eV, features, atomic numbers) of ``frames`` through the cache."""
    from surfbench.analysis.descriptors import DescriptorCache, DescriptorError, model_energies_and_features

    cache = _CACHES.setdefault(Path(cache_dir).resolve(), DescriptorCache(Path(cache_dir)))
    try:
        energies, feats = model_energies_and_features(base, [f.atoms for f in frames], cache=cache)
    except DescriptorError as exc:
        raise TrainingError(f"readout on {base.name}: {exc}") from exc
    return energies, feats, [f.atoms.numbers for f in frames]


class ReadoutTrainer(Trainer):
    method = "readout"
    modes = (FINETUNE,)

    def train(self, job: TrainJob) -> TrainedModel:
        from surfbench.models import ModelLoadError
        from surfbench.models.features import supports_readout, tap_families
        from surfbench.models.loaders.readout import shared_base
        from surfbench.training.base import check_name
        from surfbench.training.resources import peak_rss_self_mb

        if job.mode != FINETUNE or not job.foundation:
            raise TrainingError("readout: give the frozen model with --from NAME (a registry model with per-atom "
                                f"read-out features: {tap_families()})")
        check_name(job)
        frames = list(job.train) + list(job.valid)
        if not frames:
            raise TrainingError(f"readout ({job.name}): no training frames")
        try:
            base = shared_base(job.foundation, device=job.device)
        except ModelLoadError as exc:
            raise TrainingError(f"readout: {exc}") from exc
        if not supports_readout(base):
            raise TrainingError(f"readout: {job.foundation} ({base.spec.family}) has no per-atom read-out features "
                                f"in surfbench; they are implemented for {tap_families()}")
        t0, c0 = time.perf_counter(), time.process_time()
        threads = job.settings.get("threads")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        energies, feats, numbers = frame_features(base, frames, cache_dir_for(job))
        t_features = time.perf_counter() - t0
        from surfbench.analysis.softening import frame_group

        readout = fit_readout([f.energy_ev for f in frames], energies, feats, numbers,
                              alphas=alphas_of(job.settings.get("alpha_grid", ALPHA_GRID)), cv_folds=int(job.settings.get("cv_folds", 5)),
                              seed=job.seed, base_fingerprint=base.fingerprint.id,
                              slab=[frame_group(f) == "Surface" for f in frames],
                              slab_weight=job.settings.get("slab_weight", 1.0))
        readout.info.update({"features_s": t_features, "fit_s": time.perf_counter() - t0 - t_features})
        missing = sorted(set(job.elements) - set(readout.elements))
        if missing:
            raise TrainingError(f"readout ({job.name}): no training frame of {', '.join(missing)}")
        path = readout.save(Path(job.workdir) / "readout.json")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        entry = {
            "name": job.name, "family": f"readout on {base.spec.family}",
            "backend": "surfbench.models.loaders.readout:ReadoutBackend", "kwargs": {"base": job.foundation},
            "package": base.spec.package, "version": base.spec.version,
            "weights": {"source": "local", "path": str(path)},
            "parameters": readout.n_parameters, "elements": list(readout.elements),
            "licence": base.spec.licence or "see the base model", "citation": base.spec.citation or "-",
        }
        info = readout.info
        history = [{"alpha": c["alpha"], "cv_rmse_ev_per_atom": c["cv_rmse_ev_per_atom"]} for c in info["cv_curve"]]
        return TrainedModel(weights_path=path, registry_entry=entry, n_parameters=readout.n_parameters, wall_s=wall,
                            peak_rss_mb=peak_rss_self_mb(), history=history, cpu_s=cpu,
                            converged=True)  # closed form


def readout_summary(path: str | os.PathLike) -> dict[str, Any]:
    """The fit's record (alpha, CV and training RMSE in eV/atom, timings) of a saved readout."""
    from surfbench.models.features import Readout

    info = dict(Readout.load(path).info or {})
    info.pop("cv_curve", None)
    return info
