"""Speed of the evaluation against the bare model, on the same records in one run.

Prints:

1. **overhead**: wall time of ``runner.run`` (in-process, fresh store: pending-record lookup,
   protocol, store writes) over the sum of bare calculator calls
   (``atoms.get_potential_energy()`` with the model's own ASE calculator) on the same
   structures; the model is built before either is timed. Target <= 1.10.
2. **speed-up**: ``run`` on a local Dask cluster with 1 worker vs 2 workers (one torch
   thread each), cluster start-up excluded, model loading on the workers included.
   Target >= 1.7 on 2 cores.
3. **rerun**: wall time of the command ``surfbench run`` on the complete store (a new
   process: imports, cached data set, fingerprint, store lookup, tables). Target < 2 s.

The machine's load average is printed with the numbers: on a shared machine they are noisy.

Usage: ``python benchmarks/eval_speed.py [--model chgnet-0.3.0] [--split test] [--data-dir D]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="chgnet-0.3.0")
    ap.add_argument("--dataset", default="mlearn-surfaces")
    ap.add_argument("--split", default="test", choices=["all", "train", "test"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--workdir", default=None, help="Folder for the stores (default: a temporary one).")
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args()

    from surfbench.execution.dataset_cache import load_dataset_cached
    from surfbench.execution.executors import make_executor
    from surfbench.execution.runner import run
    from surfbench.models import load_model
    from surfbench.models.model_info import cap_threads
    from surfbench.store.results import ResultStore

    work = Path(args.workdir or tempfile.mkdtemp(prefix="eval-speed-"))
    cap_threads(1)  # torch, loaded with the model below, starts with OMP_NUM_THREADS=1
    splits = {"all": None, "train": {"train"}, "test": {"test"}}[args.split]
    ds = load_dataset_cached(args.dataset, args.data_dir).select(splits=splits)
    records = [*ds.bulks.values(), *ds.surfaces]
    print(f"{len(records)} records ({len(ds.bulks)} bulks, {len(ds.surfaces)} slabs, "
          f"{sum(r.n_atoms for r in records)} atoms) of {ds.name}, split {args.split}; model {args.model}; "
          f"1 torch thread; load average before: {os.getloadavg()}")

    # 1. bare calculator calls vs runner.run in this process
    model = load_model(args.model)
    bare_calc = model.backend.calculator()
    warm = records[0].atoms.copy()  # first-call costs (lazy imports, allocator) paid by neither side
    warm.pbc = True
    warm.calc = bare_calc
    warm.get_potential_energy()
    bare = 0.0
    for r in records:
        atoms = r.atoms.copy()
        atoms.pbc = True
        atoms.calc = bare_calc
        t0 = time.perf_counter()
        atoms.get_potential_energy()
        bare += time.perf_counter() - t0
    model.calculator  # noqa: B018 - built before timing, like the bare calculator
    with ResultStore(work / "local") as store:
        t0 = time.perf_counter()
        s = run(ds, model, store, threads=1)
        ours = time.perf_counter() - t0
    assert s.computed == len(records), s
    print(f"overhead: surfbench run {ours:.2f} s / bare calls {bare:.2f} s = {ours / bare:.3f}x "
          f"(target <= 1.10); load average {os.getloadavg()[0]:.1f}")

    # 2. 1 vs 2 Dask workers
    if not args.skip_dask:
        walls = {}
        for n in (1, 2):
            with make_executor(n, threads=1) as ex, ResultStore(work / f"dask{n}") as store:
                t0 = time.perf_counter()
                s = run(ds, load_model(args.model), store, executor=ex)
                walls[n] = time.perf_counter() - t0
                assert s.computed == len(records) and s.failed == 0, s
            print(f"  {n} worker(s): {walls[n]:.2f} s")
        print(f"speed-up: 1 worker {walls[1]:.2f} s / 2 workers {walls[2]:.2f} s = {walls[1] / walls[2]:.2f}x "
              f"(target >= 1.7); load average {os.getloadavg()[0]:.1f}")

    # 3. a full rerun of the command on the complete store
    cmd = [sys.executable, "-m", "surfbench.cli", "run", "--model", args.model, "--dataset", args.dataset,
           "--split", args.split, "--workdir", str(work / "local"), "--threads", "1"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    subprocess.run(cmd, capture_output=True, check=True)  # warms the data set cache, the OS file cache
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rerun = time.perf_counter() - t0
    assert f"0 computed, {len(records)} reused" in out.stdout, out.stdout[-2000:]
    print(f"rerun: surfbench run on the complete store {rerun:.2f} s (target < 2 s); "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
