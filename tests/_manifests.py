"""Helpers of the deploy tests: the Kubernetes manifests under kuberay/ rendered offline (no
cluster, no Docker) with kuberay/render.py's built-in kustomize, walked, and validated — Ray custom
resources against the vendored KubeRay v1.7.0 schemas in strict mode, core objects and the pod
templates inside the Ray resources with kubernetes-validate (strict, Kubernetes 1.31)."""
from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from support import REPO

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
convert = _import("kuberay_schemas_convert", KUBERAY / "schemas" / "convert.py")


# --------------------------------------------------------------------------- rendered objects
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


def copy(obj: dict) -> dict:
    """A deep copy of a rendered object (they are cached: never modify one in place)."""
    return json.loads(json.dumps(obj))


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


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# --------------------------------------------------------------------------- validation
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


# --------------------------------------------------------------------------- versions, images
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


# --------------------------------------------------------------------------- Serve
def serve_doc(target: str) -> dict:
    (service,) = objects(target, {"RayService"})
    return yaml.safe_load(service["spec"]["serveConfigV2"])


def unknown_serve_keys(doc: dict) -> list[str]:
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


# --------------------------------------------------------------------------- secrets
def example_secrets() -> dict[str, set[str]]:
    docs = [d for d in yaml.safe_load_all((KUBERAY / "base" / "secrets.example.yaml").read_text()) if d]
    return {d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {})) for d in docs}
