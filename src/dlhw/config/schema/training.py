"""The groups that say how a network learns: ``init``, ``loss``, ``optimizer``, ``scheduler``.

Optimizers, schedules and init are passed on unbuilt (``_partial_: true``): the run gives them the
network's parameters, the optimizer, the network.
"""

from typing import ClassVar

from dlhw.config.schema.base import Option, key
from dlhw.config.schema.models import IMPLS
from dlhw.config.schema.types import (
    Count,
    Factor,
    Flag,
    Fraction,
    Natural,
    NonNegative,
    Positive,
    list_of,
    number,
    one_of,
)

SCHEMES = ("default", "gaussian", "kaiming", "xavier")  # dlhw.nn.init.SCHEMES (checked by the tests)

PARTIAL = "passed on unbuilt; the run completes it (must stay true)"


# ----------------------------------------------------------------------------- init
class Init(Option):
    """How the network's weights start (dlhw.nn.init.initialize)."""

    targets: ClassVar = ("dlhw.nn.init.initialize",)

    partial_: one_of(True) = key(PARTIAL, alias="_partial_")
    scheme: one_of(*SCHEMES) = key("default: PyTorch's own; gaussian: N(0, std^2); kaiming: He; "
                                   "xavier: Glorot")
    std: Positive = key("standard deviation of scheme=gaussian")
    gain: Positive = key("gain of scheme=xavier")


# ----------------------------------------------------------------------------- loss
class Loss(Option):
    """The training loss (dlhw.nn.losses)."""

    impl: one_of(*IMPLS) = key("torch: torch.nn.functional's loss; scratch: the hand-written loss of "
                               "dlhw.nn.functional")


class CrossEntropy(Loss):
    targets: ClassVar = ("dlhw.nn.losses.CrossEntropy",)

    label_smoothing: Fraction = key("share of the target mass spread over all classes")


class MulticlassHinge(Loss):
    targets: ClassVar = ("dlhw.nn.losses.MulticlassHinge",)

    margin: Positive = key("the hinge's margin")


class BinaryLoss(Loss):
    """One score per sample, two classes; no keys."""

    targets: ClassVar = ("dlhw.nn.losses.BinaryLogistic", "dlhw.nn.losses.BinaryHinge")


# ----------------------------------------------------------------------------- optimizer
class Optimizer(Option):
    """An optimizer of the network's parameters."""

    partial_: one_of(True) = key(PARTIAL, alias="_partial_")
    lr: Positive = key("learning rate")
    weight_decay: NonNegative = key("L2 regularisation (AdamW: decoupled weight decay)")
    maximize: Flag = key("maximise the objective instead")


class TorchOptimizer(Optimizer):
    foreach: None | Flag = key("torch's multi-tensor implementation (null: torch decides)")


Betas = list_of(Fraction, length=2)


class Adam(TorchOptimizer):
    targets: ClassVar = ("torch.optim.Adam", "torch.optim.AdamW")

    betas: Betas = key("decay rates of the gradient's first and second moment estimates")
    eps: Positive = key("added to the denominator")
    amsgrad: Flag = key("the AMSGrad variant")
    fused: None | Flag = key("one kernel per parameter tensor (null: torch decides)")


class SGD(TorchOptimizer):
    targets: ClassVar = ("torch.optim.SGD",)

    momentum: Fraction = key("momentum factor")
    dampening: Fraction = key("dampening of the momentum")
    nesterov: Flag = key("Nesterov momentum")
    fused: None | Flag = key("one kernel per parameter tensor (null: torch decides)")


class RMSprop(TorchOptimizer):
    targets: ClassVar = ("torch.optim.RMSprop",)

    alpha: Fraction = key("decay rate of the squared-gradient average")
    eps: Positive = key("added to the denominator")
    momentum: Fraction = key("momentum factor")
    centered: Flag = key("divide by the gradient's estimated variance")


class AdamScratch(Optimizer):
    targets: ClassVar = ("dlhw.optim.AdamScratch",)

    betas: Betas = key("decay rates of the gradient's first and second moment estimates")
    eps: Positive = key("added to the denominator")
    amsgrad: Flag = key("the AMSGrad variant")


class SGDScratch(Optimizer):
    targets: ClassVar = ("dlhw.optim.SGDScratch",)

    momentum: Fraction = key("momentum factor")
    dampening: Fraction = key("dampening of the momentum")
    nesterov: Flag = key("Nesterov momentum")


class RMSpropScratch(Optimizer):
    targets: ClassVar = ("dlhw.optim.RMSpropScratch",)

    alpha: Fraction = key("decay rate of the squared-gradient average")
    eps: Positive = key("added to the denominator")
    momentum: Fraction = key("momentum factor")
    centered: Flag = key("divide by the gradient's estimated variance")


# ----------------------------------------------------------------------------- scheduler
class Scheduler(Option):
    """A learning-rate schedule of the optimizer, stepped per epoch (module.scheduler_interval)."""

    partial_: one_of(True) = key(PARTIAL, alias="_partial_")


Decay = Factor  # lr x gamma: (0, 1]


class StepLR(Scheduler):
    targets: ClassVar = ("torch.optim.lr_scheduler.StepLR",)

    step_size: Count = key("epochs between decays")
    gamma: Decay = key("lr x gamma at each decay")


class MultiStepLR(Scheduler):
    targets: ClassVar = ("torch.optim.lr_scheduler.MultiStepLR",)

    milestones: list_of(Count) = key("epochs at which the lr decays")
    gamma: Decay = key("lr x gamma at each milestone")


class CosineAnnealingLR(Scheduler):
    targets: ClassVar = ("torch.optim.lr_scheduler.CosineAnnealingLR",)

    T_max: Count = key("epochs of the cosine (the run's max_epochs)")
    eta_min: NonNegative = key("lr at the end")


class ReduceLROnPlateau(Scheduler):
    targets: ClassVar = ("torch.optim.lr_scheduler.ReduceLROnPlateau",)

    mode: one_of("min", "max") = key("min: module.monitor should fall; max: rise")
    factor: number(0, 1, low_open=True, high_open=True) = key("lr x factor on a plateau")
    patience: Natural = key("epochs without improvement before the lr drops")
    threshold: NonNegative = key("smallest change that counts as an improvement")
    threshold_mode: one_of("rel", "abs") = key("threshold relative to the best value, or absolute")
    cooldown: Natural = key("epochs to wait after a drop")
    min_lr: NonNegative = key("the lr never drops below this")
    eps: NonNegative = key("smaller lr changes are ignored")


class LinearWarmup(Scheduler):
    targets: ClassVar = ("dlhw.optim.schedules.LinearWarmup",)

    warmup_epochs: Natural = key("epochs of linear warm-up from start_factor x lr to lr")
    start_factor: Factor = key("the lr of the first epoch, as a share of lr")
    after: None | Scheduler = key("the schedule after the warm-up (null: constant lr)")


class Cosine(Scheduler):
    targets: ClassVar = ("dlhw.optim.schedules.cosine",)

    epochs: Count = key("epochs of the whole run (the cosine spans epochs - skip)")
    skip: Natural = key("epochs before the cosine starts (the warm-up)")
    eta_min: NonNegative = key("lr at the end")
