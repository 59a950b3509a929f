"""Small real runs for the report / eval / search tests (in-process, digits, 2 epochs)."""

from __future__ import annotations

from pathlib import Path

from conftest import compose_config

FAST = ["threads=1", "data.max_train_samples=240", "data.batch_size=60", "trainer.max_epochs=2",
        "callbacks.progress_bar=null", "trainer.enable_model_summary=false"]


def train_run(out: Path, overrides: list[str]) -> float | None:
    """Train one tiny run into ``out`` as `dlhw-train` would (results.json, events, checkpoints)."""
    from dlhw.run.runner import run

    return run(compose_config([*FAST, *overrides], out))
