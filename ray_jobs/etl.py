"""ETL step: raw sources (or a flat customer table) -> a versioned feature snapshot.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.etl --raw PATH --as-of 2026-06-30``
"""
from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.table import Table

from core import logs
from core.ray_session import ray_session
from core.settings import get_settings

console = Console()


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise typer.BadParameter(f"expected COLUMN=VALUE, got '{item}'", param_hint=option)
        out[key] = value
    return out


def print_summary(manifest: dict, seconds: float, built: bool) -> None:
    table = Table(title=f"snapshot {manifest['id']} ({'built' if built else 'already built, reused'})")
    for col in ("source", "rows in", "duplicates", "quarantined", "used", "late"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, s in manifest["sources"].items():
        quarantined = sum(s["quarantined"].values())
        table.add_row(name, f"{s['rows_in']:,}", f"{s['duplicates_removed']:,}", f"{quarantined:,}",
                      f"{s['rows_used']:,}", f"{s.get('late_arrivals', 0):,}")
    console.print(table)
    label = f", label rate {manifest['label_rate']:.1%}" if manifest.get("label") else " (scoring: no label)"
    console.print(f"as of {manifest['as_of']}: {manifest['rows']:,} customers x {len(manifest['features'])} features"
                  f"{label}; schema {manifest['schema_hash']}; {seconds:.1f} s")


def command(
    raw: str | None = typer.Option(None, help="Raw sources folder/URI (default: <data>/generated/raw)."),
    as_of: str | None = typer.Option(None, help="As-of date YYYY-MM-DD (default: last date the label allows)."),
    horizon_days: int = typer.Option(30, help="Label: churned within this many days after the as-of date."),
    scoring: bool = typer.Option(False, "--scoring", help="Scoring snapshot: no label, as-of may be the last day."),
    table: str | None = typer.Option(None, help="A flat one-row-per-customer table (CSV/Parquet) instead of raw."),
    id_column: str = typer.Option("customer_id", "--id", help="Customer id column of --table."),
    label: str | None = typer.Option(None, help="Yes/no label column of --table."),
    types: list[str] = typer.Option([], "--type",
                                    help="Override an inferred type: COLUMN=float|int|bool|category|drop."),
    defaults: list[str] = typer.Option([], "--default", help="Fill missing cells of a column: COLUMN=VALUE."),
) -> None:
    """Build a point-in-time feature snapshot with Spark on Ray (RayDP)."""
    from features import raw_etl, table_etl
    from features.spark_session import raydp_spark

    settings = get_settings()
    logs.configure(logs.new_run_id("etl"))
    try:
        default_values = {k: float(v) for k, v in _pairs(defaults, "--default").items()}
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--default") from e
    as_of_date = dt.date.fromisoformat(as_of) if as_of else None
    with ray_session(settings), raydp_spark(settings) as spark:
        if table:
            result = table_etl.run(spark, settings, table, id_column, label, _pairs(types, "--type"),
                                   default_values, as_of_date)
        else:
            raw_uri = raw or f"{settings.data_uri}/generated/raw"
            if as_of_date is None:
                last = raw_etl.data_window(raw_uri)[1]
                as_of_date = last if scoring else last - dt.timedelta(days=horizon_days)
            result = raw_etl.run(spark, settings, raw_uri, as_of_date, horizon_days, scoring)
    print_summary(result.snapshot.manifest, result.seconds, result.built)
    console.print(f"snapshot: {result.snapshot.uri}")


if __name__ == "__main__":
    typer.run(command)
