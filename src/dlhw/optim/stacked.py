"""One optimizer step over K stacked runs, each with its own hyperparameters (packed runs).

Every parameter has shape (K, ...): slice k belongs to run k. The hyperparameters (lr, momentum,
betas, weight decay, ...) are tensors of shape (K,), so runs of a sweep that differ in them train
in one step. The updates are PyTorch's own equations (SGD, Adam, AdamW, RMSprop), so a slice
follows the run alone; ``state_of(k)`` / ``load_run_state`` convert to and from the state dict of
the run's own ``torch.optim`` optimizer. A run that is not ``active`` (it diverged) keeps its
parameters and state unchanged.
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
# Settings that must be the same for every run of a pack (they change the equations, not a number).
SHARED = ("nesterov", "amsgrad", "maximize", "centered")


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
    """

    def __init__(self, params: Sequence[torch.Tensor], runs: Sequence[torch.optim.Optimizer]):
        params = list(params)
        kind = type(runs[0]).__name__
        if any(type(r).__name__ != kind for r in runs):
            raise ValueError("the runs of a pack must share the optimizer class")
        super().__init__(params, {})
        self.kind = kind
        self.runs = list(runs)
        self.nesterov = bool(runs[0].param_groups[0].get("nesterov", False))
        self.active = torch.ones(len(runs), dtype=torch.bool, device=params[0].device)
        self.step_count = 0
        self.hyper: dict[str, torch.Tensor] = {}
        self.sync()

    def sync(self) -> None:
        """Re-read every run's settings (a schedule changed the learning rates)."""
        device = self.param_groups[0]["params"][0].device
        for name in KINDS[self.kind]:
            values = [_setting(r.param_groups[0], name) for r in self.runs]
            self.hyper[name] = torch.tensor(values, dtype=torch.float32, device=device)
        if self.kind == "SGD":  # torch ignores dampening where momentum is 0
            self.hyper["dampening"] = torch.where(self.hyper["momentum"] == 0, 0.0, self.hyper["dampening"])

    def _per_run(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return self.hyper[name].view((-1,) + (1,) * (like.dim() - 1))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.step_count += 1
        for p in self.param_groups[0]["params"]:
            if p.grad is None:
                continue
            keep = self.active.view((-1,) + (1,) * (p.dim() - 1))
            grad = torch.where(keep, p.grad, torch.zeros_like(p.grad))
            new = getattr(self, f"_{self.kind.lower()}")(p, grad, self.state[p])
            p.copy_(torch.where(keep, new, p))
        return loss

    def _freeze(self, state: dict, key: str, new: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Store ``new`` for the active runs, keep the old state of the others."""
        keep = self.active.view((-1,) + (1,) * (p.dim() - 1))
        old = state.get(key)
        state[key] = new if old is None else torch.where(keep, new, old)
        return state[key]

    def _sgd(self, p, grad, state):
        h = self._per_run
        d_p = grad + h("weight_decay", p) * p
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = d_p.clone()
        else:
            buf = h("momentum", p) * buf + (1 - h("dampening", p)) * d_p
        buf = self._freeze(state, "momentum_buffer", buf, p)
        d_p = d_p + h("momentum", p) * buf if self.nesterov else buf
        return p - h("lr", p) * d_p

    def _adam(self, p, grad, state, decoupled: bool = False):
        h = self._per_run
        if decoupled:
            p = p * (1 - h("lr", p) * h("weight_decay", p))
        else:
            grad = grad + h("weight_decay", p) * p
        exp_avg = state.get("exp_avg", torch.zeros_like(p))
        exp_avg_sq = state.get("exp_avg_sq", torch.zeros_like(p))
        beta1, beta2 = h("beta1", p), h("beta2", p)
        exp_avg = self._freeze(state, "exp_avg", exp_avg + (grad - exp_avg) * (1 - beta1), p)
        exp_avg_sq = self._freeze(state, "exp_avg_sq", exp_avg_sq * beta2 + (1 - beta2) * grad * grad, p)
        n = self.step_count
        bias1, bias2 = 1 - beta1**n, 1 - beta2**n
        denom = exp_avg_sq.sqrt() / bias2.sqrt() + h("eps", p)
        return p - (h("lr", p) / bias1) * exp_avg / denom

    def _adamw(self, p, grad, state):
        return self._adam(p, grad, state, decoupled=True)

    def _rmsprop(self, p, grad, state):
        h = self._per_run
        grad = grad + h("weight_decay", p) * p
        alpha = h("alpha", p)
        square_avg = state.get("square_avg", torch.zeros_like(p))
        square_avg = self._freeze(state, "square_avg", square_avg * alpha + (1 - alpha) * grad * grad, p)
        scaled = grad / (square_avg.sqrt() + h("eps", p))
        buf = state.get("momentum_buffer", torch.zeros_like(p))
        buf = self._freeze(state, "momentum_buffer", h("momentum", p) * buf + scaled, p)
        return p - h("lr", p) * buf

    # ------------------------------------------------------------------ per-run state dicts
    def state_of(self, k: int) -> dict:
        """Run k's state dict in the form of its own torch.optim optimizer (ready to load)."""
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


def hyperparameter_spread(runs: Sequence[torch.optim.Optimizer]) -> dict[str, list[float]]:
    """The per-run settings of a pack (for the log)."""
    kind = type(runs[0]).__name__
    return {name: [_setting(r.param_groups[0], name) for r in runs] for name in KINDS.get(kind, ())}


__all__ = ["KINDS", "SHARED", "StackedOptimizer", "hyperparameter_spread", "unsupported_reason"]
