"""Task sets: the EXTERNAL deployment controller's blue/green (CreateTaskSet, UpdateTaskSet,
DeleteTaskSet, DescribeTaskSets, UpdateServicePrimaryTaskSet).

A service created with ``deploymentController: {"type": "EXTERNAL"}`` starts no tasks of its
own: an external controller (a script, a pipeline) creates task sets, each with its task
definition, launch settings, load balancers and a ``scale`` — a percentage of the service's
desiredCount, rounded up into the task set's computedDesiredCount. Its tasks register in the
task set's target groups; a listener's weighted forward action then moves traffic from the blue
task set's group to the green one's. Each task set is a ``Deployment`` row of the service (its id
``ecs-svc/…`` is the startedBy of its tasks); the cluster manager keeps each at its count
(``orchestrator.task_sets``). Kubernetes counterpart: two Deployments behind one Service, as
Argo Rollouts' blue/green switches its active Service between them.
"""
import math

from django.utils import timezone

from orchestrator import bus
from orchestrator.frontend import EcsError, capacity_providers, network_configuration, service_quotas
from orchestrator.frontend.operations import (
    _check_launch_type, _check_length, _check_tags, _client_token, _fingerprint, _include, _parse_arn,
    _runnable_task_definition, operation,
)
from orchestrator.frontend.shapes import PLATFORM_VERSION, _compact, epoch
from orchestrator.models import Deployment, Service, Task

EXTERNAL = "EXTERNAL"
CONTROLLERS = ("ECS", EXTERNAL)
DEFAULT_SCALE = {"value": 100.0, "unit": "PERCENT"}
LIVE = (Deployment.PRIMARY, Deployment.ACTIVE, Deployment.DRAINING)
MAX_TASK_SETS = 5  # ECS's quota of task sets per service
NOT_EXTERNAL = ("The service's deployment controller is not EXTERNAL: task sets belong to services of the "
                "EXTERNAL deployment controller.")
CODE_DEPLOY_REFUSED = (
    "Fargate Lab has no CodeDeploy to drive a CODE_DEPLOY deployment controller: create the service with the "
    "EXTERNAL deployment controller and shift traffic between its task sets yourself (CreateTaskSet, "
    "UpdateServicePrimaryTaskSet and a listener's weighted forward action), or use the ECS controller's rolling update."
)
# What UpdateService may change on an EXTERNAL service; the rest belongs to its task sets.
TASK_SET_FIELDS = ("taskDefinition", "loadBalancers", "networkConfiguration", "capacityProviderStrategy",
                   "platformVersion", "serviceRegistries", "forceNewDeployment", "serviceConnectConfiguration")


def controller_of(params):
    """The deployment controller a CreateService asks for (ECS, EXTERNAL), refusing CODE_DEPLOY."""
    kind = (params.get("deploymentController") or {}).get("type", "ECS")
    if kind == "CODE_DEPLOY":
        raise EcsError("InvalidParameterException", CODE_DEPLOY_REFUSED)
    if kind not in CONTROLLERS:
        raise EcsError("InvalidParameterException", f"Unknown deployment controller type {str(kind)[:64]}.")
    return kind


def check_external_service(params):
    """Refuse on CreateService of an EXTERNAL service what belongs to its task sets."""
    for field in ("loadBalancers", "serviceRegistries", "serviceConnectConfiguration"):
        if params.get(field):
            raise EcsError("InvalidParameterException",
                           f"{field} of a service of the EXTERNAL deployment controller are given on each task set "
                           "(CreateTaskSet)." if field != "serviceConnectConfiguration" else
                           "Service Connect is not supported for services of the EXTERNAL deployment controller.")


def check_external_update(service, params):
    """Refuse on UpdateService what ECS refuses for an EXTERNAL service: only the desired count, the
    placement, the health check grace period and the like change here; the rest takes a new task set."""
    if service.deployment_controller != EXTERNAL:
        return
    given = [field for field in TASK_SET_FIELDS if field in params]
    if given:
        raise EcsError(
            "InvalidParameterException",
            f"Unable to update {', '.join(given)} of a service of the EXTERNAL deployment controller: create a new "
            "task set (CreateTaskSet) with them instead.",
        )
    controller = (params.get("deploymentController") or {}).get("type")
    if controller and controller != EXTERNAL:
        raise EcsError("InvalidParameterException",
                       "The deployment controller of a service of the EXTERNAL deployment controller cannot change.")


def computed_desired_count(scale, desired_count):
    """ceil(scale % × the service's desiredCount), as ECS computes a task set's count."""
    return math.ceil(round(float(scale.get("value", 100.0)) * desired_count / 100, 9))


def rescale(service, now=None):
    """Write each live task set's computedDesiredCount from the service's desiredCount."""
    now = now or timezone.now()
    for task_set in service.deployments.filter(status__in=(Deployment.PRIMARY, Deployment.ACTIVE)):
        count = computed_desired_count(task_set.scale, service.desired_count)
        if count != task_set.desired_count:
            Deployment.objects.filter(pk=task_set.pk).update(desired_count=count, updated_at=now)


def _check_scale(scale):
    """A Scale as stored: a percentage from 0 to 100."""
    unit = scale.get("unit", "PERCENT")
    if unit != "PERCENT":
        raise EcsError("InvalidParameterException", "The only scale unit is PERCENT.")
    value = scale.get("value", 100.0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 100:
        raise EcsError("InvalidParameterException", "The scale value must be a percentage between 0 and 100.")
    return {"value": float(value), "unit": unit}


def stability_status(task_set):
    """STEADY_STATE when the task set runs its computedDesiredCount and nothing is pending."""
    steady = (task_set.running_count == task_set.desired_count and task_set.pending_count == 0
              and task_set.status in (Deployment.PRIMARY, Deployment.ACTIVE))
    return "STEADY_STATE" if steady else "STABILIZING"


def task_set_shape(task_set, include=()):
    """A TaskSet as ECS returns it."""
    service, revision = task_set.service, task_set.revision
    strategy = revision.get("capacityProviderStrategy") or []
    data = {
        "id": task_set.deployment_id,
        "taskSetArn": task_set.task_set_arn,
        "serviceArn": service.arn,
        "clusterArn": service.cluster.arn,
        "externalId": task_set.external_id or None,
        "status": task_set.status,
        "taskDefinition": task_set.task_definition.arn,
        "computedDesiredCount": task_set.desired_count,
        "pendingCount": task_set.pending_count,
        "runningCount": task_set.running_count,
        "createdAt": epoch(task_set.created_at),
        "updatedAt": epoch(task_set.updated_at),
        "launchType": None if strategy else revision.get("launchType", "FARGATE"),
        "capacityProviderStrategy": list(strategy) or None,
        "platformVersion": PLATFORM_VERSION,
        "platformFamily": "Linux",
        "networkConfiguration": revision.get("networkConfiguration") or None,
        "loadBalancers": list(revision.get("loadBalancers", [])),
        "serviceRegistries": [],
        "scale": dict(task_set.scale or DEFAULT_SCALE),
        "stabilityStatus": stability_status(task_set),
        "stabilityStatusAt": epoch(task_set.updated_at),
    }
    if "TAGS" in include:
        data["tags"] = list(task_set.tags)
    return _compact(data)


def live_task_sets(service):
    """The service's task sets that are not INACTIVE, newest first."""
    return list(service.deployments.filter(status__in=LIVE).select_related(
        "task_definition__account", "service__account", "service__cluster__account"))


# --- finding them ----------------------------------------------------------------------------


def _external_service(ctx, params):
    """The ACTIVE EXTERNAL service a task set request names, or the error ECS gives."""
    from orchestrator.frontend.services import _get_live_service

    service = _get_live_service(ctx, params)
    if service.deployment_controller != EXTERNAL:
        raise EcsError("InvalidParameterException", NOT_EXTERNAL)
    return service


def _find_task_set(service, ref):
    """A live task set of the service by id or ARN, or None."""
    if ref.startswith("arn:"):
        rest = _parse_arn(ref, "task-set", service.account) or ""
        prefix = f"{service.cluster.name}/{service.name}/"
        if not rest.startswith(prefix):
            return None
        ref = rest[len(prefix):]
    return service.deployments.filter(status__in=LIVE, deployment_id=ref).select_related(
        "task_definition__account", "service__account", "service__cluster__account").first()


def _get_task_set(service, ref):
    task_set = _find_task_set(service, ref)
    if task_set is None or task_set.status == Deployment.DRAINING:
        raise EcsError("TaskSetNotFoundException", "The specified task set does not exist.")
    return task_set


def _check_task_set_load_balancers(ctx, entries, td):
    """At most one load balancer per task set (ECS's rule), checked as a service's are."""
    from orchestrator.frontend.services import _check_load_balancers

    if len(entries) > 1:
        raise EcsError("InvalidParameterException", "A task set can have at most one load balancer.")
    return _check_load_balancers(ctx, entries, td)


def _written(service, task_set, now):
    """After a write to a task set: the service is not steady any more, the control plane looks
    at it; the {"taskSet": …} response, read back fresh."""
    Service.objects.filter(pk=service.pk).update(steady=False, updated_at=now)
    bus.publish("service", service.pk)
    return _response(task_set)


def _response(task_set):
    task_set = Deployment.objects.select_related(
        "task_definition__account", "service__account", "service__cluster__account").get(pk=task_set.pk)
    return {"taskSet": task_set_shape(task_set, include=("TAGS",))}


# --- the operations --------------------------------------------------------------------------


@operation("CreateTaskSet")
def create_task_set(ctx, params):
    """Create an ACTIVE task set; the cluster manager starts its computedDesiredCount tasks."""
    service = _external_service(ctx, params)
    token = _client_token(params, 36)
    fingerprint = _fingerprint(params)
    if token:
        earlier = service.deployments.filter(revision__clientToken=token).first()
        if earlier is not None:
            if earlier.revision.get("fingerprint") != fingerprint:
                raise EcsError("ConflictException", "The clientToken was already used with different parameters.")
            return _response(earlier)
    if params.get("serviceRegistries"):
        raise EcsError("InvalidParameterException",
                       "Fargate Lab does not register task sets in service discovery: serviceRegistries is not "
                       "supported on CreateTaskSet.")
    _check_launch_type(params)
    launch_type, strategy = capacity_providers.launch_for(params, service.cluster)
    td = _runnable_task_definition(ctx, params["taskDefinition"], launch_type)
    network = network_configuration.check(params, td)  # as a service's
    scale = _check_scale(params.get("scale", DEFAULT_SCALE))
    if service.deployments.filter(status__in=LIVE).count() >= MAX_TASK_SETS:
        raise EcsError("LimitExceededException", f"A service can have at most {MAX_TASK_SETS} task sets.")
    count = computed_desired_count(scale, service.desired_count)
    service_quotas.check_desired_count(ctx.account, count)
    now = timezone.now()
    task_set_id = Deployment.new_id()
    task_set = Deployment.objects.create(
        service=service, deployment_id=task_set_id, status=Deployment.ACTIVE, task_definition=td,
        desired_count=count, rollout_state=Deployment.COMPLETED, created_at=now, updated_at=now,
        revision_id=task_set_id.rsplit("/", 1)[-1],
        revision={
            "launchType": launch_type, "capacityProviderStrategy": strategy, "networkConfiguration": network,
            "loadBalancers": _check_task_set_load_balancers(ctx, params.get("loadBalancers", []), td),
            "clientToken": token, "fingerprint": fingerprint,
        },
        external_id=_check_length(params.get("externalId", ""), 255, "externalId"), scale=scale,
        tags=_check_tags(params.get("tags", [])),
    )
    return _written(service, task_set, now)


@operation("UpdateTaskSet")
def update_task_set(ctx, params):
    """Change a task set's scale; the cluster manager starts or stops tasks to match."""
    service = _external_service(ctx, params)
    task_set = _get_task_set(service, params["taskSet"])
    scale = _check_scale(params["scale"])
    count = computed_desired_count(scale, service.desired_count)
    service_quotas.check_desired_count(ctx.account, count)
    now = timezone.now()
    Deployment.objects.filter(pk=task_set.pk).update(scale=scale, desired_count=count, updated_at=now)
    return _written(service, task_set, now)


@operation("UpdateServicePrimaryTaskSet")
def update_service_primary_task_set(ctx, params):
    """Make a task set the service's PRIMARY one (the one before it becomes ACTIVE); the service
    shows its task definition and launch settings from now on."""
    service = _external_service(ctx, params)
    task_set = _get_task_set(service, params["primaryTaskSet"])
    now = timezone.now()
    if task_set.status != Deployment.PRIMARY:
        service.deployments.filter(status=Deployment.PRIMARY).update(status=Deployment.ACTIVE, updated_at=now)
        Deployment.objects.filter(pk=task_set.pk).update(status=Deployment.PRIMARY, updated_at=now)
        revision = task_set.revision
        Service.objects.filter(pk=service.pk).update(
            task_definition=task_set.task_definition, network_configuration=revision.get("networkConfiguration", {}),
            load_balancers=revision.get("loadBalancers", []),
            capacity_provider_strategy=revision.get("capacityProviderStrategy", []), updated_at=now,
        )
        service.add_event(f"(task-set {task_set.deployment_id}) is now the primary task set.")
        bus.publish("service", service.pk)
    return _response(task_set)


@operation("DeleteTaskSet")
def delete_task_set(ctx, params):
    """Start deleting a task set: DRAINING, then INACTIVE once the cluster manager has stopped its
    tasks. One still scaled above 0 needs ``force``."""
    service = _external_service(ctx, params)
    task_set = _get_task_set(service, params["taskSet"])
    if task_set.desired_count > 0 and not params.get("force"):
        raise EcsError("InvalidParameterException",
                       "The task set cannot be deleted while it is scaled above 0: scale it to 0 (UpdateTaskSet) "
                       "or delete it with force.")
    now = timezone.now()
    Deployment.objects.filter(pk=task_set.pk).update(status=Deployment.DRAINING, desired_count=0, updated_at=now)
    return _written(service, task_set, now)


@operation("DescribeTaskSets")
def describe_task_sets(ctx, params):
    """The service's task sets (all live ones, or those named); unknown ones are MISSING failures."""
    service = _external_service(ctx, params)
    include = _include(params)
    refs = params.get("taskSets")
    if refs is None:
        return {"taskSets": [task_set_shape(t, include) for t in live_task_sets(service)], "failures": []}
    found, failures = [], []
    for ref in refs:
        task_set = _find_task_set(service, ref)
        if task_set is None:
            failures.append({"arn": ref, "reason": "MISSING"})
        else:
            found.append(task_set_shape(task_set, include))
    return {"taskSets": found, "failures": failures}


def task_set_tasks(task_set):
    """The live tasks of a task set (what the dashboard lists under it)."""
    return task_set.tasks.exclude(last_status=Task.STOPPED)
