"""The sections of figures of the errors: parity plots (Fig. 2a-c), the distribution of the
gamma error (Fig. 2d), errors per element (Figs. 3 and 6) and per Miller index (Fig. 4), and the
correlation of the errors between models (Fig. S2)."""

from __future__ import annotations

from surfbench.report import element_figures as ef
from surfbench.report import parity_figures as pf
from surfbench.report.markup import esc, slug
from surfbench.report.outputs import jsonable
from surfbench.report.section import ReportContext, Section
from surfbench.report.style import model_marks


def parity(ctx: ReportContext) -> Section:
    """Fig. 2a-c: bulk energy, slab energy and gamma, model against DFT."""
    bulks, slabs, order, colours = ctx.bulks, ctx.slabs, ctx.order, ctx.colours
    return Section(figures=[
        ("parity-bulk-energy", pf.parity_bulk_energy(bulks, order, colours, model_marks(slabs)),
         "Fig. 2a: the model's bulk energy per atom against DFT, one point per bulk record (the bulk of each "
         "element that the surface energies refer to). The legend gives each model's RMSE."),
        ("parity-slab-energy", pf.parity_slab_energy(slabs, order, colours),
         "Fig. 2b: slab energy per atom, model against DFT."),
        ("parity-gamma", pf.parity_gamma(slabs, order, colours),
         "Fig. 2c: surface energy γ = (E<sub>slab</sub> − n e<sub>bulk</sub>) / 2A, each side with its own bulk "
         "energy per atom, model against DFT. Points below the line: the model underestimates γ."),
    ])


def errors(ctx: ReportContext) -> Section:
    """Fig. 2d: the distribution of the gamma error per model."""
    return Section(figures=[(
        "gamma-error-distribution", pf.gamma_error_distribution(ctx.slabs, ctx.order, ctx.colours),
        "Fig. 2d: distribution of the γ error (model − DFT) over the slabs, the comparable models from the lowest "
        "RMSE on their common slabs (top), then any model with other coverage (marked: not comparable). "
        "A negative mean signed error is the systematic underestimation (softening) of surface energies.")])


def elements(ctx: ReportContext) -> Section:
    """Figs. 3 and 6: the gamma RMSE per element and model, and a periodic table per model."""
    figures = [("gamma-rmse-per-element", ef.element_rmse_heatmap(ctx.bulks, ctx.slabs, ctx.order),
                "RMSE of γ per element and model, with the mean signed error (negative: γ too low) below each "
                "value; the periodic tables below add the bulk and slab energy errors.")]
    for m, fig in ctx.ptables().items():
        figures.append((f"ptable-{slug(m)}", fig,
                        f"{esc(m)}: RMSE per element. Tile bottom: γ (J/m²); upper left: bulk energy per atom; upper "
                        "right: slab energy per atom (eV/atom). The colour scales are the same for every comparable "
                        "model (a model with other coverage has its own, named in its title); light grey: element "
                        "not evaluated by this model (or not in the data), dark grey: evaluated, but every "
                        "prediction failed."))
    return Section(figures=figures)


def miller(ctx: ReportContext) -> Section:
    """Fig. 4: the gamma RMSE per Miller index."""
    return Section(figures=[(
        "rmse-per-miller", ef.miller_rmse_bars(ctx.slabs, ctx.order, ctx.colours),
        "Fig. 4: RMSE of γ per Miller index over all elements; n is the number of slabs of that index with a "
        "surface energy (per model where it differs). The same index means different surfaces on fcc, bcc and "
        "diamond lattices. Hatched: a model with other coverage (not comparable), over its own slabs.")])


def correlation(ctx: ReportContext) -> Section:
    """Fig. S2: the Pearson correlation of the gamma errors between models."""
    corr, n_corr = ctx.corr, ctx.n_corr
    out = Section(tables={"error-correlation": corr.reset_index(names="model") if not corr.empty else corr},
                  payload={"error_correlation": {"n_common": n_corr, "pearson_r": jsonable(corr.to_dict())
                                                   if not corr.empty else {}}})
    if len(corr) >= 2 and n_corr >= 2:
        out.figures.append((
            "error-correlation", pf.error_correlation(ctx.slabs, ctx.order),
            f"Fig. S2: Pearson correlation of the γ errors of two models over the {n_corr} slabs that all "
            "models with a γ have one for. High r: the models err on the same surfaces (shared training data "
            "or architecture), so their errors are not independent."))
    else:
        out.body = "<p>Needs at least two models with surface energies on at least two common slabs.</p>"
    return out
