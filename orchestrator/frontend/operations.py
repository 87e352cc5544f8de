"""The ECS operations: validate, write desired state, return botocore-shaped responses.

``dispatch`` is the single entry point (the HTTP API and the dashboard's forms both reach it
through ``orchestrator.frontend.call``). Each operation runs in one transaction; after a write
it publishes the changed object on the bus, which fires on commit, so the control plane and
the dashboard look at it at once. The frontend writes desired state only: tasks start
PROVISIONING and the control plane moves them on.
"""
import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from orchestrator import activity, bus, capacity_strategy, traces
from orchestrator.capacity_manager import matches_expression, task_ceiling, too_big
from orchestrator.frontend import EcsError
from orchestrator.frontend import shapes, wire
from orchestrator.frontend.task_definition_fields import check_overrides
from orchestrator.frontend.task_definitions import fargate_size, normalize
from orchestrator.frontend.validation import check_name, clean
from orchestrator.models import (
    Cluster, ContainerInstance, Deployment, Service, Task, TaskContainer, TaskDefinition, region,
)

OPERATIONS = {}
# Operations that read only; every other one writes desired state (a trace step of its own).
READ_ONLY = ("Describe", "List")
MAX_TAGS = 50
MAX_RUN_COUNT = 10
MAX_DESIRED_COUNT = 5000
_ARN_RE = re.compile(r"arn:aws[a-z-]*:ecs:[a-z0-9-]*:([0-9]{12}):([a-z-]+)/(.+)")
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")
DEFAULT_DEPLOYMENT_CONFIGURATION = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


@dataclass
class Context:
    """Who is calling: the account the request acts in, the caller's name, the trace id."""

    account: object
    caller: str = ""
    trace_id: str = ""


def operation(name):
    """Register a handler for the ECS operation ``name``."""

    def register(handler):
        """Add the handler to OPERATIONS."""
        OPERATIONS[name] = handler
        return handler

    return register


def supported(name):
    """Whether Fargate Lab implements the operation ``name``."""
    return name in OPERATIONS


def dispatch(account, operation_name, params, *, caller="", trace_id=""):
    """Run one ECS operation for ``account``; return the response dict or raise EcsError."""
    handler = OPERATIONS.get(operation_name)
    if handler is None:
        raise EcsError(
            "UnknownOperationException", f"Operation {str(operation_name)[:128]} is not supported by Fargate Lab"
        )
    params = clean(operation_name, params)
    context = Context(account, caller, trace_id or activity.new_trace_id())
    try:
        if operation_name.startswith(READ_ONLY):
            with transaction.atomic():
                return handler(context, params)
        # Validation and the write share one transaction, as admission and the etcd write share
        # one request in the kube-apiserver: the step lasts until the commit.
        with traces.step("state_database", "write", message=f"{operation_name}: desired state written",
                         trace_id=context.trace_id) as write:
            write.skip = True  # a refused request writes nothing: no step
            with transaction.atomic():
                response = handler(context, params)
            write.skip = False
        return response
    except IntegrityError:
        # Two requests raced on a unique name or revision; the loser may simply retry.
        raise EcsError("ConflictException", "A concurrent request changed the same resource. Retry the request.") from None


# --- helpers ---------------------------------------------------------------------------------


def _parse_arn(value, kind, account):
    """The resource part of an ECS ARN of ``kind`` in ``account``, or None if it is another."""
    match = _ARN_RE.fullmatch(value)
    if not match or match.group(2) != kind or match.group(1) != account.account_id:
        return None
    return match.group(3)


def _cluster_name(ctx, ref):
    """A cluster name from a name or an ARN (None when the ARN is not one of ours)."""
    if ref.startswith("arn:"):
        return _parse_arn(ref, "cluster", ctx.account)
    return ref


def _get_cluster(ctx, ref, *, active=True):
    """The cluster named by ``ref`` (name or ARN, default "default"), or ClusterNotFoundException."""
    name = _cluster_name(ctx, ref or "default")
    cluster = Cluster.objects.filter(account=ctx.account, name=name).first() if name else None
    if cluster is None or (active and cluster.status != Cluster.ACTIVE):
        raise EcsError("ClusterNotFoundException", "Cluster not found.")
    return cluster


def _cluster_of(ctx, params, ref, kind):
    """The cluster of a request: its ``cluster`` parameter, else the one a task or service ARN names."""
    if "cluster" not in params and ref.startswith("arn:"):
        rest = _parse_arn(ref, kind, ctx.account) or ""
        if "/" in rest:
            return _get_cluster(ctx, rest.split("/", 1)[0])
    return _get_cluster(ctx, params.get("cluster"))


def _get_task_definition(ctx, ref, *, not_found=("ClientException", "Unable to describe task definition.")):
    """A task definition from "family", "family:revision" or its ARN (family alone: latest ACTIVE)."""
    if ref.startswith("arn:"):
        ref = _parse_arn(ref, "task-definition", ctx.account) or ""
    family, _, revision = ref.partition(":")
    rows = deleted_task_definitions.present(TaskDefinition.objects.filter(account=ctx.account, family=family))
    if revision:
        number = wire.ascii_int(revision, max_digits=9)
        found = rows.filter(revision=number).first() if number is not None else None
    else:
        found = rows.filter(status=TaskDefinition.ACTIVE).order_by("-revision").first()
    if found is None:
        raise EcsError(*not_found)
    return found


def _runnable_task_definition(ctx, ref):
    """A task definition that new tasks may use: it exists, is ACTIVE and fits Fargate."""
    td = _get_task_definition(ctx, ref, not_found=("ClientException", "TaskDefinition not found."))
    if td.status != TaskDefinition.ACTIVE:
        raise EcsError("ClientException", f"TaskDefinition is inactive ({td.family}:{td.revision}).")
    if "FARGATE" not in td.body.get("compatibilities", []):
        raise EcsError("InvalidParameterException", "Task definition does not support launch_type FARGATE.")
    return td


def _check_launch_type(params):
    """Refuse any launch type or capacity provider but Fargate's."""
    launch_type = params.get("launchType", "FARGATE")
    if launch_type != "FARGATE":
        raise EcsError(
            "InvalidParameterException",
            f"Fargate Lab runs tasks on FARGATE only; launchType {launch_type} is not supported.",
        )
    if params.get("capacityProviderStrategy") and "launchType" in params:
        raise EcsError(
            "InvalidParameterException",
            "Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.",
        )


def _check_tags(tags):
    """Check tags as ECS does (at most 50, non-empty keys, no aws: prefix); return them as stored."""
    keys = [tag.get("key") for tag in tags]
    if len(tags) > MAX_TAGS:
        raise EcsError("InvalidParameterException", f"A resource can have at most {MAX_TAGS} tags.")
    for key in keys:
        if not key:
            raise EcsError("InvalidParameterException", "Tag keys must not be empty.")
        if key.lower().startswith("aws:"):
            raise EcsError("InvalidParameterException", "Tag keys starting with 'aws:' are reserved.")
    return [{"key": tag["key"], "value": tag.get("value", "")} for tag in tags]


def _merge_tags(existing, new):
    """Tags after TagResource: new values overwrite those of the same key."""
    merged = {tag["key"]: tag["value"] for tag in existing}
    merged.update({tag["key"]: tag["value"] for tag in new})
    tags = [{"key": k, "value": v} for k, v in merged.items()]
    if len(tags) > MAX_TAGS:
        raise EcsError("InvalidParameterException", f"A resource can have at most {MAX_TAGS} tags.")
    return tags


def _client_token(params, max_length):
    """The request's clientToken ("" when none), checked for length and printable ASCII."""
    token = params.get("clientToken", "")
    if token and (len(token) > max_length or not _TOKEN_RE.fullmatch(token)):
        raise EcsError(
            "InvalidParameterException",
            f"clientToken must be 1-{max_length} printable ASCII characters (codes 33-126).",
        )
    return token


def _fingerprint(params):
    """A digest of the request minus its clientToken: "the same parameters" for idempotency."""
    data = {k: v for k, v in params.items() if k != "clientToken"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _include(params):
    """The set of extras a Describe call asks for (TAGS, SETTINGS, …)."""
    return set(params.get("include", []))


def _check_length(value, limit, what):
    """Refuse a string longer than the database keeps, with a clear message."""
    if len(value) > limit:
        raise EcsError("InvalidParameterException", f"{what} must be at most {limit} characters.")
    return value


def _page(rows, params, serialize):
    """One page of a List* result: (items, nextToken or None). The token is opaque to clients."""
    max_results = params.get("maxResults", 100)
    if not 1 <= max_results <= 100:
        raise EcsError("InvalidParameterException", "maxResults must be between 1 and 100.")
    offset = _decode_token(params.get("nextToken"))
    chunk = list(rows[offset:offset + max_results + 1])
    token = _encode_token(offset + max_results) if len(chunk) > max_results else None
    return [serialize(row) for row in chunk[:max_results]], token


def _encode_token(offset):
    """An opaque nextToken for the page that starts at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token):
    """The offset a nextToken stands for; InvalidParameterException if it is not ours."""
    if not token:
        return 0
    try:
        offset = wire.json_object(base64.urlsafe_b64decode(token.encode("ascii")))["offset"]
    except (ValueError, TypeError, KeyError, UnicodeError, binascii.Error):  # wire.Malformed is a ValueError
        raise EcsError("InvalidParameterException", "Invalid nextToken.") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise EcsError("InvalidParameterException", "Invalid nextToken.")
    return offset


def _paged_response(key, items, token):
    """A List* response: the items, and nextToken only when there is more."""
    response = {key: items}
    if token:
        response["nextToken"] = token
    return response


def _missing(arn):
    """A Describe* failure entry for something that does not exist."""
    return {"arn": arn, "reason": "MISSING"}


# --- clusters --------------------------------------------------------------------------------


@operation("CreateCluster")
def create_cluster(ctx, params):
    """Create a cluster (or return the existing ACTIVE one, as ECS does); reactivate an INACTIVE one."""
    name = params.get("clusterName", "default")
    check_name(name, "Cluster name")
    fields = clusters.create_fields(ctx, params)
    fields["tags"] = _check_tags(params.get("tags", []))
    if not Cluster.objects.filter(account=ctx.account, name=name, status=Cluster.ACTIVE).exists():
        service_quotas.check_clusters(ctx.account)
    cluster, created = Cluster.objects.get_or_create(account=ctx.account, name=name, defaults=fields)
    if not created and cluster.status == Cluster.INACTIVE:
        for field, value in fields.items():
            setattr(cluster, field, value)
        cluster.status = Cluster.ACTIVE
        cluster.created_at = timezone.now()
        cluster.save(update_fields=("status", "created_at", *fields))
        created = True
    if created:
        bus.publish("cluster", cluster.pk)
    return {"cluster": shapes.cluster_shape(cluster, include=clusters.CLUSTER_INCLUDE)}


@operation("DescribeClusters")
def describe_clusters(ctx, params):
    """Describe clusters by name or ARN; unknown ones are failures with reason MISSING."""
    include = _include(params)
    clusters, failures = [], []
    for ref in params.get("clusters") or ["default"]:
        name = _cluster_name(ctx, ref)
        cluster = Cluster.objects.filter(account=ctx.account, name=name).first() if name else None
        if cluster is None:
            arn = ref if ref.startswith("arn:") else f"arn:aws:ecs:{region()}:{ctx.account.account_id}:cluster/{ref}"
            failures.append(_missing(arn))
        else:
            clusters.append(shapes.cluster_shape(cluster, include=include))
    return {"clusters": clusters, "failures": failures}


@operation("ListClusters")
def list_clusters(ctx, params):
    """ARNs of the account's ACTIVE clusters."""
    rows = Cluster.objects.filter(account=ctx.account, status=Cluster.ACTIVE).order_by("pk").select_related("account")
    items, token = _page(rows, params, lambda c: c.arn)
    return _paged_response("clusterArns", items, token)


@operation("DeleteCluster")
def delete_cluster(ctx, params):
    """Make an empty cluster INACTIVE; refuse while it holds services or tasks."""
    cluster = _get_cluster(ctx, params["cluster"])
    if cluster.services.exclude(status=Service.INACTIVE).exists():
        raise EcsError("ClusterContainsServicesException", "The Cluster cannot be deleted while Services are active.")
    if cluster.tasks.exclude(last_status=Task.STOPPED).exists():
        raise EcsError("ClusterContainsTasksException", "The Cluster cannot be deleted while Tasks are active.")
    cluster.status = Cluster.INACTIVE
    cluster.save(update_fields=("status",))
    bus.publish("cluster", cluster.pk)
    return {"cluster": shapes.cluster_shape(cluster)}


# --- task definitions ------------------------------------------------------------------------


@operation("RegisterTaskDefinition")
def register_task_definition(ctx, params):
    """Register the next revision of a family (deregistered revisions still count)."""
    body, cpu, memory = normalize(params, ctx.account.account_id)
    tags = _check_tags(params.get("tags", []))
    last = TaskDefinition.objects.filter(account=ctx.account, family=params["family"]).aggregate(r=Max("revision"))["r"]
    td = TaskDefinition.objects.create(
        account=ctx.account, family=params["family"], revision=(last or 0) + 1,
        body=body, cpu=cpu, memory=memory, tags=tags,
    )
    bus.publish("task_definition", td.pk)
    response = {"taskDefinition": shapes.task_definition_shape(td)}
    if tags:
        response["tags"] = tags
    return response


@operation("DescribeTaskDefinition")
def describe_task_definition(ctx, params):
    """A task definition by family, family:revision or ARN; tags with include=["TAGS"]."""
    td = _get_task_definition(ctx, params["taskDefinition"])
    response = {"taskDefinition": shapes.task_definition_shape(td)}
    if "TAGS" in _include(params):
        response["tags"] = list(td.tags)
    return response


@operation("ListTaskDefinitions")
def list_task_definitions(ctx, params):
    """Task definition ARNs, filtered by family and status (default ACTIVE), sorted ASC or DESC."""
    rows = deleted_task_definitions.present(
        TaskDefinition.objects.filter(account=ctx.account, status=params.get("status", TaskDefinition.ACTIVE))
    )
    if params.get("familyPrefix"):
        rows = rows.filter(family=params["familyPrefix"])
    order = ("-family", "-revision") if params.get("sort") == "DESC" else ("family", "revision")
    items, token = _page(rows.order_by(*order).select_related("account"), params, lambda td: td.arn)
    return _paged_response("taskDefinitionArns", items, token)


@operation("ListTaskDefinitionFamilies")
def list_task_definition_families(ctx, params):
    """Family names by prefix; status ACTIVE (has an active revision), INACTIVE (has none) or ALL."""
    rows = deleted_task_definitions.present(TaskDefinition.objects.filter(account=ctx.account))
    if params.get("familyPrefix"):
        rows = rows.filter(family__startswith=params["familyPrefix"])
    active = set(rows.filter(status=TaskDefinition.ACTIVE).values_list("family", flat=True))
    families = sorted(set(rows.values_list("family", flat=True)))
    status = params.get("status", "ALL")
    if status == "ACTIVE":
        families = [f for f in families if f in active]
    elif status == "INACTIVE":
        families = [f for f in families if f not in active]
    items, token = _page(families, params, lambda f: f)
    return _paged_response("families", items, token)


@operation("DeregisterTaskDefinition")
def deregister_task_definition(ctx, params):
    """Mark one revision INACTIVE: running tasks and services keep it, new ones cannot use it."""
    ref = params["taskDefinition"]
    family_ref = _parse_arn(ref, "task-definition", ctx.account) or "" if ref.startswith("arn:") else ref
    if ":" not in family_ref:
        raise EcsError("InvalidParameterException", "A revision must be specified: family:revision or the full ARN.")
    td = _get_task_definition(ctx, ref, not_found=("ClientException", "The specified task definition does not exist."))
    if td.status == TaskDefinition.ACTIVE:
        td.status = TaskDefinition.INACTIVE
        td.deregistered_at = timezone.now()
        td.save(update_fields=("status", "deregistered_at"))
        bus.publish("task_definition", td.pk)
    return {"taskDefinition": shapes.task_definition_shape(td)}


# --- tasks -----------------------------------------------------------------------------------


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
        return fargate_size(overrides.get("cpu", str(td.cpu)), overrides.get("memory", str(td.memory)))
    return td.cpu, td.memory


def _create_task(ctx, cluster, td, *, cpu, memory, overrides=None, group="", started_by="", tags=(),
                 client_token="", fingerprint="", placement=((), ()), capacity_provider=""):
    """One Task row (desired RUNNING, last PROVISIONING) and a TaskContainer per container definition."""
    now = timezone.now()
    task = Task.objects.create(
        account=ctx.account, cluster=cluster, task_definition=td, group=group or f"family:{td.family}",
        started_by=started_by, launch_type="FARGATE", capacity_provider=capacity_provider, cpu=cpu, memory=memory, overrides=overrides or {},
        tags=list(tags), client_token=client_token, request_fingerprint=fingerprint, trace_id=ctx.trace_id,
        placement_strategy=list(placement[0]), placement_constraints=list(placement[1]),
        created_at=now, updated_at=now,
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
    return queryset.select_related("account", "cluster", "task_definition__account", "container_instance")


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
    td = _runnable_task_definition(ctx, params["taskDefinition"])
    overrides = params.get("overrides", {})
    cpu, memory = _task_overrides(td, overrides)
    group = _check_length(params.get("group", ""), 255, "group")
    started_by = _check_length(params.get("startedBy", ""), 128, "startedBy")
    tags = _check_tags(params.get("tags", []))
    strategies, constraints = _check_placement(params)
    providers = capacity_strategy.spread(capacity_providers.strategy_for(params, cluster), count)
    refusal = too_big(cpu, memory, task_ceiling())
    if refusal:  # no instance could ever hold it: ECS starts none and says why in the failures
        return {"tasks": [], "failures": [{"reason": refusal[0], "detail": refusal[1]} for _ in range(count)]}
    over_quota = service_quotas.run_task_failures(ctx.account, cpu, providers)
    if over_quota:  # over the account's vCPU quota: none starts, as the failures say
        return {"tasks": [], "failures": over_quota}
    tasks = [
        _create_task(
            ctx, cluster, td, cpu=cpu, memory=memory, overrides=overrides, group=group, started_by=started_by,
            tags=tags, client_token=token, fingerprint=fingerprint,
            placement=(strategies, constraints), capacity_provider=provider,
        )
        for provider in providers
    ]
    tasks = _task_rows(Task.objects.filter(pk__in=[t.pk for t in tasks])).order_by("pk")
    return {"tasks": [shapes.task_shape(t, include={"TAGS"}) for t in tasks], "failures": []}


MAX_PLACEMENT_STRATEGIES = 5
MAX_PLACEMENT_CONSTRAINTS = 10


def _check_placement(params):
    """The request's placementStrategy and placementConstraints, refused with ECS's error type
    if the lab could never honour them (a task would wait PROVISIONING forever)."""
    strategies = params.get("placementStrategy", [])
    constraints = params.get("placementConstraints", [])
    if len(strategies) > MAX_PLACEMENT_STRATEGIES:
        raise EcsError("InvalidParameterException",
                       f"You may specify at most {MAX_PLACEMENT_STRATEGIES} placement strategies.")
    if len(constraints) > MAX_PLACEMENT_CONSTRAINTS:
        raise EcsError("InvalidParameterException",
                       f"You may specify at most {MAX_PLACEMENT_CONSTRAINTS} placement constraints.")
    for strategy in strategies:
        kind, field = strategy.get("type"), strategy.get("field")
        if kind == "binpack" and str(field).lower() not in ("cpu", "memory"):
            raise EcsError("InvalidParameterException", "The binpack placement strategy takes the field cpu or memory.")
        if kind == "spread" and field not in (None, "instanceId", "host") and not str(field).startswith("attribute:"):
            raise EcsError("InvalidParameterException",
                           "The spread placement strategy takes the field instanceId, host or attribute:<name>.")
        if kind == "random" and field:
            raise EcsError("InvalidParameterException", "The random placement strategy takes no field.")
    for constraint in constraints:
        kind, expression = constraint.get("type"), constraint.get("expression")
        if kind == "distinctInstance" and expression:
            raise EcsError("InvalidParameterException", "A distinctInstance placement constraint takes no expression.")
        if kind == "memberOf":
            if not expression:
                raise EcsError("InvalidParameterException", "A memberOf placement constraint needs an expression.")
            if len(expression) > 2000 or matches_expression(expression, {}) is None:
                raise EcsError(
                    "InvalidParameterException",
                    f"Fargate Lab cannot evaluate the memberOf expression {expression[:200]!r}: it supports "
                    "attribute:<name> == value, != value, in [a, b] and not_in [a, b].",
                )
    return strategies, constraints


def _find_task(ctx, cluster, ref):
    """A task of the cluster by id or ARN, or None."""
    task_id = ref
    if ref.startswith("arn:"):
        task_id = (_parse_arn(ref, "task", ctx.account) or "").rsplit("/", 1)[-1]
    return _task_rows(Task.objects.filter(account=ctx.account, cluster=cluster, task_id=task_id)).first()


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


def _describe_many(ctx, params, key, limit, kind, find, shape):
    """Shape each object ``params[key]`` names (1 to ``limit`` ids or ARNs of one cluster); the
    unknown ones are MISSING failures. Returns (shaped objects, failures)."""
    refs = params[key]
    if not 1 <= len(refs) <= limit:
        raise EcsError("InvalidParameterException", f"{key} must list between 1 and {limit} {key}.")
    cluster = _cluster_of(ctx, params, refs[0], kind)
    include = _include(params)
    found, failures = [], []
    for ref in refs:
        obj = find(ctx, cluster, ref)
        if obj is None:
            arn = ref if ref.startswith("arn:") else f"arn:aws:ecs:{region()}:{ctx.account.account_id}:{kind}/{cluster.name}/{ref}"
            failures.append(_missing(arn))
        else:
            found.append(shape(obj, include=include))
    return found, failures


@operation("DescribeTasks")
def describe_tasks(ctx, params):
    """Describe up to 100 tasks of one cluster by id or ARN; unknown ones are MISSING failures."""
    tasks, failures = _describe_many(ctx, params, "tasks", 100, "task", _find_task, shapes.task_shape)
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
        rows = rows.filter(container_instance__instance_id=params["containerInstance"].rsplit("/", 1)[-1])
    rows = rows.order_by("pk").select_related("account", "cluster")
    items, token = _page(rows, params, lambda t: t.arn)
    return _paged_response("taskArns", items, token)


# --- services --------------------------------------------------------------------------------


def _service_name(ctx, ref):
    """A service name from a name or an ARN."""
    if ref.startswith("arn:"):
        return (_parse_arn(ref, "service", ctx.account) or "").rsplit("/", 1)[-1]
    return ref


def _find_service(ctx, cluster, ref):
    """The live service of that name in the cluster, else its most recent INACTIVE one."""
    name = _service_name(ctx, ref)
    rows = Service.objects.filter(cluster=cluster, name=name).select_related(
        "account", "cluster__account", "task_definition__account"
    )
    return rows.exclude(status=Service.INACTIVE).first() or rows.order_by("-pk").first()


def _get_live_service(ctx, params):
    """The ACTIVE service a request names, or ServiceNotFound / ServiceNotActive."""
    cluster = _cluster_of(ctx, params, params["service"], "service")
    service = _find_service(ctx, cluster, params["service"])
    if service is None:
        raise EcsError("ServiceNotFoundException", "Service not found.")
    if service.status != Service.ACTIVE:
        raise EcsError("ServiceNotActiveException", "Service was not ACTIVE.")
    return service


def _deployment_configuration(given, current=None):
    """The service's deploymentConfiguration: ``given`` over ``current`` over ECS's defaults."""
    conf = json.loads(json.dumps(current or DEFAULT_DEPLOYMENT_CONFIGURATION))
    for key, value in (given or {}).items():
        if key == "deploymentCircuitBreaker":
            conf[key] = {**conf.get(key, {}), **value}
        else:
            conf[key] = value
    if not 0 <= conf.get("minimumHealthyPercent", 100) <= 100:
        raise EcsError("InvalidParameterException", "minimumHealthyPercent must be between 0 and 100.")
    if not 100 <= conf.get("maximumPercent", 200) <= 400:
        raise EcsError("InvalidParameterException", "maximumPercent must be between 100 and 400.")
    return conf


def _check_desired_count(count):
    """Refuse a desired count below 0 or above ECS's per-service limit."""
    if not 0 <= count <= MAX_DESIRED_COUNT:
        raise EcsError("InvalidParameterException", f"desiredCount must be between 0 and {MAX_DESIRED_COUNT}.")
    return count


def _new_deployment(service):
    """Make a new PRIMARY deployment for the service's task definition; older PRIMARY ones become ACTIVE."""
    now = timezone.now()
    service.deployments.filter(status=Deployment.PRIMARY).update(status=Deployment.ACTIVE, updated_at=now)
    return Deployment.objects.create(
        service=service, deployment_id=Deployment.new_id(), status=Deployment.PRIMARY,
        task_definition=service.task_definition, desired_count=service.desired_count,
        rollout_state=Deployment.IN_PROGRESS, created_at=now, updated_at=now,
    )


def _service_response(service):
    """The {"service": …} response, read back fresh after the write."""
    service = Service.objects.select_related("account", "cluster__account", "task_definition__account").get(pk=service.pk)
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
    strategy = capacity_providers.strategy_for(params, cluster)
    if params.get("schedulingStrategy", "REPLICA") != "REPLICA":
        raise EcsError("InvalidParameterException", "Fargate only supports the REPLICA scheduling strategy.")
    if "taskDefinition" not in params:
        raise EcsError("InvalidParameterException", "TaskDefinition cannot be empty.")
    td = _runnable_task_definition(ctx, params["taskDefinition"])
    strategies, constraints = _check_placement(params)
    desired_count = _check_desired_count(params.get("desiredCount", 0))
    service_quotas.check_services(ctx.account, cluster)
    service_quotas.check_desired_count(ctx.account, desired_count)
    now = timezone.now()
    service = Service.objects.create(
        account=ctx.account, cluster=cluster, name=name, task_definition=td,
        desired_count=desired_count,
        deployment_configuration=_deployment_configuration(params.get("deploymentConfiguration")),
        network_configuration=params.get("networkConfiguration", {}),
        load_balancers=_check_load_balancers(ctx, params.get("loadBalancers", []), td),
        placement_strategy=strategies, placement_constraints=constraints,
        capacity_provider_strategy=strategy,
        health_check_grace_period=params.get("healthCheckGracePeriodSeconds"),
        client_token=token, request_fingerprint=fingerprint,
        tags=_check_tags(params.get("tags", [])),
        created_by=f"arn:aws:iam::{ctx.account.account_id}:root",
        created_at=now, updated_at=now,
    )
    _new_deployment(service)
    bus.publish("service", service.pk)
    return _service_response(service)


@operation("UpdateService")
def update_service(ctx, params):
    """Scale a service or roll it to a new task definition (a new PRIMARY deployment)."""
    service = _get_live_service(ctx, params)
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
        service.network_configuration = params["networkConfiguration"]
        fields.add("network_configuration")
        new_deployment = True
    if "loadBalancers" in params:
        _check_load_balancers(ctx, params["loadBalancers"], service.task_definition)
    _check_placement(params)
    for param, field in (
        ("loadBalancers", "load_balancers"),
        ("placementStrategy", "placement_strategy"),
        ("placementConstraints", "placement_constraints"),
        ("healthCheckGracePeriodSeconds", "health_check_grace_period"),
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
    service.updated_at = timezone.now()
    service.steady = False
    fields.add("steady")
    service.save(update_fields=tuple(fields))
    if new_deployment:
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
    services, failures = _describe_many(ctx, params, "services", 10, "service", _find_service, shapes.service_shape)
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


# --- container instances (the shared fleet) ----------------------------------------------------


@operation("ListContainerInstances")
def list_container_instances(ctx, params):
    """The fleet's instances, as ARNs seen from this cluster (the fleet is shared by all clusters)."""
    cluster = _get_cluster(ctx, params.get("cluster"))
    rows = ContainerInstance.objects.exclude(status=ContainerInstance.INACTIVE)
    if params.get("status"):
        rows = ContainerInstance.objects.filter(status=params["status"])
    account_id = ctx.account.account_id
    items, token = _page(rows.order_by("pk"), params, lambda ci: ci.arn_for(account_id, cluster.name))
    return _paged_response("containerInstanceArns", items, token)


@operation("DescribeContainerInstances")
def describe_container_instances(ctx, params):
    """Registered and remaining CPU and memory of fleet instances, by id or ARN."""
    cluster = _get_cluster(ctx, params.get("cluster"))
    refs = params["containerInstances"]
    if not 1 <= len(refs) <= 100:
        raise EcsError("InvalidParameterException", "containerInstances must list between 1 and 100 instances.")
    account_id = ctx.account.account_id
    instances, failures = [], []
    for ref in refs:
        instance = ContainerInstance.objects.filter(instance_id=ref.rsplit("/", 1)[-1]).first()
        if instance is None:
            failures.append(_missing(ref))
        else:
            instances.append(shapes.container_instance_shape(instance, account_id, cluster.name))
    return {"containerInstances": instances, "failures": failures}


# --- tags ------------------------------------------------------------------------------------


def _tagged_resource(ctx, arn):
    """The row an ARN names (cluster, task definition, task or service), for the tag operations."""
    match = _ARN_RE.fullmatch(arn)
    if not match:
        raise EcsError("InvalidParameterException", "The ARN provided is not valid.")
    if match.group(1) != ctx.account.account_id:
        raise EcsError("AccessDeniedException", "The resource belongs to another account.")
    kind, rest = match.group(2), match.group(3)
    resource, publish_kind = None, kind.replace("-", "_")
    if kind == "cluster":
        resource = Cluster.objects.filter(account=ctx.account, name=rest).first()
        if resource is None:
            raise EcsError("ClusterNotFoundException", "Cluster not found.")
        return resource, publish_kind
    if kind == "task-definition":
        family, _, revision = rest.partition(":")
        number = wire.ascii_int(revision, max_digits=9)
        if number is not None:
            resource = TaskDefinition.objects.filter(account=ctx.account, family=family, revision=number).first()
    elif kind == "task":
        resource = Task.objects.filter(account=ctx.account, task_id=rest.rsplit("/", 1)[-1]).first()
    elif kind == "service":
        cluster_name, _, name = rest.rpartition("/")
        rows = Service.objects.filter(account=ctx.account, name=name)
        if cluster_name:
            rows = rows.filter(cluster__name=cluster_name)
        resource = rows.exclude(status=Service.INACTIVE).first() or rows.order_by("-pk").first()
    else:
        raise EcsError("InvalidParameterException", f"Tagging is not supported for {kind[:32]} resources.")
    if resource is None:
        raise EcsError("ResourceNotFoundException", "The specified resource could not be found.")
    return resource, publish_kind


def _save_tags(resource, kind):
    """Save a resource's tags (tasks and services also say when they changed) and publish it."""
    fields = ["tags"]
    if isinstance(resource, (Task, Service)):
        resource.updated_at = timezone.now()
        fields.append("updated_at")
    resource.save(update_fields=fields)
    bus.publish(kind, resource.pk)


@operation("TagResource")
def tag_resource(ctx, params):
    """Add or overwrite tags on a cluster, task definition, task or service."""
    resource, kind = _tagged_resource(ctx, params["resourceArn"])
    resource.tags = _merge_tags(resource.tags, _check_tags(params["tags"]))
    _save_tags(resource, kind)
    return {}


@operation("UntagResource")
def untag_resource(ctx, params):
    """Remove tags by key."""
    resource, kind = _tagged_resource(ctx, params["resourceArn"])
    removed = set(params["tagKeys"])
    resource.tags = [tag for tag in resource.tags if tag["key"] not in removed]
    _save_tags(resource, kind)
    return {}


@operation("ListTagsForResource")
def list_tags_for_resource(ctx, params):
    """The tags of a cluster, task definition, task or service."""
    resource, _ = _tagged_resource(ctx, params["resourceArn"])
    return {"tags": list(resource.tags)}


# Operations of the resource families that have a module of their own register on import.
from orchestrator.frontend import (  # noqa: E402,F401,I001
    account_settings, capacity_providers, clusters, deleted_task_definitions, not_applicable, service_quotas,
)
