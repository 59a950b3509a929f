"""Opt-in speed options applied to the network in ``dlhw.run.build.build``: channels_last and torch.compile.

Both are top-level keys of conf/train.yaml (``channels_last: false``, ``compile: false``), because
model configs are plain constructor arguments; that they are true or false is checked with the
rest of the config (dlhw.config.validate). Neither changes parameter names, so checkpoints stay
interchangeable between runs with and without them.
"""

from __future__ import annotations

import os
import shutil

import torch
from torch import nn

from dlhw.errors import UserError


def _to_channels_last(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: a 4-D input batch in channels_last layout (a no-op when it already is)."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def use_channels_last(net: nn.Module) -> nn.Module:
    """Store 4-D weights as NHWC and feed NHWC batches (faster convolutions on GPUs with tensor cores)."""
    net.to(memory_format=torch.channels_last)
    net.register_forward_pre_hook(_to_channels_last)
    return net


def compiler_missing() -> str | None:
    """Why torch.compile cannot run here (inductor on CPU builds C++ and needs a compiler), else None."""
    if not hasattr(nn.Module, "compile"):
        return f"torch {torch.__version__} has no nn.Module.compile (needs torch >= 2.2)"
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None and shutil.which("c++") is None:
        return f"no C++ compiler ({cxx}) on PATH, which torch.compile needs to build CPU kernels"
    return None


def compile_net(net: nn.Module) -> nn.Module:
    """torch.compile the network in place (parameter names unchanged; the first steps are slow)."""
    why = compiler_missing()
    if why is not None:
        raise UserError(f"compile=true cannot work here: {why}. Install one or set compile=false.")
    net.compile()
    return net


def apply_speed_options(net: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """channels_last first (compile then traces the NHWC layout), then compile."""
    if channels_last:
        use_channels_last(net)
    if compile:
        compile_net(net)
    return net
