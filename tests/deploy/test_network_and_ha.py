"""Who may reach the feature Redis (NetworkPolicy), and prod's high availability (GCS fault
tolerance, autoscaling Serve workers, disruption budgets, two MLflow replicas) next to dev's
single worker."""
from __future__ import annotations

import pytest

from _manifests import TARGETS, objects, pod_templates, rendered, selects

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


def _redis_policy(target: str) -> dict:
    (policy,) = [o for o in objects(target, {"NetworkPolicy"}) if o["metadata"]["name"] == "feature-redis"]
    return policy


@pytest.mark.parametrize("target", TARGETS)
def test_the_feature_redis_policy_selects_the_feature_redis_pods(target):
    policy = _redis_policy(target)
    redis = next(o for o in objects(target, {"StatefulSet"}) if o["metadata"]["name"] == "feature-redis")
    assert selects(policy["spec"]["podSelector"], redis["spec"]["template"]["metadata"]["labels"])
    assert policy["spec"]["policyTypes"] == ["Ingress"]


@pytest.mark.parametrize("target", TARGETS)
def test_only_serve_workers_and_feature_jobs_reach_the_feature_redis(target):
    (rule,) = _redis_policy(target)["spec"]["ingress"]
    allowed = set()
    for obj in rendered(target):
        for where, template in pod_templates(obj):
            labels = (template.get("metadata") or {}).get("labels", {})
            if any(selects(peer["podSelector"], labels) for peer in rule["from"]):
                allowed.add(f"{obj['metadata']['name']} {where}")
    assert allowed == {"churn-predictor worker serve",
                       "churn-materialize head", "churn-materialize worker workers",
                       "churn-batch-score head", "churn-batch-score worker workers"}


def _cluster(target: str) -> dict:
    (service,) = objects(target, {"RayService"})
    return service["spec"]["rayClusterConfig"]


def test_prod_keeps_the_ray_head_state_in_the_gcs_redis():
    assert _cluster("prod")["gcsFaultToleranceOptions"]["redisAddress"].startswith("gcs-redis:")


def test_prod_serve_workers_autoscale_from_two():
    cluster = _cluster("prod")
    assert cluster["enableInTreeAutoscaling"] is True
    workers = cluster["workerGroupSpecs"][0]
    assert workers["minReplicas"] >= 2 and workers["maxReplicas"] > workers["minReplicas"]


def test_prod_services_have_disruption_budgets():
    budgets = {o["metadata"]["name"] for o in objects("prod", {"PodDisruptionBudget"})}
    assert {"churn-predictor-workers", "mlflow", "feature-redis", "gcs-redis"} <= budgets


def test_prod_runs_mlflow_at_least_twice():
    assert {o["metadata"]["name"]: o["spec"]["replicas"] for o in objects("prod", {"Deployment"})}["mlflow"] >= 2


def test_dev_runs_one_serve_worker_without_gcs_fault_tolerance():
    cluster = _cluster("dev")
    assert [g["replicas"] for g in cluster["workerGroupSpecs"]] == [1] and "gcsFaultToleranceOptions" not in cluster
