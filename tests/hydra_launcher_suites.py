"""Hydra's own test suites for launchers (hydra.test_utils.launcher_common_tests), run against
hydra/launcher=packed: jobs of plain Hydra apps, not dlhw runs, so the packed launcher runs them
as ordinary jobs, one after another. Not collected with the other tests: the suites leave Hydra's
global state changed, so tests/test_launcher_suites.py runs this file in its own pytest process."""

from __future__ import annotations

import pytest
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

DLHW_CONF = "hydra.searchpath=[pkg://dlhw.conf]"  # where hydra/launcher=packed is found


@pytest.mark.parametrize(("launcher_name", "overrides"), [("packed", [DLHW_CONF])])
class TestPackedLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(("task_launcher_cfg", "extra_flags"), [
    ({}, ["-m", "hydra/job_logging=hydra_debug", "hydra/job_logging=disabled", "hydra/launcher=packed", DLHW_CONF]),
])
class TestPackedLauncherIntegration(IntegrationTestSuite):
    pass
