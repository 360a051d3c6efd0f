"""``surfbench map``: the descriptor map of a data set and the distance-vs-error correlation of
the stored models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def map_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file of the map; the scatter plot, CSV and JSON go beside it.")] = Path("map.html"),
    workdir: Annotated[Path, typer.Option("--workdir", "-w", help="Project folder holding the result store (surfbench.sqlite); the map and the descriptor cache are saved beside it.")] = Path("."),
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Data set name or file.")] = "mlearn-surfaces",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder with local data files.")] = None,
    models: Annotated[str, typer.Option("--models", help="Models whose errors are mapped: 'all' stored ones or names separated by commas.")] = "all",
    protocol: Annotated[str, typer.Option(help="Evaluation protocol of the stored runs.")] = "static",
    reference: Annotated[str, typer.Option(help="Reference set: 'bulk' (the data set's bulks), 'mlearn-train' (mlearn training frames without slabs) or an extxyz file; several separated by commas.")] = "bulk",
    descriptor: Annotated[str, typer.Option(help="'soap' (dscribe) or 'model' (a model's per-atom features, see --descriptor-model).")] = "soap",
    descriptor_model: Annotated[str | None, typer.Option(help="Registry name of the model whose per-atom features are used (CHGNet, SevenNet, MACE).")] = None,
    kernel: Annotated[str, typer.Option(help="Structure kernel: 'rematch' or 'average'.")] = "rematch",
    alpha: Annotated[float, typer.Option(help="REMatch entropy regularisation.")] = 1.0,
    sites: Annotated[str, typer.Option(help="Sites of a slab: 'all' or 'surface' (the outermost --surface-layers layers per face).")] = "all",
    surface_layers: Annotated[int, typer.Option(help="Layers per face for --sites surface.")] = 2,
    k: Annotated[int, typer.Option("--k", help="Nearest reference sites averaged for a site's distance.")] = 5,
    reduce: Annotated[str, typer.Option(help="A slab's distance from its sites' distances: 'mean' or 'max'.")] = "mean",
    species_mode: Annotated[str, typer.Option(help="SOAP species: 'agnostic' (geometry alone; the map groups lattices) or 'element' (one channel per element).")] = "agnostic",
    r_cut: Annotated[float, typer.Option(help="SOAP cutoff (Angstrom).")] = 5.0,
    n_max: Annotated[int, typer.Option(help="SOAP radial basis functions.")] = 6,
    l_max: Annotated[int, typer.Option(help="SOAP maximum degree of the spherical harmonics.")] = 4,
    sigma: Annotated[float, typer.Option(help="SOAP Gaussian width (Angstrom).")] = 0.5,
    elements: Annotated[str | None, typer.Option(help="Map only these elements' records, separated by commas (default: all).")] = None,
    label: Annotated[str | None, typer.Option(help="Elements labelled on the map, separated by commas (default: all).")] = None,
    png: Annotated[bool, typer.Option(help="Also write PNGs (needs Chrome/Chromium for kaleido).")] = True,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples of the correlation interval.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    device: Annotated[str, typer.Option(help="Torch device for --descriptor model.")] = "cpu",
) -> None:
    """Map every structure of a data set (kernel PCA of site descriptors, coloured by |gamma
    error|, marker by bulk lattice) and measure whether the errors grow with the distance of a
    slab from a reference set (Spearman rho with a bootstrap interval, per model)."""
    from surfbench.analysis.descriptor_map import MapSettings, build_map, map_folder, save_map
    from surfbench.analysis.descriptors import DescriptorCache, DescriptorError, DescriptorSettings
    from surfbench.analysis.predictions import slab_predictions
    from surfbench.analysis.ranking import model_order
    from surfbench.cli.common import console, fail, load_dataset
    from surfbench.report.descriptor_figures import correlation_table, distance_error_figure, map_figure
    from surfbench.report.figures import FigureExportError, save_figure
    from surfbench.report.html import ReportError, select_runs
    from surfbench.store.results import STORE_NAME, ResultStore
    from surfbench.store.selection import run_labels

    if not (workdir / STORE_NAME).is_file():
        fail(f"no result store at {workdir / STORE_NAME}; run 'surfbench run' first or pass --workdir")
    ResultStore(workdir, read_only=True).close()  # a damaged or foreign store ends here, before anything is written
    if n_boot < 1:
        fail("--n-boot must be at least 1")
    from surfbench.data.subset import SubsetError, parse_elements

    try:
        wanted = None if elements is None else set(parse_elements(elements))  # '' is an error, not "every element"
    except SubsetError as exc:
        fail(str(exc))
    model = None
    if descriptor == "model":
        if not descriptor_model:
            fail("--descriptor model needs --descriptor-model NAME (a CHGNet, SevenNet or MACE registry entry)")
        from surfbench.models import ModelLoadError, load_model

        try:
            model = load_model(descriptor_model, device=device)
            desc = DescriptorSettings(method="model", model=model.fingerprint.id)
        except (ModelLoadError, DescriptorError) as exc:
            fail(str(exc))
    else:
        try:
            desc = DescriptorSettings(method=descriptor, r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma,
                                      species_mode=species_mode)
        except DescriptorError as exc:
            fail(str(exc))
    ds = load_dataset(dataset, data_dir, "all")
    if wanted is not None:
        missing = wanted - set(ds.elements)
        if missing:
            fail(f"--elements: {', '.join(sorted(missing))} not in {ds.name} (elements: {', '.join(ds.elements)})")
        ds = ds.select(elements=wanted)
    cache = DescriptorCache(map_folder(workdir / STORE_NAME))
    cache.folder.mkdir(parents=True, exist_ok=True)  # a read-only project folder is an error before any computing
    stem = output.with_suffix("")
    output.parent.mkdir(parents=True, exist_ok=True)
    with ResultStore(workdir, read_only=True) as store:
        import pandas as pd

        try:
            runs = select_runs(store, ds.name, models, protocol)
        except ReportError as exc:
            if models != "all":
                fail(str(exc))
            console.print(f"[yellow]warning:[/] {exc}; the map is drawn without model errors")
            runs = pd.DataFrame(columns=["fingerprint", "model"])
        labels = run_labels(runs)
        results = [store.results(ds.name, fp, protocol) for fp in runs["fingerprint"]]
        if results:
            results = pd.concat(results, ignore_index=True)
            results["model"] = results["fingerprint"].map(labels)
            slabs = slab_predictions(results)
        else:
            slabs = pd.DataFrame(columns=["model", "record_id", "element", "error_gamma_j_per_m2"])
        order = model_order(slabs)
        maps = []
        for ref in [r.strip() for r in reference.split(",") if r.strip()]:
            try:
                settings = MapSettings(descriptor=desc, kernel=kernel, alpha=alpha, sites=sites,
                                       surface_layers=surface_layers, k=k, reduce=reduce, reference=ref)
                with console.status(f"descriptor map, reference {ref}") as status:
                    dmap = build_map(ds, settings, data_dir=data_dir, cache=cache, model=model,
                                     progress=lambda text: status.update(f"reference {ref}: {text}"))
            except (ValueError, DescriptorError) as exc:
                fail(str(exc))
            path = save_map(dmap, store.path)
            console.print(f"map with reference {ref}: {len(dmap.table)} records, {dmap.n_reference_sites} reference "
                          f"sites; " + ", ".join(f"{k_} {v:.1f} s" for k_, v in dmap.timings_s.items()) + f"; saved {path}")
            maps.append((path, dmap))
    corr = correlation_table(maps, slabs, order, n_boot=n_boot, seed=seed)
    written = []
    label_elements = [e.strip() for e in label.split(",")] if label else None
    try:
        written += save_figure(map_figure(maps[0][1].table, slabs, order, label_elements=label_elements,
                                          title=f"Kernel PCA map of {ds.name} ({maps[0][1].settings.descriptor.method}, "
                                                f"{kernel} kernel)"), stem, png=png)
        for _, dmap in maps:
            ref = dmap.settings.reference_name
            written += save_figure(distance_error_figure(dmap.table, slabs, corr[corr["reference"] == ref], order,
                                                         reference=ref), f"{stem}-distance-vs-error-{ref}", png=png)
    except FigureExportError as exc:
        fail(str(exc))
    pd.concat([d.table.assign(reference=d.settings.reference_name) for _, d in maps]).to_csv(f"{stem}-map.csv", index=False)
    corr.to_csv(f"{stem}-correlation.csv", index=False)
    Path(f"{stem}-correlation.json").write_text(json.dumps(
        {"dataset": ds.name, "protocol": protocol, "n_boot": n_boot, "seed": seed, "ci": 0.95,
         "maps": [str(p) for p, _ in maps], "correlation": json.loads(corr.to_json(orient="records"))}, indent=1),
        encoding="utf-8")
    from rich.table import Table

    t = Table(title=f"Spearman rho of distance and |gamma error| on {ds.name} ({protocol}), 95% bootstrap CI")
    for col in ("reference", "model", "slabs", "rho [95% CI]", "p", "rho within elements [95% CI]"):
        t.add_column(col)
    f2 = lambda v: "-" if pd.isna(v) else f"{v:+.2f}"  # noqa: E731
    for r in corr.itertuples():
        t.add_row(r.reference, r.model, str(r.n), f"{f2(r.rho)} [{f2(r.rho_lo)}, {f2(r.rho_hi)}]",
                  "-" if pd.isna(r.p_value) else f"{r.p_value:.3f}",
                  f"{f2(r.rho_within_element)} [{f2(r.rho_within_element_lo)}, {f2(r.rho_within_element_hi)}]")
    console.print(t)
    for p in written + [Path(f"{stem}-map.csv"), Path(f"{stem}-correlation.csv"), Path(f"{stem}-correlation.json")]:
        console.print(f"wrote {p}")
