"""Descriptor map and out-of-domain distance: lattice detection, site descriptors and their
cache, structure kernels and kernel PCA (values computed by hand), k-NN distances, the
bootstrap Spearman correlation, and on real data ``surfbench map`` through the HTML report."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk, fcc111
from scipy.stats import spearmanr

from surfbench.analysis import descriptors as dmod
from surfbench.analysis.descriptors import DescriptorCache, DescriptorError, DescriptorSettings, site_descriptors
from surfbench.analysis.domain import (
    distance_error_correlation,
    reduce_distance,
    select_sites,
    site_distances,
    spearman_bootstrap,
)
from surfbench.analysis.kernels import kernel_pca, structure_kernel
from surfbench.analysis.lattice import lattice_type
from tests.conftest import needs_data


# ---------------------------------------------------------------------------- lattice
@pytest.mark.parametrize("atoms, expected", [
    (bulk("Cu", "fcc", a=3.61), "fcc"),
    (bulk("Cu", "fcc", a=3.61, cubic=True), "fcc"),
    (bulk("Mo", "bcc", a=3.15, cubic=True), "bcc"),
    (bulk("Mg", "hcp", a=3.21, c=5.21), "hcp"),
    (bulk("Si", "diamond", a=5.43, cubic=True), "diamond"),
    (bulk("Si", "diamond", a=5.43) * (2, 2, 2), "diamond"),
    (bulk("Po", "sc", a=3.35), "other"),
    (bulk("NaCl", "rocksalt", a=5.64), "other"),
])
def test_lattice_type(atoms, expected):
    assert lattice_type(atoms) == expected


def test_lattice_type_distorted_and_bad_input():
    cu = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    cu.positions += np.random.default_rng(0).normal(0, 0.01, cu.positions.shape)  # 0.01 A < symprec 0.1 A
    assert lattice_type(cu) == "fcc"
    slab = fcc111("Cu", (1, 1, 3), vacuum=5.0)
    with pytest.raises(ValueError, match="periodic in 3 directions"):
        lattice_type(slab)


# ---------------------------------------------------------------------------- kernels
E = math.e
A, B, C = np.array([[1.0, 0.0]]), np.array([[0.6, 0.8]]), np.array([[1.0, 0.0], [0.0, 1.0]])


def test_average_kernel_by_hand():
    k = structure_kernel([A, B, C], "average")
    # K(A,C) = mean(1, 0) / sqrt(K(A,A) K(C,C)) = 0.5 / sqrt(1 * 0.5); K(B,C) = mean(0.6, 0.8) / sqrt(0.5)
    expected = np.array([[1.0, 0.6, 0.5 / math.sqrt(0.5)],
                         [0.6, 1.0, 0.7 / math.sqrt(0.5)],
                         [0.5 / math.sqrt(0.5), 0.7 / math.sqrt(0.5), 1.0]])
    np.testing.assert_allclose(k, expected, atol=1e-12)


def test_average_kernel_equals_dscribe():
    from dscribe.kernels import AverageKernel

    rng = np.random.default_rng(3)
    desc = [rng.random((n, 5)) for n in (1, 3, 4, 2)]
    unit = [d / np.linalg.norm(d, axis=1, keepdims=True) for d in desc]
    np.testing.assert_allclose(structure_kernel(desc, "average"), AverageKernel(metric="linear").create(unit),
                               atol=1e-12)


def test_rematch_kernel_by_hand():
    k = structure_kernel([A, C], "rematch", alpha=1.0, threshold=1e-10)
    # C with itself: Sinkhorn plan [[p, 1/2-p], [1/2-p, p]] with p / (1/2-p) = exp(1/alpha) -> K = 2p = e/(1+e);
    # A (one site) with C: the plan is (1/2, 1/2) whatever alpha -> K = 1/2
    assert k[0, 1] == pytest.approx(0.5 / math.sqrt(E / (1 + E)), abs=1e-6)
    np.testing.assert_allclose(np.diag(k), 1.0, atol=1e-12)
    np.testing.assert_allclose(k, k.T, atol=1e-14)


@pytest.mark.parametrize("kind", ["rematch", "average"])
@pytest.mark.parametrize("mode", ["element", "agnostic"])
def test_kernel_of_soap_symmetric_unit_diagonal(kind, mode):
    cu = bulk("Cu", "fcc", a=3.61)
    structures = [cu, cu * (2, 2, 2), bulk("Cu", "fcc", a=3.80), fcc111("Cu", (2, 2, 4), vacuum=6.0),
                  bulk("Ni", "fcc", a=3.61), bulk("Cu", "bcc", a=2.87)]
    desc = site_descriptors(structures, settings=DescriptorSettings(species=("Cu", "Ni"), species_mode=mode))
    k = structure_kernel(desc, kind)
    np.testing.assert_allclose(k, k.T, atol=1e-14)
    np.testing.assert_allclose(np.diag(k), 1.0, atol=1e-6)
    assert k[0, 1] == pytest.approx(1.0, abs=1e-6)  # a supercell is the same crystal
    assert 0.9 < k[0, 3] < 1.0 and k[0, 2] < 1.0 - 1e-4  # a slab, a strained cell: similar, not equal
    if mode == "element":
        assert k[0, 4] == pytest.approx(0.0, abs=1e-12)  # other element: its own block of SOAP (mu1nu1)
    else:
        assert k[0, 4] == pytest.approx(1.0, abs=1e-6)  # the same geometry, whatever the element
        assert k[0, 5] < 1.0 - 1e-5  # bcc is not fcc


def test_kernel_pca_known_embedding():
    t = np.array([-2.0, -1.0, 0.0, 1.0, 5.0])
    x = np.outer(t, [1.0, 1.0]) / math.sqrt(2.0)  # points on a line
    emb = kernel_pca(x @ x.T, 2)
    np.testing.assert_allclose(emb[:, 0], t - t.mean(), atol=1e-10)  # centred coordinate along the line
    np.testing.assert_allclose(emb[:, 1], 0.0, atol=1e-6)
    x2 = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # centred, principal axes x then y
    np.testing.assert_allclose(kernel_pca(x2 @ x2.T, 2), x2, atol=1e-10)
    with pytest.raises(ValueError, match="symmetric"):
        kernel_pca(np.array([[1.0, 0.2], [0.3, 1.0]]))


def test_kernel_bad_input():
    with pytest.raises(ValueError, match="same number of features"):
        structure_kernel([A, np.ones((2, 3))], "average")
    with pytest.raises(ValueError, match="unknown structure kernel"):
        structure_kernel([A, B], "mean")


# ---------------------------------------------------------------------------- descriptors
def test_soap_descriptors_and_cache(tmp_path, monkeypatch):
    cu = bulk("Cu", "fcc", a=3.61, cubic=True)
    slab = fcc111("Cu", (2, 2, 4), vacuum=6.0)
    cache = DescriptorCache(tmp_path / "cache")
    settings = DescriptorSettings(species=("Cu", "Ni"), species_mode="element")
    d = site_descriptors([cu, slab], settings=settings, cache=cache)
    assert [x.shape[0] for x in d] == [4, 16] and d[0].shape[1] == d[1].shape[1] == 2 * 6 * 6 * 5  # mu1nu1
    np.testing.assert_allclose(d[0], np.broadcast_to(d[0][0], d[0].shape), rtol=1e-5, atol=1e-6)  # fcc: all sites alike
    assert cache.path(settings).is_file()

    def no_soap(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(dmod, "_soap", no_soap)
    again = site_descriptors([cu, slab], settings=settings, cache=DescriptorCache(tmp_path / "cache"))
    for x, y in zip(d, again):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(AssertionError, match="recomputed"):  # other settings: another cache entry
        site_descriptors([cu], settings=DescriptorSettings(species=("Cu", "Ni"), r_cut=4.0, species_mode="element"),
                         cache=cache)


def test_descriptor_errors():
    with pytest.raises(DescriptorError, match=r"species \['Mo'\] outside the SOAP species"):
        site_descriptors([bulk("Mo", "bcc", a=3.15)], settings=DescriptorSettings(species=("Cu",), species_mode="element"))
    with pytest.raises(DescriptorError, match="unknown descriptor method"):
        DescriptorSettings(method="acsf")
    from surfbench.models import load_model

    with pytest.raises(DescriptorError, match="exposes no per-site features"):
        site_descriptors([bulk("Cu", "fcc", a=3.61)], "model", load_model("emt"))


def test_chgnet_site_features_invariant_under_supercell():
    from surfbench.models import load_model

    model = load_model("chgnet-0.3.0")
    cu = bulk("Cu", "fcc", a=3.61)
    one, eight = site_descriptors([cu, cu * (2, 2, 2)], "model", model)
    assert one.shape == (1, 64) and eight.shape == (8, 64)
    np.testing.assert_allclose(eight, np.broadcast_to(one, eight.shape), atol=1e-4)


def test_mace_site_features(tmp_path):
    pytest.importorskip("mace")
    from surfbench.models import load_model
    from tests.test_mace import _build_small_mace

    model = load_model("mace-local", weights=str(_build_small_mace(tmp_path / "small.model")))
    cu = bulk("Cu", "fcc", a=3.61)
    one, eight = site_descriptors([cu, cu * (2, 2, 2)], "model", model)
    assert one.shape[0] == 1 and eight.shape == (8, one.shape[1])
    np.testing.assert_allclose(eight, np.broadcast_to(one, eight.shape), atol=1e-8)


# ---------------------------------------------------------------------------- distances
def test_select_sites():
    slab = fcc111("Cu", (2, 2, 5), vacuum=6.0)  # 5 layers of 4 atoms
    assert len(select_sites(slab, "all")) == 20
    assert sorted(select_sites(slab, "surface", n_layers=1)) == [0, 1, 2, 3, 16, 17, 18, 19]
    assert len(select_sites(slab, "surface", n_layers=2)) == 16
    assert len(select_sites(bulk("Cu", "fcc", a=3.61) * (2, 2, 2), "surface")) == 8  # a bulk keeps every site


def test_site_distances_by_hand():
    ref = [np.array([[1.0, 0.0], [2.0, 0.0]]), np.array([[0.0, 3.0]])]  # unit vectors: x, x, y
    q = [np.array([[5.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 2.0]])]
    d = site_distances(q, ref, k=2)
    # x: two neighbours at 0; (1,1)/sqrt2: both x at sqrt(2 - sqrt2), or x and y alike; y: 0 and sqrt2
    np.testing.assert_allclose(d[0], [0.0, math.sqrt(2 - math.sqrt(2))], atol=1e-12)
    np.testing.assert_allclose(d[1], [math.sqrt(2) / 2], atol=1e-12)
    # by element: a "Ni" site sees only the one Ni reference site (k capped at 1); "Mo": none -> NaN
    d = site_distances(q, ref, k=2, query_species=[["Cu", "Ni"], ["Mo"]], reference_species=[["Cu", "Cu"], ["Ni"]])
    np.testing.assert_allclose(d[0], [0.0, math.sqrt(2 - math.sqrt(2))], atol=1e-12)
    assert np.isnan(d[1]).all()
    assert reduce_distance(np.array([0.1, 0.3]), "mean") == pytest.approx(0.2)
    assert reduce_distance(np.array([0.1, 0.3]), "max") == pytest.approx(0.3)
    with pytest.raises(ValueError, match="fewer than k"):
        site_distances(q, ref, k=4)


def test_spearman_bootstrap():
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, np.nan, 0.8])
    y = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 7.0, np.nan])
    s = spearman_bootstrap(x, y, n_boot=500, seed=1)
    ok = np.isfinite(x) & np.isfinite(y)
    ref = spearmanr(x[ok], y[ok])
    assert s["n"] == 6 and s["rho"] == pytest.approx(ref.statistic) and s["p_value"] == pytest.approx(ref.pvalue)
    assert s["rho"] == pytest.approx(1 - 6 * 4 / (6 * 35))  # sum d^2 = 4 over 6 pairs
    assert s["rho_lo"] < s["rho"] <= s["rho_hi"] <= 1.0
    assert spearman_bootstrap(x, y, n_boot=500, seed=1) == s  # fixed seed: same interval
    mono = spearman_bootstrap(np.arange(10.0), np.arange(10.0) ** 2, n_boot=200)
    assert mono["rho"] == pytest.approx(1.0) and mono["rho_lo"] == pytest.approx(1.0) and mono["rho_hi"] == pytest.approx(1.0)
    # two groups: within each, y falls as x rises; the group offset makes the pooled rho positive
    xg = np.array([1.0, 2, 3, 11, 12, 13])
    yg = np.array([3.0, 2, 1, 13, 12, 11])
    g = np.array(["a", "a", "a", "b", "b", "b"])
    sg = spearman_bootstrap(xg, yg, n_boot=200, groups=g)
    # ranks 1..6 against 3, 2, 1, 6, 5, 4: sum d^2 = 16
    assert sg["rho"] == pytest.approx(1 - 6 * 16 / (6 * 35)) and sg["rho_within"] == pytest.approx(-1.0)


def test_vectorised_replicas_equal_the_plain_statistics():
    from surfbench.analysis.domain import _replica_rhos, _spearman, _within_groups

    rng = np.random.default_rng(7)
    x, y = rng.random(12), np.round(rng.random(12), 1)  # ties in y
    g = np.array(list("aaaabbbbbccc"))
    counts = rng.multinomial(12, np.full(12, 1 / 12), size=50)
    pooled, within = _replica_rhos(x, y, np.unique(g, return_inverse=True)[1], counts)
    for row, p, w in zip(counts, pooled, within):
        idx = np.repeat(np.arange(12), row)
        np.testing.assert_allclose(p, _spearman(x[idx], y[idx]), atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(w, _within_groups(x[idx], y[idx], g[idx]), atol=1e-12, equal_nan=True)


def test_distance_error_correlation_counts_failures():
    slabs = pd.DataFrame({
        "model": ["m"] * 5, "record_id": list("abcde"), "element": ["Cu"] * 5,
        "error_gamma_j_per_m2": [0.1, -0.2, 0.3, np.nan, -0.5],  # d failed: left out, counted
    })
    dist = pd.DataFrame({"record_id": list("abcde"), "distance": [0.01, 0.02, 0.03, 0.04, np.nan]})
    c = distance_error_correlation(slabs, dist, n_boot=100).iloc[0]
    assert (c["n"], c["n_no_gamma"], c["n_no_distance"]) == (3, 1, 1)
    assert c["rho"] == pytest.approx(1.0) and c["rho_within_element"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- real data
@needs_data
def test_map_command_and_report_on_mlearn(mlearn_surfaces, data_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from surfbench.analysis.descriptor_map import load_maps
    from surfbench.analysis.predictions import slab_predictions
    from surfbench.cli import app
    from surfbench.execution.runner import run
    from surfbench.models import load_model
    from surfbench.report.html import SECTIONS, build_report
    from surfbench.store.results import ResultStore

    ds = mlearn_surfaces.select(elements={"Cu", "Ni"})
    with ResultStore(tmp_path) as store:
        run(ds, load_model("emt"), store)  # EMT knows Cu and Ni
    monkeypatch.setenv("SURFBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("COLUMNS", "200")
    out = CliRunner().invoke(app, ["map", "--workdir", str(tmp_path), "--dataset", "mlearn-surfaces",
                                   "--elements", "Cu,Ni", "--kernel", "average", "--no-png", "--n-boot", "200",
                                   "-o", str(tmp_path / "map" / "map.html")])
    assert out.exit_code == 0, out.output
    assert "Spearman rho" in out.output and "emt" in out.output
    assert (tmp_path / "map" / "map.html").is_file() and (tmp_path / "map" / "map-distance-vs-error-bulk.html").is_file()
    (path, dmap), = load_maps(tmp_path / "surfbench.sqlite", "mlearn-surfaces")
    t = dmap.table
    # 25 slabs and 2 bulks of Cu and Ni, all fcc
    assert len(t) == 27 and set(t["lattice"]) == {"fcc"} and (t["kind"] == "slab").sum() == 25
    assert (t.loc[t["kind"] == "bulk", "distance"] < 1e-3).all()  # a bulk is its own reference
    assert (t.loc[t["kind"] == "slab", "distance"] > 0.02).all()

    with ResultStore(tmp_path) as store:
        report = build_report(store, "mlearn-surfaces", "all", "static", tmp_path / "rep" / "report.html",
                              png=False, n_boot=200)
        slabs = slab_predictions(store.results("mlearn-surfaces", protocol="static"))
    payload = json.loads((tmp_path / "rep" / "report-metrics.json").read_text())
    assert {"descriptor-map", "distance-vs-error-bulk", "distance-error-correlation"} <= set(payload["figures"]["in_report"])
    (row,) = payload["domain"]["correlation"]
    slabs["model"] = "emt"
    ref = distance_error_correlation(slabs, t[t["kind"] == "slab"], n_boot=200).iloc[0]
    assert row["model"] == "emt" and row["n"] == ref["n"] == 25
    assert row["rho"] == pytest.approx(ref["rho"]) and row["rho_lo"] == pytest.approx(ref["rho_lo"])
    html = report.read_text()
    assert '<section id="domain">' in html and SECTIONS["domain"] in html and "Spearman" in html
