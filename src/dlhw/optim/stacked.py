"""One optimizer step over K stacked runs, each with its own hyperparameters (packed runs).

Every parameter has shape (K, ...): slice k belongs to run k. The hyperparameters (lr, momentum,
betas, weight decay, ...) are tensors of shape (K,), so runs of a sweep that differ in them train
in one step. The updates are PyTorch's own equations (SGD, Adam, AdamW, RMSprop), so a slice
follows the run alone; ``state_of(k)`` / ``load_run_state`` convert to and from the state dict of
the run's own ``torch.optim`` optimizer. A run listed in ``frozen`` (it diverged) keeps its
parameters and state unchanged.

With ``runs_step=True`` (a pack on a CPU) every run steps its own optimizer, whose parameters
are views of its slices; this class then only stands for them before Lightning: its step runs
the closure, its state dict is the runs' own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# The torch.optim optimizers that stack, and the per-run settings each reads from its param group.
KINDS = {
    "SGD": ("lr", "momentum", "dampening", "weight_decay"),
    "Adam": ("lr", "beta1", "beta2", "eps", "weight_decay"),
    "AdamW": ("lr", "beta1", "beta2", "eps", "weight_decay"),
    "RMSprop": ("lr", "alpha", "eps", "momentum", "weight_decay"),
}


def unsupported_reason(optimizer: torch.optim.Optimizer) -> str | None:
    """Why this optimizer cannot be stacked (None: it can)."""
    kind = type(optimizer).__name__
    if kind not in KINDS:
        return f"optimizer {type(optimizer).__module__}.{kind} has no stacked form (SGD, Adam, AdamW, RMSprop do)"
    group = optimizer.param_groups[0]
    for flag in ("amsgrad", "maximize", "centered"):
        if group.get(flag):
            return f"optimizer option {flag}=true has no stacked form"
    if len(optimizer.param_groups) != 1:
        return "an optimizer with several parameter groups has no stacked form"
    return None


def _setting(group: dict, name: str) -> float:
    if name in ("beta1", "beta2"):
        return float(group["betas"][0 if name == "beta1" else 1])
    return float(group.get(name, 0.0) or 0.0)


class StackedOptimizer(torch.optim.Optimizer):
    """PyTorch's SGD/Adam/AdamW/RMSprop over stacked parameters with per-run settings.

    Args:
        params: the stacked parameters (each of shape (K, ...)), in the order of the run's model.
        runs: one torch.optim optimizer per run (all of one kind); their param groups hold each
            run's settings and are re-read by ``sync()`` (after a learning-rate schedule steps).
        runs_step: the runs step their own optimizers (see the module doc).
    """

    def __init__(self, params: Sequence[torch.Tensor], runs: Sequence[torch.optim.Optimizer],
                 runs_step: bool = False):
        params = list(params)
        kind = type(runs[0]).__name__
        if any(type(r).__name__ != kind for r in runs):
            raise ValueError("the runs of a pack must share the optimizer class")
        super().__init__(params, {})
        self.kind = kind
        self.runs = list(runs)
        self.runs_step = runs_step
        self.nesterov = bool(runs[0].param_groups[0].get("nesterov", False))
        self.frozen: list[int] = []  # runs that diverged: their slices and states stay as they are
        self.step_count = 0
        self.hyper: dict[str, float | torch.Tensor] = {}
        self.sync()

    def sync(self) -> None:
        """Re-read every run's settings (a schedule changed the learning rates). A setting equal
        in every run stays a number (one fused in-place operation); others become (K,) tensors."""
        device = self.param_groups[0]["params"][0].device
        for name in KINDS[self.kind]:
            values = [_setting(r.param_groups[0], name) for r in self.runs]
            if self.kind == "SGD" and name == "dampening":  # torch ignores it where momentum is 0
                values = [0.0 if _setting(r.param_groups[0], "momentum") == 0 else v
                          for r, v in zip(self.runs, values, strict=True)]
            same = all(v == values[0] for v in values)
            self.hyper[name] = values[0] if same else torch.tensor(values, dtype=torch.float32, device=device)

    def _h(self, name: str, like: torch.Tensor) -> float | torch.Tensor:
        value = self.hyper[name]
        if isinstance(value, float):
            return value
        return value.view((-1,) + (1,) * (like.dim() - 1))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.runs_step:
            return loss
        self.step_count += 1
        update = getattr(self, f"_{self.kind.lower()}")
        for p in self.param_groups[0]["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            kept = self._snapshot(p, state)
            update(p, p.grad, state)
            for name, value in kept.items():
                (p if name == "param" else state[name])[self.frozen] = value
        return loss

    def _snapshot(self, p: torch.Tensor, state: dict) -> dict[str, torch.Tensor]:
        """The frozen runs' slices of a parameter and its state, to put back after the update."""
        if not self.frozen:
            return {}
        kept = {"param": p[self.frozen].clone()}
        kept.update({n: t[self.frozen].clone() for n, t in state.items() if isinstance(t, torch.Tensor)})
        return kept

    @staticmethod
    def _add(t: torch.Tensor, other: torch.Tensor, factor) -> torch.Tensor:
        """t += factor * other, in place (factor a number or a broadcast tensor)."""
        return t.add_(other, alpha=factor) if isinstance(factor, float) else t.addcmul_(other, factor)

    def _sgd(self, p, grad, state):
        h = self._h
        wd, momentum = h("weight_decay", p), h("momentum", p)
        if not (isinstance(wd, float) and wd == 0.0):
            grad = self._add(grad.clone(), p, wd)
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.clone()
        else:
            self._add(buf.mul_(momentum), grad, 1 - h("dampening", p))
        d_p = self._add(grad.clone(), buf, momentum) if self.nesterov else buf
        self._add(p, d_p, -h("lr", p))

    def _adam(self, p, grad, state, decoupled: bool = False):
        h = self._h
        lr, wd = h("lr", p), h("weight_decay", p)
        if not (isinstance(wd, float) and wd == 0.0):
            if decoupled:
                p.mul_(1 - lr * wd)
            else:
                grad = self._add(grad.clone(), p, wd)
        if "exp_avg" not in state:
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        beta1, beta2 = h("beta1", p), h("beta2", p)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2)
        if isinstance(beta2, float):
            exp_avg_sq.addcmul_(grad, grad, value=1 - beta2)
        else:
            exp_avg_sq.addcmul_(grad * grad, 1 - beta2)
        n = self.step_count
        bias1, bias2 = 1 - beta1**n, 1 - beta2**n
        denom = exp_avg_sq.sqrt().div_(bias2**0.5).add_(h("eps", p))
        step = lr / bias1
        if isinstance(step, float):
            p.addcdiv_(exp_avg, denom, value=-step)
        else:
            p.addcmul_(exp_avg / denom, -step)

    def _adamw(self, p, grad, state):
        self._adam(p, grad, state, decoupled=True)

    def _rmsprop(self, p, grad, state):
        h = self._h
        wd, alpha = h("weight_decay", p), h("alpha", p)
        if not (isinstance(wd, float) and wd == 0.0):
            grad = self._add(grad.clone(), p, wd)
        if "square_avg" not in state:
            state["square_avg"], state["momentum_buffer"] = torch.zeros_like(p), torch.zeros_like(p)
        square_avg, buf = state["square_avg"], state["momentum_buffer"]
        square_avg.mul_(alpha)
        if isinstance(alpha, float):
            square_avg.addcmul_(grad, grad, value=1 - alpha)
        else:
            square_avg.addcmul_(grad * grad, 1 - alpha)
        avg = square_avg.sqrt().add_(h("eps", p))
        buf.mul_(h("momentum", p)).add_(grad / avg)
        self._add(p, buf, -h("lr", p))

    # ------------------------------------------------------------------ per-run state dicts
    def state_of(self, k: int) -> dict:
        """Run k's state dict in the form of its own torch.optim optimizer (ready to load)."""
        if self.runs_step:
            return self.runs[k].state_dict()
        template = self.runs[k].state_dict()
        group = self.runs[k].param_groups[0]
        state = {}
        for i, p in enumerate(self.param_groups[0]["params"]):
            s = self.state.get(p, {})
            if not s:
                continue
            entry = {name: t[k].clone() for name, t in s.items()}
            if self.kind in ("Adam", "AdamW", "RMSprop"):
                entry["step"] = torch.tensor(float(self.step_count))
            if self.kind == "SGD" and not group.get("momentum"):
                continue  # torch keeps no state without momentum
            if self.kind == "RMSprop" and not group.get("momentum"):
                entry.pop("momentum_buffer", None)
            state[i] = entry
        return {"state": state, "param_groups": template["param_groups"]}

    def load_run_state(self, k: int, run_state: dict) -> None:
        """Put run k's saved optimizer state (a torch.optim state dict) into slice k."""
        if self.runs_step:
            self.runs[k].load_state_dict(run_state)
            self.sync()
            return
        params = self.param_groups[0]["params"]
        for i, entry in run_state.get("state", {}).items():
            p = params[int(i)]
            for name, value in entry.items():
                if name == "step":
                    self.step_count = int(float(value))
                    continue
                if value is None:
                    continue
                if name not in self.state[p]:
                    self.state[p][name] = torch.zeros_like(p)
                self.state[p][name][k] = value.to(p.device, p.dtype)
        self.runs[k].param_groups[0].update(
            {key: v for key, v in run_state["param_groups"][0].items() if key != "params"}
        )
        self.sync()

    def state_dict(self) -> dict:
        """Every run's own optimizer state (``runs``): the pack's checkpoint is cut into the runs'."""
        return {"state": {}, "param_groups": [], "runs": [self.state_of(k) for k in range(len(self.runs))]}

    def load_state_dict(self, state_dict: dict) -> None:
        for k, run_state in enumerate(state_dict.get("runs", [])):
            self.load_run_state(k, run_state)
