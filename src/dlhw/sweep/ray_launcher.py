"""The jobs of a sweep as Ray tasks (``hydra/launcher=ray_gpus``), on Hydra's Ray launcher plugin.

Ray schedules: each task asks for its share (``dlhw.sweep.devices.task_resources``), Ray runs as
many at once as the cluster holds, gives each its GPU (CUDA_VISIBLE_DEVICES) and queues the rest.
The plugin (hydra-ray-launcher) starts or joins the cluster and runs a job in a task; this module
adds the shares, one sweep directory for all jobs, and results collected so that a job whose
worker dies is reported failed while the others finish.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

from dlhw.config.resolvers import gpus_per_job
from dlhw.errors import UserError
from dlhw.sweep.devices import task_resources

log = logging.getLogger("dlhw")

# ray.init defaults of the preset: a small object store (jobs exchange only configs and results)
INIT_DEFAULTS = {"object_store_memory": 78_643_200}


def _fail(message: str) -> None:
    print(f"dlhw: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _ray_plugin():
    try:
        import ray
        from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray, start_ray
    except ImportError as exc:
        _fail(f"hydra/launcher=ray_gpus needs Ray and Hydra's Ray launcher ({exc}); install them "
              "with: pip install 'dlhw[ray]'")
    return ray, launch_job_on_ray, start_ray


def remote_options(launcher, cluster: dict[str, float]) -> dict[str, Any]:
    """ray.remote options of every job: its share of the cluster, then the user's own options."""
    trainer = launcher.config.get("trainer") or {}
    gpus = gpus_per_job(trainer.get("accelerator", "cpu"), trainer.get("devices", 1))
    share = task_resources(cluster, gpus, launcher.jobs_per_gpu, launcher.cpus_per_job)
    remote = launcher.ray_cfg.get("remote")
    user = OmegaConf.to_container(remote, resolve=True) if remote else {}
    return {**share, **user}


def collect(ray, refs: Sequence[Any], job_returns_on_crash: Sequence[Any]) -> list[Any]:
    """Every job's JobReturn; a task whose worker died yields its failed JobReturn, not an exception."""
    results = []
    for ref, crashed in zip(refs, job_returns_on_crash, strict=True):
        try:
            results.append(ray.get(ref))
        except ray.exceptions.RayError as exc:
            log.error("dlhw: job %s failed in Ray (the sweep goes on): %s", crashed.task_name, exc)
            crashed.return_value = exc
            results.append(crashed)
    return results


def _failed_return(overrides: Sequence[str], sweep_config) -> Any:
    from hydra.core.utils import JobReturn, JobStatus

    return JobReturn(overrides=list(overrides), cfg=sweep_config, hydra_cfg=sweep_config,
                     task_name=f"#{sweep_config.hydra.job.num}", status=JobStatus.FAILED)


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    """Run the jobs as Ray tasks; their JobReturns in order."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import configure_log, filter_overrides, setup_globals

    ray, launch_job_on_ray, start_ray = _ray_plugin()
    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)

    init = launcher.ray_cfg.init
    with open_dict(init):
        for key, value in INIT_DEFAULTS.items():
            init.setdefault(key, value)
    start_ray(init)
    cluster = ray.cluster_resources()
    try:
        options = remote_options(launcher, cluster)
    except UserError as exc:
        _fail(str(exc))
    log.info("Ray: %d jobs, each %s CPU and %s GPU, on a cluster of %g CPU and %g GPU; sweep dir %s",
             len(job_overrides), options["num_cpus"], options["num_gpus"], cluster.get("CPU", 0),
             cluster.get("GPU", 0), sweep_dir)
    remote = OmegaConf.create(options)

    refs, crash_returns = [], []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        sweep_config = launcher.hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"ray_job_{idx}"
            sweep_config.hydra.job.num = idx
            sweep_config.hydra.sweep.dir = str(sweep_dir)  # resolved here: one directory for all jobs
        refs.append(launch_job_on_ray(launcher.hydra_context, remote, sweep_config,
                                      launcher.task_function, Singleton.get_state()))
        crash_returns.append(_failed_return(overrides, sweep_config))
    return collect(ray, refs, crash_returns)
