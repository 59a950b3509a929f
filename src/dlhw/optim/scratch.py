"""SGD, Adam and RMSprop written from their update equations (same arguments as ``torch.optim``).

Each ``step`` applies, per parameter p with gradient g (after g <- g + weight_decay * p, L2 style):

- SGD:     b <- mu b + (1 - dampening) g (b = g at the first step); d = g + mu b (Nesterov) or b;
           p <- p - lr d.
- Adam:    m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
           p <- p - lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)   (v -> max over time if amsgrad).
- RMSprop: s <- a s + (1 - a) g^2; centered: a_g <- a a_g + (1 - a) g, den = sqrt(s - a_g^2) + eps,
           else den = sqrt(s) + eps; with momentum mu: b <- mu b + g / den, p <- p - lr b;
           otherwise p <- p - lr g / den.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer

from dlhw.errors import ConfigValueError

__all__ = ["SGDScratch", "AdamScratch", "RMSpropScratch"]


def _closure_loss(closure: Callable[[], float] | None):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _grad(p: torch.Tensor, weight_decay: float, maximize: bool) -> torch.Tensor:
    g = -p.grad if maximize else p.grad
    return g + weight_decay * p if weight_decay != 0 else g


class SGDScratch(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ConfigValueError(
                f"invalid SGD hyper-parameters lr={lr}, momentum={momentum}, weight_decay={weight_decay}"
            )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ConfigValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = _closure_loss(closure)
        for group in self.param_groups:
            mu, damp = group["momentum"], group["dampening"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = _grad(p, group["weight_decay"], group["maximize"])
                if mu != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = d.clone()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(mu).add_(d, alpha=1 - damp)
                    d = d + mu * buf if group["nesterov"] else buf
                p.add_(d, alpha=-group["lr"])
        return loss


class AdamScratch(Optimizer):
    """Adam with bias correction; weight_decay is added to the gradient (L2, as torch.optim.Adam)."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ):
        b1, b2 = betas
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ConfigValueError(f"invalid Adam hyper-parameters lr={lr}, betas={betas}, eps={eps}")
        defaults = dict(
            lr=lr,
            betas=(float(b1), float(b2)),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = _closure_loss(closure)
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = _grad(p, group["weight_decay"], group["maximize"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                if group["amsgrad"]:
                    v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                denom = (v / (1 - b2**t)).sqrt_().add_(group["eps"])
                p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1**t))
        return loss


class RMSpropScratch(Optimizer):
    """RMSprop (optionally centered, with momentum and L2 weight decay)."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum < 0 or not 0 <= alpha <= 1:
            raise ConfigValueError(f"invalid RMSprop hyper-parameters lr={lr}, alpha={alpha}, eps={eps}")
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = _closure_loss(closure)
        for group in self.param_groups:
            a, mu = group["alpha"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = _grad(p, group["weight_decay"], group["maximize"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["square_avg"] = torch.zeros_like(p)
                    if mu > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    if group["centered"]:
                        state["grad_avg"] = torch.zeros_like(p)
                state["step"] += 1
                s = state["square_avg"]
                s.mul_(a).addcmul_(g, g, value=1 - a)
                if group["centered"]:
                    ga = state["grad_avg"]
                    ga.mul_(a).add_(g, alpha=1 - a)
                    denom = (s - ga * ga).sqrt_().add_(group["eps"])
                else:
                    denom = s.sqrt().add_(group["eps"])
                if mu > 0:
                    buf = state["momentum_buffer"]
                    buf.mul_(mu).addcdiv_(g, denom)
                    p.add_(buf, alpha=-group["lr"])
                else:
                    p.addcdiv_(g, denom, value=-group["lr"])
        return loss
