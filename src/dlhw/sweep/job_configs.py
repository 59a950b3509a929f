"""The job configs of a packed sweep: each composed once, and ahead, while the training code loads.

Hydra's sweeper composes every job of a batch to check it before the launcher runs any (about
0.1 s a job), then drops the result; ``keep_validated_configs`` keeps a copy for the launcher,
which would otherwise compose each job again. And the packed launcher needs PyTorch and
Lightning (about 3 s to import): both are Python work that would take turns on one core.
``ComposeAhead`` is a helper process, forked when the launcher is set up, that composes the jobs
and sends them back while a thread of this process imports the training code (``Preload``): on
two cores the two overlap. The helper is started only on Linux and only before PyTorch is loaded
(it forks a process that has no threads yet); elsewhere, or if it fails, the jobs are composed
here, as without it. This module loads neither PyTorch nor Lightning.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import importlib
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

Compose = Callable[[DictConfig, list[str]], DictConfig]


class ComposeAhead:
    """A forked process that composes the jobs of ``master`` with ``compose`` (see the module doc).

    ``compose_job`` returns a job's config, or None where the caller must compose it itself (a
    composition that failed there, so that the caller raises its own error; another master
    config; the helper gone)."""

    def __init__(self, pid: int, conn: multiprocessing.connection.Connection, master: DictConfig):
        self.pid, self.conn, self.master = pid, conn, master

    @classmethod
    def start(cls, compose: Compose, master: DictConfig, fresh_only: bool = True) -> ComposeAhead | None:
        """Fork the helper; None where it is not started (not Linux; with ``fresh_only``, a process
        that has loaded PyTorch already, which has nothing to overlap and may hold threads)."""
        if sys.platform != "linux" or (fresh_only and "torch" in sys.modules):
            return None
        ours, theirs = multiprocessing.Pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the helper: compose on request, never return into Hydra
            code = 0
            try:
                ours.close()
                signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl+C ends it without a traceback
                _serve(theirs, compose, master)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        helper = cls(pid, ours, master)
        atexit.register(helper.close)  # reaped even where no batch is launched (a mistake in an override)
        return helper

    def compose_job(self, master: DictConfig, overrides: Sequence[str]) -> DictConfig | None:
        if master is not self.master or self.conn is None:
            return None
        try:
            self.conn.send(list(overrides))
            status, config = self.conn.recv()
        except (EOFError, OSError):
            self.close()
            return None
        if status != "ok":
            return None
        # the helper's copy of the master config may lack values resolved here since the fork
        OmegaConf.copy_cache(from_config=master, to_config=config)
        return config

    def close(self) -> None:
        """End the helper and reap it."""
        if self.conn is None:
            return
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.conn.close()
        self.conn = None
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _serve(conn, compose: Compose, master: DictConfig) -> None:
    while True:
        try:
            overrides = conn.recv()
        except EOFError:  # the launcher's process is gone
            return
        if overrides is None:
            return
        try:
            reply = ("ok", compose(master, overrides))
        except Exception:  # the caller composes this one itself and reports its own error
            reply = ("failed", None)
        conn.send(reply)


class Preload:
    """Import modules in a thread (an ImportError is left for the import that needs them). Not a
    daemon: a process that ends meanwhile (a mistake in an override) waits for it rather than
    stopping an import halfway at shutdown."""

    def __init__(self, *modules: str):
        self.thread = threading.Thread(target=self._run, args=modules, name="dlhw-preload")
        self.thread.start()

    @staticmethod
    def _run(*modules: str) -> None:
        for name in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    def wait(self) -> None:
        self.thread.join()


def keep_validated_configs(loader, ahead: ComposeAhead | None = None) -> None:
    """Let ``loader.load_sweep_config`` keep a copy of each job config it composes (in the helper
    ``ahead`` where there is one), for ``job_config``."""
    if hasattr(loader, "_dlhw_kept"):
        return
    compose = loader.load_sweep_config
    kept: dict[tuple, tuple[DictConfig, DictConfig]] = {}

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        config = ahead.compose_job(master_config, sweep_overrides) if ahead is not None else None
        if config is None:
            config = compose(master_config, sweep_overrides)
        # the master config is kept too, so that its id cannot name another config meanwhile
        kept[(id(master_config), tuple(sweep_overrides))] = (master_config, copy.deepcopy(config))
        return config

    loader.load_sweep_config = load_sweep_config
    loader._dlhw_kept, loader._dlhw_compose = kept, compose


def job_config(loader, config: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """A job's config: the copy kept from the sweeper's validation (handed out once), else composed."""
    master, found = getattr(loader, "_dlhw_kept", {}).pop((id(config), tuple(overrides)), (None, None))
    if master is config:
        return found
    return getattr(loader, "_dlhw_compose", loader.load_sweep_config)(config, list(overrides))
