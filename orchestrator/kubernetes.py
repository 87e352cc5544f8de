"""Kubernetes twins: each ECS object as the Kubernetes manifest that would do the same job, and
each ECS call as the kubectl command beside it.

Pure functions over plain data: the ECS API's own shapes (what DescribeTasks, DescribeServices,
DescribeTaskDefinition return, see ``frontend/shapes.py``) and a few plain dicts, never model
rows, so every mapping is tested on plain data and checked against Kubernetes' own OpenAPI
schemas. One naming table (``KINDS``, ``namespace_of``, ``app_label``…) is used by all.
"""
import math
import re
import shlex
import uuid
from datetime import datetime, timezone

from orchestrator import deployments as rollout

# The Kubernetes counterpart of each ECS object kind, as every page names it.
KUBERNETES_NAMES = {
    "task": "Pod",
    "service": "Deployment",
    "cluster": "cluster / namespace",
    "task_definition": "Pod spec (PodTemplate)",
    "instance": "Node",
    "deployment": "ReplicaSet",
    "container": "container",
    "target_group": "Service + EndpointSlice",
    "load_balancer": "Ingress / Service type LoadBalancer",
}

# Annotations that point back at the ECS object a manifest stands for.
ANNOTATION_ARN = "fargate-lab/arn"
ANNOTATION_TASK_DEFINITION = "fargate-lab/task-definition"
ANNOTATION_DEPLOYMENT = "fargate-lab/ecs-deployment"

# ECS's container health check defaults (seconds, retries), for the probe made from it.
HEALTH_CHECK_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0}
DEFAULT_STOP_TIMEOUT = 30
PULL_FAILURE = "CannotPullContainerError"

_DNS_INVALID = re.compile(r"[^a-z0-9-]+")


# --- Names -------------------------------------------------------------------------------

def dns_label(name, limit=63):
    """A Kubernetes name (RFC 1123 label) for an ECS name: "Web_App" → "web-app"."""
    label = _DNS_INVALID.sub("-", str(name).lower()).strip("-")
    return label[:limit].strip("-") or "unnamed"


def last_part(ref):
    """The name at the end of an ARN or path ("arn:…:service/demo/web" → "web"); a name as is."""
    return str(ref or "").rsplit("/", 1)[-1]


def cluster_name(ref):
    """The cluster an ECS reference names: a name, a cluster ARN, or a task/service ARN."""
    ref = str(ref or "") or "default"
    match = re.search(r":(?:cluster|task|service|container-instance)/([^/]+)", ref)
    return match.group(1) if match else ref


def namespace_of(cluster_ref):
    """The namespace of a cluster (a cluster of the lab is a namespace for tenancy)."""
    return dns_label(cluster_name(cluster_ref))


def family_revision(ref):
    """(family, revision or None) of "family", "family:3" or a task definition ARN."""
    name = last_part(ref)
    family, _, revision = name.partition(":")
    return family, int(revision) if revision.isdigit() else None


def app_label(service_name=None, family=None):
    """The ``app`` label: the service's name for its tasks, else the task definition's family."""
    return dns_label(service_name or family or "task")


def pod_template_hash(deployment_id):
    """A ReplicaSet's pod-template-hash from an ECS deployment id (ecs-svc/… → its last digits)."""
    digits = re.sub(r"\D", "", str(deployment_id))
    return (digits[-10:] or "0").lower()


def replica_set_name(service_name, deployment_id):
    """The ReplicaSet that stands for one ECS deployment of a service."""
    return f"{dns_label(service_name, 52)}-{pod_template_hash(deployment_id)}"


def pod_name(task_id, service_name=None, deployment_id=None, family=None):
    """A task's Pod name: <replicaset>-<5 chars> for a service's task, else <family>-<task id>."""
    if service_name and deployment_id:
        return f"{replica_set_name(service_name, deployment_id)}-{str(task_id)[:5]}"
    return f"{dns_label(family or 'task', 30)}-{str(task_id)}"


def pod_template_name(family, revision):
    """The PodTemplate of one task definition revision."""
    return f"{dns_label(family, 50)}-{revision}"


def object_uid(arn):
    """A stable metadata.uid for an ECS object (a UUID derived from its ARN)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, str(arn)))


# --- Quantities --------------------------------------------------------------------------

def cpu_quantity(units):
    """ECS CPU units as a Kubernetes CPU quantity: 1024 units are one CPU (256 → "250m")."""
    millis = round(int(units) * 1000 / 1024)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(mib):
    """MiB as a Kubernetes memory quantity (512 → "512Mi")."""
    return f"{int(mib)}Mi"


# --- kubectl and the aws CLI beside each ECS call ------------------------------------------

# Parameters that may be kept from a request to show it again: names, counts, flags. Never
# environment, secrets, overrides or container definitions (they may hold secret values).
SAFE_PARAMS = (
    "cluster", "clusterName", "service", "serviceName", "taskDefinition", "family", "desiredCount",
    "count", "task", "tasks", "services", "clusters", "launchType", "forceNewDeployment", "force",
    "startedBy", "group", "desiredStatus", "status", "familyPrefix", "resourceArn", "cpu", "memory",
    "networkMode", "containerInstances",
)
_MAX_SAFE_STRING = 256
_MAX_SAFE_LIST = 10


def request_summary(params):
    """The safe part of an ECS request (see SAFE_PARAMS): short scalars and short lists of them."""
    summary = {}
    for name in SAFE_PARAMS:
        value = (params or {}).get(name) if isinstance(params, dict) else None
        if isinstance(value, bool) or isinstance(value, int):
            summary[name] = value
        elif isinstance(value, str):
            summary[name] = value[:_MAX_SAFE_STRING]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            summary[name] = [v[:_MAX_SAFE_STRING] for v in value[:_MAX_SAFE_LIST]]
    return summary


def containers_of(container_definitions):
    """(name, image) of each container definition: what kubectl commands name, nothing else."""
    return [
        {"name": str(c.get("name", ""))[:255], "image": str(c.get("image", ""))[:1024]}
        for c in container_definitions or [] if isinstance(c, dict)
    ]


def _kebab(name):
    """An operation or parameter name as the aws CLI spells it: RunTask → run-task."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def aws_cli_for(operation, params, service="ecs"):
    """The aws CLI form of a call, from its (safe) parameters: aws ecs update-service --cluster …"""
    words = ["aws", service, _kebab(operation)]
    for name, value in (params or {}).items():
        flag = "--" + _kebab(name)
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + _kebab(name))
        elif isinstance(value, (int, str)):
            words += [flag, shlex.quote(str(value))]
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            words += [flag, *(shlex.quote(v) for v in value)]
    return " ".join(words)


def _ns(params):
    return f"-n {shlex.quote(namespace_of(params.get('cluster') or params.get('clusterName')))}"


def _images(known, fallback):
    """--image flags for the containers of a task definition (a placeholder when unknown)."""
    containers = (known or {}).get("containers") or [{"name": fallback, "image": "<image>"}]
    return " ".join(f"--image={shlex.quote(c['image'])}" for c in containers)


def _deployment(params):
    return "deployment/" + app_label(last_part(params.get("service") or params.get("serviceName")))


def _run_task(params, known):
    family, _ = family_revision(params.get("taskDefinition"))
    count = params.get("count") or 1
    containers = (known or {}).get("containers") or []
    if count == 1 and len(containers) == 1:
        image = shlex.quote(containers[0]["image"])
        return f"kubectl run {app_label(family=family)} --image={image} --restart=Never {_ns(params)}"
    return f"kubectl apply -f pod.yaml {_ns(params)}" + (f"  # {count} Pods" if count > 1 else "")


def _stop_task(params, known):
    pod = (known or {}).get("pod") or last_part(params.get("task"))
    return f"kubectl delete pod {shlex.quote(pod)} {_ns(params)}"


def _describe_tasks(params, known):
    pod = (known or {}).get("pod")
    return f"kubectl get pod {shlex.quote(pod)} -o yaml {_ns(params)}" if pod else f"kubectl get pods -o yaml {_ns(params)}"


def _create_service(params, known):
    name = app_label(params.get("serviceName"))
    family, _ = family_revision(params.get("taskDefinition"))
    replicas = params.get("desiredCount")
    scale = f" --replicas={replicas}" if isinstance(replicas, int) else ""
    return f"kubectl create deployment {name} {_images(known, family)}{scale} {_ns(params)}"


def _update_service(params, known):
    commands = []
    if params.get("taskDefinition"):
        containers = (known or {}).get("containers") or []
        pairs = " ".join(f"{dns_label(c['name'])}={shlex.quote(c['image'])}" for c in containers)
        commands.append(f"kubectl set image {_deployment(params)} {pairs or '<container>=<image>'} {_ns(params)}")
    elif params.get("forceNewDeployment"):
        commands.append(f"kubectl rollout restart {_deployment(params)} {_ns(params)}")
    if isinstance(params.get("desiredCount"), int):
        commands.append(f"kubectl scale {_deployment(params)} --replicas={params['desiredCount']} {_ns(params)}")
    return " && ".join(commands) or f"kubectl apply -f deployment.yaml {_ns(params)}"


def _list_tasks(params, known):
    service = params.get("serviceName")
    selector = f" -l app={app_label(last_part(service))}" if service else ""
    return f"kubectl get pods{selector} {_ns(params)}"


def _template(params):
    family, revision = family_revision(params.get("taskDefinition") or params.get("family"))
    return pod_template_name(family, revision) if revision else f"-l app={app_label(family=family)}"


_KUBECTL = {
    "CreateCluster": lambda p, k: f"kubectl create namespace {namespace_of(p.get('clusterName'))}",
    "DeleteCluster": lambda p, k: f"kubectl delete namespace {namespace_of(p.get('cluster'))}",
    "DescribeClusters": lambda p, k: "kubectl get namespace " + " ".join(namespace_of(c) for c in p.get("clusters") or ["default"]),
    "ListClusters": lambda p, k: "kubectl get namespaces",
    "RegisterTaskDefinition": lambda p, k: "kubectl apply -f podtemplate.yaml  # PodTemplate "
                                            + dns_label(p.get("family") or "task"),
    "DeregisterTaskDefinition": lambda p, k: f"kubectl delete podtemplate {_template(p)}",
    "DescribeTaskDefinition": lambda p, k: f"kubectl get podtemplate {_template(p)} -o yaml",
    "ListTaskDefinitions": lambda p, k: "kubectl get podtemplates",
    "ListTaskDefinitionFamilies": lambda p, k: "kubectl get podtemplates",
    "RunTask": _run_task,
    "StopTask": _stop_task,
    "DescribeTasks": _describe_tasks,
    "ListTasks": _list_tasks,
    "CreateService": _create_service,
    "UpdateService": _update_service,
    "DeleteService": lambda p, k: f"kubectl delete {_deployment(p)} {_ns(p)}",
    "DescribeServices": lambda p, k: "kubectl get deployment "
                                     + " ".join(app_label(last_part(s)) for s in p.get("services") or [])
                                     + f" -o yaml {_ns(p)}",
    "ListServices": lambda p, k: f"kubectl get deployments {_ns(p)}",
    "ListContainerInstances": lambda p, k: "kubectl get nodes",
    "DescribeContainerInstances": lambda p, k: "kubectl describe nodes",
    "TagResource": lambda p, k: "kubectl label …  # tags are labels",
    "UntagResource": lambda p, k: "kubectl label … key-  # tags are labels",
    "ListTagsForResource": lambda p, k: "kubectl get … --show-labels",
}


def kubectl_for(operation, params, known=None):
    """The kubectl command that does what an ECS call does ("" when Kubernetes has none).

    ``params`` are the call's safe parameters (``request_summary``); ``known`` may add what the
    lab looked up for it: the task definition's ``containers`` (name, image) and a task's ``pod``.
    """
    build = _KUBECTL.get(operation)
    return build(params or {}, known or {}) if build else ""
