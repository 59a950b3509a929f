"""The ``data`` group: the keys every data set shares (``Data``), the augmentation, and one option
per data module class (conf/data/*.yaml)."""


from typing import ClassVar

from dlhw.config.schema.base import Option, Problem, Section, key
from dlhw.config.schema.types import (
    Count,
    Flag,
    Fraction,
    Natural,
    NonNegative,
    Path,
    Positive,
    Seed,
    Unit,
    list_of,
    number,
    one_of,
    show,
    text,
)

# The choices of the data modules (tests/test_schema.py checks them against dlhw.data's constants;
# importing those would load torch and Lightning just to read the schema).
LOADERS = ("tensor", "torch")
NORMALIZE = ("standard", "mean", "none")
LEVELS = ("easy", "normal", "moderate", "hard", "nightmare")

Size = Count | list_of(Count, length=2)  # a side, or [height, width]


class Augment(Section):
    """Batched augmentation of training batches (dlhw.data.augment); every step off at 0 / false."""

    crop_padding: Natural = key("random crop after zero padding by this many pixels")
    hflip: Flag = key("random horizontal flip")
    rotation: number(0, 180) = key("random rotation by up to +- this many degrees")
    scale: Fraction = key("random scaling by 1 +- this")
    brightness: Unit = key("colour jitter: brightness x U(1 - b, 1 + b)")
    contrast: Unit = key("contrast x U(1 - c, 1 + c)")
    saturation: Unit = key("saturation x U(1 - s, 1 + s)")
    blur: NonNegative = key("Gaussian blur, sigma ~ U(0, blur) pixels")


class Data(Option):
    """The keys of every data set (dlhw.data.ClassificationData)."""

    batch_size: Count = key("training batch size (per process under DDP)")
    eval_batch_size: Count = key("validation and test batch size")
    val_fraction: Fraction = key("share of the training set held out for validation")
    loader: one_of(*LOADERS) = key("tensor: data resident on the device; torch: a classic DataLoader")
    num_workers: Natural = key("DataLoader workers (loader=torch only)")
    augment: Augment = key("augmentation of training batches")
    seed: Seed = key("seed of batch order and augmentation (the run's seed)")
    split_seed: Seed = key("seed of the validation split (the same across the runs of a study)")
    max_train_samples: None | Count = key("use only this many training samples (null: all)")
    binarize: Flag = key("pixels > 0.5 become 1, the rest 0")
    as_sequence: Flag = key("read each image as a sequence of rows (T = height, D = width)")
    normalize: one_of(*NORMALIZE) = key("standard: (x - mean) / std; mean: subtract the mean only "
                                        "(0-255 pixel scale); none")

    def relations(self, prefix: str) -> list[Problem]:
        n, bs, frac = self.max_train_samples, self.batch_size, self.val_fraction or 0.0
        if n is None or bs is None:
            return []
        n_train = n - int(round(n * frac))
        if bs <= n_train:
            return []
        return [Problem(f"{prefix}batch_size", show(bs),
                        f"must be <= {max(n_train, 1)}, the training split of "
                        f"{prefix}max_train_samples={n} (less the validation share)")]


class TorchvisionData(Data):
    """Data sets read with torchvision's readers from ``root``."""

    root: Path = key("the folder holding the data set (default: DLHW_DATA or ./data)")
    download: Flag = key("download the data set if it is missing")


class MNIST(TorchvisionData):
    targets: ClassVar = ("dlhw.data.MNISTData", "dlhw.data.FashionMNISTData")


class CIFAR10(TorchvisionData):
    targets: ClassVar = ("dlhw.data.CIFAR10Data",)


class Digits(Data):
    targets: ClassVar = ("dlhw.data.DigitsData",)

    size: Count = key("images resized to size x size")
    test_fraction: number(0, 1, low_open=True, high_open=True) = key("share of the digits kept for testing")


class ImageFolder(Data):
    targets: ClassVar = ("dlhw.data.ImageFolderData",)

    root: Path = key("the folder holding train/CLASS/* and test/CLASS/*")
    size: Size = key("images resized to size x size (or [height, width])")
    mean: None | list_of(number(), min_length=1) = key("per-channel mean (null: from the training images)")
    std: None | list_of(Positive, min_length=1) = key("per-channel std (null: from the training images)")
    cache: Flag = key("keep the decoded tensors in a cache file beside the images")
    train_dir: text("a folder name") = key("the training split's folder under root")
    test_dir: text("a folder name") = key("the test split's folder under root")


class CIFAR10Jpeg(ImageFolder):
    targets: ClassVar = ("dlhw.data.CIFAR10JpegData",)

    archive: None | Path = key("cifar10-jpeg.tar.gz (null: ROOT/cifar10-jpeg.tar.gz)")
    folder: text("a folder name") = key("the folder under root it is unpacked into")


class Pickle(Data):
    targets: ClassVar = ("dlhw.data.PickleData",)

    path: Path = key("a pickle of a tuple (X, y)")
    n_train: Count = key("the first n_train rows train")
    n_val: Natural = key("the next n_val rows validate; the rest test")
    standardize: Flag = key("scale features by the training rows' mean and std")


class Generated(Data):
    """Sequence tasks drawn from a seed (dlhw.data.sequences)."""

    train_size: Count = key("training sequences per epoch")
    val_size: Count = key("validation sequences (fixed)")
    test_size: Count = key("test sequences (fixed)")
    fresh: Flag = key("new training sequences every epoch, drawn from (seed, epoch)")
    data_seed: Seed = key("seed of the validation and test sequences")


class TemporalOrder(Generated):
    targets: ClassVar = ("dlhw.data.TemporalOrderData",)

    level: one_of(*LEVELS) = key("difficulty (sequence length)")


Length = Count | list_of(Count, length=2)  # a length, or [shortest, longest]


class Echo(Generated):
    targets: ClassVar = ("dlhw.data.EchoData",)

    delay: Natural | one_of("variable") = key("echo delay in steps, or variable (0..max_delay per "
                                              "string, told to the model)")
    max_delay: Natural = key("largest variable delay")
    length: Length = key("training string length (or [shortest, longest])")
    eval_length: Length = key("validation and test string lengths (or [shortest, longest])")

    def relations(self, prefix: str) -> list[Problem]:
        found = super().relations(prefix)
        for name in ("length", "eval_length"):
            value = getattr(self, name)
            if isinstance(value, list) and value[0] > value[1]:
                found.append(Problem(f"{prefix}{name}", show(value),
                                     "must be [shortest, longest] with shortest <= longest"))
        return found
