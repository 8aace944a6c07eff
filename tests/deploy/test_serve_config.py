"""The RayService's Serve side: serveConfigV2 is a valid Serve deploy config (Ray Serve's own schema,
no unknown keys), generated from serve_app/config.yaml, with the prod overrides; the readiness
probe and the cluster flags of the local head."""
from __future__ import annotations

import re

import pytest
import yaml

from ray_jobs.supervisors.ray_head import CLUSTER_FLAGS

from _manifests import REPO, SERVE_CONFIG, TARGETS, objects, render, serve_doc, unknown_serve_keys

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


@pytest.mark.parametrize("target", TARGETS)
def test_serve_config_v2_is_a_valid_serve_deploy_config(target):
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(serve_doc(target))


@pytest.mark.parametrize("target", TARGETS)
def test_serve_config_v2_has_no_unknown_keys(target):
    assert unknown_serve_keys(serve_doc(target)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_serve_config_v2_has_the_cluster_side_settings_kuberay_relies_on(target):
    # the cluster-side settings KubeRay relies on (see kuberay/render.py)
    doc = serve_doc(target)
    (service,) = objects(target, {"RayService"})
    assert doc["proxy_location"] == "EveryNode"
    assert doc["http_options"]["host"] == "0.0.0.0"
    assert doc["http_options"]["port"] == render.serve_port(service)


def test_serve_schema_rejects_num_replicas_with_autoscaling():
    from ray.serve.schema import ServeDeploySchema

    doc = serve_doc("prod")
    doc["applications"][0]["deployments"][0]["num_replicas"] = 3  # together with autoscaling_config
    with pytest.raises(ValueError):
        ServeDeploySchema.model_validate(doc)


def test_unknown_serve_keys_are_found():
    assert unknown_serve_keys({**serve_doc("base"), "http_option": {}}) == ["top: http_option"]


def test_prod_serve_config_is_base_plus_overrides():
    """Holds whatever serve_app/config.yaml says: the generated files agree with each other."""
    overrides = yaml.safe_load((TARGETS["prod"] / "serve-overrides.yaml").read_text())
    assert serve_doc("prod") == render.serve_config_v2(serve_doc("base"), overrides)


def test_dev_serve_config_is_the_base_one():
    assert serve_doc("dev") == serve_doc("base")


def test_prod_serve_deployment_autoscales_from_two_replicas():
    deployment = serve_doc("prod")["applications"][0]["deployments"][0]
    assert deployment["autoscaling_config"]["min_replicas"] >= 2 and "num_replicas" not in deployment


def test_dev_runs_the_replicas_of_serve_app_config():
    local = yaml.safe_load(SERVE_CONFIG.read_text())["applications"][0]["deployments"][0]["num_replicas"]
    assert serve_doc("dev")["applications"][0]["deployments"][0]["num_replicas"] == local  # dev runs config.yaml as is


def test_generated_serve_files_are_up_to_date():
    """The files `python -m kuberay.render serve-config` writes from serve_app/config.yaml (fails
    until that file exists, or when it changed without a re-render)."""
    assert SERVE_CONFIG.exists(), f"{SERVE_CONFIG.relative_to(REPO)} is missing"
    for path, text in render.generated_files(SERVE_CONFIG).items():
        assert path.read_text() == text, f"{path.relative_to(REPO)} is stale: run python -m kuberay.render serve-config"


def test_serve_config_v2_is_generated_from_serve_app_config():
    """serveConfigV2 must be what `python -m kuberay.render serve-config` makes of
    serve_app/config.yaml."""
    assert SERVE_CONFIG.exists(), f"{SERVE_CONFIG.relative_to(REPO)} is missing"
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    assert serve_doc("base") == render.serve_config_v2(config)


@pytest.mark.parametrize("target", TARGETS)
def test_serve_readiness_uses_the_app_readyz(target):
    (service,) = objects(target, {"RayService"})
    port = render.serve_port(service)
    for group in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        probe = " ".join(group["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"])
        assert f"http://localhost:{port}/readyz" in probe and f"localhost:{port}/-/healthz" in probe


@pytest.mark.parametrize("target", TARGETS)
def test_rayservice_runs_serve_as_the_local_head_does(target):
    (service,) = objects(target, {"RayService"})
    cluster = service["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["template"]["spec"]["containers"][0].get("env", [])}
        assert {k: env.get(k) for k in CLUSTER_FLAGS} == CLUSTER_FLAGS


@pytest.mark.parametrize("target", TARGETS)
def test_rayservice_runs_haproxy_through_the_wrapper_the_image_writes(target):
    (service,) = objects(target, {"RayService"})
    cluster = service["spec"]["rayClusterConfig"]
    dockerfile = (REPO / "kuberay" / "Dockerfile").read_text()
    written = re.findall(r"python -m serve_app\.haproxy_wrapper (\S+)", dockerfile)
    for pod in [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]:
        env = {e["name"]: e.get("value") for e in pod["template"]["spec"]["containers"][0].get("env", [])}
        assert [env.get("RAY_SERVE_HAPROXY_BINARY_PATH")] == written
