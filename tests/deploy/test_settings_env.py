"""Every CHURN_* variable the manifests set (env, ConfigMaps, RayJob runtime envs) names a real
field of core.settings.Settings."""
from __future__ import annotations

import pytest
import yaml

from _manifests import all_objects, walk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


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
            is_env_var = isinstance(node, dict) and isinstance(node.get("name"), str) and \
                ("value" in node or "valueFrom" in node)
            if is_env_var:
                names.add(node["name"])
    churn = sorted(n for n in names if n.startswith("CHURN_") and n != "CHURN_RUN_ID")
    assert churn and [n for n in churn if not exists(n)] == []
