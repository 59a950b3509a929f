"""Geometry of the batched augmentation: flips, crops and affine resampling."""

from __future__ import annotations

import torch
from _helpers_augment import augment, hflip, random_crop

from dlhw.data.augment import Augment, random_affine


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


def test_batch_transform_applies_every_augment_option() -> None:
    """The loader's transform equals Augment on [0, 1] floats, normalised, for each option."""
    from dlhw.data.loader import BatchTransform

    x = torch.randint(0, 256, (6, 3, 10, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    plain = BatchTransform(255.0, mean, std)(x)
    options = [{"crop_padding": 2}, {"hflip": True}, {"rotation": 20.0}, {"scale": 0.2},
               {"brightness": 0.5}, {"contrast": 0.5}, {"saturation": 0.5}, {"blur": 1.0},
               {"crop_padding": 2, "hflip": True, "brightness": 0.3, "blur": 0.8}]
    for opts in options:
        aug = Augment(**opts)
        got = BatchTransform(255.0, mean, std, aug)(x, torch.Generator().manual_seed(7), train=True)
        want = (augment(aug, x.float() / 255, torch.Generator().manual_seed(7)) - m) / s
        assert torch.allclose(got, want, atol=1e-5), opts
        assert not torch.allclose(got, plain), f"{opts} changed nothing"
        evaluated = BatchTransform(255.0, mean, std, aug)(x, None, train=False)
        assert torch.allclose(evaluated, plain)  # never at validation / test time
