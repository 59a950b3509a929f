"""The ``model`` group: one option per model class of dlhw.models (conf/model/*.yaml).

A new model is a class in dlhw.models, a YAML file in conf/model/ and an ``Option`` here whose
``targets`` names the class and whose fields are its arguments (in_shape and num_classes come from
the data set, not from the config).
"""

from typing import ClassVar

from dlhw.config.schema.base import Option, key
from dlhw.config.schema.types import Count, Flag, Fraction, Natural, Positive, list_of, one_of

# The choices of the models (tests/test_schema.py checks them against dlhw.models' constants).
IMPLS = ("torch", "scratch")
CELLS = ("lstm", "gru", "rnn", "gated")
HEADS = ("mlp", "linear")
PLANS = ("vgg11", "vgg11_small")


class Model(Option):
    """A plain nn.Module built from in_shape, num_classes and these keys."""

    impl: one_of(*IMPLS) = key("torch: torch.nn layers; scratch: the hand-written layers of dlhw.nn")


class LeNet(Model):
    targets: ClassVar = ("dlhw.models.LeNet",)

    width: Positive = key("channel multiplier k: conv layers of 6k and 16k channels")
    dropout: Fraction = key("dropout after each hidden FC layer")
    norm: one_of(None, "none", "batch") = key("batch: BatchNorm after every conv and FC but the last")


class CNN(Model):
    targets: ClassVar = ("dlhw.models.CNN",)

    filters: Count = key("channels of the conv layer")
    kernel_size: Count = key("side of the conv kernel (same padding)")
    hidden: Natural = key("width of the hidden FC layer (0: none)")
    dropout: Fraction = key("dropout after the hidden FC layer")
    batch_norm: Flag = key("BatchNorm after the conv and the hidden FC layer")


class MLP(Model):
    targets: ClassVar = ("dlhw.models.MLP",)

    hidden: list_of(Count) = key("widths of the hidden layers ([]: a linear classifier)")
    dropout: Fraction = key("dropout after each hidden layer")
    batch_norm: Flag = key("BatchNorm after each hidden layer")


class VGG(Model):
    targets: ClassVar = ("dlhw.models.VGG",)

    plan: one_of(*PLANS) | list_of(Count | one_of("M"), min_length=1) = key(
        "channel plan: a name, or a list of conv widths and M (2x2 max-pool)")
    hidden: list_of(Count) = key("widths of the hidden FC layers")
    batch_norm: Flag = key("BatchNorm after every conv (and hidden FC layer)")
    dropout: Fraction = key("dropout after each hidden FC layer")


class ResNetSmall(Model):
    targets: ClassVar = ("dlhw.models.ResNetSmall",)

    channels: list_of(Count, min_length=1) = key("channels of each residual stage")
    blocks: Count = key("residual blocks per stage")
    dropout: Fraction = key("dropout before the FC head")


class RNNClassifier(Model):
    targets: ClassVar = ("dlhw.models.RNNClassifier",)

    cell: one_of(*CELLS) = key("lstm, gru, rnn (plain ReLU RNN) or gated (the hand-written cell)")
    hidden: Count = key("hidden units per layer")
    layers: Count = key("stacked recurrent layers")
    head: one_of(*HEADS) = key("mlp: affine -> RNN -> FC -> FC; linear: RNN -> FC")
    input_affine: None | Flag = key("an affine layer before the RNN (null: only with head=mlp)")
    fc_width: Count = key("width of the hidden FC layer of head=mlp")


class Seq2SeqGRU(Model):
    targets: ClassVar = ("dlhw.models.Seq2SeqGRU",)

    hidden: Count = key("hidden units per layer")
    layers: Count = key("stacked recurrent layers")
    cell: one_of(*CELLS) = key("the recurrent cell")
    head_hidden: Natural = key("width of a hidden layer in the per-step head (0: linear head)")
