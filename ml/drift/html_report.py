"""The drift report a data scientist opens: one HTML page with the verdicts, a table per check and
PNG plots (reference vs current distributions of the most drifted features and predictions)."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from matplotlib.axes import Axes

from core.settings import DriftSettings
from ml.drift.measures import CRITICAL, OK, WARN, DriftResult, FeatureDrift
from ml.plots import save_figure, subplots

DPI = 100

COLOURS = {OK: "#2e7d32", WARN: "#ef6c00", CRITICAL: "#c62828"}
REFERENCE_STYLE: dict[str, Any] = {"color": "#607d8b", "alpha": 0.55, "label": "reference"}
CURRENT_STYLE: dict[str, Any] = {"color": "#e65100", "alpha": 0.55, "label": "current"}


def _overlay(ax: Axes, reference: np.ndarray, current: np.ndarray, discrete: bool) -> None:
    """Reference and current distributions on shared bins (bars per value when discrete)."""
    ref, cur = reference[~np.isnan(reference)], current[~np.isnan(current)]
    if discrete:
        values = np.union1d(np.unique(ref), np.unique(cur))
        positions = np.arange(values.size)
        width = 0.4
        for offset, data, style in ((-width / 2, ref, REFERENCE_STYLE), (width / 2, cur, CURRENT_STYLE)):
            share = np.array([(data == v).mean() if data.size else 0.0 for v in values])
            ax.bar(positions + offset, share, width=width, **style)
        step = max(1, values.size // 12)
        ax.set_xticks(positions[::step], [f"{v:g}" for v in values[::step]], rotation=45)
        ax.set_ylabel("share")
        return
    both = np.concatenate([ref, cur])
    low, high = np.quantile(both, [0.005, 0.995]) if both.size else (0.0, 1.0)
    bins = cast("Sequence[float]", np.linspace(low, high if high > low else low + 1, 40))
    ax.hist(np.clip(ref, low, high), bins=bins, density=True, **REFERENCE_STYLE)
    ax.hist(np.clip(cur, low, high), bins=bins, density=True, **CURRENT_STYLE)
    ax.set_ylabel("density")


def plot(result: DriftResult, reference: dict[str, np.ndarray], current: dict[str, np.ndarray],
         predictions: tuple[np.ndarray, np.ndarray] | None, settings: DriftSettings, out: Path) -> list[Path]:
    """PSI per feature, overlays of the ``settings.plots`` most drifted features, predictions."""
    paths = []
    top = result.features[:20][::-1]
    fig, ax = subplots(figsize=(9, max(3.0, 0.3 * len(top) + 1)))
    ax.barh([f.feature for f in top], [f.psi for f in top], color=[COLOURS[f.level] for f in top])
    ax.axvline(settings.psi_warn, ls="--", color=COLOURS[WARN], label="warn")
    ax.axvline(settings.psi_critical, ls="--", color=COLOURS[CRITICAL], label="critical")
    ax.set(title="PSI by feature (most drifted)", xlabel="PSI")
    ax.legend()
    paths.append(save_figure(fig, out / "psi.png", DPI))

    for i, f in enumerate(result.features[: settings.plots]):
        fig, ax = subplots(figsize=(6, 3.6))
        _overlay(ax, reference[f.feature], current[f.feature], f.discrete)
        ks = f", KS {f.ks:.3f}" if f.ks is not None else ""
        missing = f", missing {f.missing_reference:.1%} -> {f.missing_current:.1%}" if f.missing_change else ""
        ax.set_title(f"{f.feature}: PSI {f.psi:.3f}{ks}{missing}", fontsize=10)
        ax.legend()
        paths.append(save_figure(fig, out / f"feature_{i + 1:02d}_{f.feature}.png", DPI))

    if predictions is not None:
        fig, ax = subplots(figsize=(6, 3.6))
        _overlay(ax, *predictions, discrete=False)
        ax.set(title="Predicted churn probability", xlabel="probability")
        ax.legend()
        paths.append(save_figure(fig, out / "predictions.png", DPI))
    return paths


def _badge(level: str) -> str:
    return f'<span class="badge" style="background:{COLOURS[level]}">{level}</span>'


def _feature_row(f: FeatureDrift) -> str:
    ks = "" if f.ks is None else f"{f.ks:.3f}"
    mean = lambda v: "" if v is None else f"{v:.4g}"  # noqa: E731
    name = html.escape(f.feature) + (" <i>(region context)</i>" if f.context else "")
    return (f"<tr><td>{name}</td><td>{_badge(f.level)}</td><td>{f.psi:.3f}</td><td>{ks}</td>"
            f"<td>{f.missing_reference:.1%}</td><td>{f.missing_current:.1%}</td>"
            f"<td>{mean(f.mean_reference)}</td><td>{mean(f.mean_current)}</td></tr>")


def write_html(result: DriftResult, settings: DriftSettings, plots: list[Path], out: Path,
               context: Mapping[str, object]) -> Path:
    counts = result.counts()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Drift report</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1100px} table{border-collapse:collapse;margin:1em 0}",
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right} td:first-child{text-align:left}",
        ".badge{color:#fff;padding:2px 8px;border-radius:8px} img{max-width:49%;margin:2px}",
        "</style></head><body>",
        f"<h1>Drift: {html.escape(result.current)} vs {html.escape(result.reference)} {_badge(result.status)}</h1>",
        "<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in context.items()),
        f"<li><b>rows compared</b>: reference {result.rows['reference']:,}, current {result.rows['current']:,}</li>",
        f"<li><b>features</b>: {counts[CRITICAL]} critical, {counts[WARN]} warn, {counts[OK]} ok</li>",
        f"<li><b>thresholds</b>: PSI {settings.psi_warn}/{settings.psi_critical}, KS {settings.ks_warn}/"
        f"{settings.ks_critical}, missing-rate change {settings.missing_warn}/{settings.missing_critical}, "
        f"label-rate relative change {settings.label_warn}/{settings.label_critical} (warn/critical); "
        f"region context features at most {settings.context_level}</li></ul>",
    ]
    parts += [f"<p><i>{html.escape(note)}</i></p>" for note in result.notes]
    if result.prediction:
        p = result.prediction
        parts.append(f"<h2>Predictions {_badge(p.level)}</h2><table><tr><th>PSI</th><th>KS</th>"
                     f"<th>mean reference</th><th>mean current</th></tr><tr><td>{p.psi:.3f}</td><td>{p.ks:.3f}</td>"
                     f"<td>{p.mean_reference:.4f}</td><td>{p.mean_current:.4f}</td></tr></table>")
    if result.label:
        lab = result.label
        parts.append(f"<h2>Label {_badge(lab.level)}</h2><table><tr><th>rate reference</th><th>rate current</th>"
                     f"<th>relative change</th></tr><tr><td>{lab.rate_reference:.2%}</td><td>{lab.rate_current:.2%}"
                     f"</td><td>{lab.relative_change:.1%}</td></tr></table>")
    parts.append("<h2>Plots</h2>" + "".join(f'<img src="{p.name}" alt="{p.stem}">' for p in plots))
    parts.append("<h2>Features (most drifted first)</h2><table><tr><th>feature</th><th>level</th><th>PSI</th>"
                 "<th>KS</th><th>missing ref</th><th>missing cur</th><th>mean ref</th><th>mean cur</th></tr>")
    parts += [_feature_row(f) for f in result.features]
    parts.append("</table></body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts) + "\n")
    return path
