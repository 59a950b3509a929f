"""Many runs: the sweep callback, the launchers (Ray), devices and threads per job, the Optuna search.

``dlhw.sweep`` is also the Python API's sweep: calling this package, ``dlhw.sweep("experiment=...")``,
calls ``dlhw.api.sweep`` (one name for both, so that ``dlhw.sweep.callback`` still imports).
"""

import sys
import types


class _SweepPackage(types.ModuleType):
    def __call__(self, *overrides, **options):
        """``dlhw.api.sweep``: run a sweep as ``dlhw-train -m OVERRIDES`` and return its results."""
        from dlhw.api import sweep

        return sweep(*overrides, **options)


sys.modules[__name__].__class__ = _SweepPackage
