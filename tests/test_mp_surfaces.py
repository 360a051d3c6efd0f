"""The Materials Project surface builder on emmet-core documents built from real mlearn slabs
(the documents the MP API returns are these models), with a stand-in for the network."""

import gzip
import json
import shutil

import pytest

pytest.importorskip("emmet.core", reason="emmet-core is needed for the MP builder (installed by .ci/run)")

from emmet.core.surface_properties import SurfaceEntry, SurfacePropDoc  # noqa: E402
from emmet.core.thermo import ThermoDoc, ThermoType  # noqa: E402
from pymatgen.entries.computed_entries import ComputedStructureEntry  # noqa: E402
from pymatgen.io.ase import AseAtomsAdaptor  # noqa: E402
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer  # noqa: E402

from surfbench.data import mp_surfaces  # noqa: E402
from surfbench.data.errors import DataError  # noqa: E402
from tests.conftest import needs_data  # noqa: E402

pytestmark = needs_data
MPIDS = {"Mo": "mp-129", "Li": "mp-135"}


class FakeSource:
    """Stands in for MPApiSource: returns emmet-core documents, records what was asked."""

    def __init__(self, surface_docs, thermo_docs, version="2025.09.25"):
        self._s, self._t, self._v = surface_docs, thermo_docs, version

    def db_version(self):
        return self._v

    def surface_docs(self, elements):
        return [d for d in self._s if elements is None or d.pretty_formula in set(elements)]

    def thermo_docs(self, material_ids):
        return [t for t in self._t if str(t.material_id) in material_ids]


@pytest.fixture(scope="module")
def emmet_docs(mlearn_surfaces):
    surface_docs, thermo_docs = [], []
    for element, mpid in MPIDS.items():
        bulk = next(b for b in mlearn_surfaces.bulks.values() if b.element == element)
        bulk_structure = AseAtomsAdaptor.get_structure(bulk.atoms)
        conventional = SpacegroupAnalyzer(bulk_structure, symprec=0.1).get_conventional_standard_structure()
        entries = []
        for s in (s for s in mlearn_surfaces.surfaces if s.element == element):
            entries.append(SurfaceEntry(
                miller_index=list(s.miller), surface_energy=s.dft_gamma_j_per_m2,
                surface_energy_EV_PER_ANG2=s.dft_gamma_ev_per_a2, is_reconstructed=bool(s.reconstructed),
                structure=AseAtomsAdaptor.get_structure(s.atoms), area_fraction=None, has_wulff=False,
            ))
        surface_docs.append(SurfacePropDoc(material_id=mpid, pretty_formula=element, structure=conventional,
                                           surfaces=entries, has_reconstructed=any(e.is_reconstructed for e in entries)))
        entry = ComputedStructureEntry(bulk_structure, bulk.energy_ev, entry_id=f"{mpid}-GGA",
                                       data={"run_type": "GGA", "material_id": mpid, "task_id": f"{mpid}-task"})
        (doc,) = ThermoDoc.from_entries([entry], ThermoType.GGA_GGA_U)
        thermo_docs.append(doc.model_copy(update={"material_id": mpid}))
    return surface_docs, thermo_docs


def test_builder_reproduces_mlearn_energies_and_gammas(emmet_docs, mlearn_surfaces, tmp_path):
    built = mp_surfaces.build(FakeSource(*emmet_docs), tmp_path)
    manifest = json.loads(built.manifest.read_text())
    assert manifest["db_version"] == "2025.09.25" and manifest["counts"] == {
        "materials": 2, "slabs": 24, "elements": 2, "thermo_docs": 2}
    ds = mp_surfaces.load(built.manifest)
    assert ds.name == "mp-surfaces-2025.09.25" and len(ds.bulks) == 2
    ref = {(s.element, s.miller, bool(s.reconstructed), round(s.n_atoms)): s for s in mlearn_surfaces.surfaces if s.element in MPIDS}
    assert len(ds.surfaces) == len(ref) == 24
    for s in ds.surfaces:
        r = ref[(s.element, s.miller, s.reconstructed, s.n_atoms)]
        assert s.dft_gamma_j_per_m2 == pytest.approx(r.dft_gamma_j_per_m2, abs=1e-9)
        # E_slab = n e_bulk + 2 A gamma gives back the DFT slab energy
        assert s.energy_ev == pytest.approx(r.energy_ev, abs=1e-8)
        assert s.bulk_id == f"{MPIDS[s.element]}/bulk"


def test_manifest_round_trip_and_sha_check(emmet_docs, tmp_path):
    built = mp_surfaces.build(FakeSource(*emmet_docs), tmp_path, elements=["Mo"])
    m = mp_surfaces.read_manifest(built.manifest)
    assert m["file"] == built.data.name and m["counts"]["slabs"] == 11 and m["versions"]["emmet-core"]
    ds = mp_surfaces.load(built.manifest, expected_sha256=m["sha256"])
    assert {s.element for s in ds.surfaces} == {"Mo"}
    with pytest.raises(DataError, match="differs from the pinned"):
        mp_surfaces.load(built.manifest, expected_sha256="0" * 64)
    # a changed data file is refused, naming it
    raw = gzip.open(built.data, "rt").read()
    with gzip.open(built.data, "wt") as fh:
        fh.write(raw.replace('"is_reconstructed": false', '"is_reconstructed": true', 1))
    with pytest.raises(DataError, match="sha256") as info:
        mp_surfaces.load(built.manifest)
    assert str(built.data) in str(info.value)


def test_mixed_database_versions_are_refused(emmet_docs, tmp_path):
    built = mp_surfaces.build(FakeSource(*emmet_docs), tmp_path)
    payload = json.loads(gzip.open(built.data, "rt").read())
    payload["surface_docs"][1]["db_version"] = "2024.12.18"
    with gzip.open(built.data, "wt") as fh:
        json.dump(payload, fh)
    manifest = json.loads(built.manifest.read_text())
    manifest["sha256"] = mp_surfaces.sha256_of(built.data)
    built.manifest.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="mixes Materials Project database versions"):
        mp_surfaces.load(built.manifest)


def test_invalid_documents_are_refused(emmet_docs, tmp_path):
    surface_docs, thermo_docs = emmet_docs
    bad = surface_docs[0].model_dump(mode="json")
    bad["surfaces"][0]["miller_index"] = "not a list"
    with pytest.raises(DataError, match="not a valid emmet-core SurfacePropDoc"):
        mp_surfaces.build(FakeSource([bad], thermo_docs), tmp_path)


def test_missing_bulk_energy_is_reported(emmet_docs):
    surface_docs, thermo_docs = emmet_docs
    ds = mp_surfaces.to_dataset(surface_docs, thermo_docs[:1])
    li = [s for s in ds.surfaces if s.element == "Li"]
    assert li and all(s.bulk_id is None for s in li)
    assert any("no GGA_GGA+U bulk energy" in n for n in ds.notes)


def test_no_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(DataError, match="MP_API_KEY"):
        mp_surfaces.MPApiSource()


def test_pinned_download_over_http(emmet_docs, tmp_path):
    """The pinned-URL path for users without a key, served from loopback."""
    import functools
    import http.server
    import threading

    built = mp_surfaces.build(FakeSource(*emmet_docs), tmp_path / "release", elements=["Mo"])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built.data.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        sha = mp_surfaces.read_manifest(built.manifest)["sha256"]
        ds = mp_surfaces.fetch_release(f"{base}/{built.manifest.name}", f"{base}/{built.data.name}", sha,
                                       cache=tmp_path / "cache")
        assert len(ds.surfaces) == 11
        with pytest.raises(DataError, match="sha256"):
            mp_surfaces.fetch_release(f"{base}/{built.manifest.name}", f"{base}/{built.data.name}", "1" * 64,
                                      cache=tmp_path / "cache2")
    finally:
        server.shutdown()
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
