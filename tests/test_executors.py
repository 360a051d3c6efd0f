"""Execution backends: in-process and a local Dask cluster of two workers give the same
numbers, every record once; the relaxed protocol's bulks are done before their slabs; a
model in its own environment runs on Dask workers; a complete store starts no cluster; the
built data set is cached and rebuilt when an input changes."""

from __future__ import annotations

import os
import time

import pytest
import yaml
from ase.build import bulk, fcc100, fcc111
from typer.testing import CliRunner

from surfbench.evaluation.relax import RelaxedProtocol
from surfbench.execution.executors import DaskExecutor, InProcessExecutor, LazyExecutor, jobqueue_cluster, make_executor
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.models.registry import ENV_EXTRA_REGISTRY, registry_entries
from surfbench.records import BulkRecord, Dataset, SurfaceRecord
from surfbench.store.results import ResultStore
from tests.test_isolated import second_env  # noqa: F401 - fixture: a second Python environment


def _dataset() -> Dataset:
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    ni = bulk("Ni", "fcc", a=3.52, cubic=True)
    bulks = {
        "Cu/bulk": BulkRecord(id="Cu/bulk", element="Cu", atoms=cu, energy_ev=-16.0),
        "Ni/bulk": BulkRecord(id="Ni/bulk", element="Ni", atoms=ni, energy_ev=-22.0),
    }
    slabs = []
    for el, a, e_b in (("Cu", 3.6, -4.0), ("Ni", 3.52, -5.5)):
        for build, layers, miller in ((fcc111, 4, (1, 1, 1)), (fcc100, 4, (1, 0, 0)), (fcc111, 5, (1, 1, 1))):
            atoms = build(el, (1, 1, layers), a=a, vacuum=6.0, periodic=True)
            atoms.rattle(0.02, seed=layers)  # something for the relaxation to do
            slabs.append(SurfaceRecord(id=f"{el}/{''.join(map(str, miller))}-{layers}", element=el, atoms=atoms,
                                       energy_ev=e_b * len(atoms) + 1.0, bulk_id=f"{el}/bulk",
                                       bulk_energy_per_atom_ev=e_b, miller=miller))
    return Dataset("toy", bulks, slabs)


@pytest.fixture(scope="module")
def dask2():
    """A local Dask cluster of two worker processes (one torch thread each)."""
    with make_executor(2) as ex:
        yield ex


def _energies(store: ResultStore, fingerprint: str, protocol: str):
    res = store.results("toy", fingerprint, protocol)
    assert res["record_id"].is_unique
    return res.set_index("record_id")


def test_local_cluster_matches_in_process(tmp_path, dask2):
    ds = _dataset()
    relaxed = RelaxedProtocol(fmax_ev_per_a=0.05, steps=200)
    with ResultStore(tmp_path / "local") as local, ResultStore(tmp_path / "dask") as remote:
        for proto in ("static", relaxed):
            a = run(ds, load_model("emt"), local, proto)
            seen: list[str] = []
            b = run(ds, load_model("emt"), remote, proto, executor=dask2, progress=lambda rid, o: seen.append(rid))
            assert (a.computed, b.computed, a.failed, b.failed) == (8, 8, 0, 0)
            assert sorted(seen) == sorted([*ds.bulks, *(s.id for s in ds.surfaces)])
            if proto is relaxed:  # both bulks were written before any slab was submitted
                assert set(seen[:2]) == {"Cu/bulk", "Ni/bulk"}
            name = proto if isinstance(proto, str) else proto.name
            x, y = _energies(local, a.fingerprint, name), _energies(remote, b.fingerprint, name)
            assert len(x) == len(y) == 8 and (y["status"] == "ok").all()
            for rid in x.index:
                assert y.loc[rid, "energy_ev"] == pytest.approx(x.loc[rid, "energy_ev"], abs=1e-9)
            assert set(y["threads"]) == {1}  # one torch thread per Dask worker
        # the slabs were relaxed at the model's bulk lattice: the scale comes from the bulk result
        ext = remote.results("toy", b.fingerprint, relaxed.name).set_index("record_id")["extra"]
        assert '"lattice_scale"' in ext["Cu/111-4"]
        assert run(ds, load_model("emt"), remote, "static", executor=dask2).computed == 0


def test_isolated_model_on_dask_workers(tmp_path, dask2, second_env, monkeypatch):  # noqa: F811
    """A model whose registry entry names another interpreter runs on the Dask workers through
    its worker subprocess, with the in-process numbers."""
    entry = dict({e["name"]: e for e in registry_entries()}["emt"], name="emt-elsewhere", python=str(second_env))
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump([entry]))
    monkeypatch.setenv(ENV_EXTRA_REGISTRY, str(tmp_path / "extra.yaml"))
    ds = _dataset()
    with ResultStore(tmp_path) as store:
        ref = run(ds, load_model("emt"), store)
        iso = run(ds, load_model("emt-elsewhere"), store, executor=dask2)
        assert iso.computed == 8 and iso.failed == 0
        x, y = _energies(store, ref.fingerprint, "static"), _energies(store, iso.fingerprint, "static")
    for rid in x.index:
        assert y.loc[rid, "energy_ev"] == pytest.approx(x.loc[rid, "energy_ev"], abs=1e-9)


def test_chunks_of_structures_give_the_same_results(tmp_path, dask2):
    """Several structures per Dask task (3 here: 8 records in chunks of 3, 3 and 2) store the
    same energies, for every record exactly once, as one structure per task in this process."""
    ds = _dataset()
    chunked = DaskExecutor(dask2.client, threads=1, chunk_size=3)
    with ResultStore(tmp_path / "local") as local, ResultStore(tmp_path / "dask") as remote:
        a = run(ds, load_model("emt"), local)
        b = run(ds, load_model("emt"), remote, executor=chunked)
        assert (a.computed, b.computed, b.failed) == (8, 8, 0)
        x, y = _energies(local, a.fingerprint, "static"), _energies(remote, b.fingerprint, "static")
    assert sorted(x.index) == sorted(y.index)
    for rid in x.index:
        assert y.loc[rid, "energy_ev"] == pytest.approx(x.loc[rid, "energy_ev"], abs=1e-9)


def test_a_structure_that_kills_its_worker_is_recorded_and_the_run_goes_on(tmp_path, dask2):
    """Without --timeout a structure that kills its Dask worker (out of memory, a segfault; here
    os.abort on cells of more than 4 atoms) is tried twice, its chunk is split to find it, and
    it is stored as 'crashed'; every other structure, chunk-mates included, gets its energy."""
    ds = _dataset()
    chunked = DaskExecutor(dask2.client, threads=1, chunk_size=3)
    with ResultStore(tmp_path) as store:
        s = run(ds, load_model("tests.fault_calcs:CrashOnLarge"), store, executor=chunked)
        res = _energies(store, s.fingerprint, "static")
    assert (s.computed, s.failed, s.failure_kinds) == (8, 2, {"crashed": 2})
    crashed = res[res["status"] == "failed"]
    assert sorted(crashed.index) == ["Cu/111-5", "Ni/111-5"] and (crashed["n_atoms"] == 5).all()
    assert crashed["message"].str.contains("Dask worker died at each attempt").all()
    assert (res.loc[res["status"] == "ok", "energy_ev"].notna()).all() and (res["status"] == "ok").sum() == 6


def test_auto_chunk_size():
    from surfbench.execution.executors import MAX_CHUNK, auto_chunk_size

    assert auto_chunk_size(8, 2) == 1  # a small run: one structure per task, every worker busy
    assert auto_chunk_size(1538, 2) == MAX_CHUNK == 8  # the synthetic paper-size set: 193 tasks
    assert auto_chunk_size(100, 2) == 6  # 17 tasks, 8 or more per worker
    assert auto_chunk_size(1538, 200) == 1
    with pytest.raises(ValueError, match="chunk size must be at least 1"):
        DaskExecutor(client=None, chunk_size=0)


def test_a_complete_store_starts_no_cluster(tmp_path):
    ds = _dataset()

    def never():
        raise AssertionError("a cluster was started for nothing")

    with ResultStore(tmp_path) as store:
        run(ds, load_model("emt"), store)
        lazy = LazyExecutor(never)
        s = run(ds, load_model("emt"), store, executor=lazy)
        lazy.close()
    assert (s.computed, s.reused) == (0, 8)


def test_executor_options():
    assert isinstance(make_executor(), InProcessExecutor)
    with pytest.raises(ValueError, match="at least 1"):
        make_executor(0)
    with pytest.raises(ValueError, match="timeout must be positive"):
        DaskExecutor(client=None, timeout_s=-1)


def test_slurm_job_script_from_config():
    """--scheduler slurm builds a dask-jobqueue SLURMCluster from Dask's config; here the
    settings are given directly and the job script it would submit is checked."""
    cluster = jobqueue_cluster("slurm", cores=1, processes=1, memory="4GB", walltime="01:00:00",
                               job_script_prologue=["source /path/to/venv/bin/activate"])
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --cpus-per-task=1" in script and "#SBATCH -t 01:00:00" in script
    assert "source /path/to/venv/bin/activate" in script and "distributed.cli.dask_worker" in script
    # glibc's trim threshold of Dask's nanny (64 KiB) halves PyTorch's speed: the job sets its own
    assert "export MALLOC_TRIM_THRESHOLD_=67108864" in script
    assert "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False" in script  # no stack sampling every 10 ms


def test_local_workers_start_without_dasks_malloc_trim_threshold():
    """Dask's nanny would start each worker with MALLOC_TRIM_THRESHOLD_=65536, which made
    M3GNet 1.9x slower per structure (glibc trims and re-maps the tensors' memory at every
    call); surfbench's local cluster leaves glibc's default, and the thread settings stand."""
    import os

    import dask

    def facts():
        return {**{k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")},
                "profile": dask.config.get("distributed.worker.profile.enabled")}

    ex = make_executor(1, threads=1)
    try:
        env = ex.client.submit(facts, pure=False).result()
    finally:
        ex.close()
    # and without the 10 ms stack sampling of Dask's profiler (20-25 % of a worker's time)
    assert env == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1", "profile": False}


def test_cli_rejects_bad_execution_options(tmp_path):
    from surfbench.cli import app
    from surfbench.data.userdata import write_user_dataset

    data = write_user_dataset(_dataset(), tmp_path / "toy.extxyz")
    runner = CliRunner()
    for opts, message in ((["--workers", "0"], "--workers must be at least 1"),
                          (["--timeout", "0"], "--timeout must be a positive")):
        res = runner.invoke(app, ["run", "-m", "emt", "-d", str(data), "-w", str(tmp_path), *opts])
        assert res.exit_code == 2, res.output
        assert message in res.output


def test_dataset_cache_hit_and_rebuild(tmp_path, monkeypatch):
    from surfbench.data import registry
    from surfbench.data.userdata import write_user_dataset
    from surfbench.execution.dataset_cache import cache_folder, load_dataset_cached

    path = write_user_dataset(_dataset(), tmp_path / "toy.extxyz")
    first = load_dataset_cached(str(path))
    assert len(list(cache_folder().glob("*.pkl"))) >= 1
    calls = []
    real = registry.load_dataset
    monkeypatch.setattr(registry, "load_dataset", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = load_dataset_cached(str(path))
    assert calls == []  # served from the cache
    assert [s.id for s in again.surfaces] == [s.id for s in first.surfaces]
    assert [s.content_hash for s in again.surfaces] == [s.content_hash for s in first.surfaces]
    assert again.surfaces[0].dft_gamma_j_per_m2 == first.surfaces[0].dft_gamma_j_per_m2
    # a new modification time alone is no change (the cache is keyed by content)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_dataset_cached(str(path))
    assert calls == []
    # the content changes: rebuilt
    path.write_text(path.read_text().replace("energy=-", "energy=-1", 1))
    load_dataset_cached(str(path))
    assert len(calls) == 1
    # a broken cache file is ignored and rebuilt
    for f in cache_folder().glob("*.pkl"):
        f.write_bytes(b"not a pickle")
    assert [s.id for s in load_dataset_cached(str(path)).surfaces] == [s.id for s in first.surfaces]
    assert len(calls) == 2


def test_in_process_timeout_does_not_change_numbers(tmp_path):
    ds = _dataset()
    with ResultStore(tmp_path / "a") as a, ResultStore(tmp_path / "b") as b:
        ra = run(ds, load_model("emt"), a)
        t0 = time.perf_counter()
        rb = run(ds, load_model("emt"), b, timeout_s=60)
        assert time.perf_counter() - t0 < 300
        x, y = _energies(a, ra.fingerprint, "static"), _energies(b, rb.fingerprint, "static")
    for rid in x.index:
        assert y.loc[rid, "energy_ev"] == x.loc[rid, "energy_ev"]
