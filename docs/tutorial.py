# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial: a calculator in memory, from a notebook
#
# This page is a notebook (`docs/tutorial.py`, in jupytext's percent format: open it in Jupyter
# with jupytext, or run it as a script). It is executed each time the documentation is built,
# so what you see below, tables and figures, was computed then.
#
# The model is any ASE calculator *object*: here ASE's EMT, a classical potential that is
# fast and knows Cu and Ni, so we evaluate it on the Cu and Ni slabs of `mlearn-surfaces`.
# A MACE, fairchem or ORB calculator you have just loaded or fine-tuned is used the same way.
# The mlearn data are read from the folder in `$SURFBENCH_DATA_DIR` (or downloaded once into
# the user cache; see [where data are looked for](commands/data.md#where-data-are-looked-for)).

# %% tags=["remove_input"]
# Only for the HTML page built from this notebook: plotly.js goes into the page with the
# first figure. (In Jupyter the default renderer already shows the figures.)
import plotly.io as pio

pio.renderers.default = "notebook"

# %%
import tempfile

from ase.calculators.emt import EMT

import surfbench

workdir = tempfile.mkdtemp(prefix="surfbench-tutorial-")  # the result store goes here

res = surfbench.evaluate(
    EMT(),
    name="my-emt",  # a calculator object has no name of its own: the store keeps its results under this one
    dataset="mlearn-surfaces",
    protocol="static",
    elements=["Cu", "Ni"],
    workdir=workdir,
    progress=False,
)

# %% [markdown]
# ## One row per record
#
# `predictions()` joins every result with its record: DFT and model energies, the surface
# energy gamma (J/m^2) of DFT and of the model, the error (model - DFT), the status and, for a
# structure that failed, its failure kind.

# %%
pred = res.predictions()
pred.head()

# %% [markdown]
# ## Metrics
#
# MAE, RMSE and mean signed error, overall, per element and per Miller index
# (see [errors, failures and coverage](concepts.md#errors-failures-and-coverage)).
#
# EMT's energies are not on DFT's scale (its reference is close to 0 eV/atom for the bulk
# crystal), so the errors of the energies per atom are large, nearly the same for every
# structure of an element; they cancel in gamma, which uses the model's own bulk energy.

# %%
res.metrics()

# %%
res.metrics(by="element")

# %% [markdown]
# ## Figures
#
# Every figure is a plotly `Figure`: it shows inline in Jupyter, and `fig.write_html(...)` or
# `fig.write_image(...)` saves it; `error_distribution()`, `periodic_table()` and `wulff()` work
# the same way. The parity plot of the surface energies:

# %%
res.parity()

# %% [markdown]
# The lowest-energy facets of each element, by DFT and by the model:

# %%
res.facet_ordering()

# %% [markdown]
# ## Another calculator, and the comparison
#
# The same EMT with ASAP's cut-off convention is another model (its parameters differ, so its
# fingerprint differs): give it another name. `compare` puts the models side by side: RMSE
# with bootstrap 95 % intervals (`_lo`, `_hi`), the paired ranking and the probability of
# being the best (a few of its columns here).

# %%
res_asap = surfbench.evaluate(
    EMT(asap_cutoff=True), name="emt-asap-cutoff", elements=["Cu", "Ni"], workdir=workdir, progress=False)
table = res.compare(res_asap)
table[["model", "gamma_n_ok", "gamma_rmse", "gamma_rmse_lo", "gamma_rmse_hi", "gamma_mean_signed_error", "gamma_rank", "gamma_p_best"]]

# %% [markdown]
# ## Cached results
#
# Results are stored in `workdir/surfbench.sqlite`, the store `surfbench run` uses. Evaluating
# the same calculator again computes nothing: every result is reused.

# %%
again = surfbench.evaluate(EMT(), name="my-emt", elements=["Cu", "Ni"], workdir=workdir, progress=False)
print(f"computed {again.summary.computed}, reused {again.summary.reused} of {again.summary.total}")

# %% [markdown]
# `load_results` reads the stored runs back without any calculator (as `surfbench table
# --workdir ...` does on the command line):

# %%
for run in surfbench.load_results(workdir):
    print(run.model, run.fingerprint, run.protocol)

# %% [markdown]
# `res.report("report.html")` writes the self-contained HTML report of these results (see
# [report](commands/report.md)).
