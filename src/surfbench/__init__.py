"""surfbench: are universal interatomic potentials good enough for surfaces?

Data flow, one sub-package per stage::

    data -> models -> evaluation -> analysis -> (report)
"""

__version__ = "0.1.0"
