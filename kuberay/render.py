"""Render the KubeRay manifests: the Serve config files and the kustomize overlays.

    python -m kuberay.render serve-config [--serve-config PATH] [--check]
        Write spec.serveConfigV2 of the RayService, generated from serve_app/config.yaml, into
        kuberay/base/serve/serve-config.generated.yaml, and once more for every overlay that has
        a serve-overrides.yaml (per-deployment settings merged in, e.g. prod's autoscaling) into
        that overlay's serve-config.generated.yaml. --check only reports files that are stale.

    python -m kuberay.render build kuberay/overlays/dev [--builtin]
        Print the rendered manifests: `kustomize build` or `kubectl kustomize` when either is
        installed, otherwise (or with --builtin) a small built-in renderer that covers what these
        kustomizations use.

What goes into serveConfigV2: KubeRay passes the string unchanged to Ray Serve's
`PUT /api/serve/applications/`, i.e. a ray.serve.schema.ServeDeploySchema. The `applications`
(and logging_config and the other per-cluster settings) come from serve_app/config.yaml. The HTTP
host/port and the proxy location are the cluster's business, not the config file's: KubeRay sends
traffic and readiness probes to the Ray containers' `serve` port on every worker, so they are
written here as host 0.0.0.0, the port of the RayService's `serve` containerPort, and
proxy_location EveryNode (a config file tuned for a laptop cannot break the cluster).
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import yaml

KUBERAY_DIR = Path(__file__).resolve().parent
REPO_ROOT = KUBERAY_DIR.parent
SERVE_CONFIG = REPO_ROOT / "serve_app" / "config.yaml"
BASE_SERVE_DIR = KUBERAY_DIR / "base" / "serve"
RAYSERVICE_FILE = BASE_SERVE_DIR / "rayservice.yaml"
OVERLAYS_DIR = KUBERAY_DIR / "overlays"
GENERATED = "serve-config.generated.yaml"
OVERRIDES = "serve-overrides.yaml"

PROXY_LOCATION = "EveryNode"  # KubeRay routes to the proxy of every worker pod
HTTP_HOST = "0.0.0.0"


# --------------------------------------------------------------------------- Serve config


def _rayservice() -> dict:
    return yaml.safe_load(RAYSERVICE_FILE.read_text())


def serve_port(rayservice: dict | None = None) -> int:
    """The `serve` containerPort of the RayService's worker pods (KubeRay's probes use it too)."""
    rayservice = rayservice or _rayservice()
    for group in rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        for port in group["template"]["spec"]["containers"][0].get("ports", []):
            if port.get("name") == "serve":
                return int(port["containerPort"])
    return 8000  # KubeRay's default serving port


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def serve_config_v2(config: dict, overrides: dict | None = None, port: int | None = None) -> dict:
    """The ServeDeploySchema document for the RayService, from a Serve config file's contents.

    ``overrides`` is a serve-overrides.yaml: ``{"deployments": {NAME: {field: value}}}``, merged
    into the deployment of that name in every application. A deployment that gets an
    ``autoscaling_config`` loses a fixed ``num_replicas`` (Serve rejects both together).
    """
    if not isinstance(config, dict) or not isinstance(config.get("applications"), list):
        raise ValueError("a Serve config file needs an `applications` list")
    out: dict[str, Any] = {"proxy_location": PROXY_LOCATION}
    out["http_options"] = {**(config.get("http_options") or {}), "host": HTTP_HOST,
                           "port": port or serve_port()}
    for key, value in config.items():
        if key not in ("proxy_location", "http_options"):
            out[key] = copy.deepcopy(value)
    wanted = dict((overrides or {}).get("deployments") or {})
    unknown_keys = set(overrides or {}) - {"deployments"}
    if unknown_keys:
        raise ValueError(f"serve overrides: unknown keys {sorted(unknown_keys)}")
    found: set[str] = set()
    for app in out["applications"]:
        deployments = app.get("deployments") or []
        for i, deployment in enumerate(deployments):
            name = deployment.get("name")
            if name in wanted:
                found.add(name)
                merged = _merge(deployment, wanted[name])
                if "autoscaling_config" in wanted[name] and "num_replicas" not in wanted[name]:
                    merged.pop("num_replicas", None)
                deployments[i] = merged
    missing = set(wanted) - found
    if missing:
        raise ValueError(f"serve overrides name deployments that the config does not have: {sorted(missing)}")
    return out


def serve_config_text(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def generated_patch(document: dict, source: str) -> str:
    """The strategic-merge patch that sets spec.serveConfigV2 of the RayService."""
    name = _rayservice()["metadata"]["name"]
    block = "".join(f"    {line}\n" if line else "\n" for line in serve_config_text(document).splitlines())
    return (
        f"# GENERATED by `python -m kuberay.render serve-config` from {source}; do not edit.\n"
        "apiVersion: ray.io/v1\n"
        "kind: RayService\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        "  serveConfigV2: |\n"
        f"{block}"
    )


def generated_files(config_path: Path = SERVE_CONFIG) -> dict[Path, str]:
    """Every serve-config.generated.yaml and its expected content."""
    config = yaml.safe_load(config_path.read_text())
    _warn_about_ignored(config)
    try:
        source = config_path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        source = "serve_app/config.yaml"
    files = {BASE_SERVE_DIR / GENERATED: generated_patch(serve_config_v2(config), source)}
    for overrides_file in sorted(OVERLAYS_DIR.glob(f"*/{OVERRIDES}")):
        overrides = yaml.safe_load(overrides_file.read_text()) or {}
        rel = overrides_file.relative_to(REPO_ROOT).as_posix()
        files[overrides_file.parent / GENERATED] = generated_patch(
            serve_config_v2(config, overrides), f"{source} + {rel}")
    return files


def _warn_about_ignored(config: dict) -> None:
    http = (config or {}).get("http_options") or {}
    notes = []
    if http.get("host") not in (None, HTTP_HOST):
        notes.append(f"http_options.host {http['host']!r} -> {HTTP_HOST}")
    if http.get("port") not in (None, serve_port()):
        notes.append(f"http_options.port {http['port']} -> {serve_port()}")
    if (config or {}).get("proxy_location") not in (None, PROXY_LOCATION):
        notes.append(f"proxy_location {config['proxy_location']} -> {PROXY_LOCATION}")
    for note in notes:
        print(f"note: on Kubernetes {note} (see kuberay/render.py)", file=sys.stderr)


# --------------------------------------------------------------------------- kustomize


def external_kustomize() -> list[str] | None:
    """The command of an installed kustomize, or of kubectl's built-in one."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def build(path: Path | str, engine: str = "auto") -> list[dict]:
    """The resources of a kustomization. engine: auto | kustomize | builtin."""
    path = Path(path)
    command = external_kustomize() if engine in ("auto", "kustomize") else None
    if command:
        result = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} {path} failed:\n{result.stderr}")
        return [d for d in yaml.safe_load_all(result.stdout) if d]
    if engine == "kustomize":
        raise RuntimeError("neither kustomize nor kubectl is installed")
    return Builtin().build(path)


_BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                   "PersistentVolume", "StorageClass", "PriorityClass"}
# List fields merged item by item in strategic-merge patches of built-in kinds, and their keys.
_MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
               "volumeMounts": "mountPath", "imagePullSecrets": "name"}


class Builtin:
    """A small kustomize: the fields these kustomizations use, and an error for any other.

    Supported: resources (files and kustomization directories), configMapGenerator (files and
    literals, without name hash), patches (strategic merge, or JSON 6902 with a target),
    namespace, namePrefix/nameSuffix (names only, references are not rewritten), labels
    (metadata only), images. Transformers run in kustomize's order: patches, namespace,
    prefix/suffix, labels, images.
    """

    SUPPORTED: ClassVar[frozenset[str]] = frozenset({
        "apiVersion", "kind", "resources", "configMapGenerator", "generatorOptions", "patches", "namespace",
        "namePrefix", "nameSuffix", "labels", "images"})

    def build(self, path: Path) -> list[dict]:
        directory = path if path.is_dir() else path.parent
        kfile = next((directory / n for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
                      if (directory / n).exists()), None)
        if kfile is None:
            raise FileNotFoundError(f"no kustomization in {directory}")
        k = yaml.safe_load(kfile.read_text()) or {}
        unsupported = set(k) - self.SUPPORTED
        if unsupported:
            raise NotImplementedError(f"{kfile}: the built-in renderer does not support {sorted(unsupported)}; "
                                      "install kustomize or kubectl")
        resources: list[dict] = []
        for entry in k.get("resources", []):
            target = directory / entry
            resources += self.build(target) if target.is_dir() else _load(target)
        for generator in k.get("configMapGenerator", []):
            resources.append(self._configmap(directory, generator, k.get("generatorOptions") or {}))
        for patch in k.get("patches", []):
            self._patch(directory, patch, resources)
        for resource in resources:
            meta = resource.setdefault("metadata", {})
            if "namespace" in k and resource.get("kind") not in _CLUSTER_SCOPED:
                meta["namespace"] = k["namespace"]
                if resource.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
                    for subject in resource.get("subjects", []):
                        if subject.get("kind") == "ServiceAccount":
                            subject["namespace"] = k["namespace"]
            meta["name"] = k.get("namePrefix", "") + meta["name"] + k.get("nameSuffix", "")
            for label_set in k.get("labels", []):
                if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
                    raise NotImplementedError("labels with includeSelectors/includeTemplates")
                meta.setdefault("labels", {}).update(label_set.get("pairs", {}))
            for image in k.get("images", []):
                _set_image(resource, image)
        return resources

    @staticmethod
    def _configmap(directory: Path, generator: dict, options: dict) -> dict:
        opts = {**options, **(generator.get("options") or {})}
        if not opts.get("disableNameSuffixHash"):
            raise NotImplementedError("configMapGenerator needs options.disableNameSuffixHash: true")
        data = {}
        for entry in generator.get("files", []):
            key, _, file = entry.partition("=") if "=" in entry else (Path(entry).name, "", entry)
            data[key] = (directory / file).read_text()
        for entry in generator.get("literals", []):
            key, _, value = entry.partition("=")
            data[key] = value
        meta = {"name": generator["name"]}
        for field in ("labels", "annotations"):
            if opts.get(field):
                meta[field] = dict(opts[field])
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}

    def _patch(self, directory: Path, spec: dict, resources: list[dict]) -> None:
        text = (directory / spec["path"]).read_text() if "path" in spec else spec["patch"]
        patch = yaml.safe_load(text)
        target = spec.get("target")
        if isinstance(patch, list):  # JSON 6902
            if not target:
                raise ValueError(f"a JSON 6902 patch needs a target ({directory})")
            matches = [r for r in resources if _matches(r, target)]
            for resource in matches:
                _json6902(resource, patch)
        else:
            target = target or {"kind": patch["kind"], "name": patch["metadata"]["name"]}
            matches = [r for r in resources if _matches(r, target)]
            for resource in matches:
                merged = _strategic_merge(resource, patch, _is_builtin_kind(resource))
                resource.clear()
                resource.update(merged)
        if not matches:
            raise ValueError(f"patch in {directory} matches no resource: {target}")


def _load(path: Path) -> list[dict]:
    # JSON round trip: resolves YAML anchors into independent copies, so patching one never
    # changes another.
    return [json.loads(json.dumps(d)) for d in yaml.safe_load_all(path.read_text()) if d]


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _is_builtin_kind(resource: dict) -> bool:
    group = _group(resource.get("apiVersion", ""))
    return group in _BUILTIN_GROUPS or group.endswith(".k8s.io")


def _matches(resource: dict, target: dict) -> bool:
    meta = resource.get("metadata", {})
    checks = {"kind": resource.get("kind"), "name": meta.get("name"), "namespace": meta.get("namespace"),
              "group": _group(resource.get("apiVersion", "")),
              "version": resource.get("apiVersion", "").rpartition("/")[2]}
    for key, wanted in target.items():
        if key not in checks:
            raise NotImplementedError(f"patch target field {key!r}")
        if checks[key] != wanted:
            return False
    return True


def _strategic_merge(base: Any, patch: Any, builtin: bool, field: str = "") -> Any:
    """Strategic merge for built-in kinds (lists in _MERGE_KEYS merged by key), else RFC 7386."""
    if isinstance(patch, dict) and isinstance(base, dict):
        if any(k.startswith("$") for k in patch):
            raise NotImplementedError("strategic-merge directives ($patch, ...)")
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _strategic_merge(out[key], value, builtin, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if builtin and isinstance(patch, list) and isinstance(base, list) and field in _MERGE_KEYS:
        key = _MERGE_KEYS[field]
        out = [copy.deepcopy(item) for item in base]
        index = {item.get(key): i for i, item in enumerate(out)}
        for item in patch:
            if item.get(key) in index:
                out[index[item[key]]] = _strategic_merge(out[index[item[key]]], item, builtin)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _json6902(document: dict, operations: Iterable[dict]) -> None:
    for op in operations:
        *parents, last = _pointer(op["path"])
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif kind in ("add", "replace"):
            value = copy.deepcopy(op["value"])
            if isinstance(node, list):
                if kind == "add":
                    node.insert(len(node) if last == "-" else int(last), value)
                else:
                    node[int(last)] = value
            else:
                if kind == "replace" and last not in node:
                    raise KeyError(f"replace of missing {op['path']}")
                node[last] = value
        else:
            raise NotImplementedError(f"JSON 6902 op {kind!r}")


def _split_image(image: str) -> tuple[str, str]:
    """(name, tag-or-digest suffix including its separator)."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _set_image(node: Any, rule: dict) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    name, suffix = _split_image(container.get("image", ""))
                    if name == rule["name"]:
                        if "digest" in rule:
                            suffix = "@" + rule["digest"]
                        elif "newTag" in rule:
                            suffix = ":" + str(rule["newTag"])
                        container["image"] = rule.get("newName", name) + suffix
            _set_image(value, rule)
    elif isinstance(node, list):
        for item in node:
            _set_image(item, rule)


def to_yaml(resources: list[dict]) -> str:
    return "---\n".join(yaml.safe_dump(r, sort_keys=False) for r in resources)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kuberay.render", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve-config", help="write the generated serveConfigV2 patches")
    serve.add_argument("--serve-config", type=Path, default=SERVE_CONFIG, help="a Ray Serve config file")
    serve.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    build_cmd = sub.add_parser("build", help="render a kustomization to stdout")
    build_cmd.add_argument("path", type=Path)
    build_cmd.add_argument("--builtin", action="store_true", help="use the built-in renderer")
    args = parser.parse_args(argv)

    if args.command == "build":
        sys.stdout.write(to_yaml(build(args.path, "builtin" if args.builtin else "auto")))
        return 0
    stale = 0
    for path, text in generated_files(args.serve_config).items():
        rel = path.relative_to(REPO_ROOT)
        if path.exists() and path.read_text() == text:
            print(f"up to date: {rel}", file=sys.stderr)
        elif args.check:
            print(f"STALE: {rel} (run python -m kuberay.render serve-config)", file=sys.stderr)
            stale += 1
        else:
            path.write_text(text)
            print(f"wrote {rel}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
