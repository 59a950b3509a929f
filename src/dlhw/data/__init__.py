"""Data sets as LightningDataModules: sources load tensors, ClassificationData splits and batches."""

from dlhw.data.cifar10 import CIFAR10Data
from dlhw.data.datamodule import ClassificationData, Splits
from dlhw.data.digits import DigitsData
from dlhw.data.image_folder import CIFAR10JpegData, ImageFolderData
from dlhw.data.mnist import FashionMNISTData, MNISTData
from dlhw.data.sequences import EchoData, TemporalOrderData
from dlhw.data.tabular import PickleData

__all__ = [
    "CIFAR10Data",
    "CIFAR10JpegData",
    "ClassificationData",
    "DigitsData",
    "EchoData",
    "FashionMNISTData",
    "ImageFolderData",
    "MNISTData",
    "PickleData",
    "Splits",
    "TemporalOrderData",
]
