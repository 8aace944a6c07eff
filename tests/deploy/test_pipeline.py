"""The daily pipeline: the CronJob runs existing RayJob templates in order through
kuberay/base/pipeline/run-rayjob.sh with just the RBAC it needs, and the script (valid shell,
shipped verbatim in its ConfigMap) starts unsuspended copies in order against a fake kubectl."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from _manifests import KUBERAY, objects, ray_errors

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydantic, from ray.serve

SCRIPT = KUBERAY / "base" / "pipeline" / "run-rayjob.sh"
STEPS = ["etl", "materialize", "batch-score", "drift"]


def _cronjob_pod(cronjob: dict) -> dict:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_daily_pipeline_runs_the_script_on_the_steps_in_order():
    (cronjob,) = objects("base", {"CronJob"})
    command = _cronjob_pod(cronjob)["containers"][0]["command"]
    assert command[:2] == ["sh", "/scripts/run-rayjob.sh"]
    assert command[2:] == STEPS


def test_daily_pipeline_runs_existing_templates_in_order():
    (cronjob,) = objects("base", {"CronJob"})
    command = _cronjob_pod(cronjob)["containers"][0]["command"]
    templates = {o["metadata"]["name"] for o in objects("base", {"RayJob"})}
    assert {f"churn-{step}" for step in command[2:]} <= templates


def test_the_pipeline_role_may_only_manage_rayjobs():
    (role,) = objects("base", {"Role"})
    assert role["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayjobs"],
                              "verbs": ["get", "list", "create", "delete"]}]


def test_the_pipeline_role_is_bound_to_the_cronjob_service_account():
    (cronjob,) = objects("base", {"CronJob"})
    (binding,) = objects("base", {"RoleBinding"})
    assert binding["subjects"][0]["name"] == _cronjob_pod(cronjob)["serviceAccountName"]


def test_the_dev_pipeline_is_suspended():
    assert objects("dev", {"CronJob"})[0]["spec"]["suspend"] is True


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_run_script_is_valid_shell():
    subprocess.run(["sh", "-n", str(SCRIPT)], check=True)


def test_run_script_ships_verbatim_in_its_configmap():
    (configmap,) = [o for o in objects("base", {"ConfigMap"}) if o["metadata"]["name"] == "churn-pipeline-scripts"]
    assert configmap["data"]["run-rayjob.sh"] == SCRIPT.read_text()


# --------------------------------------------------------------------------- against a fake kubectl
FAKE_KUBECTL = r"""#!/bin/sh
# Stands in for kubectl: answers run-rayjob.sh's calls, hands `patch --local` to the real one.
echo "$*" >> "$FAKE_DIR/calls"
case "$*" in
  "patch --local"*) exec "$REAL_KUBECTL" "$@" ;;
  "create -f -") cat > "$FAKE_DIR/created-$(ls "$FAKE_DIR" | wc -l).json" ;;
  *jobDeploymentStatus*) echo Complete ;;
  *jobStatus*) echo "$FAKE_JOB_STATUS" ;;
  "get rayjob -l"*) printf 'rayjob.ray.io/r1\nrayjob.ray.io/r2\nrayjob.ray.io/r3\nrayjob.ray.io/r4\n' ;;
  "get rayjob "*" -o json") cat "$FAKE_DIR/template-$3.json" ;;
  "delete"*) ;;
  *) echo "unexpected kubectl call: $*" >&2; exit 3 ;;
esac
"""

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None,
                                   reason="needs kubectl for `kubectl patch --local`")


def run_script(tmp_path, job_status: str) -> SimpleNamespace:
    """run-rayjob.sh on the pipeline's steps against FAKE_KUBECTL, every RayJob ending in
    ``job_status``; the RayJobs it created, in order, and the kubectl calls it made."""
    for template in objects("dev", {"RayJob"}):
        server_side = json.loads(json.dumps(template))
        server_side["metadata"].update(uid="u1", resourceVersion="7", finalizers=["ray.io/rayjob-finalizer"],
                                       annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"})
        server_side["status"] = {"jobDeploymentStatus": "Suspended"}
        (tmp_path / f"template-{template['metadata']['name']}.json").write_text(json.dumps(server_side))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_DIR": str(tmp_path), "REAL_KUBECTL": shutil.which("kubectl"),
           "FAKE_JOB_STATUS": job_status, "POLL_SECONDS": "0", "KUBECONFIG": "/dev/null", "HOME": str(tmp_path)}
    result = subprocess.run(["sh", str(SCRIPT), *STEPS], env=env, capture_output=True, text=True, timeout=120)
    created = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("created-*.json"),
                                                          key=lambda p: int(p.stem.split("-")[1]))]
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return SimpleNamespace(result=result, created=created, calls=calls)


@needs_kubectl
def test_run_script_stops_at_the_first_failed_job(tmp_path):
    run = run_script(tmp_path, "FAILED")
    assert run.result.returncode == 1 and len(run.created) == 1, run.result.stderr


@pytest.fixture(scope="module")
def succeeded(tmp_path_factory) -> SimpleNamespace:
    return run_script(tmp_path_factory.mktemp("run-rayjob"), "SUCCEEDED")


@needs_kubectl
def test_run_script_succeeds_when_every_job_does(succeeded):
    assert succeeded.result.returncode == 0, succeeded.result.stderr


@needs_kubectl
def test_run_script_starts_unsuspended_copies_in_order(succeeded):
    assert [re.sub(r"-\d{8}-\d{6}$", "", r["metadata"]["name"]) for r in succeeded.created] == \
        [f"churn-{s}" for s in STEPS]
    for run in succeeded.created:
        assert run["spec"]["suspend"] is False and "status" not in run


@needs_kubectl
def test_run_script_copies_keep_only_name_namespace_and_labels(succeeded):
    for run in succeeded.created:
        assert set(run["metadata"]) == {"name", "namespace", "labels"}


@needs_kubectl
def test_run_script_copies_are_valid_rayjobs(succeeded):
    for run in succeeded.created:
        assert ray_errors(run) == []


@needs_kubectl
def test_run_script_deletes_all_but_the_newest_three_runs(succeeded):
    assert succeeded.calls.count("delete --wait=false rayjob.ray.io/r1") == len(STEPS)  # all but the newest 3 runs
