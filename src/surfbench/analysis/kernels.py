"""Structure similarity from per-site descriptors, and its kernel PCA map.

Two structure kernels, both from dscribe (``dscribe.kernels``):

* ``"rematch"``: the regularised-entropy match kernel (De et al., Phys. Chem. Chem. Phys. 18,
  13754 (2016)): the best matching of the sites of two structures, smoothed by an entropy term
  of strength ``alpha`` (alpha -> 0: the best one-to-one match; alpha -> inf: the average
  kernel); Sinkhorn iterations to ``threshold``.
* ``"average"``: the mean of the local kernel over all pairs of sites (cheap). For the linear
  local kernel it equals the dot product of the structures' mean site vectors, which is how it
  is computed here (the same numbers as dscribe's ``AverageKernel``, checked in the tests).

The local kernel is ``metric`` (``"linear"``: the dot product of the site vectors; ``"rbf"``:
exp(-gamma |a - b|^2)). Site vectors are scaled to unit length first (``normalize_sites``), so
that a linear local kernel is the cosine similarity of two environments. With
``normalize=True`` the structure kernel is K(A, B) / sqrt(K(A, A) K(B, B)): unit diagonal.

The map: scikit-learn's :class:`~sklearn.decomposition.KernelPCA` on the precomputed kernel
(centred in feature space), components scaled by sqrt(eigenvalue), each component's sign
fixed so that its entry of largest magnitude is positive (reproducible maps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KERNELS = ("rematch", "average")
METRICS = ("linear", "rbf")


def unit_sites(descriptors: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each site vector scaled to unit length (a zero vector stays zero)."""
    out = []
    for d in descriptors:
        d = np.asarray(d, dtype=float)
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        out.append(np.divide(d, norm, out=np.zeros_like(d), where=norm > 0))
    return out


def structure_kernel(
    descriptors: Sequence[np.ndarray], kind: str = "rematch", *, metric: str = "linear",
    alpha: float = 1.0, threshold: float = 1e-6, gamma: float | None = None,
    normalize: bool = True, normalize_sites: bool = True,
) -> np.ndarray:
    """The (n, n) kernel between n structures given as (n_sites, n_features) arrays."""
    from dscribe.kernels import AverageKernel, REMatchKernel

    if kind not in KERNELS:
        raise ValueError(f"unknown structure kernel {kind!r}; use one of {', '.join(KERNELS)}")
    if metric not in METRICS:
        raise ValueError(f"unknown local kernel metric {metric!r}; use one of {', '.join(METRICS)}")
    descriptors = [np.asarray(d, dtype=float) for d in descriptors]
    if not descriptors:
        raise ValueError("structure_kernel: no structures")
    widths = {d.shape[1] if d.ndim == 2 else -1 for d in descriptors}
    if len(widths) != 1 or -1 in widths:
        raise ValueError(f"structure_kernel: every structure needs a 2-d array with the same number of features, "
                         f"got shapes {sorted({d.shape for d in descriptors})}")
    if any(len(d) == 0 for d in descriptors):
        raise ValueError("structure_kernel: a structure has no sites")
    if normalize_sites:
        descriptors = unit_sites(descriptors)
    if kind == "average" and metric == "linear":
        # mean over site pairs of a . b = (mean of a) . (mean of b): the same numbers as
        # dscribe's AverageKernel(metric="linear"), without its n^2 local kernel matrices
        means = np.vstack([d.mean(axis=0) for d in descriptors])
        k = means @ means.T
        if normalize:
            norm = np.sqrt(np.clip(np.diag(k), 0.0, None))
            k = k / np.outer(norm, norm)
        return 0.5 * (k + k.T)
    params = {"gamma": gamma} if metric == "rbf" and gamma is not None else {}
    if kind == "rematch":
        kernel = REMatchKernel(metric=metric, alpha=alpha, threshold=threshold, normalize_kernel=normalize, **params)
    else:
        kernel = AverageKernel(metric=metric, normalize_kernel=normalize, **params)
    k = np.asarray(kernel.create(descriptors), dtype=float)
    return 0.5 * (k + k.T)  # symmetric to rounding


def kernel_pca(kernel: np.ndarray, n_components: int = 2) -> np.ndarray:
    """(n, n_components) kernel-PCA coordinates of the n structures of a precomputed kernel."""
    from sklearn.decomposition import KernelPCA

    kernel = np.asarray(kernel, dtype=float)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel_pca needs a square kernel matrix, got shape {kernel.shape}")
    if not np.allclose(kernel, kernel.T, atol=1e-8):
        raise ValueError("kernel_pca needs a symmetric kernel matrix")
    n = kernel.shape[0]
    if n < 2:
        raise ValueError("kernel_pca needs at least 2 structures")
    n_components = min(n_components, n - 1)
    kpca = KernelPCA(n_components=n_components, kernel="precomputed", eigen_solver="dense")
    emb = np.asarray(kpca.fit_transform(kernel), dtype=float)
    for j in range(emb.shape[1]):
        if emb[np.argmax(np.abs(emb[:, j])), j] < 0:
            emb[:, j] = -emb[:, j]
    return emb
