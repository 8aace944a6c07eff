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


def _reaching(target: str, rule: dict) -> set[str]:
    allowed = set()
    for obj in rendered(target):
        for where, template in pod_templates(obj):
            labels = (template.get("metadata") or {}).get("labels", {})
            if any(selects(peer["podSelector"], labels) for peer in rule["from"]):
                allowed.add(f"{obj['metadata']['name']} {where}")
    return allowed


@pytest.mark.parametrize("target", TARGETS)
def test_only_serve_workers_and_feature_jobs_reach_the_feature_redis(target):
    clients, _ = _redis_policy(target)["spec"]["ingress"]
    assert _reaching(target, clients) == {"churn-predictor worker serve",
                       "churn-materialize head", "churn-materialize worker workers",
                       "churn-batch-score head", "churn-batch-score worker workers"}
    assert {p["port"] for p in clients["ports"]} == {6379, 26379}  # Redis and its Sentinels


@pytest.mark.parametrize("target", TARGETS)
def test_the_feature_redis_pods_reach_each_other_for_replication_and_sentinel(target):
    _, peers = _redis_policy(target)["spec"]["ingress"]
    assert _reaching(target, peers) == {"feature-redis pod"}
    assert {p["port"] for p in peers["ports"]} == {6379, 26379}


@pytest.mark.parametrize("target", TARGETS)
def test_the_feature_redis_runs_three_pods_each_with_a_sentinel(target):
    redis = next(o for o in objects(target, {"StatefulSet"}) if o["metadata"]["name"] == "feature-redis")
    assert redis["spec"]["replicas"] == 3
    assert [c["name"] for c in redis["spec"]["template"]["spec"]["containers"]] == ["redis", "sentinel"]


@pytest.mark.parametrize("target", TARGETS)
def test_serving_and_jobs_find_the_primary_through_every_sentinel(target):
    redis = next(o for o in objects(target, {"StatefulSet"}) if o["metadata"]["name"] == "feature-redis")
    pods = {f"feature-redis-{n}.{redis['spec']['serviceName']}:26379" for n in range(redis["spec"]["replicas"])}
    for obj in rendered(target):
        for where, template in pod_templates(obj):
            for container in template["spec"]["containers"]:
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                assert "REDIS_URL" not in env, f"{obj['metadata']['name']} {where}"
                if "CHURN_REDIS__SENTINELS" in env:
                    assert set(env["CHURN_REDIS__SENTINELS"].split(",")) == pods


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
