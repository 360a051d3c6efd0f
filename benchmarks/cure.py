"""The cure that converges on a laptop (issue 24): the frozen-feature readout under the three
evaluation protocols, beside every zero-shot model, the softening scale correction and the
data's own specialists, with the cost of each fit and the readout's learning curves.

    python benchmarks/cure.py all --work DIR [--n-boot 2000] [--threads 2]

Steps (each a whole ``surfbench`` process; every result lands in ``DIR/surfbench.sqlite`` and a
rerun reuses it; the costs go to ``DIR/cure-costs.json``):

* ``zero-shot``: ``surfbench run`` of the 7 offline universal models and the two specialists
  (SNAP, qSNAP of Zuo et al. 2020, fitted on the mlearn training split with its slabs) on
  mlearn-surfaces;
* ``scale``: ``surfbench softening`` of the readout base models (the one-number scale
  correction, fitted on 10 training frames that are not slabs, judged on every slab);
* ``readout``: ``surfbench train --method readout --from BASE -e Ni,Cu,Li,Mo,Si,Ge`` under
  facet-cv, mlearn-split and no-surfaces for BASE in SevenNet-0, TensorNet-MatPES and CHGNet
  0.3.0, facet-cv first so that its wall time includes computing the features; wall time and
  peak memory of each whole process (``os.wait4``); then the reruns: the same facet-cv command
  again (everything reused), and a refit of all 74 folds from the cached features into a fresh
  store (fits and evaluations again, no feature pass);
* ``variant``: the SevenNet-0 readout with ``--set slab_weight=cv`` (the weight of the slab
  frames in the fit chosen by cross-validation on the training slab frames) under mlearn-split
  and facet-cv;
* ``curve``: the SevenNet-0 readout at 10, 25, 50 and 100 % of each fold's pool under
  mlearn-split and facet-cv (nested seeded subsets, as ``--sizes``);
* ``print``: the tables below, from the store alone.

Printed: per protocol, per element and overall, gamma RMSE and mean signed error (J/m^2) with
95 % percentile-bootstrap intervals over the judged slabs, the RMSE on the slabs every row has a
gamma for (the only ranking), the lowest facet right per element (strictly, and within 0.025
J/m^2 of the DFT minimum), the fit costs; the learning curve and the smallest training-set size
at which the readout beats the best zero-shot model on common slabs. Load averages are printed
beside every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

UNIVERSAL = ["chgnet-0.3.0", "sevennet-0", "sevennet-l3i5", "sevennet-mf-0", "m3gnet-mp-2021.2.8-pes",
             "m3gnet-matpes-pbe-v2025.1-pes", "tensornet-matpes-pbe-v2025.1-pes"]
SPECIALISTS = ["snap-zuo2020", "qsnap-zuo2020"]
BASES = ["sevennet-0", "tensornet-matpes-pbe-v2025.1-pes", "chgnet-0.3.0"]
PROTOCOLS = ["facet-cv", "mlearn-split", "no-surfaces"]
ELEMENTS = "Ni,Cu,Li,Mo,Si,Ge"
BLOCK = ",".join(sorted(ELEMENTS.split(",")))  # the protocol table's key: the trained elements, sorted
CURVE_SIZES = "10%,25%,50%,all"
DATASET = "mlearn-surfaces"


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _surfbench(args: list[str], what: str, work: Path) -> dict:
    """Run ``surfbench ARGS`` as a whole process (log in ``WORK/logs``): wall and CPU time (s),
    peak RSS (MB) of the process (``os.wait4``), load average before and after."""
    from surfbench.training.base import TrainingError
    from surfbench.training.resources import run_command

    log = work / "logs" / (what.replace(" ", "_").replace("/", "_") + ".log")
    load0 = _load()
    try:
        res = run_command([sys.executable, "-m", "surfbench.cli", *args], log, what=what)
        rec = {"wall_s": res.wall_s, "cpu_s": res.cpu_s, "peak_rss_mb": res.peak_rss_mb, "ok": True}
    except TrainingError as exc:
        print(f"# {what}: FAILED\n{exc}", flush=True)
        rec = {"wall_s": float("nan"), "cpu_s": float("nan"), "peak_rss_mb": float("nan"), "ok": False}
    rec.update({"what": what, "cmd": " ".join(["surfbench", *args]), "load_before": load0, "load_after": _load(),
                "log": str(log)})
    if rec["ok"]:
        print(f"# {what}: {rec['wall_s']:.1f} s (CPU {rec['cpu_s']:.0f} s), peak {rec['peak_rss_mb']:.0f} MB, "
              f"load {load0} -> {rec['load_after']}", flush=True)
    return rec


def _costs(work: Path) -> list[dict]:
    path = work / "cure-costs.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _save_cost(work: Path, rec: dict) -> None:
    costs = [c for c in _costs(work) if c["what"] != rec["what"]] + [rec]
    (work / "cure-costs.json").write_text(json.dumps(costs, indent=1))


def step_zero_shot(work: Path, threads: int) -> None:
    for model in UNIVERSAL + SPECIALISTS:
        _save_cost(work, _surfbench(["run", "--model", model, "--dataset", DATASET, "--workdir", str(work),
                                     "--threads", str(threads)], f"zero-shot {model}", work))


def step_scale(work: Path, threads: int) -> None:
    for base in BASES:
        _save_cost(work, _surfbench(["softening", "-m", base, "--workdir", str(work), "--out", str(work / "softening"),
                                     "--frames-split", "train", "--max-frames-per-group", "3", "--no-png",
                                     "--threads", str(threads)], f"scale correction {base}", work))


def _train(work: Path, base: str, protocol: str, threads: int, extra: list[str] | None = None) -> list[str]:
    return ["train", "--method", "readout", "--from", base, "--protocol", protocol, "-e", ELEMENTS,
            "--store", str(work), "--threads", str(threads), *(extra or [])]


def step_readout(work: Path, threads: int) -> None:
    for base in BASES:
        for protocol in PROTOCOLS:
            _save_cost(work, _surfbench(_train(work, base, protocol, threads), f"readout {base} {protocol}", work))
    step_rerun(work, threads)


def step_rerun(work: Path, threads: int) -> None:
    """The cost of a rerun: the same facet-cv command (all reused), then all 74 folds refitted and
    evaluated from the cached features in a fresh store (no feature pass)."""
    base = BASES[0]
    _save_cost(work, _surfbench(_train(work, base, "facet-cv", threads), f"rerun (all reused) readout {base} facet-cv",
                                work))
    refit = work / "refit"
    shutil.rmtree(refit, ignore_errors=True)
    refit.mkdir()
    shutil.copytree(work / "surfbench-descriptors", refit / "surfbench-descriptors")
    _save_cost(work, _surfbench(_train(refit, base, "facet-cv", threads),
                                f"refit from cached features readout {base} facet-cv", work))


def step_variant(work: Path, threads: int) -> None:
    """The SevenNet-0 readout with its slab weight chosen by CV on the training slab frames."""
    for protocol in ("mlearn-split", "facet-cv"):
        _save_cost(work, _surfbench(_train(work, BASES[0], protocol, threads, ["--set", "slab_weight=cv"]),
                                    f"readout {BASES[0]} {protocol} slab_weight=cv", work))


def step_curve(work: Path, threads: int) -> None:
    for protocol in ("mlearn-split", "facet-cv"):
        _save_cost(work, _surfbench(_train(work, BASES[0], protocol, threads, ["--sizes", CURVE_SIZES]),
                                    f"learning curve readout {BASES[0]} {protocol}", work))


# ---------------------------------------------------------------------------- printing


def _f(x, d=3, signed=False) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:+.{d}f}" if signed else f"{x:.{d}f}"


def _ci(r, stat: str, signed: bool = False) -> str:
    return f"{_f(r[stat], signed=signed)} [{_f(r[stat + '_lo'], signed=signed)}, {_f(r[stat + '_hi'], signed=signed)}]"


def _name(r) -> str:
    from surfbench.report.protocol_console import short_label

    return short_label(r)


def print_tables(work: Path, n_boot: int) -> None:
    from surfbench.store.results import ResultStore
    from surfbench.training.curves import SPECIALIST, ZERO_SHOT, protocol_table

    with ResultStore(work, read_only=True) as store:
        table = protocol_table(store, DATASET, n_boot=n_boot)
    costs = {c["what"]: c for c in _costs(work)}
    full = table[table["size"].isin(["all", ""])]
    for protocol in PROTOCOLS:
        block = full[(full["protocol"] == protocol) & (full["elements"] == BLOCK)]
        if block.empty:
            continue
        allrows = block[block["element"] == "all"].sort_values("rmse_common")
        n_common = int(allrows["n_common"].min())
        print(f"\n## {protocol}: gamma on {int(allrows['n_judged'].max())} judged slabs "
              f"(ranked on the {n_common} every model has a gamma for); 95 % bootstrap intervals, {n_boot} resamples\n")
        print("| model | kind | gamma RMSE [95 % CI] | mean signed error [95 % CI] | RMSE, common slabs | lowest facet right "
              "(strict / within 0.025) | train command wall (s) | its peak RSS (MB) |")
        print("|---|---|---|---|---|---|---|---|")
        for _, r in allrows.iterrows():
            kind = r["kind"] + (f" (saw {r['n_seen']} of these slabs)" if r["n_seen"] else "")
            what = f"readout {r['foundation']} {protocol}" + (f" {r['overrides']}" if r["overrides"] else "")
            cost = costs.get(what) if r["method"] == "readout" else None
            print(f"| {_name(r)} | {kind} | {_ci(r, 'gamma_rmse')} | {_ci(r, 'gamma_mean_signed_error', True)} | "
                  f"{_f(r['rmse_common'])} (n={r['n_common']}) | {r['lowest_right']}/{r['n_elements']} / "
                  f"{r['lowest_right_tol']}/{r['n_elements']} | {_f(cost['wall_s'], 1) if cost else '-'} | "
                  f"{_f(cost['peak_rss_mb'], 0) if cost else '-'} |")
        els = sorted(set(block["element"]) - {"all"})
        print("\nPer element, gamma RMSE (J/m^2) [lowest facet right: strict/0.025]:\n")
        print("| model | " + " | ".join(els) + " |")
        print("|---|" + "---|" * len(els))
        for _, r in allrows.iterrows():
            cells = []
            for el in els:
                e = block[(block["group"] == r["group"]) & (block["element"] == el)]
                cells.append("-" if e.empty else f"{_f(e.iloc[0]['gamma_rmse'])} [{'y' if e.iloc[0]['lowest_right'] else 'n'}"
                             f"/{'y' if e.iloc[0]['lowest_right_tol'] else 'n'}]")
            print(f"| {_name(r)} | " + " | ".join(cells) + " |")
        zs = allrows[allrows["kind"] == ZERO_SHOT]
        if len(zs):
            best = zs.iloc[0]
            print(f"\nbest zero-shot on the {n_common} common slabs: {best['label']} {_f(best['rmse_common'])} J/m^2; "
                  f"specialists ({SPECIALIST}) are not ranked where they saw judged slabs")

    curve = table[(table["method"] == "readout") & (table["foundation"] == BASES[0]) & (table["element"] == "all")
                  & (table["elements"] == BLOCK)]
    print(f"\n## learning curve: readout on {BASES[0]} (sizes: % of each fold's pool)\n")
    print("| protocol | size | median training frames (slab frames among them) | gamma RMSE [95 % CI] | RMSE, common slabs "
          "| best zero-shot, common | below it |")
    print("|---|---|---|---|---|---|---|")
    for protocol in ("mlearn-split", "facet-cv"):
        c = curve[curve["protocol"] == protocol]
        zs = table[(table["protocol"] == protocol) & (table["elements"] == BLOCK) & (table["element"] == "all")
                   & (table["kind"] == ZERO_SHOT)]
        if c.empty or zs.empty:
            continue
        # the common slabs of a block hold every size: compare on them
        best = zs.sort_values("rmse_common").iloc[0]
        smallest = None
        for _, r in c.assign(_n=c["n_train"]).sort_values("_n").iterrows():
            beats = r["rmse_common"] < best["rmse_common"]
            if beats and smallest is None:
                smallest = r["size"]
            print(f"| {protocol} | {r['size']} | {r['n_train']:.0f} ({r['n_train_slabs']:.0f}) | {_ci(r, 'gamma_rmse')} | "
                  f"{_f(r['rmse_common'])} | "
                  f"{best['label']} {_f(best['rmse_common'])} | {'yes' if beats else 'no'} |")
        print(f"| {protocol} | smallest size whose RMSE is below the best zero-shot's: {smallest or 'none'} | | | | | |")

    print("\n## costs (whole processes)\n")
    print("| step | wall (s) | peak RSS (MB) | load before -> after |")
    print("|---|---|---|---|")
    for c in _costs(work):
        print(f"| {c['what']} | {_f(c['wall_s'], 1)} | {_f(c['peak_rss_mb'], 0)} | {c['load_before']} -> {c['load_after']} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["zero-shot", "scale", "readout", "rerun", "variant", "curve", "print", "all"])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-boot", type=int, default=2000)
    a = p.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    print(f"# cure benchmark in {a.work}, {os.cpu_count()} CPUs, load {_load()}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    steps = {"zero-shot": step_zero_shot, "scale": step_scale, "readout": step_readout, "rerun": step_rerun,
             "variant": step_variant, "curve": step_curve}
    for name, func in steps.items():
        if a.step == name or (a.step == "all" and name != "rerun"):  # "readout" ends with the reruns
            func(a.work, a.threads)
    if a.step in ("print", "all"):
        print_tables(a.work, a.n_boot)


if __name__ == "__main__":
    main()
