"""Small residual CNN for image folders (resnet_folder): stem, residual stages, global pooling, FC."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlhw.errors import ConfigValueError
from dlhw.models.layers import layer_set
from dlhw.shapes import IMAGE, Takes


class ResidualBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the input (1x1 conv + BN when the shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, impl: str = "torch"):
        super().__init__()
        L = layer_set(impl)
        self.body = nn.Sequential(
            L.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            L.BatchNorm2d(cout),
            L.ReLU(),
            L.Conv2d(cout, cout, 3, padding=1, bias=False),
            L.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(L.Conv2d(cin, cout, 1, stride=stride, bias=False), L.BatchNorm2d(cout))
        self.out = L.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class ResNetSmall(nn.Module):
    """conv3x3 stem -> BN -> ReLU -> max-pool, residual stages (the first block of each stage
    after the first halves H and W), global average pooling, dropout, FC.

    Args:
        in_shape: (C, H, W) of one input.
        num_classes: outputs of the last layer.
        channels: channels of each stage (the stem has channels[0]).
        blocks: residual blocks per stage.
        dropout: drop probability before the FC head.
        impl: "torch" layers or the hand-written "scratch" ones.
    """

    @staticmethod
    def takes(**_) -> Takes:
        """Images of at least 2x2 (the stem's pool; strided convs and global pooling take any size)."""
        return Takes(IMAGE, min_size=(2, 2))

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        channels: Sequence[int] = (32, 64, 128),
        blocks: int = 1,
        dropout: float = 0.0,
        impl: str = "torch",
    ):
        super().__init__()
        if not channels or blocks < 1:
            raise ConfigValueError(f"model.channels={list(channels)} must be non-empty and model.blocks={blocks} >= 1")
        L = layer_set(impl)
        self.takes().check(in_shape, "ResNetSmall")
        c = in_shape[0]
        self.stem = nn.Sequential(
            L.Conv2d(c, channels[0], 3, padding=1, bias=False), L.BatchNorm2d(channels[0]), L.ReLU(),
            L.MaxPool2d(2, 2),
        )
        stages: list[nn.Module] = []
        cin = channels[0]
        for i, cout in enumerate(channels):
            for b in range(blocks):
                stride = 2 if i > 0 and b == 0 else 1
                stages.append(ResidualBlock(cin, cout, stride, impl))
                cin = cout
        self.stages = nn.Sequential(*stages)
        head: list[nn.Module] = [L.Dropout(dropout)] if dropout > 0 else []
        self.head = nn.Sequential(*head, L.Linear(cin, num_classes))

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations after the stem and after every residual block (for pictures of them)."""
        maps = [self.stem(x)]
        for block in self.stages:
            maps.append(block(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))
