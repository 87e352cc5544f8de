"""Service discovery: the names a service's tasks are found by (a Kubernetes Service's DNS name
and its Endpoints), from ECS ``serviceRegistries`` and Service Connect.

Two halves, as on AWS:
1. **Cloud Map instances.** A task of a service with registries is registered as an instance
   (its task id, ``AWS_INSTANCE_IPV4``, the port and ECS's attributes) in each Cloud Map
   service once RUNNING, and deregistered as it starts to stop (``register_task``,
   ``deregister_task``, called by the agent). DiscoverInstances and ListInstances read them.
2. **DNS.** The names are Docker network aliases of the task's container on its cluster
   network (``aliases_for``, given to the container when it is created): Docker's embedded DNS
   on a user-defined network answers them for every container on that network, with the
   address of each running container that carries them (so every task of the service, MULTIVALUE),
   and stops answering for a container as soon as it stops. Cluster networks are per account
   and cluster (``agent.network_name``): another account's tasks are on other networks and
   neither resolve nor reach the names. An embedded resolver was the other choice; aliases need
   no server of the lab's on the task's path and no DNS setting in the container.

What this does not do: Docker answers for a container whose health checks fail (the Cloud Map
instance says UNHEALTHY and DiscoverInstances leaves it out, but the alias still resolves), and
Service Connect has no Envoy proxy: a client alias's port is the container's own port.
"""
import re
from typing import NamedTuple

from django.db import IntegrityError, transaction

from orchestrator.models import DiscoveryInstance, DiscoveryService, Namespace, acting_in, region

_REGISTRY_ARN_RE = re.compile(r"arn:aws:servicediscovery:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):service/(?P<id>.+)")


def _container_port(definition, port_name=None):
    """The containerPort of the definition's port mapping (named ``port_name``, else its first)."""
    for mapping in definition.get("portMappings") or []:
        if port_name is None or mapping.get("name") == port_name:
            return mapping.get("containerPort")
    return None


def registry_service(account, arn):
    """The Cloud Map service a registryArn names in ``account`` (in the region the ARN names), or None."""
    match = _REGISTRY_ARN_RE.fullmatch(arn)
    if match is None or match["account"] != account.account_id:
        return None
    return DiscoveryService.objects.filter(service_id=match["id"], namespace__account=account,
                                           namespace__region=match["region"]).select_related(
        "namespace__account").first()


def find_namespace(account, ref):
    """The account's namespace a name, id or ARN names, or None."""
    rows = Namespace.objects.filter(account=account, region=region()).select_related("account")
    if ref.startswith("arn:"):
        return next((n for n in rows.filter(namespace_id=ref.rpartition("/")[2]) if n.arn == ref), None)
    return rows.filter(name=ref).first() or rows.filter(namespace_id=ref).first()


class Registration(NamedTuple):
    """One Cloud Map service a service's tasks register in, and how."""

    registry: DiscoveryService
    container: str  # the container whose address is registered and carries the names
    port: int
    names: list  # the DNS names it answers on the cluster network
    kind: str  # "service registry" or "Service Connect"


def registrations(service):
    """The Registrations of a service's serviceRegistries and Service Connect services."""
    connect = service.service_connect_configuration or {}
    if not service.service_registries and not connect.get("enabled"):
        return []  # most services: no query for the task definition on every task's report
    definitions = service.task_definition.container_definitions
    first = next((c for c in definitions if c.get("portMappings")), definitions[0] if definitions else {})
    found = []
    for entry in service.service_registries or []:
        registry = registry_service(service.account, entry.get("registryArn", ""))
        if registry is None:
            continue
        name = entry.get("containerName") or first.get("name")
        definition = next((c for c in definitions if c.get("name") == name), {})
        port = entry.get("containerPort") or entry.get("port") or _container_port(definition)
        found.append(Registration(registry, name, port, [registry.dns_name] if registry.dns_config else [],
                                  "service registry"))
    namespace = None
    if connect.get("enabled"):
        with acting_in(service.cluster.region):
            namespace = find_namespace(service.account, connect["namespace"])
    if namespace is not None:
        for entry in connect.get("services") or []:
            discovery = DiscoveryService.objects.filter(
                namespace=namespace, name=entry.get("discoveryName") or entry["portName"]).first()
            definition = next((c for c in definitions if _container_port(c, entry["portName"]) is not None), {})
            if discovery is None or not definition:
                continue
            names = [alias.get("dnsName") or f"{discovery.name}.{namespace.name}"
                     for alias in entry.get("clientAliases") or []]
            found.append(Registration(discovery, definition["name"], _container_port(definition, entry["portName"]),
                                      names, "Service Connect"))
    return found


def aliases_for(task, container_name):
    """The DNS names ``container_name`` of ``task`` answers on its cluster network."""
    if task.service_id is None:
        return []
    names = []
    for registration in registrations(task.service):
        if registration.container == container_name:
            names += [n for n in registration.names if n not in names]
    return names


def instance_attributes(task, port):
    """The attributes ECS gives a task's Cloud Map instance."""
    attributes = {
        "AWS_INSTANCE_IPV4": task.private_ip, "AWS_INIT_HEALTH_STATUS": "HEALTHY",
        "AVAILABILITY_ZONE": f"{task.cluster.region}a", "REGION": task.cluster.region,
        "ECS_CLUSTER_NAME": task.cluster.name,
        "ECS_SERVICE_NAME": task.service.name, "ECS_TASK_DEFINITION_FAMILY": task.task_definition.family,
    }
    if port:
        attributes["AWS_INSTANCE_PORT"] = str(port)
    return attributes


def register_task(task):
    """Register a RUNNING task (its private IP known) in its service's Cloud Map services;
    returns the Cloud Map services it was registered in."""
    if task.service_id is None or not task.private_ip:
        return []
    done = []
    for registry, _, port, _, _ in registrations(task.service):
        try:
            with transaction.atomic():
                DiscoveryInstance.objects.update_or_create(
                    service=registry, instance_id=task.task_id,
                    defaults={"task": task, "attributes": instance_attributes(task, port)})
        except IntegrityError:  # the Cloud Map service was deleted meanwhile: nothing to register in
            continue
        done.append(registry)
    return done


def deregister_task(task):
    """Deregister a task that is stopping from every Cloud Map service; how many instances went."""
    rows = DiscoveryInstance.objects.filter(task_id=task.pk)
    if not rows.exists():  # most tasks have none: no write (SQLite has one writer at a time)
        return 0
    deleted, _ = rows.delete()
    return deleted
