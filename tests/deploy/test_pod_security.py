"""Every pod template of every object (Ray or core, in every target) runs as non-root under the
RuntimeDefault seccomp profile, with no privilege escalation, no capabilities, an explicit
read-only-root decision and resource limits."""
from __future__ import annotations

import pytest

from _manifests import TARGETS, ident, pod_templates, rendered

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


def _pods(target: str):
    for obj in rendered(target):
        for where, template in pod_templates(obj):
            yield obj, where, template["spec"]


@pytest.mark.parametrize("target", TARGETS)
def test_pods_run_as_non_root_with_the_runtime_default_seccomp_profile(target):
    for obj, where, pod in _pods(target):
        assert pod["securityContext"]["runAsNonRoot"] is True, f"{ident(obj)} {where}"
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


@pytest.mark.parametrize("target", TARGETS)
def test_containers_cannot_escalate_and_drop_every_capability(target):
    for obj, where, pod in _pods(target):
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, f"{ident(obj)} {where}"
            assert sc["capabilities"]["drop"] == ["ALL"], f"{ident(obj)} {where}"


@pytest.mark.parametrize("target", TARGETS)
def test_containers_decide_on_a_read_only_root_and_mount_tmp_when_they_do(target):
    for obj, where, pod in _pods(target):
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert "readOnlyRootFilesystem" in sc, f"{ident(obj)} {where}: decide explicitly"
            if sc["readOnlyRootFilesystem"]:
                mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
                assert obj["kind"] == "StatefulSet" or "/tmp" in mounts, f"{ident(obj)} {where}"


@pytest.mark.parametrize("target", TARGETS)
def test_containers_have_resource_limits(target):
    for obj, where, pod in _pods(target):
        for container in pod["containers"]:
            assert "resources" in container and "limits" in container["resources"], f"{ident(obj)} {where}"
