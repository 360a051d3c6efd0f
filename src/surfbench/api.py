"""The Python API: evaluate a model (a registry name, `module:factory` or an ASE calculator
object in memory) on a data set and get its surface-energy results as DataFrames and plotly
figures:

```python
import surfbench
res = surfbench.evaluate(calc, "mlearn-surfaces", name="my-mace", workdir="bench")
res.metrics(); res.parity()
```

The results go to the same result store as `surfbench run` (`<workdir>/surfbench.sqlite`),
through the same code: a record already evaluated by the same model (same fingerprint) and
protocol, by the command line or by this API, is reused, not computed again; `surfbench table`
and `surfbench report` show what [`evaluate`][surfbench.api.evaluate] stored, and
[`load_results`][surfbench.api.load_results] reads what the command line stored. Surface
energies: gamma = (E_slab - n e_bulk) / (2 A), in J/m^2, each of DFT and the model with its own
bulk energy per atom.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from ase.calculators.calculator import BaseCalculator

from surfbench.records import SPLIT_CHOICES as SPLITS
from surfbench.records import Dataset

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from surfbench.evaluation.protocols import Protocol
    from surfbench.execution.runner import RunSummary
    from surfbench.models.base import LoadedModel

__all__ = ["Results", "evaluate", "load_results", "trained_models", "training_runs"]

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


# ---------------------------------------------------------------------------- evaluate
def _dataset(dataset: str | os.PathLike | Dataset, data_dir: str | os.PathLike | None, split: str,
             elements: Sequence[str] | None, miller: Sequence[str | Sequence[int]] | None) -> Dataset:
    """The data set, restricted to ``split``, ``elements`` and ``miller`` (slabs, with their
    bulks); bad input is a clear error."""
    from surfbench.data.subset import Subset
    from surfbench.data.userdata import parse_miller
    from surfbench.execution.dataset_cache import load_dataset_cached

    if split not in SPLITS:
        raise ValueError(f"split={split!r}: use one of {', '.join(SPLITS)}")
    if isinstance(dataset, Dataset):
        from surfbench.data.checks import validate_dataset
        from surfbench.data.registry import DATASETS

        # a copy (the caller's object is left as it is), checked as a data file is (elements, vacuum, bulk
        # energies, ...). Its records are the whole data set unless a loader said otherwise, or it bears the
        # name of a named data set or of a data file (then it is most likely a selection of that one's records)
        ds = Dataset(dataset.name, dict(dataset.bulks), list(dataset.surfaces), list(dataset.notes),
                     dict(dataset.provenance), dataset.members)
        validate_dataset(ds)
        if ds.members is None and ds.name not in DATASETS and not Path(ds.name).is_file():
            ds.as_whole()
    elif isinstance(dataset, str | os.PathLike):
        ds = load_dataset_cached(os.fspath(dataset), data_dir)
    else:
        raise TypeError(f"dataset: a data set name, a data file's path or a Dataset, not {type(dataset).__name__}")
    wanted = None
    if elements is not None:
        wanted = {elements} if isinstance(elements, str) else set(elements)
        if not wanted:
            raise ValueError(f"elements={elements!r} names no element: give some (e.g. ['Cu']), or None for every element")
        missing = sorted(wanted - set(ds.elements))
        if missing:
            raise ValueError(f"elements {missing} are not in data set {ds.name} (its elements: {', '.join(ds.elements)})")
    millers = None
    if miller is not None:
        try:
            one = isinstance(miller, str) or (len(miller) == 3 and all(isinstance(i, int) for i in miller))
            millers = frozenset(parse_miller(m) for m in ([miller] if one else miller))
            if not millers:
                raise ValueError("names no index; give some, or None for every index")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"miller={miller!r}: give Miller indices as '110', '1 1 0' or (1, 1, 0) ({exc})") from None
    subset = Subset(elements=None if wanted is None else frozenset(wanted), millers=millers)
    selected = subset.dataset(ds.select(splits=SPLITS[split]))
    if not selected.surfaces:
        raise ValueError(f"data set {ds.name} has no slabs in split {split!r}"
                         + (f" with {subset.describe()}" if not subset.everything else ""))
    return selected


def _model(model: str | BaseCalculator, name: str | None, device: str, dtype: str | None) -> LoadedModel:
    """A registry name or ``module:factory`` through the registry, or a calculator object."""
    from surfbench.models.instance import instance_model
    from surfbench.models.registry import load_model

    if isinstance(model, BaseCalculator):
        return instance_model(model, name, device=device, dtype=dtype)
    if not isinstance(model, str):
        raise TypeError(f"model: a registry name, 'package.module:factory' or an ASE calculator object, "
                        f"not {type(model).__name__}")
    if name is not None:
        raise ValueError(f"name={name!r} names a calculator object; the model {model!r} is stored under its own name")
    return load_model(model, device=device, dtype=dtype)


@contextmanager
def _progress(label: str, shown: bool) -> Iterator[dict[str, Any]]:
    """The runner's ``progress``/``on_start``/``on_protocol`` callbacks drawing one progress
    bar (rich; also in Jupyter), or none when not ``shown``."""
    if not shown:
        yield {}
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task(label, total=None)

        def on_start(total: int, todo: int) -> None:
            if not todo:  # a sentence, not an empty 0/0 bar
                bar.update(task, visible=False)
                bar.console.print(f"{label}: all {total} results reused from the store")
                return
            bar.update(task, total=todo, completed=0, visible=True)
            if todo < total:
                bar.console.print(f"reusing {total - todo} of {total} stored results")

        yield {"progress": lambda record_id, outcome: bar.advance(task), "on_start": on_start,
               "on_protocol": lambda name: bar.update(task, description=f"{label} ({name})")}


def evaluate(
    model: str | BaseCalculator,
    dataset: str | os.PathLike | Dataset = "mlearn-surfaces",
    protocol: str | Protocol = "static",
    *,
    workdir: str | os.PathLike = ".",
    name: str | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    threads: int | None = None,
    elements: Sequence[str] | None = None,
    split: str = "all",
    progress: bool = True,
    miller: Sequence[str | Sequence[int]] | None = None,
    retry_failed: bool = False,
    keep_both_fingerprints: bool = False,
) -> Results:
    """Evaluate a model on a data set's bulks and slabs (what the store lacks) and return the run.

    Parameters
    ----------
    model : str or ase.calculators.calculator.BaseCalculator
        A registry name (`surfbench models`), `"package.module:factory"`, or an ASE calculator
        object, which then needs `name` and is fingerprinted as described under
        [Calculator objects and their fingerprint](#calculator-objects-and-their-fingerprint)
        (what is and is not detected as "the same model").
    dataset : str, os.PathLike or Dataset
        A data set name (`surfbench datasets`), the path of a data file (extxyz or ASE
        database, `surfbench.data.userdata`) or a [`Dataset`][surfbench.records.Dataset],
        which is checked as a data file is (`surfbench.data.checks`: each structure of its
        record's element, slabs' vacuum along their `vacuum_axis`, bulk energies as in the
        bulk records, finite energies, no negative DFT surface energy, no overlapping atoms).
    protocol : str or Protocol
        `static` (DFT geometries), `relaxed` (the model's own minimum; the static run is done
        too) or `model-built`, or a protocol object with other settings.
    workdir : str or os.PathLike
        The project folder of the result store, shared with the command line.
    name : str or None
        The name to store a calculator object under (required for one, refused otherwise).
    data_dir : str, os.PathLike or None
        A folder of local data files.
    device : str
        cpu, cuda, cuda:N or mps (a calculator object runs where it is and `device` is only
        recorded).
    dtype : str or None
        float32 or float64 where a registry model supports both.
    threads : int or None
        Threads of the CPU computation: torch's, and every BLAS and OpenMP pool of the process
        (threadpoolctl); None leaves the packages' defaults.
    elements : sequence of str or None
        Only the slabs of these elements, with their bulks.
    split : {"all", "train", "test"}
        Only the slabs of this split, with their bulks.
    progress : bool
        Draw a progress bar.
    miller : sequence or None
        Only the slabs of these Miller indices (`"110"`, `"1 1 0"` or `(1, 1, 0)`), with their
        bulks.
    retry_failed : bool
        Compute stored failures again.
    keep_both_fingerprints : bool
        Store the results although the name is stored with another fingerprint (otherwise
        refused, `FingerprintChanged`).

    Returns
    -------
    Results
        The run; with `elements`, `split` or `miller` it covers only those records.

    Raises
    ------
    ValueError, TypeError
        For a bad argument, named in the message.
    ModelLoadError
        For a model that cannot be loaded (`surfbench.models.base.ModelLoadError`).
    DataError
        For a data set that fails its checks, naming the records at fault
        (`surfbench.data.errors.DataError`).

    Warns
    -----
    DataWarning
        For a DFT surface energy outside 0.05-6 J/m^2 (`surfbench.data.errors.DataWarning`).
    """
    from surfbench.evaluation.registry import get_protocol
    from surfbench.execution.run_command import run_protocol
    from surfbench.models.device import check_device
    from surfbench.models.registry import use_project
    from surfbench.store.results import ResultStore

    check_device(device)
    from surfbench.execution.run_command import threads_problem
    from surfbench.models.model_info import passive_openmp

    passive_openmp()  # as the CLI: waiting OpenMP threads sleep (no effect once torch is loaded)
    problem = threads_problem(threads, "threads")
    if problem:
        raise ValueError(problem)
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    workdir = Path(workdir).expanduser().resolve()
    use_project(workdir)  # models trained in this folder (surfbench train) are known by name, as for the CLI
    loaded = _model(model, name, device, dtype)
    ds = _dataset(dataset, data_dir, split, elements, miller)
    with ResultStore(workdir) as store, _progress(f"{loaded.name} on {Path(ds.name).name}", progress) as callbacks:
        summary = run_protocol(ds, loaded, store, proto, threads=threads, retry_failed=retry_failed,
                               keep_both_fingerprints=keep_both_fingerprints, **callbacks)[-1]
    from surfbench.data.checks import range_warning

    if (doubt := range_warning(ds)) is not None:
        import warnings

        from surfbench.data.errors import DataWarning

        warnings.warn(doubt, DataWarning, stacklevel=2)
    ids = frozenset(r.id for r in [*ds.bulks.values(), *ds.surfaces])
    return Results(dataset=summary.dataset, model=loaded.name, fingerprint=summary.fingerprint,
                   protocol=summary.protocol, workdir=workdir, record_ids=ids, summary=summary)


def load_results(workdir: str | os.PathLike = ".", model: str | None = None, dataset: str | os.PathLike | None = None,
                 protocol: str | None = "static") -> list[Results]:
    """The runs stored in a project folder, by [`evaluate`][surfbench.api.evaluate] or `surfbench run`.

    Parameters
    ----------
    workdir : str or os.PathLike
        The project folder holding the result store.
    model : str or None
        A model name or fingerprint (None: any).
    dataset : str, os.PathLike or None
        A data set name or a data file's path (None: any).
    protocol : str or None
        A protocol (None: any).

    Returns
    -------
    list of Results
        One per stored run that matches.

    Raises
    ------
    StoreError
        When there is no store (`surfbench.store.file.StoreError`).
    ValueError
        When no run matches; the message lists the stored runs.
    """
    from surfbench.data.registry import stored_name
    from surfbench.store.results import ResultStore
    from surfbench.store.selection import stored_runs

    key = stored_name(dataset)
    workdir = Path(workdir).expanduser().resolve()
    with ResultStore(workdir, read_only=True) as store:
        runs = stored_runs(store, model, key, protocol)
        if runs.empty:
            stored = ", ".join(f"{r.model} on {r.dataset} ({r.protocol})" for r in store.runs().itertuples()) or "none"
            raise ValueError(f"no stored run in {store.path} matches model={model!r}, dataset={key!r}, "
                             f"protocol={protocol!r}; stored: {stored}")
    return [Results(dataset=r.dataset, model=r.model, fingerprint=r.fingerprint, protocol=r.protocol, workdir=workdir)
            for r in runs.itertuples()]


def training_runs(workdir: str | os.PathLike = ".") -> pd.DataFrame:
    """The state of every deep training that keeps checkpoints (`surfbench train` of SevenNet).

    Parameters
    ----------
    workdir : str or os.PathLike
        The project folder (`surfbench train --store`).

    Returns
    -------
    pandas.DataFrame
        One row per training folder with a checkpoint: `name`, `state` (`converged`,
        `epoch-cap`, `budget-stopped`, `killed`: its process died after its last checkpoint,
        or `running`), `epochs_done`, `best_loss` and `best_epoch` (validation), `reason`,
        `wall_s` (training wall time over all its sessions, s) and `updated_at`; empty when
        there is none. Only `converged` models answer a question: the tables mark the others
        NOT CONVERGED.
    """
    from surfbench.training.epochs import run_states
    from surfbench.training.pipeline import TRAINED_DIR

    rows = run_states(Path(workdir).expanduser() / TRAINED_DIR)
    return pd.DataFrame(rows, columns=["name", "state", "epochs_done", "best_loss", "best_epoch", "reason", "wall_s",
                                       "updated_at"])


def trained_models(workdir: str | os.PathLike = ".", dataset: str | os.PathLike | None = None, *, n_boot: int = 2000,
                   seed: int = 0) -> pd.DataFrame:
    """The models trained by `surfbench train`, per evaluation protocol, beside the zero-shot models.

    What `surfbench table --trained` prints: per evaluation protocol (no-surfaces,
    mlearn-split, facet-cv), the trained models beside the zero-shot models on the same judged
    slabs (`surfbench.training.curves.protocol_table`).

    Parameters
    ----------
    workdir : str or os.PathLike
        The project folder holding the result store.
    dataset : str, os.PathLike or None
        The store's name of a data set or a data file (None: every data set trained on).
    n_boot : int
        Bootstrap resamples for the intervals.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per model and element (or `"all"`): gamma RMSE and mean signed error in
        J/m^2 with 95 % bootstrap intervals, the RMSE on the slabs every row has a gamma for
        (`n_common`; the only ranking), whether the lowest facet is right, fit costs.

    Raises
    ------
    StoreError
        When there is no store (`surfbench.store.file.StoreError`).
    ValueError
        When the store records no training.
    """
    from surfbench.data.registry import stored_name
    from surfbench.store.results import ResultStore
    from surfbench.store.trainings import trainings
    from surfbench.training.curves import protocol_table

    workdir = Path(workdir).expanduser().resolve()
    with ResultStore(workdir, read_only=True) as store:
        tr = trainings(store)
        names = sorted(set(tr["dataset"])) if dataset is None else [stored_name(dataset)]
        if tr.empty or not set(names) & set(tr["dataset"]):
            raise ValueError(f"no training recorded in {store.path} (for {dataset or 'any data set'}); "
                             "'surfbench train' records them")
        return pd.concat([protocol_table(store, n, n_boot=n_boot, seed=seed).assign(dataset=n) for n in names],
                         ignore_index=True)
