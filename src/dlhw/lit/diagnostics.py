"""Gradient norms per step and weight / gradient histograms per epoch, per layer."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from dlhw.lit.tb import short_name, tb_writer


class GradNorm(pl.Callback):
    """Logs the global gradient norm and each parameter's gradient norm every ``every_n_steps``.

    Norms are taken before clipping (on_before_optimizer_step), so a clipped run still shows the
    raw gradients. Between intervals the callback does nothing; at an interval it costs one
    device-to-host copy of all the norms together.

    Args:
        every_n_steps: interval in optimizer steps; null = the trainer's log_every_n_steps.
        per_layer: also log ``grad_norm/<parameter>`` (else only ``grad_norm/global``).
    """

    def __init__(self, every_n_steps: int | None = None, per_layer: bool = True):
        self.every_n_steps = every_n_steps
        self.per_layer = per_layer

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        every = self.every_n_steps or trainer.log_every_n_steps
        step = trainer.global_step
        writer = tb_writer(trainer)
        if writer is None or every <= 0 or step % every:
            return
        named = [(short_name(n), p.grad) for n, p in pl_module.named_parameters() if p.grad is not None]
        if not named:
            return
        norms = torch.stack([g.detach().float().norm() for _, g in named])
        total = norms.square().sum().sqrt()
        values = torch.cat([total[None], norms]).tolist()  # the one sync of this step
        writer.add_scalar("grad_norm/global", values[0], step)
        if self.per_layer:
            for (name, _), v in zip(named, values[1:], strict=True):
                writer.add_scalar(f"grad_norm/{name}", v, step)


def to_host(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Float32 CPU copies of ``tensors`` in one device-to-host transfer (one sync, not one each)."""
    if not tensors:
        return []
    flat = torch.cat([t.reshape(-1).float() for t in tensors]).cpu()
    return [chunk.view(t.shape) for chunk, t in zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)]


class WeightHistograms(pl.Callback):
    """Histograms and norms of every parameter and its gradient, at the start and every N epochs.

    Tags: ``weights/<param>``, ``grads/<param>`` (histograms), ``weight_norm/<param>`` and
    ``grad_norm_epoch/<param>`` (scalars), at the global step. The gradients are those of the last
    step of the epoch, taken before clipping; other steps cost nothing. All parameters (and all
    gradients) come off the device in one copy; without a TensorBoard logger nothing is copied.

    Args:
        every_n_epochs: interval in epochs (0: only at the start and the end).
        grads: also record gradients.
    """

    def __init__(self, every_n_epochs: int = 1, grads: bool = True):
        self.every_n_epochs = every_n_epochs
        self.grads = grads
        self._batch_idx = 0
        self._grads: dict[str, torch.Tensor] = {}

    def _due(self, trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        return last or (self.every_n_epochs > 0 and epoch % self.every_n_epochs == 0)

    def _record(self, trainer, pl_module) -> None:
        writer = tb_writer(trainer)
        if writer is None:
            return
        step = trainer.global_step
        named = [(short_name(n), p.detach()) for n, p in pl_module.named_parameters()]
        weights = to_host([w for _, w in named])
        grads = self._grads
        norms = torch.stack([w.float().norm() for w in weights] + [g.norm() for g in grads.values()])
        norms = dict(zip([f"weight_norm/{n}" for n, _ in named] + [f"grad_norm_epoch/{n}" for n in grads],
                         norms.tolist(), strict=True))
        for (name, _), w in zip(named, weights, strict=True):
            writer.add_histogram(f"weights/{name}", w, step)
            writer.add_scalar(f"weight_norm/{name}", norms[f"weight_norm/{name}"], step)
            g = grads.get(name)
            if g is not None:
                writer.add_histogram(f"grads/{name}", g, step)
                writer.add_scalar(f"grad_norm_epoch/{name}", norms[f"grad_norm_epoch/{name}"], step)
        self._grads = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        self._record(trainer, pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_idx = batch_idx

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        n = trainer.num_training_batches
        last_batch = isinstance(n, int) and self._batch_idx + 1 >= n
        if not (self.grads and last_batch and self._due(trainer)) or tb_writer(trainer) is None:
            return
        named = [(short_name(n), p.grad.detach()) for n, p in pl_module.named_parameters() if p.grad is not None]
        self._grads = dict(zip([n for n, _ in named], to_host([g for _, g in named]), strict=True))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._due(trainer) or trainer.should_stop:
            self._record(trainer, pl_module)
