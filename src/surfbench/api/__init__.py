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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from ase.calculators.calculator import BaseCalculator

from surfbench.api.results import METRIC_GROUPS, PREDICTION_COLUMNS, Results
from surfbench.records import SPLIT_CHOICES as SPLITS
from surfbench.records import Dataset

if TYPE_CHECKING:
    from surfbench.evaluation.protocols import Protocol
    from surfbench.models.base import LoadedModel

#: the API; :class:`Results` and its vocabulary live in :mod:`surfbench.api.results` and are
#: documented here
__all__ = ["METRIC_GROUPS", "PREDICTION_COLUMNS", "Results", "evaluate", "load_results", "trained_models",
           "training_runs"]

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
