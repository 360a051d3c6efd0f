"""mSE21 with the model-built protocol (issue 16): (a) convergence of gamma with slab thickness
for a few elements, (b) each model on the 21 facets through the store, against PBE and
experiment with bootstrap intervals, per crystal structure, with the PBE-vs-experiment floor,
wall time and failures; with ``--mlearn-static`` also each model's static gamma RMSE on
mlearn-surfaces, for the table of docs/results/mse21.md (static mlearn RMSE beside the mSE21 RMSE).

    SURFBENCH_DATA_DIR=../shared/data python benchmarks/mse21.py --models emt
    SURFBENCH_DATA_DIR=../shared/data SURFBENCH_MODEL_DIR=../shared/models \
        python benchmarks/mse21.py --workdir bench-store --models mace-mp-0-medium,chgnet-0.3.0 \
        --convergence Cu,Pt,W,Na --mlearn-static --device cuda
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd
from rich.console import Console

from surfbench.analysis.reference_gamma import reference_predictions
from surfbench.data.mse21 import load_mse21
from surfbench.evaluation.model_built import ModelBuiltProtocol
from surfbench.evaluation.thickness import converged_layers, thickness_convergence
from surfbench.execution.runner import run
from surfbench.models import load_model
from surfbench.report.reference_tables import render_reference
from surfbench.store.results import ResultStore


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def convergence(console: Console, model, proto: ModelBuiltProtocol, records: dict, elements: list[str],
                layers: range, tol: float) -> None:
    calculator = model.calculator
    tables = []
    for el in elements:
        rec = records[el]
        t0 = time.perf_counter()
        table = thickness_convergence(proto, el, rec.crystal, rec.miller, calculator, layers=layers)
        n = converged_layers(table, tol)
        console.print(f"{model.name} {rec.id}: converged to {tol} J/m^2 from {n} layers "
                      f"({time.perf_counter() - t0:.1f} s, {_load()})")
        tables.append(table)
    wide = pd.concat(tables).pivot_table(index="layers", columns=["element", "miller"], values="gamma_j_per_m2")
    console.print(f"gamma (J/m^2) against the number of atomic layers, {model.name}:")
    console.print(wide.round(4).to_string())
    failed = pd.concat(tables).query("status != 'ok'")
    if not failed.empty:
        console.print(failed[["element", "layers", "failure_kind"]].to_string(index=False))


def mlearn_static(store: ResultStore, model, threads: int | None) -> str:
    """Run (or reuse) the static protocol on mlearn-surfaces; one line with the gamma RMSE."""
    from surfbench.analysis.metrics import metrics
    from surfbench.analysis.predictions import bulk_predictions, slab_predictions
    from surfbench.data.mlearn import load_mlearn_surfaces

    ml = load_mlearn_surfaces()
    t0 = time.perf_counter()
    run(ml, model, store, "static", threads=threads)
    res = store.results(ml.name, model.fingerprint.id, "static")
    g = metrics(bulk_predictions(res), slab_predictions(res)).query("quantity == 'gamma'").iloc[0]
    return (f"{model.name}: mlearn-surfaces static gamma RMSE {g['rmse']:.3f} J/m^2 ({g['n_ok']}/{g['n_total']} ok), "
            f"wall {res['wall_s'].sum():.0f} s in the store (this call {time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="bench-store")
    ap.add_argument("--models", default="emt", help="comma-separated registry names")
    ap.add_argument("--convergence", default="Cu,Al,Ni,Pd,Ag,Pt,Au",
                    help="elements (of mSE21) for the thickness convergence; empty: skip it")
    ap.add_argument("--layers-range", default="3-14", help="thicknesses for the convergence, e.g. 3-14")
    ap.add_argument("--tol", type=float, default=0.02, help="convergence tolerance (J/m^2)")
    ap.add_argument("--layers", type=int, default=None, help="slab thickness of the run (default: the protocol's)")
    ap.add_argument("--vacuum", type=float, default=None, help="vacuum gap of the run in Angstrom")
    ap.add_argument("--no-run", action="store_true", help="only the thickness convergence")
    ap.add_argument("--mlearn-static", action="store_true", help="also the static run on mlearn-surfaces")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_args()
    ds = load_mse21()
    records = {r.element: r for r in ds.surfaces}
    sizes = {k: v for k, v in (("layers", args.layers), ("vacuum_a", args.vacuum)) if v is not None}
    proto = ModelBuiltProtocol(**sizes)
    lo, hi = (int(x) for x in args.layers_range.split("-"))
    elements = [e.strip() for e in args.convergence.split(",") if e.strip()]
    console = Console(width=200)
    console.print(f"protocol {proto.name}: {proto.describe()}")
    frames, lines = [], []
    with ResultStore(args.workdir) as store:
        for name in args.models.split(","):
            model = load_model(name.strip(), device=args.device)
            if elements:
                convergence(console, model, proto, records, elements, range(lo, hi + 1), args.tol)
            if args.no_run:
                continue
            t0 = time.perf_counter()
            summary = run(ds, model, store, proto, threads=args.threads)
            console.print(f"{name}: {summary.computed} computed, {summary.reused} reused, {summary.failed} failed "
                          f"{summary.failure_kinds}; this call {time.perf_counter() - t0:.1f} s ({_load()})")
            frames.append(store.reference_results(ds.name, model.fingerprint.id, proto.name))
            if args.mlearn_static:
                lines.append(mlearn_static(store, model, args.threads))
    if frames:
        render_reference(console, reference_predictions(pd.concat(frames, ignore_index=True)), n_boot=args.n_boot)
    for line in lines:
        console.print(line)


if __name__ == "__main__":
    main()
