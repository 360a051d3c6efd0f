"""The relaxed protocol on mlearn-surfaces (issue 6): for each model, static and relaxed runs
(through the store) and the split of the gamma error into its static and relaxation parts.

    SURFBENCH_DATA_DIR=../shared/data SURFBENCH_MODEL_DIR=../shared/models \
        python benchmarks/relaxed_split.py --workdir bench-store --models m3gnet-mp-2021.2.8-pes
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from surfbench.analysis.relaxation import relaxation_split
from surfbench.data.mlearn import load_mlearn_surfaces
from surfbench.evaluation.relax import RelaxedProtocol
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.report.console import render_relaxation_split
from surfbench.store.results import ResultStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="bench-store")
    ap.add_argument("--models", default="m3gnet-mp-2021.2.8-pes")
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--optimizer", default="FIRE")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    ds = load_mlearn_surfaces()
    proto = RelaxedProtocol(fmax_ev_per_a=args.fmax, steps=args.steps, optimizer=args.optimizer)
    console = Console(width=200)
    parts = []
    with ResultStore(args.workdir) as store:
        for name in args.models.split(","):
            model = load_model(name)
            t0 = time.perf_counter()
            run(ds, model, store, "static", threads=args.threads)
            summary = run(ds, model, store, proto, threads=args.threads)
            fp = model.fingerprint.id
            wall = store.results(ds.name, fp, proto.name)["wall_s"].sum()
            console.print(f"{name}: {summary.computed} relaxed now, {summary.reused} reused, {summary.failed} failed; "
                          f"relaxation wall time in the store {wall:.0f} s (this call {time.perf_counter() - t0:.0f} s)")
            parts.append(relaxation_split(store.results(ds.name, fp, "static"), store.results(ds.name, fp, proto.name)))
    import pandas as pd

    render_relaxation_split(console, pd.concat(parts, ignore_index=True))


if __name__ == "__main__":
    main()
