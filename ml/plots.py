"""Figures for the reports, drawn with matplotlib's object API rather than pyplot: no backend to
choose, no window, no global figure state, so they draw the same on a headless Ray worker."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float]) -> tuple[Figure, Any]:
    """A new figure and its axes (one ``Axes``, or an array of them), like ``pyplot.subplots``."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def save_figure(fig: Figure, path: Path, dpi: int) -> Path:
    """Lay the figure out and write it as a PNG at ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path
