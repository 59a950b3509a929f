"""Images in TensorBoard: the first convolution's filters, and feature maps of one fixed test image."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from dlhw.lit.tb import first_conv, fixed_batch, is_conv2d, short_name, tb_writer


def _normalise_each(x: torch.Tensor) -> torch.Tensor:
    """Min-max scale every tile (first axis) to [0, 1] on its own, so weak filters stay visible."""
    flat = x.reshape(x.shape[0], -1)
    lo, hi = flat.min(1).values, flat.max(1).values
    scale = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    shape = (-1,) + (1,) * (x.dim() - 1)
    return (x - lo.view(shape)) / scale.view(shape)


def filter_grid(weight: torch.Tensor, min_tile: int = 24, nrow: int | None = None) -> torch.Tensor:
    """A (3, H, W) image in [0, 1] of conv filters (out, in, kh, kw), one tile per filter.

    Three input channels are shown in colour; otherwise each filter shows its first input
    channel in grey. Tiles are upscaled (nearest) to at least ``min_tile`` pixels.
    """
    w = weight.detach().float().cpu()
    w = w if w.shape[1] == 3 else w[:, :1]
    w = _normalise_each(w)
    k = max(w.shape[-2:])
    if k < min_tile:
        w = F.interpolate(w, scale_factor=math.ceil(min_tile / k), mode="nearest")
    nrow = nrow or min(8, w.shape[0])
    return make_grid(w, nrow=nrow, padding=2, pad_value=1.0)


class FilterImages(pl.Callback):
    """The first Conv2d's filters as an image grid: ``filters/<layer>`` at the start, every N
    epochs, and ``filters/final`` when fitting ends. Models without a convolution log nothing.
    """

    def __init__(self, every_n_epochs: int = 1):
        self.every_n_epochs = every_n_epochs

    def _log(self, trainer, pl_module, tag: str | None = None) -> None:
        writer = tb_writer(trainer)
        conv = first_conv(pl_module)
        if writer is None or conv is None:
            return
        name, module = conv
        writer.add_image(tag or f"filters/{name}", filter_grid(module.weight), trainer.global_step)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.every_n_epochs > 0 and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log(trainer, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module, "filters/final")


class FeatureMaps(pl.Callback):
    """Feature maps of one fixed test image after each Conv2d: ``feature_maps/<layer>``.

    Also logs the image itself (``feature_maps/input``) once. Runs every N epochs and when
    fitting ends; models without a convolution log nothing.

    Args:
        every_n_epochs: interval in epochs (0: only at the end).
        index: which test image (position in the test set).
        max_channels: at most this many channels per layer.
    """

    def __init__(self, every_n_epochs: int = 1, index: int = 0, max_channels: int = 32):
        self.every_n_epochs = every_n_epochs
        self.index = index
        self.max_channels = max_channels
        self._image: torch.Tensor | None = None
        self._input_logged = False
        self._last_step = -1

    def _log(self, trainer, pl_module) -> None:
        writer = tb_writer(trainer)
        convs = [(short_name(n), m) for n, m in pl_module.named_modules() if is_conv2d(m)]
        if writer is None or not convs or trainer.global_step == self._last_step:
            return
        self._last_step = trainer.global_step
        if self._image is None:
            batch = fixed_batch(trainer, "test", self.index + 1)
            if batch is None or batch.dim() != 4 or batch.shape[0] <= self.index:
                return
            self._image = batch[self.index : self.index + 1]
        maps: dict[str, torch.Tensor] = {}
        hooks = [
            m.register_forward_hook(lambda _m, _i, out, name=name: maps.__setitem__(name, out.detach()))
            for name, m in convs
        ]
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                pl_module(self._image.to(pl_module.device))
        finally:
            for h in hooks:
                h.remove()
            pl_module.train(was_training)
        step = trainer.global_step
        if not self._input_logged:
            x = self._image[0]
            x = x if x.shape[0] == 3 else x[:1]
            x = _normalise_each(x[None])
            if max(x.shape[-2:]) < 96:
                x = F.interpolate(x, scale_factor=math.ceil(96 / max(x.shape[-2:])), mode="nearest")
            writer.add_image("feature_maps/input", x[0], step)
            self._input_logged = True
        for name, out in maps.items():
            fmap = out[0, : self.max_channels].float().cpu()[:, None]  # (C, 1, H, W)
            size = max(fmap.shape[-2:])
            if size < 32:
                fmap = F.interpolate(fmap, scale_factor=math.ceil(32 / size), mode="nearest")
            grid = make_grid(_normalise_each(fmap), nrow=8, padding=2, pad_value=1.0)
            writer.add_image(f"feature_maps/{name}", grid, step)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.every_n_epochs > 0 and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log(trainer, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module)
