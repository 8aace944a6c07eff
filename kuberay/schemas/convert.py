"""Convert the KubeRay CRDs into one strict JSON Schema (draft 2020-12) for offline validation.

    python kuberay/schemas/convert.py /path/to/kuberay/crds [-o kuberay/schemas/kuberay-v1.7.0.schema.json]

Reads ``ray.io_rayclusters.yaml``, ``ray.io_rayjobs.yaml`` and ``ray.io_rayservices.yaml`` (the
CRDs of a KubeRay release) and writes a schema whose ``$defs`` hold ``RayCluster``, ``RayJob`` and
``RayService`` (apiVersion ray.io/v1, the storage version). The conversion follows what KubeRay's
own CI does for kubeconform, made strict:

* ``x-kubernetes-int-or-string`` -> ``anyOf: [integer, string]``;
* ``nullable: true`` -> ``type: [<type>, "null"]``;
* every object schema that lists ``properties`` gets ``additionalProperties: false`` unless it sets
  ``x-kubernetes-preserve-unknown-fields`` (the API server prunes unknown fields silently; here
  they are errors, so a typo cannot go unnoticed);
* ``metadata`` (free-form in a CRD) gets the usual ObjectMeta fields, strictly;
* CEL rules (``x-kubernetes-validations``) cannot be checked here and are dropped, with the other
  ``x-kubernetes-*`` annotations, ``description``, ``default`` and ``format``;
* identical large sub-schemas (pod templates, the RayCluster spec shared by the three kinds) are
  stored once under ``$defs`` and referenced, which keeps the file small.

The result is deterministic: re-running on the same CRDs gives the same bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

KINDS = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml",
         "RayService": "ray.io_rayservices.yaml"}
API_VERSION = "ray.io/v1"
DROP = {"description", "default", "format", "example"}
HOIST_MIN_CHARS = 600  # sub-schemas shorter than this stay inline

OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
}


def strict(node: Any) -> Any:
    """The strict JSON Schema equivalent of one OpenAPI v3 (structural) schema node."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items() if k not in DROP and not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def kind_schema(crd: dict, kind: str) -> dict:
    version = next(v for v in crd["spec"]["versions"] if v["name"] == API_VERSION.split("/")[1])
    schema = strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"const": API_VERSION}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = OBJECT_META
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    schema["additionalProperties"] = False
    return schema


def _key(node: Any) -> str:
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def hoist(roots: dict[str, dict]) -> dict[str, Any]:
    """Store every large sub-schema that occurs more than once under $defs, referenced by $ref."""
    counts: Counter[str] = Counter()

    # Only schemas are hoisted, never a `properties` map (name -> schema), which is no schema.
    def children(node: dict) -> Iterator[tuple[str, Any, bool]]:
        for k, v in node.items():
            yield k, v, k == "properties" and isinstance(v, dict)

    def count(node: Any) -> None:
        if isinstance(node, dict):
            counts[_key(node)] += 1
            for _, v, is_map in children(node):
                for sub in (v.values() if is_map else [v]):
                    count(sub)
        elif isinstance(node, list):
            for v in node:
                count(v)

    for root in roots.values():
        count(root)
    shared = {k for k, n in counts.items() if n > 1 and len(k) >= HOIST_MIN_CHARS}
    defs: dict[str, Any] = {}

    def rewrite(node: Any, top: bool = False) -> Any:
        if isinstance(node, dict):
            key = _key(node)
            if key in shared and not top:
                name = "h" + hashlib.sha256(key.encode()).hexdigest()[:12]
                if name not in defs:
                    defs[name] = None  # reserve first: the body may be rewritten recursively
                    defs[name] = rewrite(node, top=True)
                return {"$ref": f"#/$defs/{name}"}
            return {k: ({p: rewrite(sub) for p, sub in v.items()} if is_map else rewrite(v))
                    for k, v, is_map in children(node)}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    out = {kind: rewrite(root, top=True) for kind, root in roots.items()}
    return {**dict(sorted(defs.items())), **out}


def convert(crd_dir: Path) -> dict:
    roots = {}
    for kind, filename in KINDS.items():
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        docs = [d for d in yaml.load_all((crd_dir / filename).read_text(), Loader=loader) if d]
        crd = next(d for d in docs if d.get("kind") == "CustomResourceDefinition")
        assert crd["spec"]["names"]["kind"] == kind, filename
        roots[kind] = kind_schema(crd, kind)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated by kuberay/schemas/convert.py from the KubeRay CRDs; do not edit.",
        "$defs": hoist(roots),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crd_dir", type=Path)
    parser.add_argument("-o", "--output", type=Path,
                        default=Path(__file__).with_name("kuberay-v1.7.0.schema.json"))
    args = parser.parse_args(argv)
    args.output.write_text(json.dumps(convert(args.crd_dir), indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
