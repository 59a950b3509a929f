"""VGG11 for 32x32 images: the standard plan with BatchNorm (vgg11_cifar10) and a small plan."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlhw.errors import ConfigValueError
from dlhw.models.layers import conv_block, conv_out, fc_block, layer_set
from dlhw.shapes import IMAGE, Takes

PLANS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg11_small": [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"],
}


def _plan(plan: str | Sequence[int | str]) -> list[int | str]:
    """The channel plan of a name of PLANS, or the list itself."""
    if isinstance(plan, str):
        if plan not in PLANS:
            raise ConfigValueError(f"model.plan={plan!r} is not one of {sorted(PLANS)} or a list")
        return list(PLANS[plan])
    return list(plan)


class VGG(nn.Module):
    """3x3 convs (padding 1) -> (BatchNorm) -> ReLU per number of the plan, 2x2 max-pool per "M".

    The flattened features then pass through the ``hidden`` FC layers (ReLU, optional dropout)
    and a linear output layer.

    Args:
        in_shape: (C, H, W) of one input.
        num_classes: outputs of the last layer.
        plan: a name of PLANS ("vgg11", "vgg11_small") or a list of channel counts and "M".
        hidden: widths of the hidden FC layers (vgg11: none; vgg11_small: [64]).
        batch_norm: BatchNorm after every conv (and hidden FC).
        dropout: drop probability after each hidden FC layer.
        impl: "torch" layers or the hand-written "scratch" ones.
    """

    @staticmethod
    def takes(plan: str | Sequence[int | str] = "vgg11", **_) -> Takes:
        """Images of at least 2^k x 2^k for the k max-pools of the plan (32x32 for VGG11)."""
        size = 2 ** list(_plan(plan)).count("M")
        return Takes(IMAGE, min_size=(size, size))

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        plan: str | Sequence[int | str] = "vgg11",
        hidden: Sequence[int] = (),
        batch_norm: bool = True,
        dropout: float = 0.0,
        impl: str = "torch",
    ):
        super().__init__()
        plan = _plan(plan)
        L = layer_set(impl)
        self.takes(plan).check(in_shape, "VGG")
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for item in plan:
            if item == "M":
                layers.append(L.MaxPool2d(2, 2))
                h, w = conv_out(h, 2, 2), conv_out(w, 2, 2)
                continue
            cout = int(item)
            layers += conv_block(L, c, cout, 3, 1, batch_norm)
            c = cout
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        width = c * h * w
        for n in hidden:
            head += fc_block(L, width, n, batch_norm, dropout)
            width = n
        head.append(L.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def vgg11(in_shape, num_classes, **kwargs) -> VGG:
    """The standard VGG11 channel plan with BatchNorm and one linear output layer."""
    return VGG(in_shape, num_classes, plan="vgg11", **kwargs)


def vgg11_small(in_shape, num_classes, hidden: Sequence[int] = (64,), **kwargs) -> VGG:
    """The plan of vgg11_small_cifar10: 8, M, 16, M, 32, 32, M, 64, 64, M, 64, 64, M, FC 64, FC classes."""
    return VGG(in_shape, num_classes, plan="vgg11_small", hidden=hidden, **kwargs)

