"""The report's sections, one module each, in the order the page shows them.

Adding a section is one module with a builder ``build(ctx: ReportContext) -> Section``
(:mod:`surfbench.report.section`) and one line in :data:`REPORT_SECTIONS`."""

from __future__ import annotations

from surfbench.report.section import SectionSpec
from surfbench.report.sections import (
    comparison,
    coverage,
    domain,
    errors,
    facets,
    files,
    md,
    models,
    reference,
    relaxation,
    seen,
    softening,
    summary,
    training,
    wulff,
)

#: the sections in page order (the page loops over this list)
REPORT_SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("summary", "Summary", summary.build, late=True),
    SectionSpec("comparison", "Model comparison (Table I)", comparison.build),
    SectionSpec("seen", "Seen and unseen slabs (models trained on some of them)", seen.build, nav_after="training"),
    SectionSpec("coverage", "Coverage and failures", coverage.build),
    SectionSpec("parity", "Predictions vs DFT (Fig. 2a-c)", errors.parity),
    SectionSpec("errors", "Surface energy errors (Fig. 2d)", errors.errors),
    SectionSpec("elements", "Errors per element (Figs. 3 and 6)", errors.elements),
    SectionSpec("miller", "Errors per Miller index (Fig. 4)", errors.miller),
    SectionSpec("correlation", "Correlation of the errors between models (Fig. S2)", errors.correlation),
    SectionSpec("relaxation", "Relaxed surfaces: static and relaxation parts of the error", relaxation.build),
    SectionSpec("softening", "Systematic softening and a cheap correction", softening.build),
    SectionSpec("reference", "Reference surface energies, model-built structures (mSE21)", reference.build),
    SectionSpec("domain", "Descriptor map and distance from the reference data", domain.build),
    SectionSpec("facets", "Facet ordering (Fig. 7)", facets.build),
    SectionSpec("wulff", "Wulff shapes", wulff.build),
    SectionSpec("md", "Molecular-dynamics stability", md.build),
    SectionSpec("training", "Fine-tuned vs from scratch (learning curves, Figs. S6/S7)", training.build),
    SectionSpec("models", "Models: fingerprints and versions", models.build),
    SectionSpec("files", "Machine-readable files", files.build, late=True),
)

#: the order of the sections' entries in the JSON file, their CSV files (listed so in the files
#: section) and figures, as reports so far wrote them; a section not named here comes after these
OUTPUT_ORDER = ("models", "comparison", "coverage", "parity", "errors", "elements", "miller", "correlation", "domain",
                "relaxation", "softening", "training", "seen", "reference", "facets", "wulff", "md")


def nav_order() -> list[SectionSpec]:
    """The sections in the navigation bar's order: page order, a section with ``nav_after``
    moved after that one."""
    out = [s for s in REPORT_SECTIONS if s.nav_after is None]
    for s in REPORT_SECTIONS:
        if s.nav_after is not None:
            out.insert(next(i for i, o in enumerate(out) if o.id == s.nav_after) + 1, s)
    return out


def output_order() -> list[SectionSpec]:
    """The sections that write files, in :data:`OUTPUT_ORDER` (others after, in page order)."""
    rank = {sid: i for i, sid in enumerate(OUTPUT_ORDER)}
    early = [s for s in REPORT_SECTIONS if not s.late]
    return sorted(early, key=lambda s: rank.get(s.id, len(rank)))
