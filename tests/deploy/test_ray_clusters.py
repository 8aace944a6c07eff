"""The Ray clusters of the RayJobs and the RayService: the pinned Ray version, what KubeRay rejects
at reconcile time, the RayJob lifecycle settings, one RayJob per pipeline step with an existing
entrypoint module."""
from __future__ import annotations

import re

import pytest

from _manifests import RAY_KINDS, REPO, TARGETS, ident, objects, ray_cluster_spec, ray_version

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


@pytest.mark.parametrize("target", TARGETS)
def test_ray_clusters_run_the_pinned_ray_version(target):
    for obj in objects(target, RAY_KINDS):
        assert ray_cluster_spec(obj)["rayVersion"] == ray_version(), ident(obj)


@pytest.mark.parametrize("target", TARGETS)
def test_ray_clusters_pass_kuberay_cluster_validation(target):
    for obj in objects(target, RAY_KINDS):
        spec = ray_cluster_spec(obj)
        # what KubeRay's own validation (ValidateRayClusterSpec) rejects at reconcile time
        head_env = {e["name"] for e in spec["headGroupSpec"]["template"]["spec"]["containers"][0].get("env", [])}
        assert not head_env & {"RAY_REDIS_ADDRESS", "REDIS_PASSWORD", "REDIS_USERNAME"}, ident(obj)
        assert "upgradeStrategy" not in spec, f"{ident(obj)}: not allowed on a RayJob/RayService cluster"
        for group in spec["workerGroupSpecs"]:
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], ident(obj)


@pytest.mark.parametrize("target", TARGETS)
def test_rayjobs_are_suspended_templates_that_clean_up_after_themselves(target):
    for job in objects(target, {"RayJob"}):
        spec = job["spec"]
        assert spec["shutdownAfterJobFinishes"] is True and spec["suspend"] is True
        assert spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0
        assert spec["backoffLimit"] >= 0
        assert len(job["metadata"]["name"]) <= 30, "room for the run suffix (KubeRay caps names at 47)"


@pytest.mark.parametrize("target", TARGETS)
def test_the_rayservice_upgrades_on_a_new_cluster(target):
    (service,) = objects(target, {"RayService"})
    assert service["spec"]["upgradeStrategy"]["type"] == "NewCluster"


STEPS = sorted({re.fullmatch(r"python -m ray_jobs\.(\w+)", o["spec"]["entrypoint"]).group(1)
                for o in objects("base", {"RayJob"})})


def test_every_pipeline_step_has_a_rayjob():
    assert sorted(["generate", "etl", "train", "tune", "materialize", "batch_score", "drift"]) == STEPS


@pytest.mark.parametrize("step", STEPS)
def test_rayjob_entrypoint_module_exists(step):
    """Fails for the steps whose module is not written yet."""
    assert (REPO / "ray_jobs" / f"{step}.py").exists() or (REPO / "ray_jobs" / step / "__main__.py").exists()
