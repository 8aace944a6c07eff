"""The base and every overlay render with kuberay/render.py's built-in kustomize (and as the real
kustomize renders them when kustomize or kubectl is installed)."""
from __future__ import annotations

import pytest

from _manifests import TARGETS, render, rendered

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


@pytest.mark.parametrize("target", TARGETS)
def test_renders_every_kind_of_object(target):
    kinds = {o["kind"] for o in rendered(target)}
    assert {"RayJob", "RayService", "StatefulSet", "Deployment", "CronJob", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("target", TARGETS)
def test_renders_no_duplicate_objects(target):
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in rendered(target)]
    assert len(keys) == len(set(keys)), "duplicate objects"


@pytest.mark.skipif(render.external_kustomize() is None, reason="neither kustomize nor kubectl installed")
@pytest.mark.parametrize("target", TARGETS)
def test_builtin_renderer_matches_kustomize(target):
    def keyed(items):
        return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in items}

    assert keyed(render.build(TARGETS[target], engine="kustomize")) == keyed(rendered(target))
