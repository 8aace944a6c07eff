"""Champion/challenger: move ``champion`` only when the challenger wins on the holdout by
the stated margins (ROC-AUC and realised campaign value), and record why; roll back on demand."""
from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from core.settings import Settings
from features.snapshot import open_snapshot
from ml import registry
from ml.data import HOLDOUT, Labelled, split_for
from ml.value import customer_value, top_k_value


class PromotionError(RuntimeError):
    pass


@dataclass
class Decision:
    promoted: bool
    challenger: str
    champion: str | None
    reason: str
    scores: dict[str, float]


def _holdout_scores(model: registry.LoadedModel, holdout: Labelled, settings: Settings) -> dict[str, float]:
    proba = model.booster.inplace_predict(holdout.X)
    value = customer_value(holdout.frame, settings.campaign)
    return {"auc": float(roc_auc_score(holdout.y, proba)),
            "value": top_k_value(proba, value, settings.campaign, outcome=holdout.y)["model"]}


def _holdout(settings: Settings, snapshot_id: str) -> Labelled:
    snapshot = open_snapshot(settings, snapshot_id)
    frame = snapshot.to_pandas()
    mask = split_for(frame["customer_id"], settings.train) == HOLDOUT
    return Labelled.from_frame(frame[mask], snapshot.feature_set)


def decide(settings: Settings, client: MlflowClient) -> Decision:
    """Compare challenger and champion on the challenger's snapshot holdout; move the alias if
    the challenger wins by the margins; tag the challenger version with the decision."""
    challenger_mv = registry.version_by_alias(client, settings, registry.CHALLENGER)
    if challenger_mv is None:
        raise PromotionError("no challenger: run `churn train` or `churn tune` first")
    champion_mv = registry.version_by_alias(client, settings, registry.CHAMPION)
    if champion_mv is not None and str(champion_mv.version) == str(challenger_mv.version):
        return Decision(False, challenger_mv.version, champion_mv.version, "challenger is already champion", {})
    challenger = registry.load(settings, challenger_mv.version)
    holdout = _holdout(settings, challenger.tags["snapshot_id"])
    new = _holdout_scores(challenger, holdout, settings)
    scores = {"challenger_auc": new["auc"], "challenger_value": new["value"]}
    if champion_mv is None:
        promoted, reason = True, "first champion"
    else:
        champion = registry.load(settings, champion_mv.version)
        if champion.schema_hash != challenger.schema_hash:
            raise PromotionError(f"champion v{champion.version} and challenger v{challenger.version} use different "
                                 "feature schemas: they cannot be compared on the same holdout")
        old = _holdout_scores(champion, holdout, settings)
        scores |= {"champion_auc": old["auc"], "champion_value": old["value"]}
        auc_gain, value_gain = new["auc"] - old["auc"], new["value"] - old["value"]
        need_value = settings.registry.min_value_gain * abs(old["value"])
        promoted = auc_gain >= settings.registry.min_auc_gain and value_gain >= need_value
        reason = (f"ROC-AUC {new['auc']:.4f} vs {old['auc']:.4f} ({auc_gain:+.4f}, margin "
                  f"{settings.registry.min_auc_gain}); top-k campaign value {new['value']:,.0f} vs "
                  f"{old['value']:,.0f} ({value_gain:+,.0f}, margin {need_value:,.0f})")
    tags = {"promotion_decision": "promoted" if promoted else "rejected", "promotion_reason": reason,
            **{k: f"{v:.5f}" for k, v in scores.items()}}
    if champion_mv is not None:
        tags["compared_with"] = str(champion_mv.version)
    if promoted:
        tags["previous_champion"] = str(champion_mv.version) if champion_mv else ""
        client.set_registered_model_alias(settings.registry.model_name, registry.CHAMPION, challenger_mv.version)
    registry.tag_version(client, settings, challenger_mv.version, tags)
    return Decision(promoted, str(challenger_mv.version), str(champion_mv.version) if champion_mv else None,
                    reason, scores)


def rollback(settings: Settings, client: MlflowClient) -> tuple[str, str]:
    """Move ``champion`` back to the version it replaced; returns (from, to)."""
    current = registry.version_by_alias(client, settings, registry.CHAMPION)
    if current is None:
        raise PromotionError("no champion to roll back")
    previous = current.tags.get("previous_champion")
    if not previous:
        raise PromotionError(f"champion v{current.version} replaced no earlier champion: nothing to roll back to")
    client.set_registered_model_alias(settings.registry.model_name, registry.CHAMPION, previous)
    registry.tag_version(client, settings, current.version, {"rolled_back": f"champion returned to v{previous}"})
    return str(current.version), previous

