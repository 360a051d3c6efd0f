"""The results of one run, as the Python API returns them: :class:`Results` reads a data set's
records for one model fingerprint and protocol from the result store and gives its tables
(predictions, metrics, paired comparisons) as DataFrames and its figures as plotly figures.
[`surfbench.evaluate`][surfbench.api.evaluate] and
[`surfbench.load_results`][surfbench.api.load_results] return them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from surfbench.execution.runner import RunSummary

METRIC_GROUPS = (None, "element", "miller")
"""The groupings of [`Results.metrics`][surfbench.api.Results.metrics]."""
PREDICTION_COLUMNS = [
    "record_id", "kind", "element", "miller", "split", "bulk_id", "n_atoms", "area_a2",
    "dft_energy_ev", "model_energy_ev", "dft_e_per_atom_ev", "model_e_per_atom_ev", "error_e_per_atom_ev",
    "dft_gamma_j_per_m2", "model_gamma_j_per_m2", "error_gamma_j_per_m2",
    "status", "failure_kind", "message", "in_training",
]
"""The columns of [`Results.predictions`][surfbench.api.Results.predictions], in order."""


@dataclass(frozen=True)
class Results:
    """One run in a result store: a data set, a model fingerprint and a protocol.

    Every method reads the store again (opened read-only), so a `Results` is small and sees
    results added since. Errors are model - DFT throughout; a failed structure is never an
    error of 0: it has no number and counts as failed.

    Attributes
    ----------
    dataset : str
        The store's name of the data set (a user's data file: its resolved path).
    model : str
        The model's name.
    fingerprint : str
        The model fingerprint's id in the store, `name@digest`.
    protocol : str
        The protocol's name in the store, e.g. `static` or `relaxed`.
    workdir : Path
        The project folder holding the store.
    record_ids : frozenset of str or None
        The records this result covers (None: every record of the run in the store).
    summary : RunSummary or None
        What [`evaluate`][surfbench.api.evaluate] computed and reused (None for
        [`load_results`][surfbench.api.load_results]).
    """

    dataset: str
    model: str
    fingerprint: str
    protocol: str
    workdir: Path
    record_ids: frozenset[str] | None = field(default=None, repr=False)
    summary: RunSummary | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ reading the store
    def _store(self):
        from surfbench.store.results import ResultStore

        return ResultStore(self.workdir, read_only=True)

    def _results(self) -> pd.DataFrame:
        from surfbench.analysis.stored import run_results

        with self._store() as store:
            return run_results(store, self.dataset, self.fingerprint, self.protocol, record_ids=self.record_ids)

    def _is_reference(self) -> bool:
        with self._store() as store:
            return self.dataset in store.reference_datasets()

    def _tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(bulks, slabs) of `surfbench.analysis.predictions`, with the model's name."""
        from surfbench.analysis.predictions import bulk_predictions, slab_predictions

        if self._is_reference():
            raise ValueError(f"{self.dataset} holds reference surface energies only (no DFT structures): its "
                             "predictions() are the model's own gamma beside them; the DFT tables and figures "
                             "need a DFT data set")
        results = self._results()
        results["model"] = self.model
        return bulk_predictions(results), slab_predictions(results)

    def _slabs(self, what: str) -> pd.DataFrame:
        slabs = self._tables()[1]
        if slabs.empty:
            raise ValueError(f"{self!r}: no slab results in the store, so no {what}")
        return slabs

    # ------------------------------------------------------------------ tables
    def predictions(self) -> pd.DataFrame:
        """Every record's DFT and model numbers.

        Returns
        -------
        pandas.DataFrame
            One row per record (bulks, then slabs), with the columns
            [`PREDICTION_COLUMNS`][surfbench.api.PREDICTION_COLUMNS]: the record (`kind`
            bulk/slab, `element`, `miller` as text such as `"1 1 0"`, `split`, `bulk_id`,
            `n_atoms`, `area_a2` in Angstrom^2), total and per-atom energies of DFT and the
            model (`*_energy_ev` in eV, `*_e_per_atom_ev` in eV/atom, the error model - DFT),
            the surface energies (`dft_gamma_j_per_m2`, `model_gamma_j_per_m2`,
            `error_gamma_j_per_m2` in J/m^2; slabs only), `status` of the structure's
            evaluation (ok/failed), `failure_kind` (a bulk: why it failed; a slab: why it has
            no model gamma, its own failure or its bulk's, e.g.
            `bulk_failed:unsupported_element`), the model's `message` and `in_training`
            (seen/unseen: whether the model was trained on the record). For a reference-value
            data set (mse21): one row per facet with the model's own gamma beside the
            reference ones (`surfbench.analysis.reference_gamma.reference_predictions`).
        """
        from surfbench.analysis.predictions import miller_text
        from surfbench.analysis.seen import COLUMN

        if self._is_reference():
            from surfbench.analysis.reference_gamma import reference_predictions

            with self._store() as store:
                return reference_predictions(store.reference_results(self.dataset, self.fingerprint, self.protocol))
        bulks, slabs = self._tables()
        out = []
        for frame, is_slab in ((bulks, False), (slabs, True)):
            ok = frame["status"] == "ok"
            rows = pd.DataFrame({
                "record_id": frame["record_id"], "kind": frame["kind"], "element": frame["element"],
                "miller": frame["miller"].map(miller_text).astype(object), "split": frame["split"],
                "bulk_id": frame["bulk_id"], "n_atoms": frame["n_atoms"], "area_a2": frame["area_a2"],
                "dft_energy_ev": frame["dft_energy_ev"], "model_energy_ev": frame["energy_ev"].where(ok),
                "dft_e_per_atom_ev": frame["e_dft_per_atom_ev"], "model_e_per_atom_ev": frame["e_pred_per_atom_ev"],
                "error_e_per_atom_ev": frame["error_e_per_atom_ev"],
                "dft_gamma_j_per_m2": frame["dft_gamma_j_per_m2"],
                "model_gamma_j_per_m2": frame["gamma_pred_j_per_m2"] if is_slab else float("nan"),
                "error_gamma_j_per_m2": frame["error_gamma_j_per_m2"] if is_slab else float("nan"),
                "status": frame["status"],
                "failure_kind": frame["gamma_failure"] if is_slab else frame["failure_kind"],
                "message": frame["message"], "in_training": frame[COLUMN],
            })
            out.append(rows.sort_values(["element", "record_id"]))
        return pd.concat(out, ignore_index=True)[PREDICTION_COLUMNS]

    def metrics(self, by: str | None = None) -> pd.DataFrame:
        """Error metrics of the bulk and slab energies per atom (eV/atom) and of gamma (J/m^2).

        Parameters
        ----------
        by : {None, "element", "miller"}
            Overall (None), per element or per Miller index (bulk quantities have no Miller
            index and are left out then).

        Returns
        -------
        pandas.DataFrame
            One row per quantity (and group): `mae`, `rmse`, `mean_signed_error` (model - DFT
            on average, negative when the model is too low; not a squared error) and
            `max_abs`, with the counts `n_ok`, `n_failed`, `n_total`
            (`surfbench.analysis.metrics.metrics`).

        Raises
        ------
        ValueError
            For another `by`.
        """
        from surfbench.analysis.metrics import metrics

        if by not in METRIC_GROUPS:
            raise ValueError(f"by={by!r}: use None, 'element' or 'miller'")
        return metrics(*self._tables(), by=by)

    def compare(self, *others: Results, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
        """Table I of Focassio et al. for this run and others on the same data set.

        A run that covers other slabs (`evaluate(..., elements=["Cu"])` beside a full run) is
        not comparable: its row has its own metrics and no rank; compare such runs on what they
        share (restrict the others with `elements` or `miller` too). Models are named by name,
        or by fingerprint where one name has several.

        Parameters
        ----------
        *others : Results
            Runs on the same data set with the same protocol, possibly from other stores.
        n_boot : int
            Bootstrap resamples of the slabs (bulks) for the intervals.
        seed : int
            Seed of the bootstrap.

        Returns
        -------
        pandas.DataFrame
            Per model the RMSE of bulk energy, slab energy (eV/atom) and gamma (J/m^2) with
            percentile-bootstrap intervals, MAE and mean signed error of gamma
            (`gamma_mean_signed_error`, `_lo`, `_hi`), coverage, and the paired ranking of
            the comparable models (`comparable`: those that evaluated every slab any of them
            evaluated) on the slabs they all have a gamma for (`gamma_common_n_common` of
            them; their RMSE there, `gamma_common_rmse`, rank, P(best)) with the models each
            cannot be told apart from (`surfbench.analysis.ranking.comparison_table`; the
            rule is in `surfbench.analysis.comparable`).

        Raises
        ------
        TypeError
            For an `others` item that is not a `Results`.
        ValueError
            For runs on another data set or with another protocol.
        """
        from surfbench.analysis.ranking import comparison_table

        for other in others:
            if not isinstance(other, Results):
                raise TypeError(f"compare() takes Results, got {type(other).__name__}")
        runs: list[Results] = []
        for run in (self, *others):  # each model once
            if all(run.fingerprint != r.fingerprint for r in runs):
                runs.append(run)
        for other in runs:
            if (other.dataset, other.protocol) != (self.dataset, self.protocol):
                raise ValueError(f"compare() needs runs on one data set with one protocol: {self.dataset} "
                                 f"({self.protocol}) and {other.dataset} ({other.protocol})")
        names = [r.model for r in runs]
        bulks, slabs, info = [], [], {}
        for run in runs:
            label = run.model if names.count(run.model) == 1 else run.fingerprint
            b, s = run._tables()
            bulks.append(b.assign(model=label))
            slabs.append(s.assign(model=label))
            info[label] = run._details()
        return comparison_table(pd.concat(bulks, ignore_index=True), pd.concat(slabs, ignore_index=True), info,
                                n_boot=n_boot, seed=seed)[0]

    def _details(self) -> dict[str, Any]:
        """family, training set and parameter count stored with the model."""
        import json

        with self._store() as store:
            models = store.models()
        row = models[models["fingerprint"] == self.fingerprint]
        details = json.loads(row["details"].iloc[0]) if len(row) and isinstance(row["details"].iloc[0], str) else {}
        return {"family": details.get("family"), "training_set": details.get("training_set"),
                "parameters": details.get("parameters") or details.get("nominal_parameters")}

    # ------------------------------------------------------------------ figures
    def parity(self) -> go.Figure:
        """Model gamma against DFT gamma (J/m^2), one point per slab, with y = x (Fig. 2c)."""
        from surfbench.report.parity_figures import parity_gamma

        return parity_gamma(self._slabs("parity plot"))

    def error_distribution(self) -> go.Figure:
        """Box and violin of the gamma error, model - DFT (J/m^2), over the slabs (Fig. 2d)."""
        from surfbench.report.parity_figures import gamma_error_distribution

        return gamma_error_distribution(self._slabs("error distribution"))

    def periodic_table(self) -> go.Figure:
        """RMSE per element on a periodic table; each tile split in gamma (J/m^2, bottom), bulk
        and slab energy per atom (eV/atom, upper left and right) (Figs. 3/6)."""
        from surfbench.report.element_figures import element_rmse_ptables

        bulks, slabs = self._tables()
        if slabs.empty:
            raise ValueError(f"{self!r}: no slab results in the store, so no periodic table")
        return element_rmse_ptables(bulks, slabs)[self.model]

    def facet_ordering(self) -> go.Figure:
        """Per bulk, its lowest-gamma facets by DFT and by the model, whether the lowest is
        right and the rank correlations over all its facets (Fig. 7, as a table)."""
        from surfbench.analysis.facets import dft_facet_ordering, facet_ordering
        from surfbench.report.facet_figures import facet_ordering_table

        slabs = self._slabs("facet ordering")
        facets = facet_ordering(slabs)
        if facets.empty:
            raise ValueError(f"{self!r}: no bulk has two Miller indices with a model gamma, so no facet ordering")
        return facet_ordering_table(facets, None, dft_facet_ordering(slabs))

    def wulff(self) -> go.Figure:
        """Wulff shapes of every bulk from the lowest gamma of each Miller index: DFT (top row)
        and the model, scaled to the same volume, with the area-weighted gamma (J/m^2)."""
        from surfbench.analysis.facets import dft_wulff, wulff_analysis
        from surfbench.report.wulff_figures import wulff_figures

        slabs = self._slabs("Wulff shapes")
        with self._store() as store:
            records = store.records(self.dataset)
        wulff, shapes = wulff_analysis(slabs, records)
        dft_frame, dft_shapes = dft_wulff(slabs, records)
        n_bulks = max(1, slabs["bulk_id"].nunique())
        figures = wulff_figures(wulff, shapes, dft_frame, dft_shapes, bulks_per_figure=n_bulks)
        if not figures:
            raise ValueError(f"{self!r}: no bulk has slabs with a gamma, so no Wulff shape")
        return figures[0]

    # ------------------------------------------------------------------ report
    def report(self, path: str | os.PathLike, *, png: bool = False, n_boot: int = 2000, seed: int = 0) -> Path:
        """Write the HTML report of this run, as `surfbench report --models <fingerprint>` does.

        It covers every record of the run in the store, with its JSON, CSV and figure files
        beside it (`surfbench.report.html.build_report`).

        Parameters
        ----------
        path : str or os.PathLike
            The HTML file to write.
        png : bool
            Write the figures as PNG too (needs Chrome/Chromium).
        n_boot : int
            Bootstrap resamples for the confidence intervals.
        seed : int
            Seed of the bootstrap.

        Returns
        -------
        Path
            The HTML file written.
        """
        from surfbench.report.html import build_report

        with self._store() as store:
            return build_report(store, self.dataset, [self.fingerprint], self.protocol, Path(path), png=png,
                                n_boot=n_boot, seed=seed)
