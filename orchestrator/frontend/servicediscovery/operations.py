"""AWS Cloud Map's operations, one function each, named as in the API reference.

Namespaces, services and instances belong to one account in one region. A private DNS
namespace's service names resolve inside the account's cluster networks (``web.lab.local``:
see ``orchestrator.service_discovery``); an HTTP namespace's are found through DiscoverInstances
only. On AWS, creating a namespace and registering an instance are asynchronous operations
that GetOperation follows; the lab completes each at once, so GetOperation answers SUCCESS.
"""
import re
import secrets as random_source
import string
from datetime import datetime, timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestrator.frontend.json_service import ServiceError, page
from orchestrator.models import DiscoveryInstance, DiscoveryOperation, DiscoveryService, Namespace, region

SAFE_PARAMS = ("Name", "Id", "NamespaceId", "ServiceId", "InstanceId", "OperationId", "NamespaceName",
               "ServiceName", "HealthStatus", "MaxResults", "Type")
MAX_NAMESPACES = 50
MAX_SERVICES = 1000
MAX_INSTANCES = 1000
MAX_ATTRIBUTES = 30
MAX_TAGS = 200
DEFAULT_SOA_TTL = 15
# The DNS record types the lab's names answer: Docker's embedded DNS gives A records for aliases.
RECORD_TYPES = ("A",)
_ID_CHARS = string.ascii_lowercase + string.digits
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_HTTP_NAME = re.compile(r"[!-~]{1,1024}")
_INSTANCE_ID = re.compile(r"[0-9a-zA-Z_/:.@-]+")
_ATTR_KEY = re.compile(r"[!-~]{1,255}")
_ATTR_VALUE = re.compile(r"([!-~][ \t!-~]*)?[!-~]?")
_VPC = re.compile(r"vpc-[0-9a-z]{1,32}")


def invalid(message):
    return ServiceError("InvalidInput", message)


def _new_id(prefix, length=16):
    return prefix + "".join(random_source.choice(_ID_CHARS) for _ in range(length))


def _operation(account, kind, **targets):
    """Record one operation, done at once, and return its id (what the Create/Register call answers)."""
    operation_id = f"{_new_id('', 32)}-{_new_id('', 8)}"
    DiscoveryOperation.objects.create(account=account, region=region(), operation_id=operation_id, type=kind,
                                      targets={k.upper(): v for k, v in targets.items()})
    return operation_id


def _namespaces(account):
    return Namespace.objects.filter(account=account, region=region()).select_related("account")


def _services(account):
    return DiscoveryService.objects.filter(namespace__account=account, namespace__region=region()).select_related(
        "namespace__account")


def get_namespace_of(account, namespace_id):
    """The account's namespace of that id (or ARN), else NamespaceNotFound."""
    found = _namespaces(account).filter(namespace_id=namespace_id.rpartition("/")[2]).first()
    if found is None or (namespace_id.startswith("arn:") and found.arn != namespace_id):
        raise ServiceError("NamespaceNotFound", f"Namespace not found: {namespace_id[:256]}")
    return found


def get_service_of(account, service_id):
    """The account's service of that id (or ARN), else ServiceNotFound."""
    found = _services(account).filter(service_id=service_id.rpartition("/")[2]).first()
    if found is None or (service_id.startswith("arn:") and found.arn != service_id):
        raise ServiceError("ServiceNotFound", f"Service not found: {service_id[:256]}")
    return found


def check_dns_name(name, what):
    """Raise InvalidInput unless ``name`` is a DNS name (labels of letters, digits, - and _)."""
    labels = name.removesuffix(".").split(".")
    if len(name) > 253 or name.startswith("arn:") or not all(_LABEL.fullmatch(label) for label in labels):
        raise invalid(f"{what} {name[:256]!r} is not a valid DNS name: labels of 1-63 letters, digits, hyphens "
                      "and underscores, separated by dots, at most 253 characters.")


def _check_tags(tags):
    if len(tags) > MAX_TAGS:
        raise ServiceError("TooManyTagsException", f"A resource can have at most {MAX_TAGS} tags.")
    return [{"Key": t["Key"], "Value": t["Value"]} for t in tags]


def _create_namespace(account, params, kind, **fields):
    """Create a namespace of ``kind`` (once per CreatorRequestId) and answer its OperationId."""
    name, request_id = params["Name"], params.get("CreatorRequestId", "")
    tags = _check_tags(params.get("Tags") or [])
    with transaction.atomic():
        existing = _namespaces(account).filter(name=name).first()
        if existing is not None:
            if request_id and existing.creator_request_id == request_id and existing.type == kind:
                earlier = DiscoveryOperation.objects.filter(account=account, type="CREATE_NAMESPACE",
                                                            targets__NAMESPACE=existing.namespace_id).first()
                if earlier is not None:
                    return {"OperationId": earlier.operation_id}
            raise ServiceError("NamespaceAlreadyExists", f"Namespace {name[:256]} already exists.",
                               CreatorRequestId=existing.creator_request_id, NamespaceId=existing.namespace_id)
        if _namespaces(account).count() >= MAX_NAMESPACES:
            raise ServiceError("ResourceLimitExceeded", f"An account can have at most {MAX_NAMESPACES} namespaces "
                                                        "per region.")
        try:
            namespace = Namespace.objects.create(
                account=account, region=region(), namespace_id=_new_id("ns-"), name=name, type=kind,
                description=params.get("Description", ""), creator_request_id=request_id, tags=tags, **fields)
        except IntegrityError:
            raise ServiceError("NamespaceAlreadyExists", f"Namespace {name[:256]} already exists.") from None
        return {"OperationId": _operation(account, "CREATE_NAMESPACE", namespace=namespace.namespace_id)}


def create_private_dns_namespace(account, params, caller):
    check_dns_name(params["Name"], "Namespace name")
    if not _VPC.fullmatch(params["Vpc"]):
        raise invalid(f"Vpc {params['Vpc'][:64]!r} is not a VPC id (vpc-…). Fargate Lab's VPC is each cluster's "
                      "network; any VPC id names them all.")
    soa = ((params.get("Properties") or {}).get("DnsProperties") or {}).get("SOA") or {}
    return _create_namespace(account, params, Namespace.DNS_PRIVATE, vpc=params["Vpc"],
                             soa_ttl=soa.get("TTL", DEFAULT_SOA_TTL))


def create_http_namespace(account, params, caller):
    name = params["Name"]
    if not _HTTP_NAME.fullmatch(name) or name.startswith("arn:"):
        raise invalid(f"Namespace name {name[:256]!r} is not valid: 1-1024 printable ASCII characters without "
                      "spaces, not starting with arn:.")
    return _create_namespace(account, params, Namespace.HTTP)


def namespace_shape(namespace, summary=False):
    properties = {"HttpProperties": {"HttpName": namespace.name}}
    if namespace.is_dns:
        properties["DnsProperties"] = {"HostedZoneId": "Z" + namespace.namespace_id[3:].upper(),
                                       "SOA": {"TTL": namespace.soa_ttl or DEFAULT_SOA_TTL}}
    shape = {"Id": namespace.namespace_id, "Arn": namespace.arn, "Name": namespace.name, "Type": namespace.type,
             "ServiceCount": namespace.services.count(), "Properties": properties,
             "CreateDate": namespace.created_at, "ResourceOwner": namespace.account.account_id}
    if namespace.description:
        shape["Description"] = namespace.description
    if namespace.creator_request_id and not summary:
        shape["CreatorRequestId"] = namespace.creator_request_id
    return shape


def get_namespace(account, params, caller):
    return {"Namespace": namespace_shape(get_namespace_of(account, params["Id"]))}


def _check_condition(spec, allowed):
    """The filter's condition (EQ by default), refused unless ``allowed`` for its name; and
    its values, as many as the condition takes."""
    condition = spec.get("Condition") or "EQ"
    if condition not in allowed:
        raise invalid(f"Filter {spec['Name']} does not support condition {condition}: use {' or '.join(allowed)}.")
    values = spec["Values"]
    wanted = {"EQ": (1, 1), "BEGINS_WITH": (1, 1), "IN": (1, 10), "BETWEEN": (2, 2)}[condition]
    if not wanted[0] <= len(values) <= wanted[1]:
        raise invalid(f"Filter {spec['Name']} with condition {condition} takes "
                      f"{wanted[0] if wanted[0] == wanted[1] else f'{wanted[0]}-{wanted[1]}'} value(s).")
    return condition, values


def _matches(value, condition, values):
    if condition == "BEGINS_WITH":
        return value.startswith(values[0])
    return value in values


def _listed(rows, params, key, shape):
    """One page of ``rows`` as the List call answers it (under ``key``)."""
    shown, token = page(rows, params, 100, 100, invalid("The NextToken is not valid."))
    answer = {key: [shape(row) for row in shown]}
    if token:
        answer["NextToken"] = token
    return answer


def _owner_filter(account, values):
    """RESOURCE_OWNER: SELF or OTHER_ACCOUNTS (the lab shares nothing between accounts)."""
    bad = [v for v in values if v not in ("SELF", "OTHER_ACCOUNTS")]
    if bad:
        raise invalid(f"RESOURCE_OWNER takes SELF or OTHER_ACCOUNTS, not {bad[0][:64]!r}.")
    return "SELF" in values


def list_namespaces(account, params, caller):
    rows = list(_namespaces(account))
    for spec in params.get("Filters") or []:
        name = spec["Name"]
        condition, values = _check_condition(spec, {"TYPE": ("EQ", "IN"), "NAME": ("EQ", "BEGINS_WITH"),
                                                    "HTTP_NAME": ("EQ", "BEGINS_WITH"),
                                                    "RESOURCE_OWNER": ("EQ",)}.get(name, ("EQ",)))
        if name == "RESOURCE_OWNER":
            rows = rows if _owner_filter(account, values) else []
        elif name == "TYPE":
            rows = [n for n in rows if _matches(n.type, condition, values)]
        else:
            rows = [n for n in rows if _matches(n.name, condition, values)]
    return _listed(rows, params, "Namespaces", lambda n: namespace_shape(n, summary=True))


def delete_namespace(account, params, caller):
    with transaction.atomic():
        namespace = get_namespace_of(account, params["Id"])
        if namespace.services.exists():
            raise ServiceError("ResourceInUse", f"Namespace {namespace.namespace_id} still has services: delete "
                                                "them first.")
        users = namespace_users(namespace)
        if users:
            raise ServiceError("ResourceInUse", f"Namespace {namespace.namespace_id} is used by ECS "
                                                f"{users[0]}: remove it from there first.")
        namespace_id = namespace.namespace_id
        namespace.delete()
        return {"OperationId": _operation(account, "DELETE_NAMESPACE", namespace=namespace_id)}


def namespace_users(namespace):
    """What of ECS names ``namespace`` (a cluster's serviceConnectDefaults, a live service's Service
    Connect configuration), in words."""
    from orchestrator.models import Cluster, Service

    names = (namespace.name, namespace.arn, namespace.namespace_id)
    users = [f"cluster {c.name}" for c in Cluster.objects.filter(account=namespace.account, region=namespace.region,
                                                                 status=Cluster.ACTIVE)
             if (c.service_connect_defaults or {}).get("namespace") in names]
    users += [f"service {s.name}" for s in Service.objects.filter(account=namespace.account,
                                                                  cluster__region=namespace.region)
              .exclude(status=Service.INACTIVE) if (s.service_connect_configuration or {}).get("namespace") in names]
    return users


def _check_dns_config(config, namespace):
    """The service's DnsConfig as stored, or InvalidInput for one the lab's DNS cannot answer."""
    if not namespace.is_dns:
        raise invalid("DnsConfig is for services in a DNS namespace; an HTTP namespace's instances are found "
                      "with DiscoverInstances.")
    records = config["DnsRecords"]
    if not records:
        raise invalid("DnsConfig.DnsRecords must name at least one record.")
    for record in records:
        if record["Type"] not in RECORD_TYPES:
            raise invalid(f"DNS record type {record['Type']} is not supported by Fargate Lab: its names are Docker "
                          "network aliases, which answer A records only.")
    policy = config.get("RoutingPolicy") or "MULTIVALUE"
    if policy != "MULTIVALUE":
        raise invalid(f"RoutingPolicy {policy} is not supported by Fargate Lab: Docker's DNS answers every address "
                      "of a name (MULTIVALUE).")
    return {"NamespaceId": namespace.namespace_id, "RoutingPolicy": policy,
            "DnsRecords": [{"Type": r["Type"], "TTL": r["TTL"]} for r in records]}


def check_service_name(name):
    labels = name.split(".")
    if name != "." and (len(name) > 127 or not all(_LABEL.fullmatch(label) for label in labels)):
        raise invalid(f"Service name {name[:256]!r} is not valid: labels of 1-63 letters, digits, hyphens and "
                      "underscores, separated by dots, at most 127 characters.")


def create_discovery_service(account, namespace, name, *, dns_config=None, description="", request_id="",
                             custom_health=None, tags=()):
    """Create a Cloud Map service (CreateService, or ECS Service Connect's own)."""
    if _services(account).filter(namespace=namespace).count() >= MAX_SERVICES:
        raise ServiceError("ResourceLimitExceeded", f"A namespace can have at most {MAX_SERVICES} services.")
    kind = "DNS_HTTP" if dns_config else "HTTP"
    return DiscoveryService.objects.create(
        namespace=namespace, service_id=_new_id("srv-"), name=name, type=kind, description=description,
        dns_config=dns_config or {}, health_check_custom_config=custom_health, creator_request_id=request_id,
        tags=list(tags))


def create_service(account, params, caller):
    name = params["Name"]
    check_service_name(name)
    namespace_id = params.get("NamespaceId") or (params.get("DnsConfig") or {}).get("NamespaceId")
    if not namespace_id:
        raise invalid("NamespaceId is required: the namespace the service is created in.")
    if params.get("HealthCheckConfig"):
        raise invalid("HealthCheckConfig (Route 53 health checks) is for public DNS namespaces, which Fargate Lab "
                      "does not serve; use HealthCheckCustomConfig (ECS reports its tasks' health).")
    tags = _check_tags(params.get("Tags") or [])
    with transaction.atomic():
        namespace = get_namespace_of(account, namespace_id)
        if params.get("Type") == "HTTP" and params.get("DnsConfig"):
            raise invalid("A service of Type HTTP has no DNS records: leave out DnsConfig.")
        dns_config = _check_dns_config(params["DnsConfig"], namespace) if params.get("DnsConfig") else None
        existing = _services(account).filter(namespace=namespace, name=name).first()
        if existing is not None:
            raise ServiceError("ServiceAlreadyExists", f"Service {name[:127]} already exists in {namespace.name}.",
                               CreatorRequestId=existing.creator_request_id, ServiceId=existing.service_id,
                               ServiceArn=existing.arn)
        try:
            service = create_discovery_service(
                account, namespace, name, dns_config=dns_config, description=params.get("Description", ""),
                request_id=params.get("CreatorRequestId", ""), custom_health=params.get("HealthCheckCustomConfig"),
                tags=tags)
        except IntegrityError:
            raise ServiceError("ServiceAlreadyExists", f"Service {name[:127]} already exists.") from None
    return {"Service": service_shape(service)}


def service_shape(service, summary=False):
    shape = {"Id": service.service_id, "Arn": service.arn, "Name": service.name, "Type": service.type,
             "InstanceCount": service.instances.count(), "CreateDate": service.created_at,
             "ResourceOwner": service.namespace.account.account_id,
             "CreatedByAccount": service.namespace.account.account_id}
    if not summary:
        shape["NamespaceId"] = service.namespace.namespace_id
        if service.creator_request_id:
            shape["CreatorRequestId"] = service.creator_request_id
    for key, value in (("Description", service.description), ("DnsConfig", service.dns_config),
                       ("HealthCheckCustomConfig", service.health_check_custom_config)):
        if value:
            shape[key] = value
    return shape


def get_service(account, params, caller):
    return {"Service": service_shape(get_service_of(account, params["Id"]))}


def list_services(account, params, caller):
    rows = list(_services(account))
    for spec in params.get("Filters") or []:
        name = spec["Name"]
        condition, values = _check_condition(spec, ("EQ", "IN") if name == "NAMESPACE_ID" else ("EQ",))
        if name == "RESOURCE_OWNER":
            rows = rows if _owner_filter(account, values) else []
        else:
            rows = [s for s in rows if _matches(s.namespace.namespace_id, condition, values)]
    return _listed(rows, params, "Services", lambda s: service_shape(s, summary=True))


def delete_service(account, params, caller):
    with transaction.atomic():
        service = get_service_of(account, params["Id"])
        if service.instances.exists():
            raise ServiceError("ResourceInUse", f"Service {service.service_id} still has registered instances: "
                                                "deregister them (or stop the ECS service using it) first.")
        service.delete()
    return {}


def _check_attributes(attributes, service):
    if len(attributes) > MAX_ATTRIBUTES:
        raise invalid(f"An instance can have at most {MAX_ATTRIBUTES} attributes.")
    for key, value in attributes.items():
        if not _ATTR_KEY.fullmatch(key):
            raise invalid(f"Attribute key {key[:255]!r} is not valid: printable ASCII without spaces.")
        if len(value) > 1024 or not _ATTR_VALUE.fullmatch(value):
            raise invalid(f"The value of attribute {key[:255]} is not valid: at most 1024 printable ASCII characters.")
    if service.dns_config and "AWS_INSTANCE_IPV4" not in attributes:
        raise invalid("AWS_INSTANCE_IPV4 is required: the service's DNS records are A records.")


def register_instance(account, params, caller):
    instance_id, attributes = params["InstanceId"], params["Attributes"]
    if not _INSTANCE_ID.fullmatch(instance_id):
        raise invalid(f"InstanceId {instance_id[:64]!r} is not valid: letters, digits and _/:.@- only.")
    with transaction.atomic():
        service = get_service_of(account, params["ServiceId"])
        _check_attributes(attributes, service)
        existing = service.instances.filter(instance_id=instance_id).first()
        if existing is not None and existing.task_id is not None:
            raise ServiceError("ResourceInUse", f"Instance {instance_id} is registered by ECS for its task: ECS "
                                                "updates and deregisters it.")
        if existing is None and service.instances.count() >= MAX_INSTANCES:
            raise ServiceError("ResourceLimitExceeded", f"A service can have at most {MAX_INSTANCES} instances.")
        DiscoveryInstance.objects.update_or_create(
            service=service, instance_id=instance_id,
            defaults={"attributes": dict(attributes), "creator_request_id": params.get("CreatorRequestId", "")})
        return {"OperationId": _operation(account, "REGISTER_INSTANCE", service=service.service_id,
                                          instance=instance_id)}


def _instance_of(account, params):
    service = get_service_of(account, params["ServiceId"])
    instance = service.instances.filter(instance_id=params["InstanceId"]).first()
    if instance is None:
        raise ServiceError("InstanceNotFound", f"Instance {params['InstanceId'][:64]} is not registered in "
                                               f"service {service.service_id}.")
    return service, instance


def deregister_instance(account, params, caller):
    with transaction.atomic():
        service, instance = _instance_of(account, params)
        if instance.task_id is not None:
            raise ServiceError("ResourceInUse", f"Instance {instance.instance_id} is registered by ECS for its task: "
                                                "ECS deregisters it when the task stops.")
        instance.delete()
        return {"OperationId": _operation(account, "DEREGISTER_INSTANCE", service=service.service_id,
                                          instance=instance.instance_id)}


def get_instance(account, params, caller):
    _, instance = _instance_of(account, params)
    shape = {"Id": instance.instance_id, "Attributes": instance.attributes, "CreatedByAccount": account.account_id}
    if instance.creator_request_id:
        shape["CreatorRequestId"] = instance.creator_request_id
    return {"ResourceOwner": account.account_id, "Instance": shape}


def list_instances(account, params, caller):
    service = get_service_of(account, params["ServiceId"])
    answer = _listed(list(service.instances.all()), params, "Instances",
                     lambda i: {"Id": i.instance_id, "Attributes": i.attributes, "CreatedByAccount": account.account_id})
    answer["ResourceOwner"] = account.account_id
    return answer


def _health_wanted(wanted, instances):
    if wanted == "ALL":
        return instances
    if wanted == "UNHEALTHY":
        return [i for i in instances if i.health_status == "UNHEALTHY"]
    healthy = [i for i in instances if i.health_status == "HEALTHY"]
    return healthy or (instances if wanted == "HEALTHY_OR_ELSE_ALL" else [])


def _discovered(account, params):
    """(namespace, service) a data-plane call names by their names, or their NotFound errors."""
    if params.get("OwnerAccount") not in (None, account.account_id):
        raise ServiceError("NamespaceNotFound", "Fargate Lab shares no namespace between accounts.")
    namespace = _namespaces(account).filter(name=params["NamespaceName"]).first()
    if namespace is None:
        raise ServiceError("NamespaceNotFound", f"Namespace {params['NamespaceName'][:256]} not found.")
    service = namespace.services.filter(name=params["ServiceName"]).first()
    if service is None:
        raise ServiceError("ServiceNotFound", f"Service {params['ServiceName'][:127]} not found in {namespace.name}.")
    return namespace, service


def _revision(service):
    """The service's InstancesRevision: its newest instance's row id (a registration changes it)."""
    return service.instances.order_by("-pk").values_list("pk", flat=True).first() or 0


def discover_instances(account, params, caller):
    """The data plane's answer (``data-servicediscovery``): a service's instances by names."""
    namespace, service = _discovered(account, params)
    instances = list(service.instances.select_related("task"))
    query = params.get("QueryParameters") or {}
    instances = [i for i in instances if all(i.attributes.get(k) == v for k, v in query.items())]
    optional = params.get("OptionalParameters") or {}
    preferred = [i for i in instances if all(i.attributes.get(k) == v for k, v in optional.items())]
    instances = preferred or instances
    instances = _health_wanted(params.get("HealthStatus") or "HEALTHY", instances)
    instances = instances[:params.get("MaxResults") or 100]
    return {"Instances": [{"InstanceId": i.instance_id, "NamespaceName": namespace.name, "ServiceName": service.name,
                           "HealthStatus": i.health_status, "Attributes": i.attributes} for i in instances],
            "InstancesRevision": _revision(service)}


def discover_instances_revision(account, params, caller):
    return {"InstancesRevision": _revision(_discovered(account, params)[1])}


def get_instances_health_status(account, params, caller):
    service = get_service_of(account, params["ServiceId"])
    instances = list(service.instances.select_related("task"))
    wanted = params.get("Instances")
    if wanted:
        known = {i.instance_id: i for i in instances}
        missing = [name for name in wanted if name not in known]
        if missing:
            raise ServiceError("InstanceNotFound", f"Instance {missing[0][:64]} is not registered in service "
                                                   f"{service.service_id}.")
        instances = [known[name] for name in dict.fromkeys(wanted)]
    shown, token = page(instances, params, 100, 100, invalid("The NextToken is not valid."))
    answer = {"Status": {i.instance_id: i.health_status for i in shown}}
    if token:
        answer["NextToken"] = token
    return answer


def update_instance_custom_health_status(account, params, caller):
    with transaction.atomic():
        service, instance = _instance_of(account, params)
        if service.health_check_custom_config is None:
            raise ServiceError("CustomHealthNotFound", f"Service {service.service_id} has no HealthCheckCustomConfig: "
                                                       "its instances' health cannot be set.")
        if instance.task_id is not None:
            raise invalid(f"Instance {instance.instance_id} is registered by ECS, which reports its task's health "
                          "(its containers' health checks).")
        DiscoveryInstance.objects.filter(pk=instance.pk).update(custom_health=params["Status"])
    return {}


def operation_shape(operation, summary=False):
    if summary:
        return {"Id": operation.operation_id, "Status": operation.status}
    return {"Id": operation.operation_id, "OwnerAccount": operation.account.account_id, "Type": operation.type,
            "Status": operation.status, "CreateDate": operation.created_at, "UpdateDate": operation.updated_at,
            "Targets": operation.targets}


def _operations(account):
    return DiscoveryOperation.objects.filter(account=account, region=region()).select_related("account")


def get_operation(account, params, caller):
    if params.get("OwnerAccount") not in (None, account.account_id):
        raise ServiceError("OperationNotFound", "Fargate Lab shares no operation between accounts.")
    found = _operations(account).filter(operation_id=params["OperationId"]).first()
    if found is None:
        raise ServiceError("OperationNotFound", f"Operation {params['OperationId'][:255]} not found.")
    return {"Operation": operation_shape(found)}


def _epoch(text):
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise invalid(f"UPDATE_DATE values are epoch seconds, not {text[:32]!r}.")
    return datetime.fromtimestamp(int(text), tz=dt_timezone.utc)


def list_operations(account, params, caller):
    rows = list(_operations(account))
    for spec in params.get("Filters") or []:
        name = spec["Name"]
        condition, values = _check_condition(spec, ("BETWEEN",) if name == "UPDATE_DATE" else ("EQ", "IN"))
        if name == "UPDATE_DATE":
            start, end = (_epoch(v) for v in values)
            rows = [o for o in rows if start <= o.updated_at <= end]
        elif name in ("NAMESPACE_ID", "SERVICE_ID"):
            key = name.removesuffix("_ID")
            rows = [o for o in rows if _matches(o.targets.get(key, ""), condition, values)]
        else:
            rows = [o for o in rows if _matches(o.status if name == "STATUS" else o.type, condition, values)]
    return _listed(rows, params, "Operations", lambda o: operation_shape(o, summary=True))


OPERATIONS = {
    "CreatePrivateDnsNamespace": create_private_dns_namespace,
    "CreateHttpNamespace": create_http_namespace,
    "GetNamespace": get_namespace,
    "ListNamespaces": list_namespaces,
    "DeleteNamespace": delete_namespace,
    "CreateService": create_service,
    "GetService": get_service,
    "ListServices": list_services,
    "DeleteService": delete_service,
    "RegisterInstance": register_instance,
    "DeregisterInstance": deregister_instance,
    "GetInstance": get_instance,
    "ListInstances": list_instances,
    "DiscoverInstances": discover_instances,
    "DiscoverInstancesRevision": discover_instances_revision,
    "GetInstancesHealthStatus": get_instances_health_status,
    "UpdateInstanceCustomHealthStatus": update_instance_custom_health_status,
    "GetOperation": get_operation,
    "ListOperations": list_operations,
}
