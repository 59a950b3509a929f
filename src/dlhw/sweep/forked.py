"""Work run side by side in forked processes, each sending back one picklable result.

The packed launcher splits a CPU pack over the cores this way (``dlhw.sweep.packed``): the
children inherit the imported training code and the composed configs, so nothing is imported or
composed twice, and each trains on its own core without sharing Python's interpreter lock.

A child runs in its own process group, so a Ctrl+C at the terminal reaches the parent alone,
which passes SIGINT or SIGTERM on to every child exactly once; a child also gets SIGTERM if the
parent dies. Only where forking is safe (``available``): on Linux, from a process that runs no
other thread (a Jupyter kernel's threads could hold a lock the child would copy held).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_PR_SET_PDEATHSIG = 1


@dataclass
class ChildLost:
    """A child that ended without sending its result (killed, crashed): how it ended."""

    description: str


def available() -> bool:
    """Whether work can be forked here: Linux (fork keeps the imported modules, cheaply) and no
    thread but this one (the packed launcher's import thread has ended by then)."""
    return sys.platform == "linux" and threading.active_count() == 1


_STOPS = {signal.SIGINT, signal.SIGTERM}
_LOST = object()  # no result came back (a task may well return None)


def run_forked(tasks: Sequence[Callable[[], Any]]) -> tuple[list[Any], int | None]:
    """Run each task in a forked child, all at once: ``(results, signal)``, the result of each
    task in order (a ``ChildLost`` for a child that sent nothing back) and the signal this
    process received and passed on meanwhile (SIGINT or SIGTERM), else None."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    children: list[tuple[int, multiprocessing.connection.Connection]] = []
    forward = _Forwarding()
    try:
        with forward:
            for task in tasks:
                ours, theirs = multiprocessing.Pipe(duplex=False)
                mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)  # none until both sides are set up
                try:
                    pid = os.fork()
                    if pid == 0:
                        ours.close()
                        _child(task, theirs, mask)  # never returns
                    with contextlib.suppress(OSError):
                        os.setpgid(pid, pid)  # as the child does: whichever runs first
                    forward.pids.append(pid)
                    children.append((pid, ours))
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                    theirs.close()
            results = _collect([conn for _, conn in children])
    finally:  # reap every child; one still running here (this process failed) is stopped first
        for pid, conn in children:
            if not conn.closed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                conn.close()
        statuses = [os.waitpid(pid, 0)[1] for pid, _ in children]
    results = [ChildLost(_describe(status)) if result is _LOST else result
               for result, status in zip(results, statuses, strict=True)]
    return results, forward.received


def _collect(conns: list[multiprocessing.connection.Connection]) -> list[Any]:
    results: list[Any] = [_LOST] * len(conns)
    pending = {conn: i for i, conn in enumerate(conns)}
    while pending:
        for conn in multiprocessing.connection.wait(list(pending)):
            i = pending.pop(conn)
            try:
                results[i] = pickle.loads(conn.recv_bytes())
            except Exception:  # the child ended without sending, or sent what cannot be read here
                pass
            conn.close()
    return results


def _child(task: Callable[[], Any], conn: multiprocessing.connection.Connection, mask) -> None:
    code = 0
    try:
        os.setpgid(0, 0)  # the terminal's Ctrl+C goes to the parent, which passes it on once
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        result = task()
        conn.send_bytes(pickle.dumps(result))
    except (KeyboardInterrupt, SystemExit):  # stopped: the parent knows which signal it passed on
        code = 1
    except BaseException:  # the task reports its own errors; anything else is shown, then lost
        traceback.print_exc()
        code = 1
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)  # never back into the parent's stack (Hydra, pytest, atexit handlers)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


class _Forwarding:
    """While active: SIGINT and SIGTERM to this process are passed on to ``pids`` (and noted)."""

    def __init__(self):
        self.pids: list[int] = []
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Forwarding:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._forward)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _forward(self, signum: int, frame) -> None:
        self.received = signum
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
