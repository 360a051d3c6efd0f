"""Learning curves that answer "fine-tune or scratch" (issue 26): gamma, energy and force errors,
fit wall time and peak memory against the training-set size, for the from-scratch linear
specialists surfbench fits (SNAP, qSNAP) under ``mlearn-split`` and ``facet-cv``, beside the best
zero-shot universal model on the same slabs.

    python benchmarks/curves.py all --work DIR [--methods snap,qsnap] [--protocols mlearn-split,facet-cv]

Steps (each a whole ``surfbench`` process, run one at a time; every result lands in
``DIR/surfbench.sqlite`` and a rerun reuses it; wall time, peak RSS and load average of each
process go to ``DIR/cure-costs.json``, shared with ``benchmarks/cure.py``):

* ``zero-shot``: ``surfbench run`` of the offline universal models (and Zuo's specialists) on
  mlearn-surfaces (the same step as ``benchmarks/cure.py zero-shot``; a shared ``--work`` reuses
  it, and then also shows the readout's curve of ``cure.py curve`` in the same tables);
* ``fit``: ``surfbench train --method M -e Ni,Cu,Li,Mo,Si,Ge --protocol P --sizes
  10%,25%,50%,all`` for every method and protocol: nested seeded subsets of each fold's pool
  (facet-cv: 74 folds per size), each fit closed-form, hence converged;
* ``print``: from the store alone, per protocol and method: the training-set size (median frames
  per fold), gamma RMSE over all judged slabs with its 95 % bootstrap interval, the RMSE on the
  slabs every row of the protocol's table has a gamma for (the only ranking), the gamma RMSE of
  Mo and of Si, energy (meV/atom) and force (eV/Angstrom) RMSE on the mlearn test frames
  (mlearn-split only: a facet-cv fold trains on the test split's bulk frames), the fit wall time
  summed over folds and the largest peak memory of a fit; then, per method, the smallest size
  whose RMSE on the common slabs is below the best zero-shot model's.

MTP-16 is not in these curves: its fits to convergence take hours on 2 cores (issue 26).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cure  # noqa: E402  (the zero-shot step, the process runner, the cost file)

METHODS = ["snap", "qsnap"]
PROTOCOLS = ["mlearn-split", "facet-cv"]
SIZES = "10%,25%,50%,all"
FOCUS = ["Mo", "Si"]


def step_fit(work: Path, threads: int, methods: list[str], protocols: list[str]) -> None:
    for protocol in protocols:
        for method in methods:
            args = ["train", "--method", method, "--protocol", protocol, "-e", cure.ELEMENTS, "--sizes", SIZES,
                    "--store", str(work), "--threads", str(threads)]
            cure._save_cost(work, cure._surfbench(args, f"learning curve {method} {protocol}", work))


def _size_order(size: str) -> float:
    return 100.0 if size == "all" else float(size.rstrip("%"))


def print_tables(work: Path, n_boot: int, methods: list[str], protocols: list[str]) -> None:
    from surfbench.store.results import ResultStore
    from surfbench.training.curves import ZERO_SHOT, protocol_table, trainings

    with ResultStore(work, read_only=True) as store:
        table = protocol_table(store, cure.DATASET, n_boot=n_boot)
        tr = trainings(store)
    table = table[table["elements"] == cure.BLOCK]
    costs = {c["what"]: c for c in cure._costs(work)}
    f = cure._f
    for protocol in protocols:
        block = table[table["protocol"] == protocol]
        allrows = block[block["element"] == "all"]
        zs = allrows[(allrows["kind"] == ZERO_SHOT) & allrows["comparable"]].sort_values("rmse_common")
        if allrows.empty:
            continue
        n_common = int(allrows.loc[allrows["comparable"], "n_common"].min())
        best = zs.iloc[0] if len(zs) else None
        print(f"\n## {protocol}: learning curves on {int(allrows['n_judged'].max())} judged slabs "
              f"({n_common} common to every comparable row); 95 % bootstrap intervals, {n_boot} resamples\n")
        if best is not None:
            print(f"best zero-shot on the common slabs: {best['label']} {f(best['rmse_common'])} J/m^2 "
                  f"(of {len(zs)} zero-shot models)\n")
        print("| method | size | frames per fold (median) | gamma RMSE [95 % CI] | RMSE, common slabs | "
              + " | ".join(f"{el} gamma RMSE" for el in FOCUS)
              + " | test E RMSE (meV/atom) | test F RMSE (eV/A) | fit wall, all folds (s) | peak RSS (MB) | below best zero-shot |")
        print("|---|---|---|---|---|" + "---|" * len(FOCUS) + "---|---|---|---|---|")
        smallest: dict[str, str] = {}
        for method in [*methods, "readout"]:
            rows = allrows[allrows["method"] == method]
            if method == "readout":  # cure.py's curve, where the work folder is shared with it
                rows = rows[rows["foundation"] == cure.BASES[0]]
                rows = rows[rows["overrides"] == ""]
            if rows.empty:
                continue
            for _, r in sorted(rows.iterrows(), key=lambda kv: _size_order(kv[1]["size"])):
                per_el = []
                for el in FOCUS:
                    e = block[(block["group"] == r["group"]) & (block["element"] == el)]
                    per_el.append("-" if e.empty else f(e.iloc[0]["gamma_rmse"]))
                fits = tr[(tr["curve"] == r["curve"]) & (tr["size"] == r["size"])]
                fm = fits.iloc[0]["frame_metrics"] if len(fits) == 1 and isinstance(fits.iloc[0]["frame_metrics"], dict) else {}
                e_rmse = fm.get("energy_rmse_ev_per_atom")
                beats = best is not None and r["comparable"] and r["rmse_common"] < best["rmse_common"]
                if beats and method not in smallest:
                    smallest[method] = r["size"]
                label = method if method != "readout" else f"readout on {cure.BASES[0]}"
                print(f"| {label} | {r['size']} | {r['n_train']:.0f} | {cure._ci(r, 'gamma_rmse')} | {f(r['rmse_common'])} | "
                      + " | ".join(per_el)
                      + f" | {f(1000 * e_rmse, 1) if e_rmse is not None else '-'} | {f(fm.get('force_rmse_ev_per_a'))} | "
                      f"{f(r['wall_s'], 1)} | {f(r['peak_rss_mb'], 0)} | {'yes' if beats else 'no'} |")
        for method in [*methods, "readout"]:
            if (allrows["method"] == method).any():
                print(f"\n{protocol}, {method}: smallest size below the best zero-shot model: {smallest.get(method, 'none')}")
    print("\n## whole processes\n")
    print("| step | wall (s) | peak RSS (MB) | load before -> after |")
    print("|---|---|---|---|")
    for what, c in costs.items():
        if what.startswith("learning curve") or what.startswith("zero-shot"):
            print(f"| {what} | {f(c['wall_s'], 1)} | {f(c['peak_rss_mb'], 0)} | {c['load_before']} -> {c['load_after']} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["zero-shot", "fit", "print", "all"])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--methods", default=",".join(METHODS), help="Comma-separated: snap, qsnap.")
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help="Comma-separated: mlearn-split, facet-cv.")
    a = p.parse_args(argv)
    methods = [m for m in a.methods.split(",") if m]
    protocols = [q for q in a.protocols.split(",") if q]
    if bad := sorted(set(methods) - set(METHODS)) + sorted(set(protocols) - set(PROTOCOLS)):
        p.error(f"unknown: {', '.join(bad)}")
    a.work.mkdir(parents=True, exist_ok=True)
    print(f"# learning curves in {a.work}, {os.cpu_count()} CPUs, load {cure._load()}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    if a.step in ("zero-shot", "all"):
        cure.step_zero_shot(a.work, a.threads)
    if a.step in ("fit", "all"):
        step_fit(a.work, a.threads, methods, protocols)
    if a.step in ("print", "all"):
        print_tables(a.work, a.n_boot, methods, protocols)
    print(f"# load {cure._load()}")


if __name__ == "__main__":
    main()
