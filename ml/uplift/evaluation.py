"""The uplift model on a held-out campaign: per intervention, how well its ranking finds the
customers a contact keeps (Qini against random and against ranking by churn risk, which is what
the fixed-rate plan does), and whether its predicted effect matches the measured one."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.schema import LABEL
from ml.plots import save_figure, subplots
from ml.uplift.history import ARM, CONTROL_CODE
from ml.uplift.model import UpliftModel
from ml.uplift.qini import QiniCurve, effect_interval, qini_curve

DPI = 110


@dataclass
class ArmEvaluation:
    name: str
    treated: int
    control: int
    measured_drop: tuple[float, float, float]
    """Control - treated churn rate, with its 95% interval."""
    predicted_drop: float
    """Mean predicted drop among the treated."""
    model: QiniCurve
    risk: QiniCurve

    def metrics(self) -> dict[str, float]:
        drop, low, high = self.measured_drop
        return {f"{self.name}_qini": self.model.coefficient, f"{self.name}_qini_risk": self.risk.coefficient,
                f"{self.name}_auuc": self.model.auuc, f"{self.name}_measured_drop": drop,
                f"{self.name}_measured_drop_low": low, f"{self.name}_measured_drop_high": high,
                f"{self.name}_predicted_drop": self.predicted_drop}


@dataclass
class UpliftEvaluation:
    arms: list[ArmEvaluation]
    plots: list[Path] = field(default_factory=list)

    @property
    def qini(self) -> float:
        """Mean Qini coefficient over the interventions tested (the gate's figure)."""
        return float(np.mean([a.model.coefficient for a in self.arms])) if self.arms else 0.0

    @property
    def qini_risk(self) -> float:
        """The same for ranking by churn risk: the fixed-rate plan's ordering."""
        return float(np.mean([a.risk.coefficient for a in self.arms])) if self.arms else 0.0

    def metrics(self) -> dict[str, float]:
        out = {"holdout_qini": self.qini, "holdout_qini_risk": self.qini_risk}
        for arm in self.arms:
            out |= {f"holdout_{k}": v for k, v in arm.metrics().items()}
        return out


def evaluate(model: UpliftModel, holdout: pd.DataFrame) -> UpliftEvaluation:
    """Every intervention with contacts in ``holdout`` against that campaign's control group."""
    X = holdout[model.feature_names].to_numpy(dtype="float32")
    p0, drops = model.predict(X)
    arm, churned = holdout[ARM].to_numpy(), holdout[LABEL].to_numpy().astype(bool)
    control = arm == CONTROL_CODE
    arms = []
    for j, name in enumerate(model.interventions):
        treated = arm == CONTROL_CODE + 1 + j
        rows = treated | control
        if not treated.any() or not control.any():
            continue
        t, y = treated[rows], churned[rows]
        arms.append(ArmEvaluation(name, int(t.sum()), int((~t).sum()), effect_interval(t, y),
                                  float(drops[treated, j].mean()), qini_curve(drops[rows, j], t, y),
                                  qini_curve(p0[rows], t, y)))
    return UpliftEvaluation(arms)


def plot(evaluation: UpliftEvaluation, out: Path) -> list[Path]:
    """Qini curves per intervention: the model, ranking by risk, and random targeting."""
    out.mkdir(parents=True, exist_ok=True)
    n = max(1, len(evaluation.arms))
    fig, axes = subplots(1, n, figsize=(4.2 * n, 3.6))
    for ax, arm in zip(np.atleast_1d(axes), evaluation.arms, strict=False):
        ax.plot(arm.model.depth, arm.model.saved, label=f"uplift model (Qini {arm.model.coefficient:+.4f})")
        ax.plot(arm.risk.depth, arm.risk.saved, label=f"by churn risk (Qini {arm.risk.coefficient:+.4f})")
        ax.plot(arm.model.depth, arm.model.random, "--", color="grey", label="random")
        ax.set_title(f"{arm.name}: {arm.treated} treated, {arm.control} control")
        ax.set_xlabel("share of customers targeted")
        ax.set_ylabel("incremental churners saved")
        ax.legend(fontsize=7)
    return [save_figure(fig, out / "qini_curves.png", DPI)]


def write_report(evaluation: UpliftEvaluation, out: Path, title: str, context: dict[str, Any],
                 notes: list[str]) -> Path:
    """One Markdown page: the context, the gate's figures, the per-intervention table, the curves."""
    lines = [f"# {title}", ""] + [f"- **{k}**: {v}" for k, v in context.items()]
    lines += ["", f"Held-out Qini (mean over interventions): **{evaluation.qini:+.5f}** for the uplift model, "
              f"{evaluation.qini_risk:+.5f} ranking by churn risk (the fixed-rate plan's order); 0 is random.", ""]
    lines += ["| intervention | treated | control | measured drop in churn (95% CI) | predicted drop | Qini model "
              "| Qini by risk | AUUC |", "|---|---|---|---|---|---|---|---|"]
    for a in evaluation.arms:
        drop, low, high = a.measured_drop
        lines.append(f"| {a.name} | {a.treated:,} | {a.control:,} | {drop:+.2%} ({low:+.2%} .. {high:+.2%}) | "
                     f"{a.predicted_drop:+.2%} | {a.model.coefficient:+.5f} | {a.risk.coefficient:+.5f} | "
                     f"{a.model.auuc:+.5f} |")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    lines += ["", "## Qini curves", ""] + [f"![{p.stem}]({p.name})" for p in evaluation.plots]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
