"""The progress bar of a run: Rich's in a terminal, Lightning's tqdm bar in a Jupyter kernel (tqdm
draws a widget there where ipywidgets is installed, and plain text otherwise; Rich's live display
shows nothing in a notebook without ipywidgets)."""

from __future__ import annotations

from pytorch_lightning.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar

from dlhw.notebook import in_jupyter


def progress_bar(refresh_rate: int = 5) -> ProgressBar:
    """A progress bar that redraws every ``refresh_rate`` steps, fit for where it runs."""
    if in_jupyter():
        return TQDMProgressBar(refresh_rate=refresh_rate)
    return RichProgressBar(refresh_rate=refresh_rate)
