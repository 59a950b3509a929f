"""Lightning glue: the Classifier module and the training callbacks."""

from dlhw.lit.callbacks import EpochTimer
from dlhw.lit.module import Classifier

__all__ = ["Classifier", "EpochTimer"]
