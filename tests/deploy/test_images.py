"""Container images: one churn-platform tag matching the pinned Ray version everywhere (manifests,
Dockerfile, kuberay/README.md), pinned third-party tags, the Dockerfile's Ray base image."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from _manifests import KUBERAY, all_objects, ident, image_tag, ray_version, walk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


def _images() -> Iterator[tuple[str, str]]:
    for target, obj in all_objects():
        for path, node in walk(obj):
            if path.endswith(".image") and isinstance(node, str):
                yield f"{target} {ident(obj)}{path}", node


def _ours() -> dict[str, str]:
    return {where: image for where, image in _images()
            if image.split("@")[0].rsplit(":", 1)[0].endswith("churn-platform")}


def test_one_image_tag_matching_the_pinned_ray_version():
    ours = _ours()
    assert ours, "no churn-platform image found"
    for where, image in ours.items():
        assert image.endswith(f"churn-platform:{image_tag()}"), f"{where}: {image}"


def test_third_party_images_have_pinned_tags():
    ours = _ours()
    for where, image in _images():
        assert where in ours or (re.search(r":[\w.-]+$", image) and not image.endswith(":latest")), \
            f"{where}: third-party image without a pinned tag: {image}"


def test_the_dockerfile_builds_on_the_pinned_ray_image():
    dockerfile = (KUBERAY / "Dockerfile").read_text()
    assert re.findall(r"^FROM\s+(\S+)", dockerfile, re.M) == [f"rayproject/ray:{ray_version()}-py311"]


def test_the_dockerfile_and_the_readme_name_the_image_tag():
    dockerfile = (KUBERAY / "Dockerfile").read_text()
    tag = f"churn-platform:{image_tag()}"
    assert tag in dockerfile and tag in (KUBERAY / "README.md").read_text()
