"""The Hydra callback of dlhw's runs and sweeps: output directory check, job names, end-of-sweep
summary and report.

The callback is registered in conf/hydra/default.yaml (``hydra.callbacks.dlhw``). A job of a sweep
is named by what the sweep varies (``3_init=kaiming,seed=1``): at the start of a sweep the callback
publishes the command-line keys that every job shares (``DLHW_SWEEP_FIXED_KEYS``, read by
conf/hydra/default.yaml), Hydra leaves them out of ``hydra.job.override_dirname``, and the job
directory is ``NUM_OVERRIDE_DIRNAME``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dlhw.errors import UserError
from dlhw.results import RunResult, read_results

log = logging.getLogger("dlhw")

FIXED_KEYS_ENV = "DLHW_SWEEP_FIXED_KEYS"
_JOB_DIR = re.compile(r"^(\d+)(_|$)")
_RUNNING: dict[str, str] = {}  # the sweep this process runs (set by DlhwCallback), for a Ctrl+C


def _fail(message: str) -> None:
    print(f"dlhw: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class DlhwCallback(Callback):
    """Refuses an unwritable output directory before Hydra writes to it; names the jobs of a sweep
    by what they vary; after a sweep, summarises the statuses and writes the sweep's report."""

    def _check_dir(self, path: str) -> None:
        from dlhw.config.validate import check_output_dir

        try:
            check_output_dir(path)
        except UserError as exc:
            _fail(str(exc))

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check_dir(str(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check_dir(str(config.hydra.sweep.dir))
        _RUNNING["sweep_dir"] = str(config.hydra.sweep.dir)
        _, fixed = split_sweep_keys(list(config.hydra.overrides.task), config.hydra.sweeper.get("params"))
        os.environ[FIXED_KEYS_ENV] = json.dumps(fixed)  # read as the jobs' configs are composed

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        summary = summarize_sweep(sweep_dir)
        if summary:
            log.info(summary)
        if config.get("report", True):
            write_sweep_report(sweep_dir, _experiment_of(config))


def interrupted_message() -> str:
    """What a Ctrl+C outside any run tells the user (a run reports its own): between two jobs of
    a sweep, or while Hydra starts."""
    sweep_dir = _RUNNING.get("sweep_dir")
    if sweep_dir:
        return (f"sweep interrupted between jobs; the jobs that completed keep their results. "
                f"Continue with: dlhw-train -m resume={sweep_dir}")
    return "interrupted before the run started; nothing was trained."


def split_sweep_keys(overrides: list[str], sweeper_params: Any = None) -> tuple[list[str], list[str]]:
    """(swept, fixed) keys of a sweep's command line: a key with a sweep value (``a,b``,
    ``range(3)``, ``choice(...)``) or among the sweeper's params varies; every other key is shared."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = {str(k).lstrip("+~") for k in (sweeper_params or {})}
    swept, fixed = [], []
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.key_or_group
        (swept if o.is_sweep_override() or key.lstrip("+~") in params else fixed).append(key)
    return swept, fixed


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job directories of a sweep (``N`` or ``N_NAME``), in job order."""
    if not sweep_dir.is_dir():
        return []
    jobs = [(int(m.group(1)), p) for p in sweep_dir.iterdir() if p.is_dir() and (m := _JOB_DIR.match(p.name))]
    return [p for _, p in sorted(jobs)]


def _experiment_of(config: DictConfig) -> str | None:
    """The preset a sweep ran (``experiment=NAME``), or None."""
    choice = OmegaConf.select(config, "hydra.runtime.choices.experiment", default=None)
    return str(choice) if choice else None


def write_sweep_report(sweep_dir: Path, experiment: str | None = None) -> Path | None:
    """The report of a finished sweep in its directory (what ``dlhw-report SWEEP_DIR`` writes,
    titled by the study); a report that cannot be drawn is a warning, never a failed sweep."""
    from dlhw.report.markdown import build_report

    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    title = f"{experiment}: {sweep_dir.name}" if experiment else None
    try:
        path = build_report(sweep_dir, title=title)
    except Exception as exc:  # the jobs' results are safe on disk; only the report is missing
        log.warning("dlhw: the sweep's report could not be written (%s); try dlhw-report %s", exc, sweep_dir)
        return None
    log.info("Report: %s\nHTML:   %s", path, path.with_suffix(".html"))
    return path


def summarize_sweep(sweep_dir: Path) -> str:
    """One line per job that did not complete, after a count of the statuses of the sweep's jobs."""
    jobs = job_dirs(sweep_dir)
    if not jobs:
        return ""
    counts: dict[str, int] = {}
    bad = []
    for job in jobs:
        res = read_results(job) or RunResult(status="missing")
        status = res.status or "unknown"
        counts[status] = counts.get(status, 0) + 1
        if status != "completed":
            why = res.error or res.reason or "no results.json"
            bad.append(f"  job {job.name} {status}: {str(why).splitlines()[0][:200]}  ({job})")
    head = f"Sweep {sweep_dir}: {len(jobs)} jobs, " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    tail = "" if not bad else "\n" + "\n".join(bad) + (
        f"\nRe-run what did not complete (completed jobs are skipped): dlhw-train -m resume={sweep_dir}"
    )
    return head + tail
