"""Softening slopes and the scale correction for the offline universal models on the mlearn
data (issue 6). Prints the slopes per model (overall and per element), the gamma slope, and the
gamma RMSE on mlearn-surfaces before and after the correction, plus the wall time.

    SURFBENCH_DATA_DIR=../shared/data SURFBENCH_MODEL_DIR=../shared/models \
        python benchmarks/softening.py --workdir bench-store [--max-frames-per-group 8]

Everything goes through the result store: a rerun with the same store only reads.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from surfbench.analysis.softening_study import softening_study, subsample_frames
from surfbench.data.mlearn import load_mlearn_frames, load_mlearn_surfaces
from surfbench.models import load_model
from surfbench.report.console import render_softening
from surfbench.store.results import ResultStore

OFFLINE = ["m3gnet-mp-2021.2.8-pes", "m3gnet-matpes-pbe-v2025.1-pes", "tensornet-matpes-pbe-v2025.1-pes",
           "chgnet-0.3.0", "sevennet-0", "sevennet-mf-0", "sevennet-l3i5"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="bench-store")
    ap.add_argument("--models", default=",".join(OFFLINE))
    ap.add_argument("--max-frames-per-group", type=int, default=8,
                    help="frames per (element, split, group), seeded; 0 = every frame")
    ap.add_argument("--fit-frames", type=int, default=10)
    ap.add_argument("--per-element", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = load_mlearn_surfaces()
    frames = subsample_frames(load_mlearn_frames(), args.max_frames_per_group or None, args.seed)
    models = [load_model(m) for m in args.models.split(",")]
    with ResultStore(args.workdir) as store:
        res = softening_study(ds, frames, models, store, n_fit_frames=args.fit_frames, seed=args.seed,
                              per_element=args.per_element, threads=args.threads)
    console = Console(width=200)
    console.print(f"{len(frames)} mlearn frames (+ {len(ds.bulks)} bulk references), {len(ds.surfaces)} slabs judged")
    render_softening(console, res)
    console.print(f"wall time {time.perf_counter() - t0:.0f} s (results reused from {args.workdir} where present)")


if __name__ == "__main__":
    main()
