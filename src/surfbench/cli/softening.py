"""``surfbench softening``: softening slopes and a cheap correction (Deng et al. 2025)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from surfbench.cli.common import DataDirOpt, WorkdirOpt, app, console, err, fail, load_dataset, progress_bar


@app.command()
def softening(
    model: Annotated[list[str], typer.Option("--model", "-m", help="Model(s) to study; repeat the option for several.")] = ["chgnet-0.3.0"],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Surface data set judged before/after the correction (an mlearn one: the frames are the mlearn frames).")] = "mlearn-surfaces",
    workdir: WorkdirOpt = Path("."),
    data_dir: DataDirOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for the tables (CSV/JSON), the fitted corrections and the figures.")] = Path("softening"),
    frames_split: Annotated[str, typer.Option(help="mlearn frames to evaluate: all, train or test (fitting needs train).")] = "all",
    max_frames_per_group: Annotated[int | None, typer.Option(help="At most this many frames per (element, split, group), seeded (default: every frame).")] = None,
    fit_frames: Annotated[int, typer.Option(help="Training frames the correction is fitted on (per element with --per-element).")] = 10,
    per_element: Annotated[bool, typer.Option(help="Fit one scale per element instead of one per model.")] = False,
    energy_weight: Annotated[float, typer.Option(help="Weight of the energy MSE ((eV/atom)^2) in the fit.")] = 1.0,
    force_weight: Annotated[float, typer.Option(help="Weight of the force MSE ((eV/Angstrom)^2) in the fit.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of frame sampling and bootstrap intervals.")] = 0,
    device: Annotated[str, typer.Option(help="Torch device: cpu or cuda.")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads (default: torch's).")] = None,
    png: Annotated[bool, typer.Option(help="Also write the figures as PNG (needs Chromium).")] = True,
) -> None:
    """Systematic softening (Deng et al. 2025): slopes of predicted vs DFT forces, energies and
    surface energies per model, element and frame group, and a cheap correction (one energy/force
    scale about the bulk reference) fitted on a few training frames, judged on the slabs."""
    import pandas as pd

    from surfbench.analysis.softening_study import softening_study, subsample_frames
    from surfbench.data.errors import DataError
    from surfbench.data.mlearn import load_mlearn_frames
    from surfbench.evaluation.frames import frame_id
    from surfbench.models import ModelLoadError, load_model
    from surfbench.report import softening_figures as sf
    from surfbench.report.console import render_softening
    from surfbench.report.figures import FigureExportError, save_figure
    from surfbench.store.results import ResultStore

    splits = {"all": ("training", "test"), "train": ("training",), "test": ("test",)}
    if frames_split not in splits:
        fail("--frames-split must be all, train or test")
    if not dataset.startswith("mlearn"):
        fail(f"softening uses the mlearn frames; --dataset must be an mlearn data set, not {dataset!r}")
    from surfbench.execution.run_command import check_threads

    check_threads(threads, fail)
    ResultStore(workdir).close()  # a damaged or read-only store ends the command here, before any loading
    ds = load_dataset(dataset, data_dir, "all")
    elements = sorted({s.element for s in ds.surfaces})
    try:
        frames = load_mlearn_frames(elements, splits[frames_split], data_dir)
    except DataError as exc:
        fail(str(exc))
    frames = subsample_frames(frames, max_frames_per_group, seed)
    try:
        models = [load_model(m, device=device) for m in model]
    except ModelLoadError as exc:
        fail(str(exc))
    with ResultStore(workdir) as store, progress_bar(eta=False) as bar:
        tasks = {m.name: bar.add_task(f"{m.name}: frames", total=len(frames) + len(ds.bulks)) for m in models}
        try:
            res = softening_study(ds, frames, models, store, n_fit_frames=fit_frames, seed=seed, per_element=per_element,
                                  energy_weight=energy_weight, force_weight=force_weight, threads=threads,
                                  progress=lambda m, fid: bar.advance(tasks[m]))
        except ValueError as exc:  # e.g. a model whose fingerprint changed under the same name
            bar.stop()
            fail(str(exc))
        preds = pd.concat([store.frame_results("mlearn-frames", m.fingerprint.id).assign(model=m.name) for m in models],
                          ignore_index=True)
    render_softening(console, res)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in res.slopes.items():
        df.to_csv(out / f"slopes_{name}.csv", index=False)
    res.gamma_slopes.to_csv(out / "slopes_gamma.csv", index=False)
    res.correction_effect.to_csv(out / "correction_effect.csv", index=False)
    res.table.to_csv(out / "frames.csv", index=False)
    for name, corr in res.corrections.items():
        corr.save(out / f"correction_{name}.json")
    figs = {
        "force_parity": sf.force_parity(sf.force_components(frames, [frame_id(f) for f in frames], preds, seed=seed),
                                        res.slopes.get("overall", pd.DataFrame())),
        "energy_parity": sf.energy_parity(res.table, res.slopes.get("overall", pd.DataFrame())),
        "slopes": sf.slope_bars(res.slopes.get("element", pd.DataFrame()), res.gamma_slopes),
    }
    for name, fig in figs.items():
        try:
            save_figure(fig, out / name, png=png, include_plotlyjs="directory")
        except FigureExportError as exc:
            err.print(f"[yellow]warning:[/] {exc}")
    console.print(f"wrote tables, corrections and figures to {out}")
