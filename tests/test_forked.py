"""Packs side by side: forked children send back their results, a lost child is named, signals to
the parent reach every child once; how many processes a CPU pack is split over."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dlhw.sweep import forked
from dlhw.sweep.forked import ChildLost, run_forked
from dlhw.sweep.packing import pack_processes, split_evenly
from dlhw.sweep.threads import available_cores

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forking packs is Linux only")


def test_a_process_with_other_threads_does_not_fork() -> None:
    assert forked.available() == (threading.active_count() == 1)
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        assert not forked.available()  # a Jupyter kernel, say: the pack stays in its process
        cpu = OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 1}})
        assert pack_processes(4, cpu, 16) == 1
    finally:
        stop.set()
        helper.join()


def test_children_send_back_their_results_in_order_and_a_lost_child_says_how_it_ended() -> None:
    parent_group = os.getpgid(0)
    results, received = run_forked([
        lambda: ("first", os.getpid() != os.getppid()),
        lambda: os.getpgid(0) != parent_group,  # its own process group: a Ctrl+C reaches the parent only
        lambda: None,  # a result like any other
        lambda: os._exit(3),
        lambda: os.kill(os.getpid(), signal.SIGKILL),
    ])
    assert received is None
    assert results[:2] == [("first", True), True]
    assert results[2] is None
    assert results[3] == ChildLost("exit status 3")
    assert results[4] == ChildLost("killed by SIGKILL")


def test_a_signal_to_the_parent_reaches_every_child_once(tmp_path: Path) -> None:
    def task(i: int):
        def wait_for_signals() -> list[str]:
            received: list[str] = []
            signal.signal(signal.SIGTERM, lambda signum, frame: received.append("SIGTERM"))
            (tmp_path / f"ready-{i}").touch()
            deadline = time.time() + 20
            while not received and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # room for a second signal, which must not come
            return received
        return wait_for_signals

    def signal_parent_when_ready() -> None:
        deadline = time.time() + 20
        while time.time() < deadline and len(list(tmp_path.glob("ready-*"))) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=signal_parent_when_ready, daemon=True).start()
    assert run_forked([task(0), task(1)]) == ([["SIGTERM"], ["SIGTERM"]], signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before  # the parent's handler is back


def test_a_cpu_pack_is_split_over_the_cores_and_a_gpu_pack_never(monkeypatch) -> None:
    monkeypatch.setattr(forked, "available", lambda: True)  # whatever threads earlier tests left
    cpu = OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 1}, "threads": None})
    cores = available_cores()
    assert pack_processes(None, cpu, 64) == cores
    assert pack_processes(None, cpu, 1) == 1
    assert pack_processes(3, cpu, 16) == 3 and pack_processes(3, cpu, 2) == 2
    cpu.threads = 2  # runs of two threads each: the pack stays in one process, its runs on threads
    assert pack_processes(None, cpu, 64) == 1
    gpu = OmegaConf.create({"trainer": {"accelerator": "gpu", "devices": 1}})
    assert pack_processes(4, gpu, 16) == 1
    two_cpus = OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 2}})
    assert pack_processes(4, two_cpus, 16) == 1
    assert split_evenly(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_evenly([0], 2) == [[0]]
