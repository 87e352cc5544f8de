"""A service as a Deployment with a ReplicaSet per ECS deployment, and the rolling update's
arithmetic said in Kubernetes' terms."""
import math

from orchestrator import deployments as rollout
from orchestrator.kubernetes.names import (
    ANNOTATION_DEPLOYMENT, app_label, compact, condition, metadata, namespace_of, owner, pod_template_hash,
    replica_set_name, timestamp,
)
from orchestrator.kubernetes.networking import service_for
from orchestrator.kubernetes.pods import pod_spec

def rolling_update(desired, minimum_healthy_percent=None, maximum_percent=None):
    """Kubernetes' maxSurge / maxUnavailable for ECS's maximumPercent / minimumHealthyPercent.

    ECS rounds minimumHealthyPercent up and maximumPercent down (``deployments.rolling_limits``);
    Kubernetes rounds maxUnavailable down and maxSurge up. maxUnavailable as (100 − minimum)% is
    then always the same count, so it stays a percentage (and keeps meaning it when scaled);
    maxSurge as (maximum − 100)% is the same only when desired × that percentage is whole,
    else it is the count ECS allows.
    """
    low = rollout.DEFAULT_MINIMUM_HEALTHY_PERCENT if minimum_healthy_percent is None else int(minimum_healthy_percent)
    high = rollout.DEFAULT_MAXIMUM_PERCENT if maximum_percent is None else int(maximum_percent)
    least, most = rollout.rolling_limits(desired, low, high)
    surge_percent = high - 100
    surge_count = max(most - desired, 0)
    surge = f"{surge_percent}%" if math.ceil(desired * surge_percent / 100) == surge_count else surge_count
    return {"maxSurge": surge, "maxUnavailable": f"{100 - low}%"}, max(desired - least, 0)


def _revisions(deployments):
    """deployment id -> its revision number (1 for the oldest), as deployment.kubernetes.io/revision."""
    ordered = sorted(deployments, key=lambda d: (d.get("createdAt") or 0, d.get("id", "")))
    return {d["id"]: n for n, d in enumerate(ordered, 1)}


def replica_set_for(service, deployment, task_definition, revision, ready=0):
    """One ECS deployment of a service as its ReplicaSet (replicas: the deployment's counts)."""
    name = app_label(service.get("serviceName"))
    hash_ = pod_template_hash(deployment["id"])
    labels = {"app": name, "pod-template-hash": hash_}
    present = int(deployment.get("runningCount", 0)) + int(deployment.get("pendingCount", 0))
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": metadata(
            replica_set_name(service.get("serviceName"), deployment["id"]), namespace_of(service.get("clusterArn")),
            deployment["id"], labels,
            {"deployment.kubernetes.io/revision": str(revision), ANNOTATION_DEPLOYMENT: deployment["id"],
             "fargate-lab/ecs-status": f"{deployment.get('status')} {deployment.get('rolloutState', '')}".strip()},
            creationTimestamp=timestamp(deployment.get("createdAt")),
            ownerReferences=[owner("Deployment", "apps/v1", name, service.get("serviceArn"))],
        ),
        "spec": {
            "replicas": int(deployment.get("desiredCount", 0)),
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(task_definition, restart_policy="Always")},
        },
        "status": compact({
            "replicas": present,
            "fullyLabeledReplicas": present,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }),
    }


def deployment_for(service, task_definitions, ready=None, min_ready_seconds=None):
    """A service (as DescribeServices returns it) as a Deployment, its ReplicaSets (one per ECS
    deployment) and a Service selecting its Pods: a list of manifests.

    ``task_definitions``: task definition ARN -> DescribeTaskDefinition shape, for every
    deployment's; ``ready``: deployment id -> healthy tasks (ECS's "healthy" is Kubernetes'
    ready); ``min_ready_seconds``: the lab's grace before a task without a load balancer counts
    as healthy.
    """
    ready = ready or {}
    name = app_label(service.get("serviceName"))
    namespace = namespace_of(service.get("clusterArn"))
    config = service.get("deploymentConfiguration") or {}
    desired = int(service.get("desiredCount", 0))
    strategy, max_unavailable = rolling_update(desired, config.get("minimumHealthyPercent"), config.get("maximumPercent"))
    deployments = service.get("deployments") or []
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    template_definition = task_definitions.get(service.get("taskDefinition")) or {}
    healthy = sum(ready.values())
    present = sum(int(d.get("runningCount", 0)) + int(d.get("pendingCount", 0)) for d in deployments)
    revisions = _revisions(deployments)
    rollout_state = (primary or {}).get("rolloutState", "COMPLETED")
    progressing = {
        "IN_PROGRESS": (True, "ReplicaSetUpdated"),
        "COMPLETED": (True, "NewReplicaSetAvailable"),
        "FAILED": (False, "ProgressDeadlineExceeded"),
    }.get(rollout_state, (True, "ReplicaSetUpdated"))
    annotations = {}
    if primary:
        annotations["deployment.kubernetes.io/revision"] = str(revisions[primary["id"]])
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, namespace, service.get("serviceArn"), {"app": name}, annotations,
                             creationTimestamp=timestamp(service.get("createdAt"))),
        "spec": compact({
            "replicas": desired,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": strategy},
            "minReadySeconds": int(min_ready_seconds) if min_ready_seconds and not service.get("loadBalancers") else None,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": pod_spec(template_definition, restart_policy="Always"),
            },
        }),
        "status": compact({
            "replicas": present,
            "updatedReplicas": int(primary.get("runningCount", 0)) + int(primary.get("pendingCount", 0)) if primary else 0,
            "readyReplicas": healthy,
            "availableReplicas": healthy,
            "unavailableReplicas": max(desired - healthy, 0) or None,
            "conditions": [
                condition("Available", healthy >= desired - max_unavailable,
                          "MinimumReplicasAvailable" if healthy >= desired - max_unavailable else "MinimumReplicasUnavailable"),
                condition("Progressing", progressing[0], progressing[1], (primary or {}).get("rolloutStateReason")),
            ],
        }),
    }
    replica_sets = [
        replica_set_for(service, d, task_definitions.get(d.get("taskDefinition")) or {}, revisions[d["id"]], ready.get(d["id"], 0))
        for d in deployments
    ]
    return [manifest, *replica_sets, service_for(service, template_definition)]


def task_set_deployments_for(service, task_definitions, ready=None):
    """An EXTERNAL service's task sets as Argo Rollouts' blue/green says them: a Deployment per
    task set (replicas: its computedDesiredCount) behind one Service, whose selector picks the
    PRIMARY task set's Pods, as the active Service picks the active ReplicaSet's."""
    ready = ready or {}
    name = app_label(service.get("serviceName"))
    namespace = namespace_of(service.get("clusterArn"))
    manifests, active = [], None
    for task_set in service.get("taskSets") or []:
        hash_ = pod_template_hash(task_set["id"])
        labels = {"app": name, "pod-template-hash": hash_}
        if task_set.get("status") == "PRIMARY":
            active = hash_
        scale = (task_set.get("scale") or {}).get("value", 100.0)
        present = int(task_set.get("runningCount", 0)) + int(task_set.get("pendingCount", 0))
        manifests.append({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(
                replica_set_name(service.get("serviceName"), task_set["id"]), namespace, task_set.get("taskSetArn"),
                labels, {ANNOTATION_DEPLOYMENT: task_set["id"],
                         "fargate-lab/ecs-task-set": f"{task_set.get('status')} scale {scale:g}% "
                                                     f"{task_set.get('stabilityStatus', '')}".strip()},
                creationTimestamp=timestamp(task_set.get("createdAt")),
            ),
            "spec": {
                "replicas": int(task_set.get("computedDesiredCount", 0)),
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec(
                    task_definitions.get(task_set.get("taskDefinition")) or {}, restart_policy="Always")},
            },
            "status": compact({"replicas": present, "readyReplicas": ready.get(task_set["id"], 0),
                               "availableReplicas": ready.get(task_set["id"], 0)}),
        })
    front = service_for(service, task_definitions.get(service.get("taskDefinition")) or {})
    if active:
        front["spec"]["selector"]["pod-template-hash"] = active
    return [*manifests, front]
