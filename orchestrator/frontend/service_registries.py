"""A service's discovery in ECS: ``serviceRegistries`` (Cloud Map services its tasks register
in), ``serviceConnectConfiguration`` (Service Connect: a namespace and client aliases) and
ListServicesByNamespace. The tasks' registration and their DNS names are
``orchestrator.service_discovery``'s.

The lab has no Service Connect proxy (Envoy): a client alias answers at the container's own
port, so an alias on another port, ``ingressPortOverride``, ``timeout``, ``tls`` and the proxy's
log configurations are refused rather than ignored.
"""
import re

from orchestrator import service_discovery
from orchestrator.frontend import EcsError
from orchestrator.frontend.json_service import ServiceError
from orchestrator.frontend.operations import _page, _paged_response, operation
from orchestrator.frontend.servicediscovery import operations as cloud_map
from orchestrator.models import Service, region

NO_PROXY = "Fargate Lab runs no Service Connect proxy (Envoy): its client aliases are DNS names of the tasks"
_DNS_NAME = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,126}")


def invalid(message):
    return EcsError("InvalidParameterException", message)


def _port_names(td):
    """{portName: (container name, containerPort)} of a task definition's named port mappings."""
    return {m["name"]: (c.get("name"), m.get("containerPort")) for c in td.container_definitions
            for m in c.get("portMappings") or [] if m.get("name")}


def check_registries(ctx, entries, td):
    """A service's serviceRegistries as stored: at most one, naming a Cloud Map service of the
    account, with a container and port of the task definition when given."""
    if len(entries) > 1:
        raise invalid("A service can be associated with one service registry only.")
    containers = {c.get("name"): c for c in td.container_definitions}
    for entry in entries:
        arn = entry.get("registryArn") or ""
        if service_discovery.registry_service(ctx.account, arn) is None:
            raise invalid(f"The service registry {arn[:512] or '(no registryArn)'} does not exist: give the ARN "
                          "of a Cloud Map service of this account.")
        name, port = entry.get("containerName"), entry.get("containerPort")
        if port is not None and name is None:
            raise invalid("containerPort of a service registry needs its containerName.")
        if name is not None:
            if name not in containers:
                raise invalid(f"The container {name[:255]} does not exist in the task definition.")
            if port is not None and port not in [p.get("containerPort") for p in
                                                 containers[name].get("portMappings") or []]:
                raise invalid(f"The container {name} did not have a container port {port} defined.")
    return [dict(entry) for entry in entries]


def _namespace_for(ctx, given, cluster):
    """The Cloud Map namespace Service Connect uses: the one given, else the cluster's default
    (created as an HTTP namespace if missing, as ECS creates it)."""
    ref = given or (cluster.service_connect_defaults or {}).get("namespace")
    if not ref:
        raise invalid("Service Connect needs a namespace: give serviceConnectConfiguration.namespace or set the "
                      "cluster's serviceConnectDefaults.")
    namespace = service_discovery.find_namespace(ctx.account, ref)
    if namespace is None and not given and not ref.startswith("arn:"):
        try:
            cloud_map.create_http_namespace(ctx.account, {"Name": ref}, ctx.caller)
        except ServiceError as exc:
            raise invalid(f"The cluster's serviceConnectDefaults namespace {ref[:256]}: {exc.message}") from None
        namespace = service_discovery.find_namespace(ctx.account, ref)
    if namespace is None:
        raise EcsError("NamespaceNotFoundException", f"Namespace {ref[:256]} was not found.")
    return ref, namespace


def _check_connect_service(entry, ports, namespace):
    """One Service Connect service as stored (see the module docstring for what is refused)."""
    for member in ("ingressPortOverride", "timeout", "tls"):
        if entry.get(member) is not None:
            raise invalid(f"{NO_PROXY}; serviceConnectConfiguration.services.{member} is not supported.")
    port_name = entry["portName"]
    if port_name not in ports:
        raise invalid(f"The portName {port_name[:64]} does not name a port mapping of the task definition "
                      f"(named ports: {', '.join(sorted(ports)) or 'none'}).")
    discovery = entry.get("discoveryName") or port_name
    try:
        cloud_map.check_service_name(discovery)
    except ServiceError as exc:
        raise invalid(f"discoveryName: {exc.message}") from None
    aliases = entry.get("clientAliases") or []
    if len(aliases) > 1:
        raise invalid("A Service Connect service can have one client alias.")
    for alias in aliases:
        container_port = ports[port_name][1]
        if not 1 <= alias["port"] <= 65535:
            raise invalid("clientAliases.port must be between 1 and 65535.")
        if alias["port"] != container_port:
            raise invalid(f"{NO_PROXY}, which answer at the container's port: clientAliases.port must be "
                          f"{container_port}, the containerPort of {port_name}, not {alias['port']}.")
        if alias.get("testTrafficRules"):
            raise invalid(f"{NO_PROXY}; clientAliases.testTrafficRules are not supported.")
        dns_name = alias.get("dnsName") or f"{discovery}.{namespace.name}"
        if not _DNS_NAME.fullmatch(dns_name):
            raise invalid(f"clientAliases.dnsName {dns_name[:127]!r} is not valid: up to 127 lowercase letters, "
                          "digits, underscores, hyphens and periods, not starting with a hyphen.")
    return {**entry, "discoveryName": discovery}


def check_service_connect(ctx, config, td, cluster):
    """A service's serviceConnectConfiguration as stored ({} without one)."""
    if config is None:
        return {}
    for member in ("logConfiguration", "accessLogConfiguration"):
        if config.get(member):
            raise invalid(f"{NO_PROXY}; serviceConnectConfiguration.{member} (the proxy's logs) is not supported.")
    if not config["enabled"]:
        return {"enabled": False}
    ref, namespace = _namespace_for(ctx, config.get("namespace"), cluster)
    ports = _port_names(td)
    services = [_check_connect_service(entry, ports, namespace) for entry in config.get("services") or []]
    return {"enabled": True, "namespace": ref, "services": services}


def prepare(ctx, service):
    """Create the Cloud Map services Service Connect registers a service's tasks in (one per
    discoveryName of its namespace), as ECS does."""
    connect = service.service_connect_configuration or {}
    if not connect.get("enabled"):
        return
    namespace = service_discovery.find_namespace(ctx.account, connect["namespace"])
    for entry in connect.get("services") or []:
        if not namespace.services.filter(name=entry["discoveryName"]).exists():
            try:
                cloud_map.create_discovery_service(ctx.account, namespace, entry["discoveryName"],
                                                   description=f"Service Connect of ECS service {service.name}")
            except ServiceError as exc:
                raise invalid(f"Cloud Map service {entry['discoveryName']}: {exc.message}") from None


def check_discovery(ctx, params, td, cluster, service=None):
    """The Service fields of a Create/UpdateService's serviceRegistries and Service Connect
    (those the request gives, and those to check again against a new task definition)."""
    fields = {}
    registries = params.get("serviceRegistries", service.service_registries if service else [])
    if "serviceRegistries" in params or registries:
        fields["service_registries"] = check_registries(ctx, registries, td)
    if "serviceConnectConfiguration" in params:
        fields["service_connect_configuration"] = check_service_connect(
            ctx, params["serviceConnectConfiguration"], td, cluster)
    elif service is not None and (service.service_connect_configuration or {}).get("enabled"):
        fields["service_connect_configuration"] = check_service_connect(
            ctx, service.service_connect_configuration, td, cluster)
    return fields


def connect_resources(service):
    """A deployment's serviceConnectResources: the Cloud Map services its tasks register in."""
    connect = service.service_connect_configuration or {}
    namespace = service_discovery.find_namespace(service.account, connect["namespace"]) \
        if connect.get("enabled") else None
    if namespace is None:
        return []
    found = {s.name: s for s in namespace.services.all()}
    return [{"discoveryName": e["discoveryName"], "discoveryArn": found[e["discoveryName"]].arn}
            for e in connect.get("services") or [] if e["discoveryName"] in found]


def _uses(service, namespace):
    """Whether a service's Service Connect or registries are in ``namespace``."""
    connect = service.service_connect_configuration or {}
    if connect.get("enabled") and connect.get("namespace") in (namespace.name, namespace.arn, namespace.namespace_id):
        return True
    return any(r is not None and r.namespace_id == namespace.pk for r in (
        service_discovery.registry_service(service.account, e.get("registryArn", ""))
        for e in service.service_registries or []))


@operation("ListServicesByNamespace")
def list_services_by_namespace(ctx, params):
    """ARNs of the account's services (in any cluster) whose Service Connect or service registry
    is in a Cloud Map namespace."""
    namespace = service_discovery.find_namespace(ctx.account, params["namespace"])
    if namespace is None or namespace.region != region():
        raise EcsError("NamespaceNotFoundException", f"Namespace {params['namespace'][:256]} was not found.")
    rows = [s for s in Service.objects.filter(account=ctx.account).exclude(status=Service.INACTIVE)
            .select_related("account", "cluster").order_by("pk") if _uses(s, namespace)]
    items, token = _page(rows, params, lambda s: s.arn)
    return _paged_response("serviceArns", items, token)

