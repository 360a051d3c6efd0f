"""Bootstrap intervals and the paired comparison of models (surfbench.analysis.uncertainty)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from surfbench.analysis import uncertainty
from surfbench.analysis.metrics import error_stats
from surfbench.analysis.uncertainty import bootstrap_stats, compare_models

ERRORS = np.array([0.12, -0.30, 0.05, np.nan, 0.41, -0.08, 0.22, -0.15, np.nan, 0.02, -0.51])


def _reference_bootstrap(errors, n_boot, seed, ci, chunk=None):
    """Plain-loop percentile bootstrap drawing the same index stream as documented:
    ``rng.integers(0, n, size=(chunk, n))`` per chunk of replicas."""
    e = [float(x) for x in errors if math.isfinite(x)]
    n = len(e)
    chunk = chunk or n_boot
    rng = np.random.default_rng(seed)
    maes, rmses, mses = [], [], []
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(m, n))
        for row in idx:
            sample = [e[i] for i in row]
            maes.append(sum(abs(x) for x in sample) / n)
            rmses.append(math.sqrt(sum(x * x for x in sample) / n))
            mses.append(sum(sample) / n)
        done += m
    q = [100 * (1 - ci) / 2, 100 * (1 + ci) / 2]
    out = {"n": n}
    for name, reps in (("mae", maes), ("rmse", rmses), ("mean_signed_error", mses)):
        out[f"{name}_lo"], out[f"{name}_hi"] = np.percentile(reps, q)
    return out


@pytest.mark.parametrize("seed,ci", [(0, 0.95), (7, 0.9)])
def test_bootstrap_matches_plain_loop(seed, ci):
    got = bootstrap_stats(ERRORS, n_boot=500, seed=seed, ci=ci)
    ref = _reference_bootstrap(ERRORS, 500, seed, ci)
    assert got["n"] == ref["n"] == 9
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-14), key


def test_bootstrap_chunked_stream_matches_plain_loop(monkeypatch):
    n = 9  # finite errors in ERRORS
    monkeypatch.setattr(uncertainty, "MAX_DRAWS_PER_CHUNK", 7 * n)  # chunks of 7, 7, 6 replicas
    got = bootstrap_stats(ERRORS, n_boot=20, seed=3)
    ref = _reference_bootstrap(ERRORS, 20, 3, 0.95, chunk=7)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-14), key
    # chunking does not change the draws: same as one single (n_boot, n) draw
    monkeypatch.undo()
    assert bootstrap_stats(ERRORS, n_boot=20, seed=3) == pytest.approx(got, rel=1e-12, abs=1e-14)
    assert ref == pytest.approx(_reference_bootstrap(ERRORS, 20, 3, 0.95), rel=1e-12, abs=1e-14)


def test_point_estimates_are_plain_statistics_and_inside_interval():
    got = bootstrap_stats(ERRORS, n_boot=1000, seed=1)
    plain = error_stats(ERRORS)
    assert got["mae"] == plain["mae"]
    assert got["rmse"] == plain["rmse"]
    assert got["mean_signed_error"] == plain["mean_signed_error"]
    finite = ERRORS[np.isfinite(ERRORS)]
    assert got["rmse"] == pytest.approx(math.sqrt(sum(x * x for x in finite) / len(finite)), rel=1e-14)
    for stat in ("mae", "rmse", "mean_signed_error"):
        assert got[f"{stat}_lo"] < got[stat] < got[f"{stat}_hi"], stat


def test_constant_errors_give_zero_width():
    got = bootstrap_stats(np.full(25, 0.3), n_boot=300, seed=0)
    for stat in ("mae", "rmse", "mean_signed_error"):
        assert got[stat] == pytest.approx(0.3, abs=1e-15)
        assert got[f"{stat}_lo"] == pytest.approx(0.3, abs=1e-12)
        assert got[f"{stat}_hi"] - got[f"{stat}_lo"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_width_shrinks_as_inverse_sqrt_n(seed):
    rng = np.random.default_rng(100 + seed)
    small = rng.normal(0.1, 0.3, 50)
    large = rng.normal(0.1, 0.3, 800)
    a = bootstrap_stats(small, n_boot=2000, seed=seed)
    b = bootstrap_stats(large, n_boot=2000, seed=seed)
    for stat in ("mae", "rmse", "mean_signed_error"):
        ratio = (a[f"{stat}_hi"] - a[f"{stat}_lo"]) / (b[f"{stat}_hi"] - b[f"{stat}_lo"])
        assert 3.0 < ratio < 5.5, (stat, ratio)


def test_deterministic_for_a_seed():
    assert bootstrap_stats(ERRORS, seed=5) == bootstrap_stats(ERRORS, seed=5)
    assert bootstrap_stats(ERRORS, seed=5)["rmse_lo"] != bootstrap_stats(ERRORS, seed=6)["rmse_lo"]


def test_nan_handling():
    finite = ERRORS[np.isfinite(ERRORS)]
    assert bootstrap_stats(ERRORS, seed=2) == bootstrap_stats(finite, seed=2)  # NaN left out
    one = bootstrap_stats([np.nan, 0.4, np.nan])
    assert one["n"] == 1 and one["mae"] == 0.4 and one["mean_signed_error"] == 0.4 and one["rmse"] == pytest.approx(0.4)
    assert all(math.isnan(one[f"{s}_{b}"]) for s in ("mae", "rmse", "mean_signed_error") for b in ("lo", "hi"))
    none = bootstrap_stats([np.nan, np.nan])
    assert none["n"] == 0
    assert all(math.isnan(v) for k, v in none.items() if k != "n")
    assert bootstrap_stats([])["n"] == 0


def test_bad_arguments():
    with pytest.raises(ValueError):
        bootstrap_stats(ERRORS, ci=1.0)
    with pytest.raises(ValueError):
        bootstrap_stats(ERRORS, n_boot=0)


# ---------------------------------------------------------------- compare_models
def _slabs(errors_by_model: dict[str, np.ndarray], protocol: str = "single_point") -> pd.DataFrame:
    rows = []
    for model, errors in errors_by_model.items():
        for i, e in enumerate(errors):
            rows.append({"dataset": "toy", "fingerprint": f"fp-{model}", "model": model,
                         "protocol": protocol, "record_id": f"slab{i:03d}",
                         "error_gamma_j_per_m2": e})
    return pd.DataFrame(rows)


def _common_errors(n=200, seed=11):
    rng = np.random.default_rng(seed)
    good = rng.normal(0.0, 0.1, n)
    bad = rng.normal(0.05, 0.5, n)
    return good, bad


def test_clearly_better_model():
    good, bad = _common_errors()
    models, pairs = compare_models(_slabs({"A": good, "B": bad}), n_boot=1000)
    a = models.set_index("model").loc["A"]
    b = models.set_index("model").loc["B"]
    assert a["n_common"] == b["n_common"] == 200
    assert a["rank"] == 1 and b["rank"] == 2
    assert a["p_best"] > 0.99
    assert a["p_best"] + b["p_best"] == pytest.approx(1.0)
    assert a["rank_lo"] == a["rank_hi"] == 1
    assert a["rmse"] == pytest.approx(np.sqrt(np.mean(good**2)), rel=1e-14)
    assert a["rmse_lo"] < a["rmse"] < a["rmse_hi"]
    assert len(pairs) == 1
    pair = pairs.iloc[0]
    assert (pair["model_a"], pair["model_b"]) == ("A", "B")
    assert pair["delta_rmse"] == pytest.approx(a["rmse"] - b["rmse"])
    assert pair["lo"] < pair["delta_rmse"] < pair["hi"] < 0
    assert bool(pair["distinguishable"]) is True


def test_nearly_identical_models_not_distinguishable():
    good, bad = _common_errors()
    shuffled = np.random.default_rng(3).permutation(good)  # same errors, other records
    models, pairs = compare_models(_slabs({"A": good, "A2": shuffled, "B": bad}), n_boot=1000)
    pair = pairs[(pairs["model_a"].isin(["A", "A2"])) & (pairs["model_b"].isin(["A", "A2"]))].iloc[0]
    assert pair["delta_rmse"] == pytest.approx(0.0, abs=1e-12)
    assert pair["lo"] < 0 < pair["hi"]
    assert bool(pair["distinguishable"]) is False
    # both remain distinguishable from the bad model, which is last for sure
    others = pairs[pairs["model_b"] == "B"]
    assert len(others) == 2 and others["distinguishable"].all()
    by = models.set_index("model")
    assert by.loc["B", "rank"] == 3 and by.loc["B", "rank_lo"] == by.loc["B", "rank_hi"] == 3
    assert by.loc["B", "p_best"] == 0
    assert by.loc["A", "p_best"] + by.loc["A2", "p_best"] == pytest.approx(1.0)
    assert 0.2 < by.loc["A", "p_best"] < 0.8
    assert by.loc["A", "rank_lo"] == 1 and by.loc["A", "rank_hi"] == 2


def test_failed_records_are_excluded_for_every_model():
    good, bad = _common_errors(n=50)
    good, bad = good.copy(), bad.copy()
    good[0] = np.nan  # failed for A
    slabs = _slabs({"A": good, "B": bad, "C": bad * 0.5})
    slabs = slabs[~((slabs["model"] == "C") & (slabs["record_id"] == "slab001"))]  # C never ran it
    models, pairs = compare_models(slabs, n_boot=200)
    assert (models["n_common"] == 48).all() and (pairs["n_common"] == 48).all()
    by = models.set_index("model")
    assert by.loc["B", "rmse"] == pytest.approx(np.sqrt(np.mean(bad[2:] ** 2)), rel=1e-14)
    assert by.loc["B", "rmse"] != pytest.approx(np.sqrt(np.mean(bad**2)), rel=1e-6)
    assert len(pairs) == 3
    assert set(models.columns) >= {"fingerprint", "model", "rmse", "rmse_lo", "rmse_hi",
                                   "rank", "p_best", "rank_lo", "rank_hi", "n_common"}
    assert set(pairs.columns) >= {"model_a", "model_b", "delta_rmse", "lo", "hi", "distinguishable"}


def test_compare_deterministic_and_guards():
    good, bad = _common_errors(n=40)
    slabs = _slabs({"A": good, "B": bad})
    m1, p1 = compare_models(slabs, n_boot=300, seed=4)
    m2, p2 = compare_models(slabs, n_boot=300, seed=4)
    pd.testing.assert_frame_equal(m1, m2)
    pd.testing.assert_frame_equal(p1, p2)
    two_protocols = pd.concat([slabs, _slabs({"A": good}, protocol="relaxed")])
    with pytest.raises(ValueError, match="protocol"):
        compare_models(two_protocols)
    single, none = compare_models(_slabs({"A": good}), n_boot=100)
    assert single["rank"].tolist() == [1] and single["p_best"].tolist() == [1.0]
    assert none.empty
