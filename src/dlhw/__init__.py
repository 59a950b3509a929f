"""dlhw: configuration-driven deep-learning experiments.

From Python and Jupyter (the same runs, sweeps and reports as dlhw-train and dlhw-report)::

    import dlhw
    result = dlhw.train("experiment=lenet_cifar10", "data.root=DATA", seed=1)
    study = dlhw.sweep("experiment=lenet_cifar10_init", "data.root=DATA")
    table = dlhw.runs(study)        # pandas: one row per run, overrides as columns

``dlhw.sweep`` is the package of launchers, callable as the API's sweep (dlhw/sweep/__init__.py).
"""

from dlhw import sweep
from dlhw.api import SweepResult, TrainResult, compose, runs, scalars, train
from dlhw.notebook import show_errors_as_messages

show_errors_as_messages()  # in IPython: a UserError is one message, not a traceback (else no-op)

__version__ = "0.1.0"
__all__ = ["train", "sweep", "runs", "scalars", "compose", "TrainResult", "SweepResult", "__version__"]
