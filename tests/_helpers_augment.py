"""Reference augmentation for the tests: crop and flip written plainly on float batches, and the
whole ``Augment`` chain built from them. Training uses ``dlhw.data.loader.crop_flip`` (one copy, any
dtype) and ``Augment.float_stage``; the tests check both against these."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlhw.data.augment import Augment


def hflip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Flip each image left-right with probability p."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by ``padding`` on each side and cut a random H x W window per image."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # (N, H)
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing on (N, H', W', C) picks every image's own window in one gather.
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def augment(aug: Augment, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``aug`` applied to a float batch in [0, 1]: crop, flip, then rotation/scale, colour, blur."""
    if aug.crop_padding > 0:
        x = random_crop(x, aug.crop_padding, generator)
    if aug.hflip:
        x = hflip(x, generator)
    return aug.float_stage(x, generator)
