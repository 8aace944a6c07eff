"""``churn``: the command line of the platform. Each step is the same function that
``python -m ray_jobs.<step>`` runs, registered here under its name."""
from __future__ import annotations

import typer

from ray_jobs import generate, services

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(services.app, name="services")
app.command("generate")(generate.command)


@app.command()
def demo() -> None:
    """Run the whole pipeline on demo-scale data with the embedded services."""
    from ray_jobs import demo as demo_pipeline

    demo_pipeline.run()


if __name__ == "__main__":
    app()
