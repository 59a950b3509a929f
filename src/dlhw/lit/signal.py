"""Signal propagation: the variance of every layer's pre-activations on a fixed batch, across depth."""

from __future__ import annotations

import json

import pytorch_lightning as pl
import torch

from dlhw.lit.tb import fixed_batch, run_dir, tb_writer, weight_layers

SIGNAL_FILE = "signal_propagation.json"


class SignalPropagation(pl.Callback):
    """Variance of the output of every Linear / Conv layer (the pre-activations) on a fixed batch.

    Recorded at initialisation (before the first step) and every N epochs, in eval mode without
    gradients. TensorBoard gets ``signal/L<i>_<layer>`` scalars (at the global step) and, when
    training ends, the figure ``signal/variance_by_depth`` (init and last, log scale); the history goes to
    ``signal_propagation.json`` in the run directory for the report. Under He initialisation the
    variance stays roughly constant across depth; under N(0, 0.01^2) it shrinks layer by layer.

    Args:
        every_n_epochs: interval in epochs (0: only at initialisation).
        num_samples: size of the fixed batch (first samples of the validation split).
    """

    def __init__(self, every_n_epochs: int = 1, num_samples: int = 256):
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.layers: list[str] = []
        self.records: list[dict] = []
        self._batch: torch.Tensor | None = None

    def measure(self, pl_module: torch.nn.Module, x: torch.Tensor) -> tuple[list[str], list[float]]:
        """(layer names, variances) of the pre-activations of any model on the batch ``x``."""
        layers = weight_layers(pl_module)
        stats: dict[str, torch.Tensor] = {}

        def hook(name):
            def fn(_module, _inputs, out):
                if isinstance(out, torch.Tensor):
                    stats[name] = out.detach().float().var()
            return fn

        hooks = [m.register_forward_hook(hook(name)) for name, m in layers]
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                pl_module(x.to(next(pl_module.parameters()).device))
        finally:
            for h in hooks:
                h.remove()
            pl_module.train(was_training)
        names = [n for n, _ in layers if n in stats]
        values = torch.stack([stats[n] for n in names]).tolist() if names else []
        return names, values

    def _record(self, trainer, pl_module, epoch: int | None) -> None:
        if self._batch is None:
            self._batch = fixed_batch(trainer, "val", self.num_samples)
            if self._batch is None:
                return
        names, values = self.measure(pl_module, self._batch)
        if not names:
            return
        self.layers = names
        step = trainer.global_step
        self.records.append({"epoch": epoch, "step": step, "variance": values})
        if trainer.global_rank != 0:
            return
        out = run_dir(trainer) / SIGNAL_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"layers": names, "records": self.records}, indent=1))
        writer = tb_writer(trainer)
        if writer is None:
            return
        for i, (name, v) in enumerate(zip(names, values, strict=True)):
            writer.add_scalar(f"signal/L{i:02d}_{name}", v, step)

    def _figure(self, trainer) -> None:
        """The init-vs-now figure (drawing it costs ~0.15 s: once at the end, not every epoch)."""
        writer = tb_writer(trainer)  # None off rank 0
        if writer is None or not self.records:
            return
        from dlhw.figures import signal_figure

        fig = signal_figure({"layers": self.layers, "records": [self.records[0], self.records[-1]]})
        writer.add_figure("signal/variance_by_depth", fig, self.records[-1]["step"])

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.global_step == 0:
            self._record(trainer, pl_module, epoch=None)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.every_n_epochs > 0 and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._record(trainer, pl_module, epoch=trainer.current_epoch + 1)

    def on_train_end(self, trainer, pl_module) -> None:
        self._figure(trainer)
