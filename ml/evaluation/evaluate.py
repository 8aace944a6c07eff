"""Evaluation report of a churn model: metrics, PNG plots and one Markdown page."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from core.settings import CampaignSettings
from ml.plots import save_figure, subplots
from ml.value import top_k_value

DPI = 110


@dataclass
class Evaluation:
    metrics: dict[str, float]
    threshold: float
    confusion: list[list[int]]
    lift: list[dict[str, float]]
    value: dict[str, float]
    realised_value: dict[str, float]
    importance: dict[str, float]
    contributions: dict[str, float]
    plots: list[Path] = field(default_factory=list)
    report: Path | None = None


def best_f1_threshold(y: np.ndarray, proba: np.ndarray) -> float:
    precision, recall, thresholds = skm.precision_recall_curve(y, proba)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


def lift_table(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Churn rate, lift and cumulative gain per probability decile (highest first)."""
    order = np.argsort(-proba, kind="stable")
    base = y.mean() if y.size else 0.0
    rows, captured = [], 0
    for i, idx in enumerate(np.array_split(order, bins), start=1):
        captured += int(y[idx].sum())
        rate = float(y[idx].mean()) if idx.size else 0.0
        rows.append({"decile": i, "customers": int(idx.size), "churn_rate": rate,
                     "lift": rate / base if base else 0.0,
                     "cumulative_gain": captured / y.sum() if y.sum() else 0.0})
    return rows


def evaluate(y: np.ndarray, proba: np.ndarray, contribs: np.ndarray, feature_names: list[str],
             importance: dict[str, float], value: np.ndarray, campaign: CampaignSettings) -> Evaluation:
    """Metrics, threshold, confusion, lift, campaign value and explanations on one labelled set."""
    threshold = best_f1_threshold(y, proba)
    predicted = (proba >= threshold).astype(int)
    metrics = {
        "roc_auc": float(skm.roc_auc_score(y, proba)),
        "pr_auc": float(skm.average_precision_score(y, proba)),
        "log_loss": float(skm.log_loss(y, np.clip(proba, 1e-7, 1 - 1e-7))),
        "brier": float(skm.brier_score_loss(y, proba)),
        "f1": float(skm.f1_score(y, predicted)),
        "precision": float(skm.precision_score(y, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y, predicted)),
        "base_rate": float(y.mean()),
    }
    mean_abs = np.abs(contribs).mean(axis=0)
    total_gain = sum(importance.values()) or 1.0
    return Evaluation(
        metrics=metrics,
        threshold=threshold,
        confusion=skm.confusion_matrix(y, predicted, labels=[0, 1]).tolist(),
        lift=lift_table(y, proba),
        value=top_k_value(proba, value, campaign),
        realised_value=top_k_value(proba, value, campaign, outcome=y),
        importance={k: v / total_gain for k, v in sorted(importance.items(), key=lambda kv: -kv[1])},
        contributions=dict(sorted(zip(feature_names, mean_abs.tolist()), key=lambda kv: -kv[1])),
    )


def plot(ev: Evaluation, y: np.ndarray, proba: np.ndarray, out: Path) -> list[Path]:
    """ROC, PR, calibration, lift/gain, score distributions, importance and contributions."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = subplots(1, 2, figsize=(10, 4))
    fpr, tpr, _ = skm.roc_curve(y, proba)
    ax[0].plot(fpr, tpr, label=f"AUC {ev.metrics['roc_auc']:.3f}")
    ax[0].plot([0, 1], [0, 1], "--", color="grey")
    ax[0].set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    ax[0].legend()
    prec, rec, _ = skm.precision_recall_curve(y, proba)
    ax[1].plot(rec, prec, label=f"AP {ev.metrics['pr_auc']:.3f}")
    ax[1].axhline(ev.metrics["base_rate"], ls="--", color="grey", label="base rate")
    ax[1].set(title="Precision-recall", xlabel="recall", ylabel="precision")
    ax[1].legend()
    paths.append(save_figure(fig, out / "roc_pr.png", DPI))

    fig, ax = subplots(1, 2, figsize=(10, 4))
    frac_pos, mean_pred = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    ax[0].plot(mean_pred, frac_pos, "o-")
    ax[0].plot([0, 1], [0, 1], "--", color="grey")
    ax[0].set(title="Calibration", xlabel="predicted probability", ylabel="observed churn rate")
    ax[1].hist(proba[y == 0], bins=40, alpha=0.6, density=True, label="stayed")
    ax[1].hist(proba[y == 1], bins=40, alpha=0.6, density=True, label="churned")
    ax[1].set(title="Score distribution by class", xlabel="predicted probability")
    ax[1].legend()
    paths.append(save_figure(fig, out / "calibration_scores.png", DPI))

    fig, ax = subplots(1, 2, figsize=(10, 4))
    deciles = [r["decile"] for r in ev.lift]
    ax[0].bar(deciles, [r["lift"] for r in ev.lift])
    ax[0].axhline(1, ls="--", color="grey")
    ax[0].set(title="Lift by decile", xlabel="decile (highest risk first)", ylabel="lift")
    ax[1].plot([0] + [d / 10 for d in deciles], [0] + [r["cumulative_gain"] for r in ev.lift], "o-", label="model")
    ax[1].plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax[1].set(title="Cumulative gain", xlabel="share contacted", ylabel="share of churners reached")
    ax[1].legend()
    paths.append(save_figure(fig, out / "lift_gain.png", DPI))

    fig, ax = subplots(1, 2, figsize=(11, 5))
    for axis, data, title in ((ax[0], ev.importance, "Importance (gain share)"),
                              (ax[1], ev.contributions, "Mean |contribution| (log-odds)")):
        top = list(data.items())[:15][::-1]
        axis.barh([k for k, _ in top], [v for _, v in top])
        axis.set(title=title)
    paths.append(save_figure(fig, out / "importance.png", DPI))
    return paths


def write_report(ev: Evaluation, out: Path, title: str, context: dict[str, str]) -> Path:
    """One Markdown page a data scientist would open: context, metrics, value, tables, plots."""
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in context.items()]
    lines += ["", "## Metrics (holdout)", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in ev.metrics.items()]
    tn, fp, fn, tp = (c for row in ev.confusion for c in row)
    lines += ["", f"## Confusion at threshold {ev.threshold:.3f} (best F1)", "",
              "| | predicted stay | predicted churn |", "|---|---|---|",
              f"| stayed | {tn} | {fp} |", f"| churned | {fn} | {tp} |"]
    v, r = ev.value, ev.realised_value
    lines += ["", f"## Campaign value: contacting the top {v['k']} customers", "",
              "| | model top-k | random k | gain |", "|---|---|---|---|",
              f"| expected (model probabilities) | {v['model']:,.0f} | {v['random']:,.0f} "
              f"| {v['gain_vs_random']:,.0f} |",
              f"| realised (true outcomes) | {r['model']:,.0f} | {r['random']:,.0f} | {r['gain_vs_random']:,.0f} |"]
    lines += ["", "## Lift by decile", "", "| decile | customers | churn rate | lift | cumulative gain |",
              "|---|---|---|---|---|"]
    lines += [f"| {d['decile']} | {d['customers']} | {d['churn_rate']:.3f} | {d['lift']:.2f} | "
              f"{d['cumulative_gain']:.2f} |" for d in ev.lift]
    lines += ["", "## Top features", "", "| feature | gain share | mean abs contribution |", "|---|---|---|"]
    lines += [f"| {k} | {ev.importance.get(k, 0):.3f} | {ev.contributions[k]:.4f} |"
              for k in list(ev.contributions)[:15]]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in ev.plots]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
