"""The default model, CHGNet 0.3.0 from the chgnet wheel, on real slabs."""

import hashlib

import pytest

from surfbench.evaluation.protocols import StaticProtocol
from surfbench.models import load_model
from surfbench.models.base import sha256_files
from surfbench.records import surface_energy_ev_per_a2
from surfbench.units import EV_PER_A2_IN_J_PER_M2
from tests.conftest import needs_data


def test_fingerprint_hashes_the_wheel_weights():
    model = load_model("chgnet-0.3.0")
    fp = model.fingerprint
    (weights,) = model.backend.weight_files()
    assert weights.name == "chgnet_0.3.0_e29f68s314m37.pth.tar"
    assert fp.weights_sha256 == sha256_files([weights])
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == (
        "d14ab7c0f093efe64b60a7bcd540bca10e74fb7f46c86108a079af60524659d1"
    )
    assert fp.dtype == "float32" and fp.package == "chgnet"
    assert load_model("chgnet-0.2.0").fingerprint.id != fp.id
    # fingerprinting does not build the model
    assert "calculator" not in model.__dict__


@needs_data
def test_chgnet_gamma_of_mo110_and_li100(mlearn_surfaces):
    model = load_model("chgnet-0.3.0")
    proto = StaticProtocol()
    measured = {}
    for rid in ("Mo/train/Mo_mp-129_(1_1_0)", "Li/train/Li_mp-135_(1_0_0)"):
        slab = next(s for s in mlearn_surfaces.surfaces if s.id == rid)
        bulk = mlearn_surfaces.bulks[slab.bulk_id]
        e_slab = proto.calc(slab.atoms, model.calculator)
        e_bulk = proto.calc(bulk.atoms, model.calculator)
        assert e_slab.status == e_bulk.status == "ok"
        gamma = surface_energy_ev_per_a2(e_slab.energy_ev, slab.n_atoms, e_bulk.energy_ev / bulk.n_atoms, slab.area_a2)
        measured[rid] = gamma * EV_PER_A2_IN_J_PER_M2
    # measured with chgnet 0.4.2 / torch 2.13.0 on CPU (float32); DFT: 2.820 and 0.458 J/m^2.
    # CHGNet underestimates both, as Focassio et al. report for universal models.
    assert measured["Mo/train/Mo_mp-129_(1_1_0)"] == pytest.approx(1.9272, abs=2e-3)
    assert measured["Li/train/Li_mp-135_(1_0_0)"] == pytest.approx(0.3444, abs=2e-3)
