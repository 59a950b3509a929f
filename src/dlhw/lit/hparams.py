"""TensorBoard's HPARAMS tab: the settings of a run with its final metrics as columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl

from dlhw.lit.tb import tb_writer

METRICS = ("hparams/best_val_acc", "hparams/final_val_acc", "hparams/test_acc", "hparams/test_loss")

# The settings a reader compares across runs: the HPARAMS tab's columns after the swept keys
# (TensorBoard ticks the first five columns, so that the swept keys, batch size, model,
# optimizer and learning rate show at first). Every other setting stays in the run's session
# data, not as a column.
COLUMNS = ("model", "optimizer", "optimizer.lr", "data.batch_size", "trainer.max_epochs", "seed")


def hparams_summaries(params: dict[str, Any], swept: Sequence[str] = ()) -> tuple:
    """The three HPARAMS summaries (experiment, session start, session end) of ``params``, with
    booleans typed as booleans (torch's writer stores a bool as the number 0.0 or 1.0).

    The experiment summary, which sets the HPARAMS tab's columns, lists the ``swept`` keys and
    then the main settings (``COLUMNS``) only. TensorBoard orders the columns by "differs" first,
    then by name, so the swept keys are marked as differing: they lead the table. The session
    start keeps every setting of ``params``.
    """
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams

    swept = [k for k in swept if k in params]
    columns = {k: params[k] for k in [*swept, *COLUMNS] if k in params}
    exp, _, _ = hparams(columns, {m: 0.0 for m in METRICS})
    _, ssi, sei = hparams(params, {m: 0.0 for m in METRICS})
    value = exp.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in swept
    value.metadata.plugin_data.content = data.SerializeToString()
    flags = {k: v for k, v in params.items() if isinstance(v, bool)}
    for summary in (exp, ssi) if flags else ():
        value = summary.value[0]
        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
        for info in data.experiment.hparam_infos:
            if info.name in flags:
                info.type = api_pb2.DATA_TYPE_BOOL
        for key, flag in flags.items():
            if key in data.session_start_info.hparams:
                data.session_start_info.hparams[key].bool_value = flag
        value.metadata.plugin_data.content = data.SerializeToString()
    return exp, ssi, sei


class HParams(pl.Callback):
    """Writes the run's flattened config to the HPARAMS tab with real metric columns.

    At fit start the hyperparameters and the metric names (``hparams/best_val_acc``,
    ``hparams/final_val_acc``, ``hparams/test_acc``, ``hparams/test_loss``) are declared; the values
    are logged when fitting ends (validation) and when testing ends (test), so a sweep can be
    sorted by them in TensorBoard. A run that crashes still shows its hyperparameters. The keys
    a sweep varies come first, then the main settings (``COLUMNS``).

    The settings come from whoever builds the run (``dlhw.run.build`` sets ``params`` from the
    config); a callback without them writes nothing.
    """

    def __init__(self, params: dict[str, Any] | None = None, swept: Sequence[str] = ()):
        self.params: dict[str, Any] = dict(params or {})
        self.swept: list[str] = list(swept)  # the keys a sweep varies (dlhw.config.flatten.swept_keys)

    def on_fit_start(self, trainer, pl_module) -> None:
        writer = tb_writer(trainer)
        if writer is None or not self.params:
            return
        file_writer = writer._get_file_writer()
        for summary in hparams_summaries(self.params, self.swept):
            file_writer.add_summary(summary)

    def on_fit_end(self, trainer, pl_module) -> None:
        writer = tb_writer(trainer)
        if writer is None or not self.params:
            return
        metrics = trainer.callback_metrics
        ckpt = trainer.checkpoint_callback
        best = getattr(ckpt, "best_model_score", None) if ckpt is not None and ckpt.monitor else None
        if best is None:
            best = metrics.get("val/acc")
        if best is not None:
            writer.add_scalar("hparams/best_val_acc", float(best), trainer.global_step)
        if "val/acc" in metrics:
            writer.add_scalar("hparams/final_val_acc", float(metrics["val/acc"]), trainer.global_step)
        writer.flush()

    def on_test_end(self, trainer, pl_module) -> None:
        writer = tb_writer(trainer)
        if writer is None or not self.params:
            return
        for key in ("acc", "loss"):
            value = trainer.callback_metrics.get(f"test/{key}")
            if value is not None:
                writer.add_scalar(f"hparams/test_{key}", float(value), trainer.global_step)
        writer.flush()
