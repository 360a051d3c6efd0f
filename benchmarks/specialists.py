"""Universal potentials against the data's own specialists (SNAP and qSNAP of Zuo et al. 2020)
on mlearn-surfaces, static protocol: the Table I comparison with the slabs the specialists
saw in training kept apart from those nobody saw.

For each model: ``surfbench run`` in one workdir (a whole process each, so the wall time
includes loading the model; a rerun reuses the store), then, from the store:

1. per element, gamma RMSE (J/m^2) on all 75 slabs (the specialists' figures mix the 64
   training-split slabs they were fitted to with the 11 test-split slabs);
2. gamma RMSE, MAE and MSE on the 11 slabs no model saw (the mlearn test split), with
   percentile-bootstrap 95 % intervals, and the specialists' RMSE on their 64 seen slabs;
3. speed: structures per second of model time (sum of the stored per-structure wall times)
   and the whole process's wall time.

    python benchmarks/specialists.py [--workdir DIR] [--models a,b,...] [--n-boot 2000]

The matgl models need ``SURFBENCH_MODEL_DIR`` pointing at a folder with their weights
(``../shared/models`` here); the data come from ``--data-dir`` or ``SURFBENCH_DATA_DIR``.
Prints markdown tables and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

UNIVERSAL = ["chgnet-0.3.0", "sevennet-0", "sevennet-l3i5", "sevennet-mf-0", "m3gnet-mp-2021.2.8-pes",
             "m3gnet-matpes-pbe-v2025.1-pes", "tensornet-matpes-pbe-v2025.1-pes"]
SPECIALISTS = ["snap-zuo2020", "qsnap-zuo2020"]
DATASET = "mlearn-surfaces"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_model(model: str, workdir: Path, data_dir: str | None, threads: int) -> float:
    cmd = [sys.executable, "-m", "surfbench.cli", "run", "--model", model, "--dataset", DATASET,
           "--workdir", str(workdir), "--threads", str(threads)]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"# {model}: surfbench run failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return float("nan")
    line = next((ln for ln in proc.stdout.splitlines() if " computed, " in ln), "")
    print(f"# {model}: {line.strip()} ({wall:.1f} s whole process, load {_load()})", flush=True)
    return wall


def _ci(v: float, lo: float, hi: float) -> str:
    if not np.isfinite(v):
        return "-"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="surfbench-results/specialists")
    ap.add_argument("--models", default=",".join(UNIVERSAL + SPECIALISTS))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# load average before: {_load()}; {os.cpu_count()} cores; --threads {args.threads}")
    walls = {m: run_model(m, workdir, args.data_dir, args.threads) for m in models}

    from surfbench.analysis import seen
    from surfbench.analysis.metrics import metrics
    from surfbench.analysis.predictions import bulk_predictions, slab_predictions
    from surfbench.store.results import ResultStore

    with ResultStore(workdir, read_only=True) as store:
        runs = store.runs()
        runs = runs[(runs["dataset"] == DATASET) & (runs["protocol"] == "static") & runs["model"].isin(models)]
        runs = runs.sort_values("last").groupby("model").tail(1)  # the latest fingerprint of each name
        results = pd.concat([store.results(DATASET, fp, "static") for fp in runs["fingerprint"]], ignore_index=True)
        results = seen.mark_from_store(store, results)
    order = [m for m in models if m in set(results["model"])]
    bulks, slabs = bulk_predictions(results), slab_predictions(results)
    from surfbench.analysis.comparable import comparability

    comp = comparability(slabs, order)  # the side-by-side tables below are a ranking only among comparable models
    print(f"# {comp.summary()}")
    if comp.note():
        print(f"# {comp.note()}")

    print("\n## gamma RMSE per element, all 75 slabs (J/m^2; specialists: 64 of them seen in training)\n")
    per_el = metrics(bulks, slabs, by="element")
    g = per_el[per_el["quantity"] == "gamma"].pivot(index="element", columns="model", values="rmse")
    overall = metrics(bulks, slabs)
    tab = g.reindex(columns=order).map(lambda v: f"{v:.3f}")
    tab.loc["all (75)"] = [f"{overall[(overall['model'] == m) & (overall['quantity'] == 'gamma')]['rmse'].iloc[0]:.3f}"
                           for m in order]
    print(tab.to_markdown())

    print("\n## the 11 slabs no model saw (mlearn test split): gamma errors (J/m^2), 95 % bootstrap CI\n")
    summ = seen.seen_summary(slabs, n_boot=args.n_boot).set_index("model").reindex(order)
    common = seen.common_unseen_summary(slabs, n_boot=args.n_boot)
    comp = common[common["element"] == "all"].set_index("model").reindex(order)
    model_time = results.groupby("model")["wall_s"].sum()
    n_struct = results.groupby("model").size()
    rows = []
    for m in order:
        c, s = comp.loc[m], summ.loc[m]
        rows.append({
            "model": comp.label(m),
            "gamma RMSE unseen": _ci(c["gamma_rmse"], c["gamma_rmse_lo"], c["gamma_rmse_hi"]),
            "gamma MAE unseen": _ci(c["gamma_mae"], c["gamma_mae_lo"], c["gamma_mae_hi"]),
            "gamma mean signed error unseen": _ci(c["gamma_mean_signed_error"], c["gamma_mean_signed_error_lo"],
                                                  c["gamma_mean_signed_error_hi"]),
            "n unseen": int(c["gamma_n"]),
            "gamma RMSE seen (n)": f"{s['seen_rmse']:.3f} ({int(s['seen_n'])})" if s["n_seen"] else "-",
            "structures/s (model time)": f"{n_struct[m] / model_time[m]:.1f}",
            "process wall (s)": f"{walls.get(m, float('nan')):.1f}",
        })
    print(pd.DataFrame(rows).to_markdown(index=False))

    print("\n## per element on the unseen slabs (gamma RMSE, J/m^2; 1-2 slabs per element)\n")
    pe = common[common["element"] != "all"].pivot(index="element", columns="model", values="gamma_rmse")
    print(pe.reindex(columns=order).map(lambda v: f"{v:.3f}").to_markdown())
    print(f"\n# load average after: {_load()}")


if __name__ == "__main__":
    main()
