"""Facet ordering and Wulff shapes (surfbench.analysis.facets) on hand-made data."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from surfbench.analysis.facets import facet_ordering, wulff_analysis
from surfbench.data.miller import parse_miller

A_FCC = 3.6
CUBIC = json.dumps((np.eye(3) * A_FCC).tolist())


def _slabs(rows, fingerprint="fp-m", model="m", bulk_id="X/bulk", element="X"):
    """rows: (miller, dft gamma, predicted gamma or None for a failed gamma)."""
    out = []
    for i, (miller, dft, pred) in enumerate(rows):
        ok = pred is not None
        out.append({
            "dataset": "toy", "protocol": "single_point", "fingerprint": fingerprint, "model": model,
            "record_id": f"{bulk_id}/slab{i}", "element": element, "bulk_id": bulk_id,
            "miller": miller, "dft_gamma_j_per_m2": dft,
            "gamma_pred_j_per_m2": pred if ok else np.nan,
            "error_gamma_j_per_m2": (pred - dft) if ok else np.nan,
            "gamma_status": "ok" if ok else "failed",
            "gamma_failure": None if ok else "not_converged",
        })
    return pd.DataFrame(out)


def _records(bulk_ids, lattice=CUBIC):
    return pd.DataFrame([{"dataset": "toy", "record_id": b, "kind": "bulk", "element": "X",
                          "bulk_lattice": lattice, "spacegroup": 225} for b in bulk_ids])


DFT = {"111": 1.0, "100": 1.2, "110": 1.4}


def _one(frame):
    assert len(frame) == 1
    return frame.iloc[0]


# ---------------------------------------------------------------- facet ordering
def test_same_order():
    row = _one(facet_ordering(_slabs([(m, g, g + 0.3) for m, g in DFT.items()])))
    assert row["dft_top"] == ["111", "100", "110"]
    assert row["model_top"] == ["111", "100", "110"]
    assert row["n_facets"] == 3 and row["lowest_correct"]
    assert row["spearman"] == pytest.approx(1.0) and row["kendall"] == pytest.approx(1.0)
    assert row["top_overlap"] == 3


def test_reversed_order():
    pred = {"111": 1.5, "100": 1.3, "110": 1.1}
    row = _one(facet_ordering(_slabs([(m, DFT[m], pred[m]) for m in DFT])))
    assert row["model_top"] == ["110", "100", "111"]
    assert not row["lowest_correct"]
    assert row["spearman"] == pytest.approx(-1.0) and row["kendall"] == pytest.approx(-1.0)


def test_one_swap():
    # DFT ranks 111 < 100 < 110; model swaps 100 and 110: d = (0, 1, -1)
    # Spearman 1 - 6 * 2 / (3 * 8) = 0.5; Kendall (2 concordant - 1 discordant) / 3 = 1/3
    pred = {"111": 1.0, "100": 1.5, "110": 1.3}
    row = _one(facet_ordering(_slabs([(m, DFT[m], pred[m]) for m in DFT])))
    assert row["lowest_correct"]
    assert row["spearman"] == pytest.approx(0.5)
    assert row["kendall"] == pytest.approx(1 / 3)


def test_top_n_and_overlap():
    pred = {"111": 1.0, "100": 1.5, "110": 1.3}
    row = _one(facet_ordering(_slabs([(m, DFT[m], pred[m]) for m in DFT]), n=2))
    assert row["dft_top"] == ["111", "100"] and row["model_top"] == ["111", "110"]
    assert row["top_overlap"] == 1


def test_lowest_gamma_per_miller_index():
    # two 111 slabs (e.g. two terminations): DFT's lowest is slab A (1.0), the model's is
    # slab B (1.1). Taking the first slab (1.7) or the mean (1.4) would put 111 behind 100.
    rows = [("111", 1.0, 1.7), ("111", 1.3, 1.1), ("100", 1.2, 1.2), ("110", 1.4, 1.5)]
    row = _one(facet_ordering(_slabs(rows)))
    assert row["n_facets"] == 3
    assert row["dft_top"] == ["111", "100", "110"]
    assert row["model_top"] == ["111", "100", "110"]
    assert row["lowest_correct"]
    assert row["spearman"] == pytest.approx(1.0)


def test_failed_and_unlabelled_slabs_left_out():
    rows = [*[(m, g, g) for m, g in DFT.items()], ("211", 0.5, None), (None, 0.4, 0.4)]
    row = _one(facet_ordering(_slabs(rows)))
    assert row["dft_top"] == ["111", "100", "110"]  # 211 failed for the model: not compared
    assert row["n_facets"] == 3 and row["n_failed"] == 1 and row["n_no_miller"] == 1


def test_fewer_than_two_facets_gives_nan_and_groups_are_separate():
    a = _slabs([("111", 1.0, 1.1)], bulk_id="A/bulk", element="A")
    b = _slabs([(m, g, g) for m, g in DFT.items()], bulk_id="B/bulk", element="B")
    c = _slabs([(m, g, 2 * g) for m, g in DFT.items()], fingerprint="fp-n", model="n",
               bulk_id="B/bulk", element="B")
    out = facet_ordering(pd.concat([a, b, c], ignore_index=True)).set_index(["model", "element"])
    assert len(out) == 3
    single = out.loc[("m", "A")]
    assert single["n_facets"] == 1 and single["lowest_correct"]
    assert math.isnan(single["spearman"]) and math.isnan(single["kendall"])
    assert out.loc[("n", "B"), "spearman"] == pytest.approx(1.0)


def test_several_protocols_refused():
    s = _slabs([(m, g, g) for m, g in DFT.items()])
    other = s.assign(protocol="relaxed")
    with pytest.raises(ValueError, match="protocol"):
        facet_ordering(pd.concat([s, other]))


# ---------------------------------------------------------------- Miller parsing
@pytest.mark.parametrize("text,expected", [
    ("110", (1, 1, 0)), ("1-10", (1, -1, 0)), ("(1, 1, 0)", (1, 1, 0)), ("10_1_0", (10, 1, 0)),
    ("10-10", (1, 0, -1, 0)), ((2, 1, 1), (2, 1, 1)), ("0001", (0, 0, 0, 1)),
])
def test_parse_miller(text, expected):
    assert parse_miller(text) == expected


@pytest.mark.parametrize("bad", ["000", "11", "unknown", "12345"])
def test_parse_miller_rejects(bad):
    with pytest.raises(ValueError):
        parse_miller(bad)


# ---------------------------------------------------------------- Wulff
def test_octahedron_when_111_is_much_lower():
    # {100} would cut the {111} octahedron only for gamma100 < sqrt(3) gamma111 = 0.87,
    # {110} only for gamma110 < sqrt(3/2) gamma111 = 0.61
    dft = {"111": 0.5, "100": 2.0, "110": 2.0}
    slabs = _slabs([(m, g, g) for m, g in dft.items()])
    frame, shapes = wulff_analysis(slabs, _records(["X/bulk"]))
    assert len(frame) == 2 and set(frame["source"]) == {"DFT", "model"}
    for _, row in frame.iterrows():
        assert row["problem"] is None
        assert row["area_fraction"]["111"] == pytest.approx(1.0)
        assert row["area_fraction"]["100"] == pytest.approx(0.0, abs=1e-9)
        assert row["weighted_surface_energy"] == pytest.approx(0.5)
    model = frame[frame["source"] == "model"].iloc[0]
    assert model["delta_weighted_gamma"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(frame[frame["source"] == "DFT"].iloc[0]["delta_weighted_gamma"])
    assert set(shapes) == {("fp-m", "X/bulk", "DFT"), ("fp-m", "X/bulk", "model")}
    assert shapes[("fp-m", "X/bulk", "DFT")].area_fraction_dict[(1, 1, 1)] == pytest.approx(1.0)


def test_all_gammas_equal():
    slabs = _slabs([(m, 1.3, 1.3) for m in ("111", "100", "110", "210")])
    frame, _ = wulff_analysis(slabs, _records(["X/bulk"]))
    dft = frame[frame["source"] == "DFT"].iloc[0]
    assert dft["weighted_surface_energy"] == pytest.approx(1.3)
    assert dft["anisotropy"] == pytest.approx(0.0, abs=1e-9)
    assert sum(dft["area_fraction"].values()) == pytest.approx(1.0)


def test_model_vs_dft_delta_and_lowest_per_index():
    dft = {"111": 1.0, "100": 1.15, "110": 1.3}
    rows = [(m, g, 1.1 * g) for m, g in dft.items()]
    rows.append(("111", 1.6, 1.9))  # a worse 111 termination: ignored (lowest per index)
    frame, _ = wulff_analysis(_slabs(rows), _records(["X/bulk"]))
    by = frame.set_index("source")
    # scaling every gamma by 1.1 scales the shape: same fractions, weighted gamma x 1.1
    w_dft = by.loc["DFT", "weighted_surface_energy"]
    assert 1.0 < w_dft < 1.3
    assert by.loc["model", "weighted_surface_energy"] == pytest.approx(1.1 * w_dft)
    assert by.loc["model", "delta_weighted_gamma"] == pytest.approx(0.1 * w_dft)
    for miller, fraction in by.loc["DFT", "area_fraction"].items():
        assert by.loc["model", "area_fraction"][miller] == pytest.approx(fraction, abs=1e-9)
    assert by.loc["DFT", "area_fraction"]["111"] > 0.3  # the 1.0 slab, not the 1.6 one


def test_problem_rows_never_silent():
    good = _slabs([(m, g, g) for m, g in DFT.items()])
    no_lattice = _slabs([(m, g, g) for m, g in DFT.items()], bulk_id="L/bulk", element="L")
    not_in_records = _slabs([(m, g, g) for m, g in DFT.items()], bulk_id="R/bulk", element="R")
    one_facet = _slabs([("111", 1.0, 1.0), ("100", 1.2, None)], bulk_id="F/bulk", element="F")
    negative = _slabs([("111", 1.0, -0.2), ("100", 1.2, 1.1)], bulk_id="N/bulk", element="N")
    slabs = pd.concat([good, no_lattice, not_in_records, one_facet, negative], ignore_index=True)
    records = pd.concat([_records(["X/bulk", "F/bulk", "N/bulk"]), _records(["L/bulk"], lattice=None)])
    frame, shapes = wulff_analysis(slabs, records)
    by = frame.set_index(["element", "source"])
    assert len(frame) == 10
    assert by.loc[("X", "DFT"), "problem"] is None and by.loc[("X", "model"), "problem"] is None
    for source in ("DFT", "model"):
        assert "lattice" in by.loc[("L", source), "problem"]
        assert "not in the records" in by.loc[("R", source), "problem"]
        assert "fewer than 2" in by.loc[("F", source), "problem"]
        assert math.isnan(by.loc[("L", source), "weighted_surface_energy"])
    assert by.loc[("N", "DFT"), "problem"] is None
    assert "non-positive" in by.loc[("N", "model"), "problem"]
    assert math.isnan(by.loc[("N", "model"), "delta_weighted_gamma"])
    assert set(shapes) == {("fp-m", "X/bulk", "DFT"), ("fp-m", "X/bulk", "model"), ("fp-m", "N/bulk", "DFT")}


def test_hexagonal_four_index_input():
    hexagonal = json.dumps([[3.2, 0.0, 0.0], [-1.6, 1.6 * math.sqrt(3), 0.0], [0.0, 0.0, 5.2]])
    slabs = _slabs([("0001", 1.0, 1.0), ("10-10", 1.2, 1.2)])
    frame, _ = wulff_analysis(slabs, _records(["X/bulk"], lattice=hexagonal))
    row = frame.iloc[0]
    assert row["problem"] is None
    assert set(row["area_fraction"]) == {"0001", "10-10"}
    assert sum(row["area_fraction"].values()) == pytest.approx(1.0)
