"""Plain nn.Modules built from explicit arguments (in_shape, num_classes, ...): no Lightning here."""

from dlhw.models.cnn import CNN
from dlhw.models.lenet import LeNet
from dlhw.models.mlp import MLP
from dlhw.models.resnet_small import ResNetSmall
from dlhw.models.rnn import RNNClassifier
from dlhw.models.seq2seq import Seq2SeqGRU
from dlhw.models.vgg import VGG, vgg11, vgg11_small

__all__ = ["CNN", "LeNet", "MLP", "ResNetSmall", "RNNClassifier", "Seq2SeqGRU", "VGG", "vgg11", "vgg11_small"]
