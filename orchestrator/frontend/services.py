"""Service operations: CreateService, UpdateService, DeleteService, DescribeServices, ListServices.

A service's rollouts are its deployments (``deployments``); the cluster manager keeps its
desired count and rolls one deployment into the next.
"""
from django.utils import timezone

from orchestrator import bus
from orchestrator.frontend import (
    EcsError, capacity_providers, network_configuration, service_quotas, service_registries, shapes, task_sets,
)
from orchestrator.frontend.deployments import _deployment_configuration, _new_deployment, check_deployment_controller
from orchestrator.frontend.operations import (
    _check_launch_type, _check_placement, _check_tags, _client_token, _cluster_of, _describe_many, _fingerprint,
    _get_cluster, _page, _paged_response, _parse_arn, _runnable_task_definition, operation,
)
from orchestrator.frontend.validation import check_name
from orchestrator.models import Deployment, Service

MAX_DESIRED_COUNT = 5000


def _service_name(ctx, ref):
    """A service name from a name or an ARN."""
    if ref.startswith("arn:"):
        return (_parse_arn(ref, "service", ctx.account) or "").rsplit("/", 1)[-1]
    return ref


def _service_rows(queryset):
    """Services with the rows their ARNs need, fetched in one query."""
    return queryset.select_related("account", "cluster__account", "task_definition__account")


def _find_service(ctx, cluster, ref):
    """The live service of that name in the cluster, else its most recent INACTIVE one."""
    rows = _service_rows(Service.objects.filter(cluster=cluster, name=_service_name(ctx, ref)))
    return rows.exclude(status=Service.INACTIVE).first() or rows.order_by("-pk").first()


def _find_services(ctx, cluster, refs):
    """``_find_service`` of each of ``refs`` (None where there is none), with what their shapes
    show (live deployments, newest events), in four queries whatever their number."""
    names = [_service_name(ctx, ref) for ref in refs]
    chosen = {}
    # The account and the cluster, the same for all, are the ones in hand, not joined to every
    # row: each join was columns to compile and an instance to build per service.
    cluster.account = ctx.account  # the cluster was found among the account's own
    rows = Service.objects.filter(cluster=cluster, name__in=set(names)).select_related("task_definition")
    for service in rows.order_by("pk"):
        service.cluster = cluster
        if service.account_id == ctx.account.pk:
            service.account = ctx.account
        if service.task_definition.account_id == ctx.account.pk:
            service.task_definition.account = ctx.account
        earlier = chosen.get(service.name)
        if earlier is None or earlier.status == Service.INACTIVE:  # the live one, else the newest
            chosen[service.name] = service
    shapes.prefetch_service_shapes(list(chosen.values()), account=ctx.account)
    return [chosen.get(name) for name in names]


def _get_live_service(ctx, params):
    """The ACTIVE service a request names, or ServiceNotFound / ServiceNotActive."""
    cluster = _cluster_of(ctx, params, params["service"], "service")
    service = _find_service(ctx, cluster, params["service"])
    if service is None:
        raise EcsError("ServiceNotFoundException", "Service not found.")
    if service.status != Service.ACTIVE:
        raise EcsError("ServiceNotActiveException", "Service was not ACTIVE.")
    return service


def _check_desired_count(count):
    """Refuse a desired count below 0 or above ECS's per-service limit."""
    if not 0 <= count <= MAX_DESIRED_COUNT:
        raise EcsError("InvalidParameterException", f"desiredCount must be between 0 and {MAX_DESIRED_COUNT}.")
    return count


def _service_response(service):
    """The {"service": …} response, read back fresh after the write."""
    service = _service_rows(Service.objects).get(pk=service.pk)
    return {"service": shapes.service_shape(service)}


def _check_load_balancers(ctx, entries, td):
    """Validate a service's loadBalancers as ECS does: each names a target group of the
    account that a load balancer uses, with target type ip (awsvpc), and a container and port
    of the task definition. Returns the entries as stored."""
    from orchestrator.elbv2 import operations as elb
    from orchestrator.elbv2.protocol import ElbError

    containers = {c.get("name"): c for c in td.container_definitions}
    for entry in entries:
        if entry.get("loadBalancerName"):
            raise EcsError("InvalidParameterException",
                           "Classic Load Balancers are not supported with Fargate: use targetGroupArn.")
        arn = entry.get("targetGroupArn") or ""
        if not arn:
            raise EcsError("InvalidParameterException", "targetGroupArn is required for a load balancer.")
        try:
            tg = elb.get_target_group(ctx.account, arn)
        except ElbError:
            raise EcsError("InvalidParameterException", f"The target group {arn[:512]} does not exist.") from None
        if not tg.listeners.exists():
            raise EcsError("InvalidParameterException",
                           f"The target group with targetGroupArn {tg.arn} does not have an associated load balancer.")
        if tg.target_type != "ip":
            raise EcsError(
                "InvalidParameterException",
                f"The provided target group {tg.arn} has target type {tg.target_type}, which is incompatible "
                "with the awsvpc network mode specified in the task definition.",
            )
        name, port = entry.get("containerName"), entry.get("containerPort")
        container = containers.get(name)
        if container is None:
            raise EcsError("InvalidParameterException",
                           f"The container {str(name)[:255]} does not exist in the task definition.")
        if port not in [p.get("containerPort") for p in container.get("portMappings", [])]:
            raise EcsError("InvalidParameterException",
                           f"The container {name} did not have a container port {port} defined.")
    return entries


@operation("CreateService")
def create_service(ctx, params):
    """Create a service and its first PRIMARY deployment; the cluster manager creates its tasks."""
    cluster = _get_cluster(ctx, params.get("cluster"))
    name = params["serviceName"]
    check_name(name, "Service name")
    token = _client_token(params, 36)
    fingerprint = _fingerprint({k: v for k, v in params.items() if k != "cluster"})
    if token:
        earlier = Service.objects.filter(cluster=cluster, client_token=token).order_by("-pk").first()
        if earlier is not None:
            if earlier.request_fingerprint != fingerprint:
                raise EcsError("ConflictException", "The clientToken was already used with different parameters.")
            return _service_response(earlier)
    live = Service.objects.filter(cluster=cluster, name=name).exclude(status=Service.INACTIVE).first()
    if live is not None:
        if live.request_fingerprint == fingerprint and live.status == Service.ACTIVE:
            return _service_response(live)
        raise EcsError("InvalidParameterException", "Creation of service was not idempotent.")
    _check_launch_type(params)
    controller = task_sets.controller_of(params)
    if controller == task_sets.EXTERNAL:
        task_sets.check_external_service(params)
    launch_type, strategy = capacity_providers.launch_for(params, cluster)
    if params.get("schedulingStrategy", "REPLICA") != "REPLICA":
        raise EcsError("InvalidParameterException", "Fargate only supports the REPLICA scheduling strategy.")
    if "taskDefinition" not in params:
        raise EcsError("InvalidParameterException", "TaskDefinition cannot be empty." if controller != "EXTERNAL" else
                       "Fargate Lab needs a taskDefinition on CreateService for the EXTERNAL deployment controller "
                       "too (the service shows it until a primary task set replaces it); each task set names its own.")
    td = _runnable_task_definition(ctx, params["taskDefinition"], launch_type)
    # An EXTERNAL service's tasks are its task sets', each with its own networkConfiguration.
    network = (params.get("networkConfiguration") or {}) if controller == task_sets.EXTERNAL else (
        network_configuration.check(params, td))
    strategies, constraints = _check_placement(params)
    if "desiredCount" not in params:  # required of the REPLICA strategy, the only one Fargate runs
        raise EcsError("InvalidParameterException", "DesiredCount is missing")
    desired_count = _check_desired_count(params["desiredCount"])
    service_quotas.check_services(ctx.account, cluster)
    service_quotas.check_desired_count(ctx.account, desired_count)
    discovery = service_registries.check_discovery(ctx, params, td, cluster)
    now = timezone.now()
    service = Service.objects.create(
        account=ctx.account, cluster=cluster, name=name, task_definition=td,
        desired_count=desired_count, launch_type=launch_type,
        deployment_configuration=_deployment_configuration(params.get("deploymentConfiguration")),
        network_configuration=network,
        load_balancers=_check_load_balancers(ctx, params.get("loadBalancers", []), td),
        placement_strategy=strategies, placement_constraints=constraints,
        capacity_provider_strategy=strategy,
        health_check_grace_period=params.get("healthCheckGracePeriodSeconds"),
        enable_execute_command=params.get("enableExecuteCommand", False),
        client_token=token, request_fingerprint=fingerprint,
        tags=_check_tags(params.get("tags", [])),
        created_by=f"arn:aws:iam::{ctx.account.account_id}:root",
        created_at=now, updated_at=now, deployment_controller=controller, **discovery,
    )
    service_registries.prepare(ctx, service)
    if controller != task_sets.EXTERNAL:  # an external controller's task sets run its tasks
        _new_deployment(service)
    bus.publish("service", service.pk)
    return _service_response(service)


@operation("UpdateService")
def update_service(ctx, params):
    """Scale a service or roll it to a new task definition (a new PRIMARY deployment)."""
    service = _get_live_service(ctx, params)
    if service.deployment_controller == task_sets.EXTERNAL:
        task_sets.check_external_update(service, params)
    else:
        check_deployment_controller(params)
    fields = {"updated_at"}
    new_deployment = bool(params.get("forceNewDeployment"))
    if "taskDefinition" in params:
        td = _runnable_task_definition(ctx, params["taskDefinition"])
        if td.pk != service.task_definition_id:
            service.task_definition = td
            fields.add("task_definition")
            new_deployment = True
    if "desiredCount" in params:
        service.desired_count = _check_desired_count(params["desiredCount"])
        service_quotas.check_desired_count(ctx.account, service.desired_count)
        fields.add("desired_count")
    if "deploymentConfiguration" in params:
        service.deployment_configuration = _deployment_configuration(
            params["deploymentConfiguration"], service.deployment_configuration
        )
        fields.add("deployment_configuration")
    if "networkConfiguration" in params and params["networkConfiguration"] != service.network_configuration:
        service.network_configuration = network_configuration.check(params, service.task_definition)
        fields.add("network_configuration")
        new_deployment = True
    if "loadBalancers" in params:
        _check_load_balancers(ctx, params["loadBalancers"], service.task_definition)
    # Tasks take their discovery names when created: new names (or a new definition's ports) roll out.
    for field, value in service_registries.check_discovery(ctx, params, service.task_definition, service.cluster,
                                                           service).items():
        if value != getattr(service, field):
            setattr(service, field, value)
            fields.add(field)
            new_deployment = True
    _check_placement(params)
    for param, field in (
        ("loadBalancers", "load_balancers"),
        ("placementStrategy", "placement_strategy"),
        ("placementConstraints", "placement_constraints"),
        ("healthCheckGracePeriodSeconds", "health_check_grace_period"),
        ("enableExecuteCommand", "enable_execute_command"),  # for the tasks it starts from now on
    ):
        if param in params:
            setattr(service, field, params[param])
            fields.add(field)
    if "capacityProviderStrategy" in params:
        strategy = capacity_providers.strategy_for(params, service.cluster)
        if strategy != service.capacity_provider_strategy:  # the new spread takes a new deployment
            service.capacity_provider_strategy = strategy
            fields.add("capacity_provider_strategy")
            new_deployment = True
        if strategy and service.launch_type != "FARGATE":  # off the EC2 launch type, onto Fargate's providers
            service.launch_type = "FARGATE"
            fields.add("launch_type")
            new_deployment = True
    service.updated_at = timezone.now()
    service.steady = False
    fields.add("steady")
    service.save(update_fields=tuple(fields))
    service_registries.prepare(ctx, service)
    if service.deployment_controller == task_sets.EXTERNAL:
        task_sets.rescale(service, service.updated_at)
    elif new_deployment:
        _new_deployment(service)
    elif "desiredCount" in params:
        service.deployments.filter(status=Deployment.PRIMARY).update(
            desired_count=service.desired_count, updated_at=service.updated_at
        )
    bus.publish("service", service.pk)
    return _service_response(service)


@operation("DeleteService")
def delete_service(ctx, params):
    """Start deleting a service: DRAINING, desired count 0; the control plane stops its tasks."""
    cluster = _cluster_of(ctx, params, params["service"], "service")
    service = _find_service(ctx, cluster, params["service"])
    if service is None:
        raise EcsError("ServiceNotFoundException", "Service not found.")
    if service.status == Service.INACTIVE:
        raise EcsError("ServiceNotActiveException", "Service was not ACTIVE.")
    if service.status == Service.ACTIVE:
        if service.desired_count > 0 and not params.get("force"):
            raise EcsError("InvalidParameterException", "The service cannot be stopped while it is scaled above 0.")
        now = timezone.now()
        Service.objects.filter(pk=service.pk).update(
            status=Service.DRAINING, desired_count=0, updated_at=now, steady=False
        )
        service.deployments.exclude(status=Deployment.INACTIVE).update(desired_count=0, updated_at=now)
        bus.publish("service", service.pk)
    return _service_response(service)


@operation("DescribeServices")
def describe_services(ctx, params):
    """Describe up to 10 services of one cluster; unknown ones are MISSING failures."""
    services, failures = _describe_many(ctx, params, "services", 10, "service", _find_services, shapes.service_shape)
    return {"services": services, "failures": failures}


@operation("ListServices")
def list_services(ctx, params):
    """ARNs of a cluster's services that are not INACTIVE."""
    cluster = _get_cluster(ctx, params.get("cluster"))
    rows = Service.objects.filter(cluster=cluster).exclude(status=Service.INACTIVE)
    if params.get("launchType"):
        rows = rows.filter(launch_type=params["launchType"])
    if params.get("schedulingStrategy"):
        rows = rows.filter(scheduling_strategy=params["schedulingStrategy"])
    items, token = _page(rows.order_by("pk").select_related("account", "cluster"), params, lambda s: s.arn)
    return _paged_response("serviceArns", items, token)
