"""Scratch optimizers track torch.optim over 200 steps on a small MLP; Hydra configs instantiate."""

from pathlib import Path

import pytest
import torch
from torch import nn

from dlhw.optim import AdamScratch, RMSpropScratch, SGDScratch

CONF = Path(__file__).resolve().parents[1] / "conf" / "optimizer"

CASES = [
    (SGDScratch, torch.optim.SGD, dict(lr=0.05)),
    (SGDScratch, torch.optim.SGD, dict(lr=0.02, momentum=0.9, weight_decay=5e-4)),
    (SGDScratch, torch.optim.SGD, dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (SGDScratch, torch.optim.SGD, dict(lr=0.02, momentum=0.5, dampening=0.3)),
    (AdamScratch, torch.optim.Adam, dict(lr=1e-2)),
    (AdamScratch, torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)),
    (AdamScratch, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
    (RMSpropScratch, torch.optim.RMSprop, dict(lr=1e-3)),
    (
        RMSpropScratch,
        torch.optim.RMSprop,
        dict(lr=1e-3, alpha=0.9, momentum=0.9, weight_decay=1e-3),
    ),
    (RMSpropScratch, torch.optim.RMSprop, dict(lr=1e-3, centered=True, momentum=0.5)),
]


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)
    )


@pytest.mark.parametrize("mine_cls,ref_cls,kwargs", CASES)
def test_tracks_torch_optim(mine_cls, ref_cls, kwargs):
    torch.manual_seed(0)
    ref = _mlp().double()
    mine = _mlp().double()
    mine.load_state_dict(ref.state_dict())
    x, y = torch.randn(64, 10, dtype=torch.float64), torch.randint(0, 3, (64,))
    opts = [ref_cls(ref.parameters(), **kwargs), mine_cls(mine.parameters(), **kwargs)]
    start = [p.detach().clone() for p in ref.parameters()]
    for step in range(200):
        for model, opt in zip((ref, mine), opts, strict=True):
            idx = torch.arange(step % 4 * 16, step % 4 * 16 + 16)  # mini-batches
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    moved = sum((p - s).abs().sum().item() for p, s in zip(ref.parameters(), start, strict=True))
    assert moved > 1e-2  # the run really trains
    for p, q in zip(mine.parameters(), ref.parameters(), strict=True):
        rel = (p - q).norm() / q.norm()
        assert rel < 1e-6, rel


def test_closure_and_invalid_args():
    w = nn.Parameter(torch.tensor([1.0]))
    opt = SGDScratch([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 1.0
    torch.testing.assert_close(w.detach(), torch.tensor([0.8]))
    with pytest.raises(ValueError):
        SGDScratch([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        AdamScratch([w], betas=(1.0, 0.9))


@pytest.mark.parametrize(
    "name,cls", [("sgd", SGDScratch), ("adam", AdamScratch), ("rmsprop", RMSpropScratch)]
)
def test_hydra_configs_instantiate(name, cls):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF / f"{name}_scratch.yaml")
    assert cfg.lr == 0.001
    opt = instantiate(cfg)([nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, cls) and opt.defaults["lr"] == 0.001
