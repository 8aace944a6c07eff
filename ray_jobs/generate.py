"""Generate step: synthetic raw sources of the business (and the truth kept apart from them).

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.generate --customers 1000000``
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from core import logs
from core.outputs import OutputNotFound
from core.ray_session import ray_session
from core.schema import CUSTOMER_ID
from core.settings import GenerateSettings, get_settings
from features.sources import ARMS
from simulator import DEFECT_KINDS, SCENARIOS, AppliedCampaign, GenerationResult, generate

console = Console()


def _setting(field: str, text: str):
    """An option defaulting (at call time) to ``settings.generate.<field>``."""
    return typer.Option(
        default_factory=lambda: getattr(get_settings().generate, field), help=text,
        show_default=f"{GenerateSettings.model_fields[field].default}, or env CHURN_GENERATE__{field.upper()}",
    )


def command(
    customers: int = _setting("customers", "Customers to simulate."),
    days: int = _setting("days", "Length of the window, in days."),
    seed: int = _setting("seed", "Same seed and options: byte-identical files."),
    out: str = typer.Option(
        default_factory=lambda: get_settings().data_uri + "/generated", show_default="<data_uri>/generated",
        help="Output URI (local path or s3://...); raw/ and truth/ below it are replaced.",
    ),
    start_date: str = _setting("start_date", "First day, YYYY-MM-DD."),
    drift: str | None = typer.Option(None, help=f"Drift scenario: {', '.join(SCENARIOS)}."),
    drift_start: str | None = typer.Option(
        None, help="Day the drift starts, YYYY-MM-DD.", show_default="two thirds into the window"
    ),
    defect_rate: float = _setting("defect_rate", "Share of each source's rows made defective."),
    shard_size: int = _setting("shard_size", "Customers per Ray task."),
    campaign: str | None = typer.Option(
        None, help="Also run this planned campaign (id, 'latest' or URI) on its as-of date: the world after it, "
                   "for `churn measure`. Use the seed and window of the data it was planned on."),
) -> None:
    """Generate the 23 raw sources (Ray task per customer shard) and print what was written."""
    logs.configure(logs.new_run_id("generate"))
    if drift is not None and drift not in SCENARIOS:
        raise typer.BadParameter(f"unknown scenario '{drift}'; valid: {', '.join(SCENARIOS)}", param_hint="--drift")
    applied = None if campaign is None else applied_campaign(campaign, start_date, days)
    with ray_session(get_settings()), Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("shards", total=None)
        result = generate(
            out, customers=customers, days=days, seed=seed, start_date=start_date, drift=drift,
            drift_start=drift_start, defect_rate=defect_rate, shard_size=shard_size, campaign=applied,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    print_summary(result)


def applied_campaign(ref: str, start_date: str, days: int) -> AppliedCampaign:
    """A planned campaign's target list (control group included) as the generator runs it."""
    from ml.campaigns.planner import ARM, open_campaign  # it loads MLflow: only when a campaign is asked for

    try:
        plan = open_campaign(get_settings(), ref)
    except OutputNotFound as e:
        raise typer.BadParameter(str(e), param_hint="--campaign") from e
    day = (dt.date.fromisoformat(plan.summary["as_of"]) - dt.date.fromisoformat(start_date)).days
    if not 0 <= day < days:
        raise typer.BadParameter(f"campaign {plan.output.id} was planned for {plan.summary['as_of']}, outside the "
                                 f"window from {start_date} ({days} days)", param_hint="--campaign")
    targets = plan.read_targets()
    arm = targets[ARM].map({name: i for i, name in enumerate(ARMS)}).to_numpy(np.int64)
    return AppliedCampaign(plan.output.id, day, pa.array(targets[CUSTOMER_ID]), arm)


def print_summary(result: GenerationResult) -> None:
    manifest = result.manifest
    table = Table(title=f"{manifest['start_date']} .. {manifest['end_date']} -> {result.out}/raw")
    for col in ("source", "format", "rows", "bytes", "files", "defects"):
        table.add_column(col, justify="left" if col in ("source", "format", "defects") else "right")
    totals = {"rows": 0, "bytes": 0, "files": 0, **dict.fromkeys(DEFECT_KINDS, 0)}
    for name, s in manifest["sources"].items():
        defects = ", ".join(f"{kind} {count:,}" for kind, count in s["defects"].items() if count)
        table.add_row(name, s["format"], f"{s['rows']:,}", f"{s['bytes']:,}", f"{s['files']:,}", defects or "-")
        for key in ("rows", "bytes", "files"):
            totals[key] += s[key]
        for kind, count in s["defects"].items():
            totals[kind] += count
    defects = ", ".join(f"{kind} {totals[kind]:,}" for kind in DEFECT_KINDS if totals[kind])
    table.add_row("total", "", f"{totals['rows']:,}", f"{totals['bytes']:,}", f"{totals['files']:,}", defects or "-",
                  style="bold")
    console.print(table)
    stats = result.stats
    drift = manifest["drift"]
    if manifest["applied_campaign"]:
        applied = manifest["applied_campaign"]
        console.print(f"campaign {applied['campaign_id']} run on {applied['date']} ({applied['listed']:,} listed, "
                      "control group included)")
    console.print(
        f"{stats.customers:,} customers; {stats.churned_in_window:,} of the {stats.active_at_start:,} active at the "
        f"start churned in the window ({stats.churn_rate:.1%}); "
        + (f"drift {drift['scenario']} from {drift['start']} in {', '.join(drift['regions'])}; " if drift else "")
        + f"{result.seconds:.1f} s"
    )


if __name__ == "__main__":
    typer.run(command)
