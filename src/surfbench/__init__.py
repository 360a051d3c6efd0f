"""surfbench: are universal interatomic potentials good enough for surfaces?

Data flow, one sub-package per stage::

    data -> models -> evaluation -> analysis -> (report)

In Python: ``surfbench.evaluate(model, dataset, ...)`` returns :class:`surfbench.Results`
(tables as DataFrames, figures as plotly figures); ``surfbench.load_results(workdir)`` reads
stored runs. See :mod:`surfbench.api`.
"""

__version__ = "0.1.0"

#: the Python API (:mod:`surfbench.api`), imported on first use so that ``import surfbench``
#: (the CLI, worker processes) stays light
__all__ = ["Results", "evaluate", "load_results", "trained_models", "training_runs"]


def __getattr__(name: str):
    if name in __all__:
        from surfbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'surfbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
