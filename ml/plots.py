"""Figures for the reports, drawn with matplotlib's object API rather than pyplot: no backend to
choose, no window, no global figure state, so they draw the same on a headless Ray worker."""
from __future__ import annotations

import io
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


def png_bytes(fig: Figure, dpi: int) -> bytes:
    """The laid-out figure as PNG bytes, for outputs written by URI (local or ``s3://``)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
