"""Seconds per epoch of deep fine-tuning, and where they go (issue 28): SevenNet-0 fine-tuned on
the Mo ``mlearn-split`` training frames (175 training + 19 validation frames, slabs of the test
split held out), ``paper`` preset, through surfbench's own driver, for a few epochs.

    python benchmarks/finetune_epoch.py [--epochs 3] [--batch-size 4] [--threads 2] [--script on|off]
                                        [--device cpu|cuda] [--work DIR]

Prints, per epoch: wall seconds, the training epoch's stages summed over its batches (batch
loading and collation, forward with forces and stress, loss, backward, optimiser step; from the
driver's own timers, ``<stage>_s`` in each history row), the validation epoch (the rest), the
training and validation loss; then the mean over the epochs after the first (the first pays
one-time costs), with the load average before and after. ``--script`` turns e3nn's TorchScript
compilation of its tensor products on or off for the run (the driver's ``torchscript``
setting, on by default; see ``surfbench.training.sevenn``). Every run starts from the foundation in a fresh
folder (nothing is resumed), so runs with different options are comparable epoch by epoch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def job_for(work: Path, batch_size: int, threads: int, epochs: int, device: str):
    from surfbench.data.mlearn import load_mlearn_surfaces
    from surfbench.training.base import FINETUNE, TrainJob
    from surfbench.training.presets import resolve
    from surfbench.training.protocols import make_folds
    from surfbench.training.splits import load_frames

    settings = resolve("sevennet", "paper", FINETUNE, {"batch_size": batch_size, "threads": threads, "epochs": epochs,
                                                       "patience": None})
    ds = load_mlearn_surfaces(None, elements=["Mo"], download=False)
    frames = load_frames("mlearn", ["Mo"], None, download=False)
    (fold,) = make_folds("mlearn-split", frames, ds, ("Mo",), seed=0, include_surfaces=False, valid_fraction=0.1,
                         max_valid=None, n_valid=None, echo=lambda s: None)
    split = fold.split
    return TrainJob(method="sevennet", mode=FINETUNE, train=split.subset(len(split.pool)), valid=list(split.valid),
                    elements=("Mo",), settings=settings, workdir=work, name="bench-sevennet-mo", device=device,
                    foundation="7net-0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--script", choices=("on", "off"), default="on")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", type=Path, default=None, help="folder for the run (default: a temporary one)")
    args = ap.parse_args()

    from surfbench.training.base import get_trainer

    work = args.work or Path(tempfile.mkdtemp(prefix="finetune-epoch-"))
    shutil.rmtree(work / "bench-sevennet-mo", ignore_errors=True)
    job = job_for(work / "bench-sevennet-mo", args.batch_size, args.threads, args.epochs, args.device)
    job.settings["torchscript"] = args.script == "on"
    n_atoms = sum(f.n_atoms for f in job.train)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    res = get_trainer("sevennet").train(job)
    total = time.perf_counter() - t0
    load1 = os.getloadavg()
    print(f"SevenNet-0 fine-tuning, Mo mlearn-split: {len(job.train)} training frames ({n_atoms} atoms), "
          f"{len(job.valid)} validation frames; batch {args.batch_size}, {args.threads} threads, TorchScript "
          f"{args.script}, device {args.device}")
    stages = ("load_s", "forward_s", "loss_s", "backward_s", "step_s")
    print(f"{'epoch':>5} {'wall s':>7} " + " ".join(f"{s[:-2]:>8}" for s in stages)
          + f" {'valid+rest':>10} {'train loss':>11} {'val loss':>11}")
    for r in res.history:
        rest = r["epoch_s"] - sum(r[s] for s in stages)
        print(f"{r['epoch']:>5} {r['epoch_s']:7.1f} " + " ".join(f"{r[s]:8.1f}" for s in stages)
              + f" {rest:10.1f} {r.get('train_totalloss', float('nan')):11.5f} {r['val_loss']:11.5f}")
    later = res.history[1:] or res.history
    mean = sum(r["epoch_s"] for r in later) / len(later)
    print(f"mean seconds per epoch (epochs {later[0]['epoch']}-{later[-1]['epoch']}): {mean:.1f}; whole run "
          f"{total:.0f} s (set-up included); load average {load0[0]:.2f} before, {load1[0]:.2f} after")


if __name__ == "__main__":
    sys.exit(main())
