"""Optimizers written from their update equations (drop-in for torch.optim's SGD, Adam, RMSprop)."""

from dlhw.optim.scratch import AdamScratch, RMSpropScratch, SGDScratch

__all__ = ["AdamScratch", "RMSpropScratch", "SGDScratch"]
