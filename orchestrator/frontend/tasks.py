"""Task operations: RunTask, StopTask, DescribeTasks, ListTasks.

RunTask writes desired state only: each task starts PROVISIONING (desired RUNNING) and the
control plane places, starts and reports it.
"""
import functools

from django.db.models import Prefetch
from django.utils import timezone

from orchestrator import bus, capacity_strategy, pacing
from orchestrator.capacity_manager import NO_CONTAINER_INSTANCES, task_ceiling, too_big
from orchestrator.frontend import EcsError, capacity_providers, network_configuration, service_quotas, shapes, task_definitions
from orchestrator.frontend.operations import (
    _check_launch_type, _check_length, _check_placement, _check_tags, _client_token, _cluster_of, _describe_many,
    _fingerprint, _get_cluster, _include, _page_by_key, _paged_response, _parse_arn, _runnable_task_definition, operation,
)
from orchestrator.frontend.task_definition_fields import check_overrides
from orchestrator.models import Task, TaskContainer

MAX_RUN_COUNT = 10


def _task_overrides(td, overrides):
    """Check a RunTask overrides object against the task definition; return (cpu, memory) to use."""
    check_overrides(overrides)
    names = {c["name"] for c in td.container_definitions}
    for override in overrides.get("containerOverrides", []):
        if override.get("name") not in names:
            raise EcsError(
                "InvalidParameterException",
                f"Override for container named {str(override.get('name'))[:255]} is not a container in the TaskDefinition.",
            )
        for field in ("cpu", "memory", "memoryReservation"):
            if override.get(field, 0) < 0:
                raise EcsError("InvalidParameterException", f"Container override {field} must not be negative.")
    if "cpu" in overrides or "memory" in overrides:
        return task_definitions.fargate_size(overrides.get("cpu", str(td.cpu)), overrides.get("memory", str(td.memory)))
    return td.cpu, td.memory


def _create_task(ctx, cluster, td, *, cpu, memory, overrides=None, group="", started_by="", tags=(),
                 client_token="", fingerprint="", placement=((), ()), capacity_provider="",
                 enable_execute_command=False, network_configuration=None):
    """One Task row (desired RUNNING, last PROVISIONING) and a TaskContainer per container definition."""
    now = timezone.now()
    task = Task.objects.create(
        account=ctx.account, cluster=cluster, task_definition=td, group=group or f"family:{td.family}",
        started_by=started_by, launch_type="FARGATE", capacity_provider=capacity_provider, cpu=cpu, memory=memory, overrides=overrides or {},
        tags=list(tags), network_configuration=network_configuration or {}, client_token=client_token, request_fingerprint=fingerprint, trace_id=ctx.trace_id,
        placement_strategy=list(placement[0]), placement_constraints=list(placement[1]),
        enable_execute_command=enable_execute_command, created_at=now, updated_at=now,
    )
    by_name = {o.get("name"): o for o in (overrides or {}).get("containerOverrides", [])}
    for definition in td.container_definitions:
        override = by_name.get(definition["name"], {})
        TaskContainer.objects.create(
            task=task, name=definition["name"], image=definition["image"],
            essential=definition.get("essential", True),
            cpu=override.get("cpu", definition.get("cpu", 0)),
            memory=override.get("memory", definition.get("memory") or definition.get("memoryReservation")),
        )
    bus.publish("task", task.pk)
    return task


def _task_rows(queryset):
    """Tasks with the rows their ARNs and shapes need, fetched in one query."""
    return queryset.select_related("account", "cluster__account", "task_definition__account")


@operation("RunTask")
def run_task(ctx, params):
    """Write ``count`` tasks (desired RUNNING, last PROVISIONING) for the control plane to place."""
    cluster = _get_cluster(ctx, params.get("cluster"))
    _check_launch_type(params)
    count = params.get("count", 1)
    if not 1 <= count <= MAX_RUN_COUNT:
        raise EcsError("InvalidParameterException", f"count must be between 1 and {MAX_RUN_COUNT}.")
    token = _client_token(params, 64)
    fingerprint = _fingerprint(params)
    if token:
        earlier = _task_rows(Task.objects.filter(cluster=cluster, client_token=token)).order_by("pk")
        if earlier.exists():
            if earlier[0].request_fingerprint != fingerprint:
                raise EcsError("ConflictException", "The clientToken was already used with different parameters.")
            return {"tasks": [shapes.task_shape(t, include={"TAGS"}) for t in earlier], "failures": []}
    launch_type, strategy = capacity_providers.launch_for(params, cluster)
    td = _runnable_task_definition(ctx, params["taskDefinition"], launch_type)
    network = network_configuration.check(params, td)
    overrides = params.get("overrides", {})
    cpu, memory = _task_overrides(td, overrides)
    group = _check_length(params.get("group", ""), 255, "group")
    started_by = _check_length(params.get("startedBy", ""), 128, "startedBy")
    tags = _check_tags(params.get("tags", []))
    strategies, constraints = _check_placement(params)
    if launch_type == "EC2":  # ECS's default with no launch type and no strategy: no instances to place on
        raise EcsError("InvalidParameterException", NO_CONTAINER_INSTANCES)
    providers = capacity_strategy.spread(strategy, count)
    refusal = too_big(cpu, memory, task_ceiling())
    if refusal:  # no instance could ever hold it: ECS starts none and says why in the failures
        return {"tasks": [], "failures": [{"reason": refusal[0], "detail": refusal[1]} for _ in range(count)]}
    over_quota = service_quotas.run_task_failures(ctx.account, cpu, providers)
    if over_quota:  # over the account's vCPU quota: none starts, as the failures say
        return {"tasks": [], "failures": over_quota}
    if pacing.take(ctx.account.pk, count)[0] < count:
        raise EcsError("ThrottlingException", "Rate exceeded")
    tasks = [
        _create_task(
            ctx, cluster, td, cpu=cpu, memory=memory, overrides=overrides, group=group, started_by=started_by,
            tags=tags, client_token=token, fingerprint=fingerprint,
            placement=(strategies, constraints), capacity_provider=provider,
            enable_execute_command=params.get("enableExecuteCommand", False),
            network_configuration=network,
        )
        for provider in providers
    ]
    tasks = _task_rows(Task.objects.filter(pk__in=[t.pk for t in tasks])).order_by("pk").prefetch_related("containers")
    return {"tasks": [shapes.task_shape(t, include={"TAGS"}) for t in tasks], "failures": []}

def _task_id(ctx, ref):
    """The task id a reference (an id, or a task ARN of the account's) names ("" for another's ARN)."""
    if ref.startswith("arn:"):
        return (_parse_arn(ref, "task", ctx.account) or "").rsplit("/", 1)[-1]
    return ref


def _find_task(ctx, cluster, ref):
    """A task of the cluster by id or ARN, or None."""
    return _task_rows(Task.objects.filter(account=ctx.account, cluster=cluster, task_id=_task_id(ctx, ref))).first()


# Task columns no task shape shows (the scheduler's and the agent's): left unread by
# DescribeTasks, whose 100 rows would otherwise parse two JSON lists and two dates each for nothing.
_NOT_SHOWN = ("placement_strategy", "placement_constraints", "client_token", "request_fingerprint", "protected_until",
              "trace_id", "stop_trace_id", "pending_reason", "lb_health_status", "container_health_status", "sandbox_id",
              "updated_at")


def _find_tasks(ctx, cluster, refs, include=()):
    """The tasks of the cluster ``refs`` name (ids or ARNs), None where there is none, in three
    queries whatever their number: the tasks, their task definitions (each fetched once, however
    many tasks share it), their containers. The account and the cluster, the same for all, are
    the ones already in hand rather than a copy joined to every row."""
    ids = [_task_id(ctx, ref) for ref in refs]
    rows = Task.objects.filter(account=ctx.account, cluster=cluster, task_id__in=set(ids))
    cluster.account = ctx.account  # the cluster was found among the account's own
    found = {}
    # The containers as a list on each task (``to_attr``): a plain prefetch builds a filtered
    # QuerySet per task to hold its cache, a fifth of DescribeTasks' time for 100 tasks.
    containers = Prefetch("containers", TaskContainer.objects.all(), to_attr="listed_containers")
    if "TAGS" not in include:
        rows = rows.defer("tags")
    for task in rows.defer(*_NOT_SHOWN).prefetch_related(containers, "task_definition"):
        task.account, task.cluster = ctx.account, cluster
        if task.task_definition.account_id == ctx.account.pk:
            task.task_definition.account = ctx.account
        found[task.task_id] = task
    return [found.get(task_id) for task_id in ids]


@operation("StopTask")
def stop_task(ctx, params):
    """Ask for a task to stop (desired STOPPED); the control plane stops its containers."""
    cluster = _cluster_of(ctx, params, params["task"], "task")
    task = _find_task(ctx, cluster, params["task"])
    if task is None:
        raise EcsError("InvalidParameterException", "The referenced task was not found.")
    reason = _check_length(params.get("reason", "Task stopped by user"), 1024, "reason")
    if task.desired_status != Task.STOPPED:
        now = timezone.now()
        fields = {"desired_status": Task.STOPPED, "stop_code": "UserInitiated", "stopped_reason": reason, "updated_at": now,
                  "stop_trace_id": ctx.trace_id}
        if task.last_status != Task.STOPPED:
            fields["stopping_at"] = now
        Task.objects.filter(pk=task.pk).update(**fields)
        task.refresh_from_db()
        bus.publish("task", task.pk, stop=True)  # the agent takes it before waiting starts
    return {"task": shapes.task_shape(task, include={"TAGS"})}


@operation("DescribeTasks")
def describe_tasks(ctx, params):
    """Describe up to 100 tasks of one cluster by id or ARN; unknown ones are MISSING failures."""
    include = _include(params)
    find = functools.partial(_find_tasks, include=include)  # tags are read only when asked for
    tasks, failures = _describe_many(ctx, params, "tasks", 100, "task", find, shapes.task_shape)
    return {"tasks": tasks, "failures": failures}


@operation("ListTasks")
def list_tasks(ctx, params):
    """Task ARNs of a cluster by family, service, startedBy, instance and desired status (default RUNNING)."""
    cluster = _get_cluster(ctx, params.get("cluster"))
    rows = Task.objects.filter(cluster=cluster, desired_status=params.get("desiredStatus", Task.RUNNING))
    if params.get("family"):
        rows = rows.filter(task_definition__family=params["family"])
    if params.get("serviceName"):
        rows = rows.filter(service__name=params["serviceName"].rsplit("/", 1)[-1])
    if params.get("startedBy"):
        rows = rows.filter(started_by=params["startedBy"])
    if params.get("launchType"):
        rows = rows.filter(launch_type=params["launchType"])
    if params.get("containerInstance"):
        rows = rows.none()  # Fargate tasks run on no container instance of the account's
    # Keyset pages of (pk, task id): the ARN is the cluster's prefix and the id, so no task
    # row is built and the 100th page costs what the first does.
    prefix = Task.arn_prefix(cluster, ctx.account.account_id)
    rows = rows.order_by("pk").values_list("pk", "task_id")
    items, token = _page_by_key(rows, params, lambda row: prefix + row[1])
    return _paged_response("taskArns", items, token)
