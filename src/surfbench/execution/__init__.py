"""Where evaluations run: in this process, in a killable child process (per-structure timeout),
or on Dask workers (a local cluster, an existing scheduler, SLURM/PBS through dask-jobqueue).

Workers only compute; the coordinating process (:func:`surfbench.execution.runner.run`, the runner:
what the store lacks, handed to an executor) writes every outcome to the store as it arrives.
"""

from surfbench.execution.executors import DaskExecutor, Executor, InProcessExecutor, make_executor
from surfbench.execution.tasks import CRASHED, TIMEOUT

__all__ = ["CRASHED", "TIMEOUT", "DaskExecutor", "Executor", "InProcessExecutor", "make_executor"]
