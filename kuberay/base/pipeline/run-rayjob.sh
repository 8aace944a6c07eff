#!/bin/sh
# Run pipeline steps as RayJobs, one after another, and stop at the first that fails.
#
#   run-rayjob.sh STEP [STEP...]        e.g.  run-rayjob.sh etl materialize batch-score drift
#
# `kubectl apply -k kuberay/overlays/<env>` installs one suspended RayJob per step, churn-<step>,
# as a template. A run copies the template to churn-<step>-<UTC time> with suspend=false, so
# KubeRay starts a fresh RayCluster, submits `python -m ray_jobs.<step>` and deletes the cluster
# afterwards. The script then polls the RayJob until KubeRay reports a final deployment status
# (Complete or Failed) - rather than `kubectl wait --for=jsonpath=...=SUCCEEDED`, which would
# only notice a failure at its timeout - and keeps the last $KEEP runs of each step.
# Needs only kubectl and a POSIX shell; runs in-cluster (the daily CronJob) or from a laptop
# (namespace from the kubectl context, or NAMESPACE=...).
set -eu

KEEP="${KEEP:-3}"
POLL_SECONDS="${POLL_SECONDS:-15}"
NS_ARGS=""
[ -n "${NAMESPACE:-}" ] && NS_ARGS="--namespace=$NAMESPACE"
[ $# -gt 0 ] || { echo "usage: $0 STEP [STEP...]" >&2; exit 2; }

kc() { kubectl $NS_ARGS "$@"; }

stamp=$(date -u +%Y%m%d-%H%M%S)
for step in "$@"; do
  template="churn-$step"
  run="$template-$stamp"
  echo "$(date -u +%FT%TZ) $run: starting"
  # A copy of the template: new name, no server-set metadata, no status, not suspended.
  kc get rayjob "$template" -o json \
    | kubectl patch --local -f - --type=merge -o json -p "{
        \"metadata\": {\"name\": \"$run\", \"labels\": {\"churn.io/run-of\": \"$template\"},
                     \"annotations\": null, \"uid\": null, \"resourceVersion\": null,
                     \"generation\": null, \"creationTimestamp\": null, \"managedFields\": null,
                     \"finalizers\": null, \"ownerReferences\": null},
        \"spec\": {\"suspend\": false},
        \"status\": null}" \
    | kc create -f -

  while :; do
    deployment=$(kc get rayjob "$run" -o jsonpath='{.status.jobDeploymentStatus}')
    case "$deployment" in
      Complete|Failed) break ;;
    esac
    sleep "$POLL_SECONDS"
  done
  status=$(kc get rayjob "$run" -o jsonpath='{.status.jobStatus}')
  echo "$(date -u +%FT%TZ) $run: $deployment, job $status"

  # Keep the newest $KEEP runs of this step (their clusters are already gone; these are records).
  old=$(kc get rayjob -l "churn.io/run-of=$template" --sort-by=.metadata.creationTimestamp -o name)
  n=$(printf '%s\n' "$old" | grep -c . || true)
  if [ "$n" -gt "$KEEP" ]; then
    printf '%s\n' "$old" | head -n "$((n - KEEP))" | xargs kubectl $NS_ARGS delete --wait=false
  fi

  if [ "$status" != SUCCEEDED ]; then
    echo "$run did not succeed: see kubectl describe rayjob $run" >&2
    exit 1
  fi
done
