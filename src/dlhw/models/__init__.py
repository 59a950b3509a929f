"""Plain nn.Modules built from explicit arguments (in_shape, num_classes, ...): no Lightning here."""

from dlhw.models.lenet import LeNet
from dlhw.models.mlp import MLP

__all__ = ["LeNet", "MLP"]
