"""Fine-tuning M3GNet (m3gnet-mp-2021.2.8-pes) on one element's mlearn training frames, with the
slabs held out: time per epoch and the static surface-energy RMSE before and after.

    SURFBENCH_MODEL_DIR=../shared/models python benchmarks/train_finetune_m3gnet.py \\
        --data-dir ../shared/data --element Mo --n-train 150 --epochs 2

The training pool is :func:`surfbench.training.splits.make_split` of the element's frames with
every "Surface" frame (and any copy of an evaluated slab) held out; the first ``--n-train``
frames of the seeded shuffle are trained on, validation frames as the preset says. The preset's
settings are used (``cpu-quick`` by default) except ``--epochs`` if given. Both models are then
evaluated with the static protocol on that element's slabs of ``mlearn-surfaces`` (gamma from
each model's own bulk energy) and the gamma RMSE (J/m^2) printed. Speed targets live here,
never in timed test assertions.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml


def gamma_rmse(store, dataset_name: str, fingerprint: str) -> tuple[float, int, int]:
    """(gamma RMSE in J/m^2, slabs with a gamma, slabs) of one model's static results."""
    from surfbench.analysis.predictions import slab_predictions

    slabs = slab_predictions(store.results(dataset=dataset_name, fingerprint=fingerprint, protocol="static"))
    err = slabs["error_gamma_j_per_m2"].to_numpy(dtype=float)
    ok = np.isfinite(err)
    return float(np.sqrt(np.mean(err[ok] ** 2))), int(ok.sum()), len(err)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("SURFBENCH_DATA_DIR", "../shared/data"))
    ap.add_argument("--element", default="Mo")
    ap.add_argument("--n-train", type=int, default=150)
    ap.add_argument("--preset", default="cpu-quick")
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="default: a temporary folder")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from surfbench.data.mlearn import load_mlearn_frames, load_mlearn_surfaces
    from surfbench.execution.runner import run
    from surfbench.models import load_model, registry
    from surfbench.store.results import ResultStore
    from surfbench.training.base import FINETUNE, TrainJob, get_trainer
    from surfbench.training.matgl import DEFAULT_FOUNDATION, DEFAULT_SETTINGS
    from surfbench.training.splits import make_split

    try:
        from surfbench.training.presets import resolve

        settings = resolve("m3gnet", args.preset, FINETUNE)
    except ImportError:  # the driver's own presets
        preset = dict(DEFAULT_SETTINGS[args.preset])
        settings = {**{k: v for k, v in preset.items() if not isinstance(v, dict)}, **preset.get(FINETUNE, {})}
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    settings["threads"] = args.threads

    el = args.element
    work = Path(args.workdir or tempfile.mkdtemp(prefix="surfbench-ft-m3gnet-"))
    work.mkdir(parents=True, exist_ok=True)
    surfaces = load_mlearn_surfaces(args.data_dir, elements=[el], download=False)
    frames = load_mlearn_frames([el], data_dir=args.data_dir, download=False)
    split = make_split(frames, surfaces, [el], seed=args.seed, valid_fraction=settings.get("valid_fraction", 0.1),
                       max_valid=settings.get("max_valid"))
    train = split.subset(min(args.n_train, len(split.pool)))
    name = f"m3gnet-ft-{el.lower()}-{args.preset}-n{len(train)}-s{args.seed}"
    job = TrainJob(method="m3gnet", mode=FINETUNE, train=train, valid=split.valid, elements=(el,), settings=settings,
                   workdir=work / name, name=name, seed=args.seed, foundation=DEFAULT_FOUNDATION)
    print(f"{el}: {len(train)} training frames ({sum(f.n_atoms for f in train)} atoms), {len(split.valid)} validation, "
          f"{len(split.held_out)} held out; settings {settings}", flush=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = get_trainer("m3gnet").train(job)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n_epochs = len(result.history)
    print(f"training: {wall:.0f} s wall, {cpu:.0f} s CPU for {n_epochs} epochs = {wall / n_epochs:.0f} s wall "
          f"({cpu / n_epochs:.0f} s CPU) per epoch (incl. graph building and model loading), "
          f"peak RSS {result.peak_rss_mb:.0f} MB", flush=True)
    for row in result.history:
        print("  " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))

    extra = work / "registry.yaml"
    extra.write_text(yaml.safe_dump({"models": [result.registry_entry]}))
    os.environ["SURFBENCH_REGISTRY_EXTRA"] = str(extra)
    registry._registry_for.cache_clear()
    with ResultStore(work / "store.sqlite") as store:
        rows = []
        for model_name in (DEFAULT_FOUNDATION, name):
            model = load_model(model_name)
            t = time.perf_counter()
            run(surfaces, model, store, "static", threads=args.threads)
            rmse, n_ok, n = gamma_rmse(store, surfaces.name, model.fingerprint.id)
            rows.append((model_name, rmse, n_ok, n, time.perf_counter() - t))
    print(f"static gamma RMSE on the {el} slabs of mlearn-surfaces:")
    for model_name, rmse, n_ok, n, t in rows:
        print(f"  {model_name:45s} {rmse:.3f} J/m^2 ({n_ok}/{n} slabs, {t:.0f} s)")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
