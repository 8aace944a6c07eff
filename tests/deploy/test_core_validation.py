"""Core Kubernetes objects, and the pod templates inside the Ray resources, against
kubernetes-validate's strict schemas (Kubernetes 1.31)."""
from __future__ import annotations

import kubernetes_validate
import pytest

from _manifests import (
    K8S_VERSION,
    RAY_KINDS,
    TARGETS,
    as_pod_template,
    copy,
    ident,
    k8s_errors,
    objects,
    ray_pod_templates,
    rendered,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


@pytest.mark.parametrize("target", TARGETS)
def test_ray_pod_templates_are_valid_core_pod_templates(target):
    for obj in objects(target, RAY_KINDS):
        for where, template in ray_pod_templates(obj):
            assert k8s_errors(as_pod_template(template)) == [], f"{ident(obj)} {where}"


@pytest.mark.parametrize("target", TARGETS)
def test_every_kind_of_core_object_is_rendered(target):
    core = [o for o in rendered(target) if o["kind"] not in RAY_KINDS]
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget",
            "CronJob", "Job", "ServiceAccount", "Role", "RoleBinding"} <= {o["kind"] for o in core}


@pytest.mark.parametrize("target", TARGETS)
def test_core_objects_validate_strictly(target):
    for obj in (o for o in rendered(target) if o["kind"] not in RAY_KINDS):
        assert k8s_errors(obj) == [], ident(obj)


def test_unknown_field_fails_core_validation():
    deployment = copy(next(o for o in objects("base") if o["kind"] == "Deployment"))
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)  # the public API agrees
    deployment["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    assert k8s_errors(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_unknown_field_in_a_ray_pod_template_fails_core_validation():
    template = copy(next(ray_pod_templates(objects("base", {"RayService"})[0]))[1])
    template["spec"]["containers"][0]["bogus"] = 1
    assert k8s_errors(as_pod_template(template))
