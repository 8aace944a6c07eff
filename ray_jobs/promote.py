"""Promote the challenger to champion when it wins by the stated margins, or roll back."""
from __future__ import annotations

import typer
from rich.console import Console

from core import logs
from core.settings import get_settings

console = Console()


def command(rollback: bool = typer.Option(False, "--rollback", help="Move champion back to the previous one.")) -> None:
    """Champion/challenger decision on the holdout (ROC-AUC and campaign value), recorded in MLflow."""
    from ml import promotion, registry
    settings = get_settings()
    logs.configure(logs.new_run_id("promote"))
    client = registry.setup(settings)
    try:
        if rollback:
            old, new = promotion.rollback(settings, client)
            console.print(f"champion rolled back: v{old} -> v{new}")
            return
        d = promotion.decide(settings, client)
    except promotion.PromotionError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from e
    verdict = "[green]promoted[/green]" if d.promoted else "[yellow]kept the champion[/yellow]"
    console.print(f"challenger v{d.challenger} vs champion v{d.champion or '-'}: {verdict}: {d.reason}")


if __name__ == "__main__":
    typer.run(command)
