"""``churn``: the command line of the platform. Each step is the same function that
``python -m ray_jobs.<step>`` runs, registered here under its name."""
from __future__ import annotations

import typer

from ray_jobs import (
    batch_score,
    campaign,
    cluster,
    drift,
    etl,
    generate,
    materialize,
    measure,
    promote,
    serve,
    services,
    train,
    tune,
    uplift,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)
app.add_typer(services.app, name="services")
app.add_typer(cluster.app, name="cluster")
app.command("generate")(generate.command)
app.command("etl")(etl.command)
app.command("train")(train.command)
app.command("tune")(tune.command)
app.command("promote")(promote.command)
app.command("uplift")(uplift.command)
app.command("materialize")(materialize.command)
app.add_typer(serve.app, name="serve")
app.command("score")(batch_score.command)
app.command("campaign")(campaign.command)
app.command("measure")(measure.command)
app.command("drift")(drift.command)


@app.command()
def runs(limit: int = typer.Option(10, help="How many recent runs.")) -> None:
    """Recent MLflow runs with their key metrics."""
    from rich.console import Console
    from rich.table import Table

    from core.settings import get_settings
    from ml import registry

    table = Table(title="recent runs")
    for col in ("started", "run", "name", "snapshot", "holdout AUC", "CV AUC", "status"):
        table.add_column(col)
    for r in registry.recent_runs(get_settings(), limit):
        table.add_row(*r)
    Console().print(table)


if __name__ == "__main__":
    app()
