"""``surfbench data build | validate | explore``: data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from surfbench.cli.common import DataDirOpt, RequirePngOpt, app, check_png, console, err, fail, load_dataset

data_app = typer.Typer(help="Data sets: validate users' files, explore a data set.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("build")
def data_build(
    name: Annotated[str, typer.Argument(help="Data set to build: mp-surfaces or synthetic-paper-scale.")],
    api_key: Annotated[str | None, typer.Option(help="Materials Project API key (default: $MP_API_KEY).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder (default: <cache>/mp_surfaces or <cache>/synthetic).")] = None,
    elements: Annotated[str | None, typer.Option(help="Only these elements, comma-separated.")] = None,
    stand_in: Annotated[str, typer.Option(help="synthetic-paper-scale: the fast model that gives the energies of the elements EMT lacks.")] = "m3gnet-mp-2021.2.8-pes",
    device: Annotated[str, typer.Option(help="synthetic-paper-scale: device of the stand-in model (cpu, cuda).")] = "cpu",
) -> None:
    """Build a data set from its source: mp-surfaces from the MP API; synthetic-paper-scale
    (SYNTHETIC, not DFT: slabs cut from ASE's reference crystals, energies from stand-in models)
    locally, for rehearsals at the paper's size."""
    from surfbench.data.errors import DataError
    from surfbench.data.sources import cache_dir

    wanted = elements.split(",") if elements else None
    if name == "synthetic-paper-scale":
        _build_synthetic(output, wanted, stand_in, device)
        return
    if name != "mp-surfaces":
        fail(f"cannot build {name!r}; buildable: mp-surfaces, synthetic-paper-scale")
    from surfbench.data import mp_surfaces

    try:
        source = mp_surfaces.MPApiSource(api_key)
        with console.status("fetching surface and thermo documents from the Materials Project"):
            built = mp_surfaces.build(source, output or cache_dir() / "mp_surfaces", wanted)
    except DataError as exc:
        fail(str(exc))
    manifest = mp_surfaces.read_manifest(built.manifest)
    console.print(f"wrote {built.data} and {built.manifest}: {manifest['counts']} (MP database {manifest['db_version']})")


def _build_synthetic(output: Path | None, elements: list[str] | None, stand_in: str, device: str) -> None:
    from surfbench.data import synthetic
    from surfbench.data.errors import DataError
    from surfbench.models.base import ModelLoadError

    def progress(element: str, n: int, seconds: float) -> None:
        console.print(f"  {element}: {n} slabs in {seconds:.1f} s")

    console.print(f"[bold yellow]{synthetic.BANNER}[/]")
    try:
        built = synthetic.build(output, elements, stand_in=stand_in, device=device, progress=progress)
    except (DataError, ModelLoadError) as exc:
        fail(str(exc))
    manifest = synthetic.read_manifest(built.manifest)
    console.print(f"wrote {built.data} and {built.manifest}: {manifest['counts']}; stand-ins "
                  f"{manifest['stand_in_fingerprints']}")


@data_app.command("validate")
def data_validate(
    path: Annotated[Path, typer.Argument(help="extxyz or ASE database (.db) file of slabs and bulks, or a data set name.")],
    min_vacuum: Annotated[float, typer.Option(help="Smallest vacuum gap (Angstrom) that makes a slab.")] = 5.0,
    data_dir: DataDirOpt = None,
) -> None:
    """Check a user data file; list every problem per record (exit code 1 if any error; warnings,
    such as a DFT surface energy outside 0.05-6 J/m^2, are listed and keep the file). A named data
    set (or an mp-surfaces manifest) is loaded and checked by the same rules."""
    from surfbench.data.errors import DataError
    from surfbench.data.registry import DATASETS
    from surfbench.data.userdata import load_user_dataset, validate

    if str(path) in DATASETS or str(path).endswith(".manifest.json"):
        from rich.markup import escape

        ds = load_dataset(str(path), data_dir, "all")  # a DataError (e.g. overlapping atoms) ends here
        for note in ds.notes:
            console.print(f"note: {escape(note)}")
        console.print(f"{ds.name}: OK, {len(ds.surfaces)} slabs, {len(ds.bulks)} bulks, elements {', '.join(ds.elements)}")
        return
    try:
        problems = validate(path, min_vacuum)
    except DataError as exc:
        fail(str(exc))
    n_errors = sum(p.severity == "error" for p in problems)
    if problems:
        t = Table(title=f"{path}: {n_errors} problem(s), {len(problems) - n_errors} warning(s)")
        t.add_column("record")
        t.add_column("severity")
        t.add_column("problem")
        for p in problems:
            t.add_row(p.record, p.severity, p.message)
        console.print(t)
    if n_errors:
        raise typer.Exit(1)
    ds = load_user_dataset(path, min_vacuum=min_vacuum)
    console.print(f"{path}: OK, {len(ds.surfaces)} slabs, {len(ds.bulks)} bulks, elements {', '.join(ds.elements)}")


@data_app.command("explore")
def data_explore(
    dataset: Annotated[str, typer.Argument(help="Data set name or the path of a data file.")] = "mlearn-surfaces",
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the figures.")] = Path("explore"),
    data_dir: DataDirOpt = None,
    png: Annotated[bool, typer.Option(help="Also write PNG (needs Chrome/Chromium for kaleido; without it: HTML only and a warning).")] = True,
    require_png: RequirePngOpt = False,
) -> None:
    """Fig. 1 of the paper for a data set: surfaces per element on a periodic table and the DFT
    surface energy per element (box + violin), as HTML and PNG, plus a text summary."""
    from surfbench.report.dataset_figures import gamma_by_element, summary, surfaces_per_element_ptable
    from surfbench.report.figures import FigureExportError, save_figures

    check_png(png, require_png)
    output.mkdir(parents=True, exist_ok=True)  # an unwritable folder is an error before any drawing
    ds = load_dataset(dataset, data_dir, "all")
    stem = output / Path(ds.name).name  # a user's file is named by its resolved path
    figures = {Path(f"{stem}-surfaces-per-element"): surfaces_per_element_ptable(ds),
               Path(f"{stem}-gamma-per-element"): gamma_by_element(ds)}
    try:
        written, png_warning = save_figures(figures, png=png, require_png=require_png, retries=0)
    except FigureExportError as exc:
        fail(str(exc))
    if png_warning:
        err.print(f"[yellow]warning:[/] {png_warning}", soft_wrap=True)
    s = summary(ds)
    console.print(
        f"{ds.name}: {s['slabs']} slabs, {s['bulks']} bulks, {s['elements']} elements ({s['element_list']}), "
        f"{s['miller_families']} Miller indices (max index {s['max_miller_index']}"
        f"{', ' + str(s['slabs_with_unknown_miller']) + ' unknown' if s['slabs_with_unknown_miller'] else ''}), "
        f"{s['reconstructed']} reconstructed ({100 * s['reconstructed_share']:.1f} %); DFT gamma "
        f"{s['gamma_min_j_per_m2']:.2f} to {s['gamma_max_j_per_m2']:.2f} J/m^2 (median {s['gamma_median_j_per_m2']:.2f})"
    )
    for path in written:
        console.print(f"wrote {path}")
