"""Batched image augmentation on tensors (any device), seeded through an explicit generator.

Each function takes a float batch (N, C, H, W) and returns a new batch of the same shape; the
randomness comes from ``generator`` so that a run is reproducible and resumable. Crop and flip are
``dlhw.data.loader.crop_flip`` (one copy, any dtype); the plain float versions the tests check it
against are in tests/_helpers_augment.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def random_affine(
    x: torch.Tensor,
    degrees: float = 0.0,
    scale: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rotate by U(-degrees, degrees) and scale by U(1-scale, 1+scale) about the centre (bilinear)."""
    if degrees <= 0 and scale <= 0:
        return x
    n = x.shape[0]
    u = torch.rand(2, n, device=x.device, generator=generator)
    angle = (u[0] * 2 - 1) * math.radians(degrees)
    factor = 1 + (u[1] * 2 - 1) * scale
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601) of an RGB batch as (N, 1, H, W); a one-channel batch is its own grey."""
    if x.shape[1] == 3:
        return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    return x.mean(dim=1, keepdim=True)


def _factors(n: int, amount: float, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Per-image factors U(1 - amount, 1 + amount), clamped at 0, shaped (N, 1, 1, 1)."""
    u = torch.rand(n, device=x.device, generator=generator, dtype=x.dtype)
    return (1 + (u * 2 - 1) * amount).clamp_min(0).view(n, 1, 1, 1)


def color_jitter(
    x: torch.Tensor,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Scale brightness, contrast (about the image's mean grey) and saturation (about each
    pixel's grey) by per-image factors U(1 - a, 1 + a); inputs and outputs in [0, 1]."""
    n = x.shape[0]
    if brightness > 0:
        x = (x * _factors(n, brightness, x, generator)).clamp(0, 1)
    if contrast > 0:
        mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
        x = (mean + (x - mean) * _factors(n, contrast, x, generator)).clamp(0, 1)
    if saturation > 0 and x.shape[1] == 3:
        grey = _grey(x)
        x = (grey + (x - grey) * _factors(n, saturation, x, generator)).clamp(0, 1)
    return x


def gaussian_blur(x: torch.Tensor, max_sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Blur each image with its own Gaussian, sigma ~ U(0, max_sigma) (a separable depthwise conv)."""
    if max_sigma <= 0:
        return x
    n, c, h, w = x.shape
    radius = max(1, math.ceil(3 * max_sigma))
    sigma = torch.rand(n, device=x.device, generator=generator, dtype=x.dtype) * max_sigma
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N*C, K)
    flat = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)  # along W
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)  # along H
    return flat.reshape(n, c, h, w)


@dataclass
class Augment:
    """The augmentation a datamodule applies to training batches (all off by default).

    Order: random crop, flip, rotation/scale, colour jitter, blur (each only when set).
    """

    crop_padding: int = 0
    hflip: bool = False
    rotation: float = 0.0
    scale: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    blur: float = 0.0  # largest Gaussian sigma in pixels

    @property
    def active(self) -> bool:
        return self.moves_pixels or self.resamples

    @property
    def moves_pixels(self) -> bool:
        """Crop or flip: exact pixel moves, which also work on the compact uint8 batch."""
        return self.crop_padding > 0 or self.hflip

    @property
    def resamples(self) -> bool:
        """Rotation, scale, colour jitter or blur: steps that compute new float values."""
        return (
            self.rotation > 0 or self.scale > 0
            or self.brightness > 0 or self.contrast > 0 or self.saturation > 0 or self.blur > 0
        )

    def float_stage(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rotation/scale, colour jitter and blur of a float batch in [0, 1]."""
        x = random_affine(x, self.rotation, self.scale, generator)
        x = color_jitter(x, self.brightness, self.contrast, self.saturation, generator)
        return gaussian_blur(x, self.blur, generator)
