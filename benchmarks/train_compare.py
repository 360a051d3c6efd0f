"""Fine-tuned vs from scratch vs zero-shot on one element, with the ``cpu-quick`` preset on
2 CPU cores: the paper's second question through surfbench's own pipeline.

    python benchmarks/train_compare.py --element Mo --store bench-train

1. zero-shot: the static protocol on the element's slabs of ``mlearn-surfaces`` for the
   universal models given with ``--zero-shot`` (offline ones by default, TensorNet-MatPES
   included); the fine-tuned method's foundation is also evaluated on the test frames, and its
   zero-shot row shows those energy and force errors;
2. from scratch: ``surfbench train --method <--scratch> --from scratch --preset cpu-quick``
   (an MTP by default: motep, level 8);
3. fine-tuned: ``surfbench train --method <method> --from <foundation> --preset cpu-quick``
   (M3GNet-MP-2021.2.8 through matgl by default);

each trained on the element's mlearn training frames with every frame of an evaluated slab
held out, on the nested subsets ``--sizes`` (default: the whole pool), and evaluated on the
held-out slabs (gamma) and the test frames (energies, forces). Prints one table: gamma RMSE
and mean signed error (J/m^2), energy (eV/atom) and force (eV/A) RMSE on the test frames,
training wall and CPU time, peak memory and parameters; and writes it as JSON into the store
folder. The store keeps everything: a rerun reuses trained models and results, and
``surfbench report --workdir <store>`` shows the learning curves and the comparison.

Data and models: ``$SURFBENCH_DATA_DIR`` / ``$SURFBENCH_MODEL_DIR``, by default the ``shared``
folder beside the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ZERO_SHOT = ("chgnet-0.3.0", "sevennet-0", "m3gnet-mp-2021.2.8-pes", "m3gnet-matpes-pbe-v2025.1-pes",
             "tensornet-matpes-pbe-v2025.1-pes")


def _fmt(v, fmt="{:.3f}") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _add_zero_shot(rows: list[dict], zero_shot) -> None:
    """Put the test-frame errors of a foundation evaluated zero-shot by ``train_curve`` into its
    zero-shot row (a new row first when ``--zero-shot`` did not name it)."""
    row = next((r for r in rows if r["kind"] == "zero-shot" and r["model"] == zero_shot.name), None)
    if row is None:
        row = {"model": zero_shot.name, "kind": "zero-shot", "n_train": 0, **zero_shot.surface}
        rows.insert(sum(r["kind"] == "zero-shot" for r in rows), row)
    row.update(zero_shot.frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--element", default="Mo")
    ap.add_argument("--store", default="bench-train", help="project folder (store, trained models)")
    ap.add_argument("--sizes", default="all", help="training-set sizes, e.g. 25,50,all")
    ap.add_argument("--scratch", default="mtp", help="method trained from scratch (mtp, mace, nequip, m3gnet; '' for none)")
    ap.add_argument("--finetune", default="m3gnet:m3gnet-mp-2021.2.8-pes", help="method:foundation to fine-tune ('' for none)")
    ap.add_argument("--zero-shot", default=",".join(ZERO_SHOT), help="universal models evaluated zero-shot")
    ap.add_argument("--preset", default="cpu-quick")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if SHARED.is_dir():
        os.environ.setdefault("SURFBENCH_DATA_DIR", str(SHARED / "data"))
        os.environ.setdefault("SURFBENCH_MODEL_DIR", str(SHARED / "models"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from surfbench.data.mlearn import load_mlearn_surfaces
    from surfbench.execution.runner import run
    from surfbench.models import ModelLoadError, load_model
    from surfbench.store.results import ResultStore
    from surfbench.training.pipeline import surface_metrics, train_curve

    store_dir = Path(args.store)
    el = args.element
    ds = load_mlearn_surfaces(elements=[el], download=False)
    rows = []
    load_before = os.getloadavg()

    with ResultStore(store_dir) as store:
        for name in [m for m in args.zero_shot.split(",") if m]:
            t0 = time.perf_counter()
            try:
                model = load_model(name)
                summary = run(ds, model, store, "static", threads=args.threads)
            except ModelLoadError as exc:
                print(f"zero-shot {name}: skipped ({exc})")
                continue
            m = surface_metrics(store, ds.name, summary.fingerprint, {el})
            rows.append({"model": name, "kind": "zero-shot", "n_train": 0, **m, "eval_wall_s": time.perf_counter() - t0})
            print(f"zero-shot {name}: gamma RMSE {_fmt(m.get('gamma_rmse'))} J/m^2 ({summary.computed} computed, "
                  f"{summary.reused} reused)", flush=True)

    sizes = args.sizes.split(",")
    runs = [(args.scratch, "scratch")] if args.scratch else []
    if args.finetune:
        method, _, foundation = args.finetune.partition(":")
        runs.append((method, foundation))
    for method, source in runs:
        t0 = time.perf_counter()
        result = train_curve(method, source, elements=[el], store_dir=store_dir, preset=args.preset, sizes=sizes,
                             seed=args.seed, threads=args.threads, download=False,
                             echo=lambda s: print(s, flush=True))
        for r in result.models:
            rows.append({"model": r.name, "kind": "from scratch" if source == "scratch" else f"fine-tuned ({source})",
                         "n_train": r.n_train, **r.surface, **r.frames, "train_wall_s": r.wall_s,
                         "peak_rss_mb": r.peak_rss_mb, "n_parameters": r.n_parameters,
                         "pipeline_wall_s": time.perf_counter() - t0})
        split = result.split.summary()
        if result.zero_shot is not None:  # the foundation on the same test frames (energy, forces)
            _add_zero_shot(rows, result.zero_shot)
    if not runs:
        split = {"n_evaluated_slabs": len(ds.surfaces), "n_held_out": "-", "held_out_reasons": "-", "n_pool": "-",
                 "n_valid": "-"}

    load_after = os.getloadavg()
    print()
    print(f"{el}: gamma on {split['n_evaluated_slabs']} held-out slabs (held out: {split['n_held_out']} frames, "
          f"{split['held_out_reasons']}); training pool {split['n_pool']} frames, {split['n_valid']} validation; "
          f"preset {args.preset}, {args.threads} threads; load average {load_before[0]:.1f} -> {load_after[0]:.1f}")
    head = ("model", "kind", "n_train", "gamma RMSE", "gamma MSE", "slab E RMSE", "test E RMSE", "test F RMSE",
            "train wall s", "peak MB", "params")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    with ResultStore(store_dir) as store:
        from surfbench.store.trainings import trainings

        cpu = trainings(store).set_index("name")["cpu_s"].to_dict()
    for r in rows:
        wall = r.get("train_wall_s")
        wall_txt = "-" if wall is None else f"{wall:.0f} (CPU {_fmt(cpu.get(r['model']), '{:.0f}')})"
        print("| " + " | ".join([
            r["model"], r["kind"], str(r["n_train"]), _fmt(r.get("gamma_rmse")), _fmt(r.get("gamma_mean_signed_error"), "{:+.3f}"),
            _fmt(r.get("slab_rmse"), "{:.4f}"), _fmt(r.get("energy_rmse_ev_per_atom"), "{:.4f}"),
            _fmt(r.get("force_rmse_ev_per_a")), wall_txt, _fmt(r.get("peak_rss_mb"), "{:.0f}"),
            _fmt(r.get("n_parameters"), "{:,}"),
        ]) + " |")
    out = store_dir / f"train-compare-{el}.json"
    out.write_text(json.dumps({"element": el, "preset": args.preset, "threads": args.threads, "split": split,
                               "load_average": [load_before, load_after], "rows": rows}, indent=1, default=str))
    print(f"\nwrote {out}; 'surfbench report --workdir {store_dir}' shows the learning curves")


if __name__ == "__main__":
    main()
