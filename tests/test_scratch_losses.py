"""loss.impl=scratch: the losses of dlhw.nn.losses on dlhw.nn.functional's hand-written Functions
give torch's value and gradient, and a run trains with them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dlhw.errors import ConfigValueError
from dlhw.nn import losses
from dlhw.results import read_results
from dlhw.run.runner import run

CASES = {  # loss -> (constructor keywords, scores shape, number of classes)
    "CrossEntropy": ({}, (8, 5), 5),
    "CrossEntropy smoothed": ({"label_smoothing": 0.2}, (8, 5), 5),
    "MulticlassHinge": ({"margin": 0.7}, (8, 5), 5),
    "BinaryLogistic": ({}, (8, 1), 2),
    "BinaryHinge": ({}, (8, 1), 2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_scratch_and_torch_losses_give_the_same_value_and_gradient(case: str) -> None:
    kwargs, shape, classes = CASES[case]
    cls = getattr(losses, case.split()[0])
    torch.manual_seed(0)
    scores = (3 * torch.randn(*shape)).requires_grad_()
    target = torch.randint(0, classes, (shape[0],))
    values, grads = [], []
    for impl in ("torch", "scratch"):
        loss = cls(**kwargs, impl=impl)(scores, target)
        grads.append(torch.autograd.grad(loss, scores)[0])
        values.append(loss.detach())
    torch.testing.assert_close(values[1], values[0])
    torch.testing.assert_close(grads[1], grads[0])
    assert grads[0].abs().sum() > 0  # the case has active terms, so the gradients say something


def test_scratch_loss_uses_the_hand_written_function() -> None:
    scores = torch.randn(4, 3, requires_grad=True)
    loss = losses.CrossEntropy(impl="scratch")(scores, torch.tensor([0, 1, 2, 0]))
    assert type(loss.grad_fn).__name__ == "_CrossEntropyBackward"
    assert "impl=scratch" in repr(losses.CrossEntropy(impl="scratch"))
    with pytest.raises(ConfigValueError, match="loss.impl='numpy'"):
        losses.BinaryHinge(impl="numpy")


def test_a_run_with_loss_impl_scratch_trains(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(["loss.impl=scratch", "trainer.max_epochs=2", "callbacks.progress_bar=null"])
    assert cfg.loss.impl == "scratch"
    run(cfg)
    res = read_results(tmp_path / "run")
    assert res["status"] == "completed" and res["test_acc"] > 0.6  # digits learn fast, as with torch's loss


def test_loss_impl_is_checked_by_the_schema(make_cfg) -> None:
    from dlhw.config.validate import config_problems

    assert config_problems(make_cfg(["loss.impl=scratch"])) == []
    problems = config_problems(make_cfg(["loss.impl=numpy"]))
    assert any(p.startswith("loss.impl=numpy: must be") for p in problems), problems
