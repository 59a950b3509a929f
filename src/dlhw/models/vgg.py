"""VGG11 for 32x32 images (CATALOGUE B): the standard channel plan with BatchNorm, and a small plan."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlhw.models.layers import conv_block, conv_out, fc_block, layer_set

PLANS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg11_small": [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"],
}


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
        if isinstance(plan, str):
            if plan not in PLANS:
                raise ValueError(f"model.plan={plan!r} is not one of {sorted(PLANS)} or a list")
            plan = PLANS[plan]
        L = layer_set(impl)
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for item in plan:
            if item == "M":
                layers.append(L.MaxPool2d(2, 2))
                h, w = conv_out(h, 2, 2), conv_out(w, 2, 2)
                if h < 1 or w < 1:
                    raise ValueError(f"VGG plan {list(plan)} pools inputs of {in_shape[1:]} to nothing")
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
    """The small plan of CATALOGUE B: 8, M, 16, M, 32, 32, M, 64, 64, M, 64, 64, M, FC 64, FC classes."""
    return VGG(in_shape, num_classes, plan="vgg11_small", hidden=hidden, **kwargs)
