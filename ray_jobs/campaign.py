"""Campaign step: scores + the intervention catalogue + a budget -> who to contact, and how.

Ray job: ``ray job submit --working-dir . -- python -m ray_jobs.campaign --budget 50000``
(runs in the driver: selecting for a million customers takes seconds, no cluster needed).
"""
from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from core import logs
from core.settings import get_settings
from ml.campaigns.optimiser import CHURNERS_SAVED, NET_VALUE
from ml.campaigns.planner import TARGETS_CSV, CampaignError, CampaignPlan, default_truth, plan_campaign

console = Console()


def command(
    budget: float = typer.Option(default_factory=lambda: get_settings().interventions.budget,
                                 show_default="settings.interventions.budget", help="Total spend allowed."),
    scores: str = typer.Option("latest", help="Scores run id, 'latest', or a scores run URI."),
    truth: str | None = typer.Option(
        None, help="Generator truth table to report realised churn reduction.",
        show_default="<data>/generated/truth/customers.parquet when present"),
    uplift: str = typer.Option("champion", help="Uplift model alias or version to plan with; 'none': the "
                                                "catalogue's fixed success rates."),
    objective: str | None = typer.Option(
        None, help="net_value: a contact must pay for itself; churners_saved: the budget buys the largest drops in "
                   "churn per cost.", show_default="settings.interventions.objective (net_value)"),
    force: bool = typer.Option(False, "--force", help="Recompute even if this run is already complete."),
) -> None:
    """Pick at most one intervention per customer maximising expected net value (or churners saved)
    within the budget, by the uplift model when one is registered; keep a random control group aside."""
    settings = get_settings()
    if objective is not None:
        if objective not in (NET_VALUE, CHURNERS_SAVED):
            raise typer.BadParameter(f"'{objective}': {NET_VALUE} or {CHURNERS_SAVED}", param_hint="--objective")
        settings = settings.model_copy(update={"interventions": settings.interventions.model_copy(
            update={"objective": objective})})
    logs.configure(logs.new_run_id("campaign"))
    try:
        result = plan_campaign(settings, budget, scores, truth or default_truth(settings), force, uplift)
    except CampaignError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from e
    print_summary(result)


def print_summary(result: CampaignPlan) -> None:
    s = result.summary
    state = "planned" if result.output.built else "already planned, reused"
    shown = {"campaign": f"campaign ({s['basis']})", "fixed_rate": "fixed-rate plan",
             s["best_top_k"]: f"{s['best_top_k']} (best top-k)", s["best_random"]: f"{s['best_random']} (best random)"}
    table = Table(title=f"campaign {s['run_id']} ({state}), budget {s['budget']:,.0f}, maximising "
                        f"{s['objective'].replace('_', ' ')}; expected under {s['basis']}")
    for col in ("strategy", "contacted", "cost", "exp. churners saved", "exp. saved revenue", "exp. net value"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for key, label in shown.items():
        o = s["strategies"][key]
        table.add_row(label, f"{o['contacted']:,}", f"{o['cost']:,.0f}", f"{o['expected_churners_saved']:,.1f}",
                      f"{o['expected_saved_revenue']:,.0f}", f"{o['expected_net_value']:,.0f}")
    console.print(table)
    mix = ", ".join(f"{k} {v:,}" for k, v in s["strategies"]["campaign"]["by_intervention"].items() if v)
    group = s["control_group"]
    console.print(f"interventions: {mix or 'none'}; control group: {group['customers']:,} selected customers not "
                  f"contacted ({group['share']:.0%}); selection took {s['selection_seconds']:.2f} s")
    for note in s["notes"]:
        console.print(f"[dim]{note}[/dim]")
    if "realised" in s:
        print_realised(s["realised"], [*shown, *(["ceiling"] if "ceiling" in s["realised"] else [])])
    console.print(f"targets: {result.output.uri}/{TARGETS_CSV}")


def print_realised(r: dict, keys: list[str]) -> None:
    table = Table(title=f"realised on the generator's truth, churn {r['window'][0]} .. {r['window'][1]}")
    for col in ("strategy", "churners", "saved", "churn reduction", "cost", "cost per churner saved"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for key in keys:
        o = r[key]
        per = o.get("cost_per_churner_saved")
        table.add_row(key, f"{o['churners']:,}", f"{o['churners_saved']:,.1f}", f"{o['churn_reduction']:.1%}",
                      f"{o['cost']:,.0f}", "-" if per is None else f"{per:,.0f}")
    console.print(table)
    met = r["campaign"]["churn_reduction"] >= r["goal_churn_reduction"]
    console.print(f"goal -{r['goal_churn_reduction']:.0%} churn: {'met' if met else 'not met'}")


if __name__ == "__main__":
    typer.run(command)
