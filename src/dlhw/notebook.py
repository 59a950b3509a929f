"""dlhw in Jupyter: is this a notebook kernel, and a user's mistake shown as one message.

In a notebook, a ``UserError`` (a bad override, missing data, a path that is not a run) shows as
the one line ``dlhw: error: ...`` that dlhw-train prints, instead of a traceback, and the kernel
lives on; the cell still counts as failed, so "Run all" stops there. ``HYDRA_FULL_ERROR=1`` shows
the traceback as usual.
"""

from __future__ import annotations

import os
import sys


def ipython_shell():
    """The running IPython shell, or None (IPython is not imported here unless already loaded)."""
    module = sys.modules.get("IPython")
    return module.get_ipython() if module is not None else None


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (Jupyter, JupyterLab, VS Code, Colab), False in a terminal."""
    return getattr(ipython_shell(), "kernel", None) is not None


def _one_message(shell, etype, value, tb, tb_offset=None):
    """IPython's handler of a UserError: its message once (unless dlhw already printed it)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    elif not getattr(value, "shown", False):
        print(f"dlhw: error: {value}", file=sys.stderr)
    return []


def show_errors_as_messages() -> None:
    """In IPython, show a UserError as one message instead of a traceback (idempotent)."""
    from dlhw.errors import UserError

    shell = ipython_shell()
    if shell is None or UserError in getattr(shell, "custom_exceptions", ()):
        return
    shell.set_custom_exc((UserError,), _one_message)
