"""The training section: learning curves (paper Fig. S6/S7), the Table I style comparison of
zero-shot, fine-tuned and from-scratch models, the held-out frames, the evaluation protocols and
which trainings did not converge or finish. Reads only the store
(:mod:`surfbench.training.curves`)."""

from __future__ import annotations

import pandas as pd

from surfbench.report.markup import esc, html_table
from surfbench.report.section import ReportContext, Section
from surfbench.report.training_figures import (
    comparison_bars,
    comparison_display,
    cost_curves,
    curve_display,
    learning_curves,
    protocols_html,
)
from surfbench.training.curves import comparison_table, curve_table, held_out_table, protocol_table


def convergence_html(store, curves: pd.DataFrame) -> str:
    """Which trained models did not converge (their tables' mark, with how they stopped), and
    the deep trainings not finished (killed or running: :func:`surfbench.training.epochs.unfinished_runs`)."""
    from pathlib import Path

    from surfbench.training.epochs import unfinished_runs
    from surfbench.training.pipeline import TRAINED_DIR

    marks = (curves[curves["not_converged"].fillna("").astype(str) != ""] if "not_converged" in curves
             else curves.iloc[:0])
    out = []
    if len(marks):
        out.append(f'<p class="note"><b>{len(marks)} of {int((curves["n_train"] > 0).sum())} trained models did not '
                   "converge</b> (marked NOT CONVERGED, with how they stopped: epoch-cap, iteration-cap or "
                   "budget-stopped): their numbers show where a training stands, not what the method reaches. "
                   + esc(", ".join(marks["model"])) + ".</p>")
    runs = unfinished_runs(Path(store.path).parent / TRAINED_DIR)
    if runs:
        out.append('<p class="note">Trainings not finished (their last checkpoint is no recorded model; the same '
                   "<code>surfbench train</code> command with <code>--resume</code> continues each): " + esc("; ".join(
                       f"{r['name']}: {r['state']} after {r['epochs_done']} epochs" for r in runs)) + ".</p>")
    return "".join(out)


def build(ctx: ReportContext) -> Section:
    """The section for the report's data set."""
    store, dataset, table = ctx.store, ctx.dataset, html_table
    curves = curve_table(store, dataset)
    out = Section(payload={"training": {}})
    if curves.empty:
        out.body = ("<p>No model trained on this data set is recorded in the store. <code>surfbench train --method M "
                    "--from scratch|MODEL --elements El</code> trains one (a learning curve with "
                    "<code>--sizes</code>), evaluates it on the held-out slabs and records its cost; this section "
                    "then compares zero-shot, "
                    "fine-tuned and from-scratch models.</p>")
        return out
    comp = comparison_table(store, dataset)
    held = held_out_table(store, dataset)
    out.tables = {"training-comparison": comp, "training-curves": curves, "training-held-out": held}
    n_leak = int(held["training frames equal to an evaluated slab"].sum()) if not held.empty else 0
    incl = held[held["surfaces included"]] if not held.empty else held
    protocols = protocol_table(store, dataset)
    if not protocols.empty:
        out.tables["training-protocols"] = protocols
    parts = [convergence_html(store, curves), protocols_html(protocols, table),
             "<h3>Held-out frames</h3>",
             "<p>A trained model is evaluated on the slabs of its elements in this data set. Under the no-surfaces "
             "protocol (the default) no frame of "
             "those slabs is trained or validated on: frames of the group \"Surface\", unlabelled frames with a vacuum "
             "gap (the Ni/Cu extxyz training frames) and any frame whose structure equals an evaluated slab are held "
             "out. Independent check from the store: training frames whose structure hash equals an evaluated slab "
             f"record: <b>{n_leak}</b>.</p>"]
    if len(incl):
        parts.append(f'<p class="note">Surfaces were included in training on request (--include-surfaces) for: '
                     f"{esc(', '.join(incl['curve']))}. Their γ errors are not held-out errors.</p>")
    held_show = held.drop(columns=["held-out frames"]) if not held.empty else held
    parts.append(table(held_show, align_numbers=False))
    if not held.empty:
        parts.append("<details><summary>held-out frames per curve (file#index)</summary>" + "".join(
            f"<p><b>{esc(r['curve'])}</b>: {esc(r['held-out frames']) or 'none'}</p>" for _, r in held.iterrows())
            + "</details>")
    if not comp.empty:
        out.figures.append(("training-comparison", comparison_bars(comp),
                            "γ RMSE per element and over all trained elements: every zero-shot model in the store, "
                            "and the largest model of each fine-tuning and from-scratch curve, on the same held-out "
                            "slabs."))
        parts.append("<h3>Zero-shot vs fine-tuned vs from scratch (Table I)</h3>"
                     "<p>Per element and overall (“all”: the slabs of every trained element; for trained models the "
                     "per-element models of one method, mode and preset pooled). Test E/F: energy per atom and force "
                     "components on the data's test frames (never trained on).</p>" + table(comparison_display(comp)))
    out.figures.append(("learning-curves", learning_curves(curves),
                        "Learning curves (paper Fig. S6/S7): each model is trained on a nested random subset of the "
                        "training frames (a larger subset contains the smaller ones; same validation frames) and "
                        "evaluated on the held-out slabs (γ) and the test frames (energy per atom, forces). Solid: "
                        "fine-tuned; dashed: from scratch; dotted: the foundation model zero-shot."))
    out.figures.append(("training-cost", cost_curves(curves),
                        "Training cost: wall time of the training run (s), its peak resident memory (MB; of the "
                        "training subprocess, or of the whole process for in-process drivers) and trainable "
                        "parameters, against the training-set size."))
    parts.append("<h3>Learning curves</h3>" + table(curve_display(curves), align_numbers=False))
    out.body = "".join(parts)
    out.payload = {"training": {"n_trainings": int((curves["n_train"] > 0).sum()),
                                "training_frames_equal_to_evaluated_slabs": n_leak,
                                "curves": sorted(curves["curve"].unique().tolist())}}
    return out
