"""Offline checks of the Kubernetes manifests under kuberay/ (no cluster, no Docker).

Renders the base and every overlay with kuberay/render.py's built-in kustomize (and compares it
with the real one when kustomize or kubectl is installed), then checks every object:
Ray custom resources against the vendored KubeRay v1.7.0 schemas in strict mode, core objects and
the pod templates inside the Ray resources with kubernetes-validate (strict, Kubernetes 1.31),
serveConfigV2 with Ray Serve's own schema and against serve_app/config.yaml, entrypoints, images,
and that secrets are only ever referenced.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from ray_jobs.supervisors.ray_head import CLUSTER_FLAGS

REPO = Path(__file__).resolve().parents[1]
KUBERAY = REPO / "kuberay"
SCHEMA_FILE = KUBERAY / "schemas" / "kuberay-v1.7.0.schema.json"
SERVE_CONFIG = REPO / "serve_app" / "config.yaml"
K8S_VERSION = "1.31"  # oldest minor still in mainstream support at the big clouds; 1.25-1.37 available
RAY_KINDS = {"RayCluster", "RayJob", "RayService"}
TARGETS = {"base": KUBERAY / "base", "dev": KUBERAY / "overlays" / "dev", "prod": KUBERAY / "overlays" / "prod"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|AUTH|CREDENTIAL", re.I)


def _import(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


render = _import("kuberay_render", KUBERAY / "render.py")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve
convert = _import("kuberay_schemas_convert", KUBERAY / "schemas" / "convert.py")


# --------------------------------------------------------------------------- helpers


@functools.cache
def rendered(target: str) -> tuple[dict, ...]:
    return tuple(render.build(TARGETS[target], engine="builtin"))


def objects(target: str, kinds: set[str] | None = None) -> list[dict]:
    return [o for o in rendered(target) if kinds is None or o["kind"] in kinds]


def all_objects() -> Iterator[tuple[str, dict]]:
    for target in TARGETS:
        for obj in rendered(target):
            yield target, obj


def ident(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def ray_cluster_spec(obj: dict) -> dict:
    return {"RayCluster": lambda: obj["spec"], "RayJob": lambda: obj["spec"]["rayClusterSpec"],
            "RayService": lambda: obj["spec"]["rayClusterConfig"]}[obj["kind"]]()


def ray_pod_templates(obj: dict) -> Iterator[tuple[str, dict]]:
    spec = ray_cluster_spec(obj)
    yield "head", spec["headGroupSpec"]["template"]
    for group in spec.get("workerGroupSpecs", []):
        yield f"worker {group['groupName']}", group["template"]
    if obj["kind"] == "RayJob" and "submitterPodTemplate" in obj["spec"]:
        yield "submitter", obj["spec"]["submitterPodTemplate"]


def pod_templates(obj: dict) -> Iterator[tuple[str, dict]]:
    """Every pod template of an object, Ray or core."""
    if obj["kind"] in RAY_KINDS:
        yield from ray_pod_templates(obj)
    elif obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        yield "pod", obj["spec"]["template"]
    elif obj["kind"] == "CronJob":
        yield "pod", obj["spec"]["jobTemplate"]["spec"]["template"]


@functools.lru_cache(maxsize=1)
def kuberay_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def ray_errors(obj: dict) -> list[str]:
    schema = {**kuberay_schema(), "$ref": f"#/$defs/{obj['kind']}"}
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


@functools.cache
def k8s_validator(kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    """The strict validator kubernetes_validate.validate() builds, built once per kind."""
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    version = next(v for v in kubernetes_validate.utils.all_versions()
               if kubernetes_validate.utils.major_minor(v) == K8S_VERSION)
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    schema = schema_contents(f"{folder}/{kind.lower()}-{group}.json", K8S_VERSION)
    definitions = schema_contents(f"{folder}/_definitions.json", K8S_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def k8s_errors(obj: dict) -> list[str]:
    validator = k8s_validator(obj["kind"], obj["apiVersion"])
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def as_pod_template(template: dict) -> dict:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def ray_version() -> str:
    for dep in pyproject()["project"]["dependencies"]:
        match = re.fullmatch(r"ray(\[[^\]]*\])?==([\w.]+)", dep.replace(" ", ""))
        if match:
            return match.group(2)
    raise AssertionError("pyproject.toml pins no ray version")


def image_tag() -> str:
    return f"{pyproject()['project']['version']}-ray{ray_version()}"


def serve_doc(target: str) -> dict:
    (service,) = objects(target, {"RayService"})
    return yaml.safe_load(service["spec"]["serveConfigV2"])


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("target", TARGETS)
def test_renders(target):
    kinds = {o["kind"] for o in rendered(target)}
    assert {"RayJob", "RayService", "StatefulSet", "Deployment", "CronJob", "NetworkPolicy"} <= kinds
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in rendered(target)]
    assert len(keys) == len(set(keys)), "duplicate objects"


@pytest.mark.skipif(render.external_kustomize() is None, reason="neither kustomize nor kubectl installed")
@pytest.mark.parametrize("target", TARGETS)
def test_builtin_renderer_matches_kustomize(target):
    def keyed(items):
        return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in items}

    assert keyed(render.build(TARGETS[target], engine="kustomize")) == keyed(rendered(target))


# --------------------------------------------------------------------------- Ray resources


def test_vendored_schema_is_well_formed():
    schema = kuberay_schema()
    assert set(schema["$defs"]) >= RAY_KINDS
    jsonschema.Draft202012Validator.check_schema(schema)
    for path, node in walk(schema):
        if isinstance(node, dict) and isinstance(node.get("properties"), dict):
            assert all(isinstance(v, dict) for v in node["properties"].values()), path
        if isinstance(node, dict) and "$ref" in node:
            assert node["$ref"].removeprefix("#/$defs/") in schema["$defs"], path


@pytest.mark.parametrize("target", TARGETS)
def test_ray_objects_validate_against_kuberay_schemas_strictly(target):
    ray_objects = objects(target, RAY_KINDS)
    assert len(objects(target, {"RayJob"})) == 7 and len(objects(target, {"RayService"})) == 1
    for obj in ray_objects:
        assert ray_errors(obj) == [], ident(obj)


@pytest.mark.parametrize("kind, path", [
    ("RayJob", ["spec", "rayClusterSpec", "headGroupSpec"]),
    ("RayJob", ["spec"]),
    ("RayService", ["spec", "rayClusterConfig", "workerGroupSpecs", 0, "template", "spec", "containers", 0]),
    ("RayService", ["metadata"]),
])
def test_unknown_field_fails_ray_validation(kind, path):
    obj = json.loads(json.dumps(objects("base", {kind})[0]))
    node = obj
    for part in path:
        node = node[part]
    node["bogus"] = 1
    errors = ray_errors(obj)
    assert errors and any("bogus" in e for e in errors), errors


def test_ray_schema_types_are_checked():
    obj = json.loads(json.dumps(objects("base", {"RayJob"})[0]))
    obj["spec"]["backoffLimit"] = "one"
    assert ray_errors(obj)
    # int-or-string quantities accept both
    resources = obj["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
    obj["spec"]["backoffLimit"] = 1
    resources["limits"]["cpu"] = 2
    assert ray_errors(obj) == []


def test_convert_rules():
    node = {"type": "object", "properties": {
        "q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "t": {"type": "string", "nullable": True, "format": "date-time"},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
        "map": {"type": "object", "additionalProperties": {"type": "string"}},
    }}
    out = convert.strict(node)
    assert out["additionalProperties"] is False
    assert out["properties"]["q"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert out["properties"]["t"] == {"type": ["string", "null"]}
    assert "additionalProperties" not in out["properties"]["free"]
    assert out["properties"]["map"]["additionalProperties"] == {"type": "string"}


@pytest.mark.parametrize("target", TARGETS)
def test_ray_pod_templates_are_valid_core_pod_templates(target):
    for obj in objects(target, RAY_KINDS):
        for where, template in ray_pod_templates(obj):
            assert k8s_errors(as_pod_template(template)) == [], f"{ident(obj)} {where}"


@pytest.mark.parametrize("target", TARGETS)
def test_ray_version_and_cluster_rules(target):
    for obj in objects(target, RAY_KINDS):
        spec = ray_cluster_spec(obj)
        assert spec["rayVersion"] == ray_version(), ident(obj)
        # what KubeRay's own validation (ValidateRayClusterSpec) rejects at reconcile time
        head_env = {e["name"] for e in spec["headGroupSpec"]["template"]["spec"]["containers"][0].get("env", [])}
        assert not head_env & {"RAY_REDIS_ADDRESS", "REDIS_PASSWORD", "REDIS_USERNAME"}, ident(obj)
        assert "upgradeStrategy" not in spec, f"{ident(obj)}: not allowed on a RayJob/RayService cluster"
        for group in spec["workerGroupSpecs"]:
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], ident(obj)
    for job in objects(target, {"RayJob"}):
        spec = job["spec"]
        assert spec["shutdownAfterJobFinishes"] is True and spec["suspend"] is True
        assert spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0
        assert spec["backoffLimit"] >= 0
        assert len(job["metadata"]["name"]) <= 30, "room for the run suffix (KubeRay caps names at 47)"
    (service,) = objects(target, {"RayService"})
    assert service["spec"]["upgradeStrategy"]["type"] == "NewCluster"


# --------------------------------------------------------------------------- core objects


@pytest.mark.parametrize("target", TARGETS)
def test_core_objects_validate_strictly(target):
    core = [o for o in rendered(target) if o["kind"] not in RAY_KINDS]
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget",
            "CronJob", "Job", "ServiceAccount", "Role", "RoleBinding"} <= {o["kind"] for o in core}
    for obj in core:
        assert k8s_errors(obj) == [], ident(obj)


def test_unknown_field_fails_core_validation():
    deployment = json.loads(json.dumps(next(o for o in objects("base") if o["kind"] == "Deployment")))
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)  # the public API agrees
    deployment["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    assert k8s_errors(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    template = json.loads(json.dumps(next(ray_pod_templates(objects("base", {"RayService"})[0]))[1]))
    template["spec"]["containers"][0]["bogus"] = 1
    assert k8s_errors(as_pod_template(template))


@pytest.mark.parametrize("target", TARGETS)
def test_security_contexts(target):
    for obj in rendered(target):
        for where, template in pod_templates(obj):
            pod = template["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, f"{ident(obj)} {where}"
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            for container in pod["containers"]:
                sc = container["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, f"{ident(obj)} {where}"
                assert sc["capabilities"]["drop"] == ["ALL"], f"{ident(obj)} {where}"
                assert "readOnlyRootFilesystem" in sc, f"{ident(obj)} {where}: decide explicitly"
                if sc["readOnlyRootFilesystem"]:
                    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
                    assert obj["kind"] == "StatefulSet" or "/tmp" in mounts, f"{ident(obj)} {where}"
                assert "resources" in container and "limits" in container["resources"], f"{ident(obj)} {where}"


# --------------------------------------------------------------------------- Serve


def _unknown_serve_keys(doc: dict) -> list[str]:
    """ServeDeploySchema ignores unknown keys (forward compatibility); a typo would pass. Not here."""
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema

    unknown = [f"top: {k}" for k in set(doc) - set(ServeDeploySchema.model_fields)]
    for app in doc["applications"]:
        unknown += [f"app {app.get('name')}: {k}" for k in set(app) - set(ServeApplicationSchema.model_fields)]
        for deployment in app.get("deployments", []):
            unknown += [f"deployment {deployment.get('name')}: {k}"
                        for k in set(deployment) - set(DeploymentSchema.model_fields)]
            unknown += [f"autoscaling_config: {k}" for k in
                        set(deployment.get("autoscaling_config") or {}) - set(AutoscalingConfig.model_fields)]
    return unknown


@pytest.mark.parametrize("target", TARGETS)
def test_serve_config_v2_is_a_valid_serve_deploy_config(target):
    from ray.serve.schema import ServeDeploySchema

    doc = serve_doc(target)
    ServeDeploySchema.model_validate(doc)
    assert _unknown_serve_keys(doc) == []
    # the cluster-side settings KubeRay relies on (see kuberay/render.py)
    (service,) = objects(target, {"RayService"})
    assert doc["proxy_location"] == "EveryNode"
    assert doc["http_options"]["host"] == "0.0.0.0"
    assert doc["http_options"]["port"] == render.serve_port(service)


def test_serve_config_v2_rejects_bad_configs():
    from ray.serve.schema import ServeDeploySchema

    doc = serve_doc("prod")
    doc["applications"][0]["deployments"][0]["num_replicas"] = 3  # together with autoscaling_config
    with pytest.raises(ValueError):
        ServeDeploySchema.model_validate(doc)
    assert _unknown_serve_keys({**serve_doc("base"), "http_option": {}}) == ["top: http_option"]


def test_prod_serve_config_is_base_plus_overrides():
    """Holds whatever serve_app/config.yaml says: the generated files agree with each other."""
    overrides = yaml.safe_load((TARGETS["prod"] / "serve-overrides.yaml").read_text())
    assert serve_doc("prod") == render.serve_config_v2(serve_doc("base"), overrides)
    assert serve_doc("dev") == serve_doc("base")
    deployment = serve_doc("prod")["applications"][0]["deployments"][0]
    assert deployment["autoscaling_config"]["min_replicas"] >= 2 and "num_replicas" not in deployment


def test_serve_config_v2_is_generated_from_serve_app_config():
    """serveConfigV2 must be what `python -m kuberay.render serve-config` makes of
    serve_app/config.yaml (fails until that file exists, or when it changed without a re-render)."""
    assert SERVE_CONFIG.exists(), f"{SERVE_CONFIG.relative_to(REPO)} is missing"
    for path, text in render.generated_files(SERVE_CONFIG).items():
        assert path.read_text() == text, f"{path.relative_to(REPO)} is stale: run python -m kuberay.render serve-config"
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    assert serve_doc("base") == render.serve_config_v2(config)


# --------------------------------------------------------------------------- entrypoints, images


STEPS = sorted({re.fullmatch(r"python -m ray_jobs\.(\w+)", o["spec"]["entrypoint"]).group(1)
                for o in objects("base", {"RayJob"})})


def test_every_pipeline_step_has_a_rayjob():
    assert sorted(["generate", "etl", "train", "tune", "materialize", "batch_score", "drift"]) == STEPS


@pytest.mark.parametrize("step", STEPS)
def test_rayjob_entrypoint_module_exists(step):
    """Fails for the steps whose module is not written yet."""
    assert (REPO / "ray_jobs" / f"{step}.py").exists() or (REPO / "ray_jobs" / step / "__main__.py").exists()


def _images() -> Iterator[tuple[str, str]]:
    for target, obj in all_objects():
        for path, node in walk(obj):
            if path.endswith(".image") and isinstance(node, str):
                yield f"{target} {ident(obj)}{path}", node


def test_one_image_tag_matching_the_pinned_ray_version():
    ours = {where: image for where, image in _images() if image.split("@")[0].rsplit(":", 1)[0].endswith("churn-platform")}
    assert ours, "no churn-platform image found"
    for where, image in ours.items():
        assert image.endswith(f"churn-platform:{image_tag()}"), f"{where}: {image}"
    for where, image in _images():
        assert where in ours or (re.search(r":[\w.-]+$", image) and not image.endswith(":latest")), \
            f"{where}: third-party image without a pinned tag: {image}"
    dockerfile = (KUBERAY / "Dockerfile").read_text()
    assert re.findall(r"^FROM\s+(\S+)", dockerfile, re.M) == [f"rayproject/ray:{ray_version()}-py311"]
    assert f"churn-platform:{image_tag()}" in dockerfile and f"churn-platform:{image_tag()}" in (KUBERAY / "README.md").read_text()


# --------------------------------------------------------------------------- secrets, references


def _example_secrets() -> dict[str, set[str]]:
    docs = [d for d in yaml.safe_load_all((KUBERAY / "base" / "secrets.example.yaml").read_text()) if d]
    return {d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {})) for d in docs}


def test_no_secret_is_inlined():
    for target, obj in all_objects():
        assert obj["kind"] != "Secret", f"{target}: {ident(obj)} inlines a Secret"
        for path, node in walk(obj):
            if isinstance(node, dict) and "name" in node and ("value" in node or "valueFrom" in node):  # env vars
                if SECRET_NAME.search(node["name"]):
                    assert "value" not in node and "secretKeyRef" in node["valueFrom"], f"{target} {ident(obj)}{path}"
            if isinstance(node, str):  # credentials inside URLs must be $(VAR) references
                for password in re.findall(r"://[^/\s:@]*:([^@\s]+)@", node):
                    assert re.fullmatch(r"\$\([A-Z_]+\)", password), f"{target} {ident(obj)}{path}: {node}"
            if path.endswith(("redisPassword", "redisUsername")):
                assert set(node) == {"valueFrom"}, f"{target} {ident(obj)}{path}"
    for kfile in KUBERAY.rglob("kustomization.yaml"):  # the example is documentation only
        k = yaml.safe_load(kfile.read_text())
        used = k.get("resources", []) + [p.get("path", "") for p in k.get("patches", [])]
        assert not any("secrets.example" in entry for entry in used), kfile


def test_referenced_secrets_and_configmaps_exist():
    examples = _example_secrets()
    for target, obj in all_objects():
        configmaps = {o["metadata"]["name"] for o in objects(target, {"ConfigMap"})}
        for path, node in walk(obj):
            if path.endswith(".secretKeyRef"):
                assert node["key"] in examples.get(node["name"], set()), f"{target} {ident(obj)}{path}: {node}"
            if path.endswith((".configMapRef", ".configMap", ".configMapKeyRef")):
                assert node["name"] in configmaps, f"{target} {ident(obj)}{path}"
            if path.endswith(".secretRef"):
                assert node["name"] in examples, f"{target} {ident(obj)}{path}"


# --------------------------------------------------------------------------- network, HA, pipeline


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("target", TARGETS)
def test_only_serve_workers_and_feature_jobs_reach_the_feature_redis(target):
    (policy,) = [o for o in objects(target, {"NetworkPolicy"}) if o["metadata"]["name"] == "feature-redis"]
    redis = next(o for o in objects(target, {"StatefulSet"}) if o["metadata"]["name"] == "feature-redis")
    assert _selects(policy["spec"]["podSelector"], redis["spec"]["template"]["metadata"]["labels"])
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    allowed = set()
    for obj in rendered(target):
        for where, template in pod_templates(obj):
            labels = (template.get("metadata") or {}).get("labels", {})
            if any(_selects(peer["podSelector"], labels) for peer in rule["from"]):
                allowed.add(f"{obj['metadata']['name']} {where}")
    assert allowed == {"churn-predictor worker serve",
                       "churn-materialize head", "churn-materialize worker workers",
                       "churn-batch-score head", "churn-batch-score worker workers"}


def test_prod_is_highly_available():
    (service,) = objects("prod", {"RayService"})
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["gcsFaultToleranceOptions"]["redisAddress"].startswith("gcs-redis:")
    assert cluster["enableInTreeAutoscaling"] is True
    workers = cluster["workerGroupSpecs"][0]
    assert workers["minReplicas"] >= 2 and workers["maxReplicas"] > workers["minReplicas"]
    budgets = {o["metadata"]["name"] for o in objects("prod", {"PodDisruptionBudget"})}
    assert {"churn-predictor-workers", "mlflow", "feature-redis", "gcs-redis"} <= budgets
    assert {o["metadata"]["name"]: o["spec"]["replicas"] for o in objects("prod", {"Deployment"})}["mlflow"] >= 2
    (dev_service,) = objects("dev", {"RayService"})
    dev_workers = dev_service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert [g["replicas"] for g in dev_workers] == [1] and "gcsFaultToleranceOptions" not in dev_service["spec"]["rayClusterConfig"]
    local = yaml.safe_load(SERVE_CONFIG.read_text())["applications"][0]["deployments"][0]["num_replicas"]
    assert serve_doc("dev")["applications"][0]["deployments"][0]["num_replicas"] == local  # dev runs config.yaml as is


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


def test_daily_pipeline_runs_existing_templates_in_order():
    (cronjob,) = objects("base", {"CronJob"})
    command = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["sh", "/scripts/run-rayjob.sh"]
    assert command[2:] == ["etl", "materialize", "batch-score", "drift"]
    templates = {o["metadata"]["name"] for o in objects("base", {"RayJob"})}
    assert {f"churn-{step}" for step in command[2:]} <= templates
    (role,) = objects("base", {"Role"})
    assert role["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayjobs"],
                              "verbs": ["get", "list", "create", "delete"]}]
    (binding,) = objects("base", {"RoleBinding"})
    assert binding["subjects"][0]["name"] == cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
    assert objects("dev", {"CronJob"})[0]["spec"]["suspend"] is True


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_run_script_is_valid_shell():
    script = KUBERAY / "base" / "pipeline" / "run-rayjob.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    (configmap,) = [o for o in objects("base", {"ConfigMap"}) if o["metadata"]["name"] == "churn-pipeline-scripts"]
    assert configmap["data"]["run-rayjob.sh"] == script.read_text()


FAKE_KUBECTL = r"""#!/bin/sh
# Stands in for kubectl: answers run-rayjob.sh's calls, hands `patch --local` to the real one.
echo "$*" >> "$FAKE_DIR/calls"
case "$*" in
  "patch --local"*) exec "$REAL_KUBECTL" "$@" ;;
  "create -f -") cat > "$FAKE_DIR/created-$(ls "$FAKE_DIR" | wc -l).json" ;;
  *jobDeploymentStatus*) echo Complete ;;
  *jobStatus*) echo "$FAKE_JOB_STATUS" ;;
  "get rayjob -l"*) printf 'rayjob.ray.io/r1\nrayjob.ray.io/r2\nrayjob.ray.io/r3\nrayjob.ray.io/r4\n' ;;
  "get rayjob "*" -o json") cat "$FAKE_DIR/template-$3.json" ;;
  "delete"*) ;;
  *) echo "unexpected kubectl call: $*" >&2; exit 3 ;;
esac
"""


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl for `kubectl patch --local`")
@pytest.mark.parametrize("job_status", ["SUCCEEDED", "FAILED"])
def test_run_script_starts_unsuspended_copies_in_order(tmp_path, job_status):
    for template in objects("dev", {"RayJob"}):
        server_side = json.loads(json.dumps(template))
        server_side["metadata"].update(uid="u1", resourceVersion="7", finalizers=["ray.io/rayjob-finalizer"],
                                       annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"})
        server_side["status"] = {"jobDeploymentStatus": "Suspended"}
        (tmp_path / f"template-{template['metadata']['name']}.json").write_text(json.dumps(server_side))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_DIR": str(tmp_path), "REAL_KUBECTL": shutil.which("kubectl"),
           "FAKE_JOB_STATUS": job_status, "POLL_SECONDS": "0", "KUBECONFIG": "/dev/null", "HOME": str(tmp_path)}
    steps = ["etl", "materialize", "batch-score", "drift"]
    result = subprocess.run(["sh", str(KUBERAY / "base" / "pipeline" / "run-rayjob.sh"), *steps],
                            env=env, capture_output=True, text=True, timeout=120)
    created = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("created-*.json"),
                                                          key=lambda p: int(p.stem.split("-")[1]))]
    if job_status == "FAILED":
        assert result.returncode == 1 and len(created) == 1, result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert [re.sub(r"-\d{8}-\d{6}$", "", r["metadata"]["name"]) for r in created] == [f"churn-{s}" for s in steps]
    for run in created:
        assert run["spec"]["suspend"] is False and "status" not in run
        assert set(run["metadata"]) == {"name", "namespace", "labels"}
        assert ray_errors(run) == []
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls.count("delete --wait=false rayjob.ray.io/r1") == len(steps)  # all but the newest 3 runs


def test_churn_env_vars_name_real_settings():
    """Every CHURN_* variable the manifests set is a field of core.settings.Settings (pydantic
    ignores unknown ones, so a renamed field would silently fall back to its default)."""
    from core.settings import Settings

    def exists(name: str) -> bool:
        model = Settings
        for part in name.removeprefix("CHURN_").lower().split("__"):
            field = model.model_fields.get(part)
            if field is None:
                return False
            model = field.annotation
        return True

    names = set()
    for _, obj in all_objects():
        if obj["kind"] == "ConfigMap":
            names |= set(obj.get("data", {}))
        for path, node in walk(obj):
            if path.endswith(".runtimeEnvYAML"):
                names |= set(yaml.safe_load(node).get("env_vars", {}))
            if isinstance(node, dict) and isinstance(node.get("name"), str) and ("value" in node or "valueFrom" in node):
                names.add(node["name"])
    churn = sorted(n for n in names if n.startswith("CHURN_") and n != "CHURN_RUN_ID")
    assert churn and [n for n in churn if not exists(n)] == []
