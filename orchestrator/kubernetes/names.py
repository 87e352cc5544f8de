"""The one naming table of the Kubernetes twins: what each ECS object is called in Kubernetes,
its name, namespace and labels there, quantities, timestamps, the metadata every manifest
carries, and YAML."""
import re
import uuid
from datetime import datetime, timezone

import yaml

from orchestrator.frontend import wire

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
    return family, wire.ascii_int(revision, max_digits=9)


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


def timestamp(epoch):
    """An epoch-seconds time (as the ECS API sends it) in Kubernetes' RFC 3339 form, or None."""
    if epoch is None:
        return None
    if isinstance(epoch, datetime):
        value = epoch.astimezone(timezone.utc)
    else:
        value = datetime.fromtimestamp(float(epoch), timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def compact(data):
    """Drop members that are None, empty lists or empty dicts, as kubectl omits unset fields."""
    return {k: v for k, v in data.items() if v is not None and v != [] and v != {}}


def metadata(name, namespace=None, arn=None, labels=None, annotations=None, **extra):
    """An object's metadata, with the ECS ARN it stands for as an annotation and its uid."""
    notes = dict(annotations or {})
    if arn:
        notes = {ANNOTATION_ARN: arn, **notes}
    return compact({
        "name": name, "namespace": namespace, "uid": object_uid(arn) if arn else None,
        "labels": labels or None, "annotations": notes or None, **extra,
    })


def owner(kind, api_version, name, arn):
    """An ownerReference to the controller object ``name`` (its uid derived from ``arn``)."""
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": object_uid(arn),
            "controller": True, "blockOwnerDeletion": True}


def condition(kind, true, reason=None, message=None):
    """One entry of a status' conditions."""
    return compact({"type": kind, "status": "True" if true else "False", "reason": reason, "message": message})


def to_yaml(manifests):
    """Manifests as YAML (several as one multi-document stream, as kubectl apply -f takes)."""
    if isinstance(manifests, dict):
        manifests = [manifests]
    # libyaml's emitter where PyYAML has it: the same YAML, ten times quicker (a service page's twin).
    return yaml.dump_all(manifests, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, allow_unicode=True,
                         explicit_start=len(manifests) > 1)


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
