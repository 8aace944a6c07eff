"""Ray custom resources (RayJob, RayService) against the vendored KubeRay v1.7.0 schemas in strict
mode, the vendored schema itself, and kuberay/schemas/convert.py's conversion rules."""
from __future__ import annotations

import jsonschema
import pytest

from _manifests import RAY_KINDS, TARGETS, convert, copy, ident, kuberay_schema, objects, ray_errors, walk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve


def test_vendored_schema_defines_every_ray_kind():
    assert set(kuberay_schema()["$defs"]) >= RAY_KINDS


def test_vendored_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(kuberay_schema())


def test_vendored_schema_properties_are_schemas_and_refs_resolve():
    schema = kuberay_schema()
    for path, node in walk(schema):
        if isinstance(node, dict) and isinstance(node.get("properties"), dict):
            assert all(isinstance(v, dict) for v in node["properties"].values()), path
        if isinstance(node, dict) and "$ref" in node:
            assert node["$ref"].removeprefix("#/$defs/") in schema["$defs"], path


@pytest.mark.parametrize("target", TARGETS)
def test_there_are_seven_rayjobs_and_one_rayservice(target):
    assert len(objects(target, {"RayJob"})) == 7 and len(objects(target, {"RayService"})) == 1


@pytest.mark.parametrize("target", TARGETS)
def test_ray_objects_validate_against_kuberay_schemas_strictly(target):
    for obj in objects(target, RAY_KINDS):
        assert ray_errors(obj) == [], ident(obj)


@pytest.mark.parametrize("kind, path", [
    ("RayJob", ["spec", "rayClusterSpec", "headGroupSpec"]),
    ("RayJob", ["spec"]),
    ("RayService", ["spec", "rayClusterConfig", "workerGroupSpecs", 0, "template", "spec", "containers", 0]),
    ("RayService", ["metadata"]),
])
def test_unknown_field_fails_ray_validation(kind, path):
    obj = copy(objects("base", {kind})[0])
    node = obj
    for part in path:
        node = node[part]
    node["bogus"] = 1
    errors = ray_errors(obj)
    assert errors and any("bogus" in e for e in errors), errors


def test_ray_schema_types_are_checked():
    obj = copy(objects("base", {"RayJob"})[0])
    obj["spec"]["backoffLimit"] = "one"
    assert ray_errors(obj)


def test_int_or_string_quantities_accept_both():
    obj = copy(objects("base", {"RayJob"})[0])
    resources = obj["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
    obj["spec"]["backoffLimit"] = 1
    resources["limits"]["cpu"] = 2
    assert ray_errors(obj) == []


# --------------------------------------------------------------------------- convert.strict
CRD_NODE = {"type": "object", "properties": {
    "q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
    "t": {"type": "string", "nullable": True, "format": "date-time"},
    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
    "map": {"type": "object", "additionalProperties": {"type": "string"}},
}}


def strict() -> dict:
    """``convert.strict`` of a fresh copy of CRD_NODE."""
    return convert.strict(copy(CRD_NODE))


def test_convert_closes_objects_to_unknown_properties():
    assert strict()["additionalProperties"] is False


def test_convert_keeps_int_or_string_as_its_any_of():
    assert strict()["properties"]["q"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}


def test_convert_turns_nullable_into_a_null_type_and_drops_the_format():
    assert strict()["properties"]["t"] == {"type": ["string", "null"]}


def test_convert_leaves_objects_that_preserve_unknown_fields_open():
    assert "additionalProperties" not in strict()["properties"]["free"]


def test_convert_keeps_the_value_schema_of_maps():
    assert strict()["properties"]["map"]["additionalProperties"] == {"type": "string"}
