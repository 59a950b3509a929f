"""Weight initialisation schemes (``init=NAME``), written from their formulas.

Conv and Linear weights are drawn per layer from the scheme; biases are set to zero (except for
``default``, which keeps PyTorch's own initialisation untouched). Normalisation layers keep
weight 1 and bias 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlhw.errors import ConfigValueError

SCHEMES = ("default", "gaussian", "kaiming", "xavier")


def fan_in_out(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear (out, in) or Conv (out, in, *kernel) weight."""
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _weighted_layers(net: nn.Module):
    for module in net.modules():
        weight = getattr(module, "weight", None)
        is_norm = isinstance(module, nn.modules.batchnorm._NormBase) or "BatchNorm" in type(module).__name__
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2 and not is_norm:
            yield module, weight


@torch.no_grad()
def initialize(net: nn.Module, scheme: str = "default", std: float = 0.01, gain: float = 1.0) -> nn.Module:
    """Re-initialise every Conv/Linear weight of ``net`` in place.

    gaussian: N(0, std^2).  kaiming (He): N(0, 2 / fan_in), for ReLU networks.
    xavier (Glorot): N(0, gain^2 * 2 / (fan_in + fan_out)).
    """
    if scheme not in SCHEMES:
        raise ConfigValueError(f"init.scheme={scheme!r} is not one of {SCHEMES}")
    if scheme == "default":
        return net
    for module, weight in _weighted_layers(net):
        fan_in, fan_out = fan_in_out(weight)
        if scheme == "gaussian":
            sigma = std
        elif scheme == "kaiming":
            sigma = math.sqrt(2.0 / fan_in)
        else:
            sigma = gain * math.sqrt(2.0 / (fan_in + fan_out))
        weight.normal_(0.0, sigma)
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            bias.zero_()
    return net


@torch.no_grad()
def preactivation_variances(net: nn.Module, x: torch.Tensor) -> list[tuple[str, float]]:
    """(layer name, variance of its output) for every Conv/Linear layer of ``net`` on input ``x``.

    Measured in eval mode, so it shows what an initialisation does to the signal at depth (He keeps
    it roughly constant in a ReLU net; a fixed small Gaussian shrinks it layer by layer).
    """
    names = {id(m): name for name, m in net.named_modules()}
    found: list[tuple[str, float]] = []
    hooks = [
        module.register_forward_hook(lambda m, _i, out: found.append((names[id(m)], out.float().var().item())))
        for module, _ in _weighted_layers(net)
    ]
    was_training = net.training
    try:
        net.eval()
        net(x)
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()
    return found
