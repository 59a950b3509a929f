"""K runs of one model shape trained as one stacked model (``hydra/launcher=packed``).

The weights of the K runs are stacked on a leading axis. On an accelerator one forward is
``vmap`` over ``functional_call`` with K batches, one backward of the summed losses gives every
slice exactly its own gradient (the runs share no tensor), and one ``StackedOptimizer`` step
updates all runs with their own hyperparameters. On a CPU every run takes its whole step by
itself, as the run alone takes it, the runs dealt to threads with one intra-op thread each
(``dlhw.nn.run_threads``): its own network, whose weights are views of its slices, its forward,
backward, clipping and its own optimizer's step. Per run: its own batches (its seed's data order
and augmentation), its own dropout masks (drawn from its own generator as the run alone draws
them), its own BatchNorm statistics, gradient-norm clipping and learning-rate schedule. A run
whose loss turns non-finite stops at once: on a CPU it takes no step, on an accelerator it
leaves the summed loss on the device and its slice is frozen at the next look (every
``check_every`` steps); the others go on.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from dlhw.nn.run_threads import map_runs
from dlhw.nn.stackable import MaskedDropout, per_run, stackable
from dlhw.optim.stacked import StackedOptimizer

STAGES = ("train", "val", "test")
PLATEAU = torch.optim.lr_scheduler.ReduceLROnPlateau


class StackedSchedule:
    """The K learning-rate schedules of a pack, stepped together (plateau ones on their own run's
    validation loss); the stacked optimizer re-reads the learning rates after each step."""

    def __init__(self, schedules: Sequence[object | None], optimizer: StackedOptimizer):
        self.schedules = list(schedules)
        self.optimizer = optimizer

    def step(self) -> None:
        """Step the schedules that follow the clock (where Lightning steps them for a run alone)."""
        for schedule in self.schedules:
            if schedule is not None and not isinstance(schedule, PLATEAU):
                schedule.step()
        self.optimizer.sync()

    def step_plateau(self, val_losses: Sequence[float] | None) -> None:
        """Step the reduce-on-plateau schedules, each on its own run's validation loss."""
        for k, schedule in enumerate(self.schedules):
            if isinstance(schedule, PLATEAU) and val_losses is not None:
                schedule.step(val_losses[k])
        self.optimizer.sync()

    def state_dict(self) -> dict:  # per-run states go into the runs' checkpoints
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class PackedClassifier(pl.LightningModule):
    """The Classifier of K runs at once (see the module doc).

    Args:
        nets: the K networks, built and initialised as each run alone builds them.
        loss: the loss module (shared: it holds no parameters).
        optimizers: each run's own torch optimizer over its own network (their settings are read).
        schedules: each run's schedule on that optimizer, or None.
        generators: each run's generator for dropout masks (the global RNG state of the run alone).
        scheduler_interval: "epoch" or "step".
        monitor: what the plateau schedules watch (``val/loss``, ``val/acc``, ``train/loss``...).
        check_every: on an accelerator, look for diverged runs every this many steps (on a CPU
            every step); a diverged run is excluded from the loss at once, on the device.
    """

    def __init__(
        self,
        nets: Sequence[nn.Module],
        loss: nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        schedules: Sequence[object | None],
        generators: Sequence[torch.Generator],
        scheduler_interval: str = "epoch",
        monitor: str = "val/loss",
        check_every: int = 25,
    ):
        super().__init__()
        self.k = len(nets)
        self.loss_fn = loss
        self.run_optimizers = list(optimizers)
        for optimizer in self.run_optimizers:  # stepped through the stack: no "schedule before step" warning
            optimizer._opt_called = True
        self.schedules = list(schedules)
        self.generators = list(generators)
        self.scheduler_interval = scheduler_interval
        self.monitor = monitor
        self.check_every = check_every
        self.stacked = stackable(nets[0])
        copies = [stackable(net) for net in nets]
        params, buffers = stack_module_state(copies)
        for name, value in params.items():
            _set(self.stacked, name, nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            _set(self.stacked, name, value.clone())
        self._run_nets = _run_views(nets, copies, self.stacked)  # a list: not submodules
        self._runs_step = False  # set where the optimizer is made: on a CPU every run steps itself
        self._dropouts = [(n, m) for n, m in self.stacked.named_modules()
                          if isinstance(m, MaskedDropout) and m.p > 0]
        # each run's own rate per dropout layer (a pack's runs may differ in model.dropout)
        self._dropout_p = {n: [net.get_submodule(n).p for net in nets] for n, _ in self._dropouts}
        self._dropout_shapes: dict[str, tuple[int, ...]] = {}
        self._dropout_order: list[str] = []
        self._probe_nets = [nets[0]] if self._dropouts else []  # a list: not a submodule
        self.register_buffer("active", torch.ones(self.k, dtype=torch.bool), persistent=False)
        self.register_buffer("first_bad_step", torch.full((self.k,), -1, dtype=torch.long), persistent=False)
        self.sums: dict[str, torch.Tensor] = {}
        self.epoch_metrics: dict[str, torch.Tensor] = {}
        self._stacked_optimizer: StackedOptimizer | None = None
        self._thread_nets: dict[int, nn.Module] = {}  # per-thread module copies (_thread_net)

    # ------------------------------------------------------------------ dropout masks
    def _probe(self, x: torch.Tensor) -> None:
        """The call order and per-sample input shape of every dropout layer, from one sample."""
        net = self._probe_nets.pop()
        names = {id(m): n for n, m in net.named_modules()}
        found: list[tuple[str, tuple[int, ...]]] = []
        hooks = [m.register_forward_pre_hook(lambda m, args: found.append((names[id(m)], tuple(args[0].shape[1:]))))
                 for m in net.modules() if isinstance(m, nn.Dropout) and m.p > 0]
        was = net.training
        try:
            net.to(x.device).eval()
            with torch.no_grad():
                net(x[:1])
        finally:
            net.train(was)
            for h in hooks:
                h.remove()
        self._dropout_order = [n for n, _ in found]
        self._dropout_shapes = dict(found)

    def _run_masks(self, k: int, batch: int) -> dict[str, torch.Tensor]:
        """Run k's masks for this batch (on the CPU), drawn in the order the run alone draws them."""
        return {name: MaskedDropout.draw((batch,) + self._dropout_shapes[name], self._dropout_p[name][k],
                                         self.generators[k], "cpu") for name in self._dropout_order}

    def _masks(self, batch: int, device) -> dict[str, torch.Tensor]:
        """Every run's masks for this batch, stacked for the stacked model."""
        runs = [self._run_masks(k, batch) for k in range(self.k)]
        return {f"{n}.mask": torch.stack([r[n] for r in runs]).to(device, non_blocking=True)
                for n in self._dropout_order}

    # ------------------------------------------------------------------ forward
    def weights(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        params = dict(self.stacked.named_parameters())
        buffers = {n: b for n, b in self.stacked.named_buffers() if not n.endswith(".mask")}
        return params, buffers

    def forward(self, x: torch.Tensor, shared_input: bool = False, masks=None) -> torch.Tensor:
        """Logits (K, N, ...) of the K runs on K batches x (K, N, ...), or on one batch (N, ...).

        On a CPU every run computes by itself, the runs dealt to threads with one intra-op
        thread each (``per_run``): the kernels of the run alone, without vmap's batched ones
        (grouped convolutions; a batched LSTM has no fused kernel) and without streaming K runs'
        activations through memory. Elsewhere one vmapped pass computes all runs."""
        params, buffers = self.weights()
        buffers.update(masks or {})
        if x.device.type == "cpu":
            tensors = {**params, **buffers}
            names, split = list(tensors), len(params)

            def run(xk: torch.Tensor, *own: torch.Tensor) -> torch.Tensor:
                return functional_call(self._thread_net(), (dict(zip(names[:split], own[:split], strict=True)),
                                                             dict(zip(names[split:], own[split:], strict=True))), (xk,))

            return per_run(run, self.k, (not shared_input,) + (True,) * len(tensors), x, *tensors.values())
        base = self.stacked

        def one(p, b, xb):
            return functional_call(base, (p, b), (xb,))

        in_x = None if shared_input else 0
        return vmap(one, in_dims=(0, 0, in_x), randomness="error")(params, buffers, x)

    def _thread_net(self) -> nn.Module:
        """This thread's own copy of the stacked module, in its mode (functional_call swaps a
        module's tensors in place: threads must not share one)."""
        net = self._thread_nets.get(threading.get_ident())
        if net is None:  # the structure only: functional_call hands in every tensor
            empty = {id(t): nn.Parameter(t.new_empty(0), t.requires_grad) if isinstance(t, nn.Parameter)
                     else t.new_empty(0) for t in (*self.stacked.parameters(), *self.stacked.buffers())}
            net = self._thread_nets[threading.get_ident()] = copy.deepcopy(self.stacked, empty)
        return net.train(self.stacked.training)

    def _losses(self, logits: torch.Tensor, y: torch.Tensor, shared_input: bool) -> torch.Tensor:
        return vmap(self.loss_fn, in_dims=(0, None if shared_input else 0))(logits, y)

    @staticmethod
    def predict_classes(logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] == 1:
            return (logits[..., 0] > 0).long()
        return logits.argmax(-1)

    def _accumulate(self, stage: str, losses: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[-1]
        correct = (self.predict_classes(logits) == y).float().sum(-1)
        sums = self.sums.setdefault(stage, torch.zeros(3, self.k, device=losses.device))
        sums[0] += losses.detach() * n
        sums[1] += correct
        sums[2] += n

    def _close(self, stage: str) -> None:
        sums = self.sums.pop(stage, None)
        if sums is None:
            return
        self.epoch_metrics[stage] = torch.stack([sums[0] / sums[2], sums[1] / sums[2]])  # (2, K)
        self.log(f"{stage}/loss_mean", (sums[0] / sums[2]).mean(), prog_bar=stage != "test")
        if stage != "train":
            self.log(f"{stage}/acc_mean", (sums[1] / sums[2]).mean(), prog_bar=stage != "test")

    # ------------------------------------------------------------------ steps
    def training_step(self, batch, batch_idx: int) -> torch.Tensor | None:
        x, y = batch  # (K, N, ...), (K, N)
        if self._probe_nets:
            self._probe(x[0])
        if self._runs_step:
            if not bool(self.active.any()):
                return None  # every run has diverged: the recorder stops the fit at the epoch's end
            losses, logits = self._step_each_run(x, y)
        else:
            masks = self._masks(x.shape[1], x.device) if self._dropout_order else None
            logits = self(x, masks=masks)
            losses = self._losses(logits, y, shared_input=False)
        finite = torch.isfinite(losses.detach())
        newly_bad = self.active & ~finite
        self.first_bad_step.copy_(torch.where(newly_bad, self.global_step, self.first_bad_step))
        self.active.logical_and_(finite)
        self._accumulate("train", torch.where(self.active, losses, 0.0), logits.detach(), y)
        if self._runs_step:
            return None  # every run has stepped (a diverged one takes none): nothing to differentiate
        if x.device.type == "cpu" or self.global_step % self.check_every == 0:
            self.freeze_diverged()  # on an accelerator a look is a sync: every check_every steps
        return torch.where(self.active, losses, torch.zeros_like(losses)).sum()

    def _step_each_run(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every active run's whole training step on its own batch, in threads (see the module
        doc); the K losses and logits. A run whose loss is not finite takes no step."""
        clip = self.trainer.gradient_clip_val if self._trainer is not None else None
        by_value = self._trainer is not None and self.trainer.gradient_clip_algorithm == "value"
        active, training = self.active.tolist(), self.stacked.training

        def step(k: int) -> tuple[torch.Tensor, torch.Tensor] | None:
            if not active[k]:
                return None
            net, optimizer = self._run_nets[k], self.run_optimizers[k]
            net.train(training)
            for name, mask in self._run_masks(k, x.shape[1]).items():
                net.get_submodule(name).mask = mask
            logits = net(x[k])
            loss = self.loss_fn(logits, y[k])
            if torch.isfinite(loss):
                optimizer.zero_grad()
                loss.backward()
                params = [p for group in optimizer.param_groups for p in group["params"]]
                if clip and by_value:
                    torch.nn.utils.clip_grad_value_(params, clip)
                elif clip:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                optimizer.step()
            return loss.detach(), logits.detach()

        done = map_runs(step, self.k)
        like = next(d for d in done if d is not None)[1]
        losses = torch.stack([torch.zeros(()) if d is None else d[0] for d in done])
        logits = torch.stack([torch.zeros_like(like) if d is None else d[1] for d in done])
        return losses, logits

    def freeze_diverged(self) -> list[int]:
        """Hand the runs that diverged to the optimizer, which leaves their slices as they are."""
        frozen = (~self.active).nonzero().flatten().tolist()
        if self._stacked_optimizer is not None:
            self._stacked_optimizer.frozen = frozen
        return frozen

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x, shared_input=True)
        self._accumulate("val", self._losses(logits, y, True), logits, y.expand(self.k, -1))

    def test_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x, shared_input=True)
        self._accumulate("test", self._losses(logits, y, True), logits, y.expand(self.k, -1))

    def on_train_epoch_end(self) -> None:
        self._close("train")

    def on_validation_epoch_end(self) -> None:
        self._close("val")

    def on_test_epoch_end(self) -> None:
        self._close("test")

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Each run clipped by its own gradient norm (or values), as the run alone is clipped."""
        if not gradient_clip_val or self._runs_step:  # runs that step themselves clip themselves
            return
        grads = [p.grad for p in self.stacked.parameters() if p.grad is not None]
        if gradient_clip_algorithm == "value":
            for g in grads:
                g.clamp_(-gradient_clip_val, gradient_clip_val)
            return
        norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()  # (K,)
        coef = (gradient_clip_val / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))

    def configure_optimizers(self):
        # on a CPU every run steps itself; gradients accumulated over batches go the stacked way
        self._runs_step = self.device.type == "cpu" and (
            self._trainer is None or self.trainer.accumulate_grad_batches == 1)
        optimizer = StackedOptimizer(list(self.stacked.parameters()), self.run_optimizers,
                                     runs_step=self._runs_step)
        self._stacked_optimizer = optimizer
        if all(s is None for s in self.schedules):
            return optimizer
        schedule = StackedSchedule(self.schedules, optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": self.scheduler_interval}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        scheduler.step()

    def step_plateau_schedules(self) -> None:
        """After the epoch's checkpoints, as Lightning steps a run's plateau schedule, each on its
        own run's value of ``monitor``."""
        stage, _, name = self.monitor.partition("/")
        values = self.epoch_metrics.get(stage)
        if values is None or self._trainer is None:
            return
        per_run = values[0 if name == "loss" else 1].tolist()
        for config in self.trainer.lr_scheduler_configs:
            config.scheduler.step_plateau(per_run)

    # ------------------------------------------------------------------ per-run views
    def run_state_dict(self, k: int, prefix: str = "net.") -> dict[str, torch.Tensor]:
        """Run k's weights as the state dict of its own Classifier (``net.`` keys)."""
        return {prefix + n: t[k].detach().clone() for n, t in self.stacked.state_dict().items()
                if not n.endswith(".mask")}

    def load_run_state_dict(self, k: int, state: dict[str, torch.Tensor], prefix: str = "net.") -> None:
        own = self.stacked.state_dict()
        with torch.no_grad():
            for name, target in own.items():
                if prefix + name in state:
                    target[k].copy_(state[prefix + name])


def _run_views(nets: Sequence[nn.Module], copies: Sequence[nn.Module], stacked: nn.Module) -> list[nn.Module]:
    """Each run's network for its own steps: its stackable copy holding the run's own parameter
    and buffer objects (those its optimizer steps), their data made views of its stacked slices."""
    for k, (net, copy_) in enumerate(zip(nets, copies, strict=True)):
        for name, p in net.named_parameters():
            p.data = stacked.get_parameter(name).data[k]
            _set(copy_, name, p)
        for name, b in net.named_buffers():
            b.data = stacked.get_buffer(name).data[k]
            _set(copy_, name, b)
    return list(copies)


def _set(module: nn.Module, dotted: str, value) -> None:
    """Replace the parameter or buffer ``dotted`` of ``module`` by ``value``."""
    owner_name, _, leaf = dotted.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    if isinstance(value, nn.Parameter):
        owner._parameters[leaf] = value
    else:
        owner._buffers[leaf] = value
