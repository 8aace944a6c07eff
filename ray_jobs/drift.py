"""Drift step: compare a current snapshot with a reference one; exit 0 / 1 / 2 for ok / warn /
critical so a scheduler can act on it.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.drift --reference ID --current latest``
(runs in the driver: it reads a sample of each snapshot, no cluster needed).
"""
from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from core import logs
from core.settings import get_settings
from ml.drift.check import DriftCheck, check_drift

console = Console()
SHOWN = 10
STYLES = {"ok": "green", "warn": "dark_orange", "critical": "bold red"}


def command(
    reference: str = typer.Option(..., help="Reference snapshot id or URI (e.g. the training snapshot)."),
    current: str = typer.Option("latest", help="Current snapshot id, 'latest', or URI."),
    model: str | None = typer.Option("champion", help="Registered model for prediction drift ('' to skip)."),
    force: bool = typer.Option(False, "--force", help="Recompute even if this report is already complete."),
) -> None:
    """PSI / KS / missing-rate drift per feature, prediction and label drift; HTML report + MLflow."""
    logs.configure(logs.new_run_id("drift"))
    result = check_drift(get_settings(), reference, current, model or None, force=force)
    print_summary(result)
    raise typer.Exit(result.exit_code)


def print_summary(result: DriftCheck) -> None:
    s = result.summary
    state = "checked" if result.output.built else "already checked, reused"
    table = Table(title=f"drift {s['current']} vs {s['reference']} ({state})")
    for col in ("feature", "level", "PSI", "KS", "missing ref -> cur", "mean ref -> cur"):
        table.add_column(col, justify="left" if col in ("feature", "level") else "right")
    for f in s["features"][:SHOWN]:
        means = "-" if f["mean_reference"] is None or f["mean_current"] is None else \
            f"{f['mean_reference']:.4g} -> {f['mean_current']:.4g}"
        name = f["feature"] + (" (context)" if f["context"] else "")
        ks = "-" if f["ks"] is None else f"{f['ks']:.3f}"
        table.add_row(name, _level(f["level"]), f"{f['psi']:.3f}", ks,
                      f"{f['missing_reference']:.1%} -> {f['missing_current']:.1%}", means)
    console.print(table)
    levels = s["feature_levels"]
    console.print(f"features: {levels['critical']} critical, {levels['warn']} warn, {levels['ok']} ok "
                  f"(top {min(SHOWN, len(s['features']))} shown)")
    if s["prediction"]:
        p = s["prediction"]
        console.print(f"predictions {_level(p['level'])}: PSI {p['psi']:.3f}, KS {p['ks']:.3f}, "
                      f"mean {p['mean_reference']:.4f} -> {p['mean_current']:.4f}")
    if s["label"]:
        lab = s["label"]
        console.print(f"label {_level(lab['level'])}: rate {lab['rate_reference']:.2%} -> {lab['rate_current']:.2%} "
                      f"({lab['relative_change']:.0%} relative)")
    for note in s["notes"]:
        console.print(f"[dim]{note}[/dim]")
    console.print(f"status: {_level(s['status'])}  (exit {result.exit_code})\nreport: {result.report}")


def _level(level: str) -> str:
    return f"[{STYLES[level]}]{level}[/]"


if __name__ == "__main__":
    typer.run(command)
