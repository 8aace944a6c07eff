"""Secrets are only ever referenced, never inlined (env vars, URLs, Redis credentials), the example
Secret file is documentation only, and every referenced Secret key and ConfigMap exists."""
from __future__ import annotations

import re

import pytest
import yaml

from _manifests import KUBERAY, SECRET_NAME, all_objects, example_secrets, ident, objects, walk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


def test_no_secret_is_inlined():
    for target, obj in all_objects():
        assert obj["kind"] != "Secret", f"{target}: {ident(obj)} inlines a Secret"


def test_secret_env_vars_come_from_secret_key_refs():
    for target, obj in all_objects():
        for path, node in walk(obj):
            is_env_var = isinstance(node, dict) and "name" in node and ("value" in node or "valueFrom" in node)
            if is_env_var and SECRET_NAME.search(node["name"]):
                assert "value" not in node and "secretKeyRef" in node["valueFrom"], f"{target} {ident(obj)}{path}"


def test_credentials_inside_urls_are_variable_references():
    for target, obj in all_objects():
        for path, node in walk(obj):
            if isinstance(node, str):  # credentials inside URLs must be $(VAR) references
                for password in re.findall(r"://[^/\s:@]*:([^@\s]+)@", node):
                    assert re.fullmatch(r"\$\([A-Z_]+\)", password), f"{target} {ident(obj)}{path}: {node}"


def test_redis_credentials_of_ray_clusters_are_references():
    for target, obj in all_objects():
        for path, node in walk(obj):
            if path.endswith(("redisPassword", "redisUsername")):
                assert set(node) == {"valueFrom"}, f"{target} {ident(obj)}{path}"


def test_the_example_secrets_are_never_deployed():
    for kfile in KUBERAY.rglob("kustomization.yaml"):  # the example is documentation only
        k = yaml.safe_load(kfile.read_text())
        used = k.get("resources", []) + [p.get("path", "") for p in k.get("patches", [])]
        assert not any("secrets.example" in entry for entry in used), kfile


def test_referenced_secret_keys_exist_in_the_example():
    examples = example_secrets()
    for target, obj in all_objects():
        for path, node in walk(obj):
            if path.endswith(".secretKeyRef"):
                assert node["key"] in examples.get(node["name"], set()), f"{target} {ident(obj)}{path}: {node}"
            if path.endswith(".secretRef"):
                assert node["name"] in examples, f"{target} {ident(obj)}{path}"


def test_referenced_configmaps_exist():
    for target, obj in all_objects():
        configmaps = {o["metadata"]["name"] for o in objects(target, {"ConfigMap"})}
        for path, node in walk(obj):
            if path.endswith((".configMapRef", ".configMap", ".configMapKeyRef")):
                assert node["name"] in configmaps, f"{target} {ident(obj)}{path}"
