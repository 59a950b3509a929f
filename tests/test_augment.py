"""Geometry of the batched augmentation: flips, crops and affine resampling."""

from __future__ import annotations

import torch

from dlhw.data.augment import Augment, hflip, random_affine, random_crop


def batch(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 3, 12, 10, generator=torch.Generator().manual_seed(0))


def test_flip_with_p1_twice_is_identity_and_p0_is_identity() -> None:
    x = batch()
    assert torch.equal(hflip(hflip(x, p=1.0), p=1.0), x)
    assert torch.equal(hflip(x, p=1.0), x.flip(-1))
    assert torch.equal(hflip(x, p=0.0), x)


def test_random_flip_flips_some_images_whole() -> None:
    x = batch(64)
    y = hflip(x, torch.Generator().manual_seed(1))
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and 10 < sum(flipped) < 54


def test_crop_of_padded_image_is_a_shifted_copy() -> None:
    x = batch()
    pad = 3
    y = random_crop(x, pad, torch.Generator().manual_seed(2))
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    for i in range(x.shape[0]):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(y[i], padded[i, :, dy : dy + 12, dx : dx + 10])
        ]
        assert matches, f"image {i} is not a window of its padded copy"


def test_affine_identity_and_seeded() -> None:
    x = batch()
    assert torch.equal(random_affine(x, 0.0, 0.0), x)
    a = random_affine(x, 15.0, 0.1, torch.Generator().manual_seed(3))
    b = random_affine(x, 15.0, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.allclose(a, x)


def test_scaling_keeps_the_centre_pixel() -> None:
    x = torch.zeros(4, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    y = random_affine(x, degrees=0.0, scale=0.2, generator=torch.Generator().manual_seed(5))
    assert torch.all(y[:, :, 4, 4] > 0.5)


def test_augment_pipeline_is_inactive_by_default() -> None:
    assert not Augment().active
    assert Augment(crop_padding=4, hflip=True).active
