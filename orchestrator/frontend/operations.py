"""The ECS operations' entry point and the helpers they share.

``dispatch`` is the single entry point (the HTTP API and the dashboard's forms both reach it
through ``orchestrator.frontend.call``). Each operation lives in the module of its resource
family (``clusters``, ``task_definitions``, ``tasks``, ``services``, ``deployments``,
``capacity_providers``, ``account_settings``, ``container_instances``, ``tags``…) and registers
itself with ``@operation``. Each runs in one transaction; after a write it publishes the changed
object on the bus, which fires on commit, so the control plane and the dashboard look at it at
once. The frontend writes desired state only: tasks start PROVISIONING and the control plane
moves them on.
"""
import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from orchestrator import activity, quotas, state_database, traces
from orchestrator.capacity_manager import matches_expression
from orchestrator.frontend import EcsError
from orchestrator.frontend import wire
from orchestrator.frontend.validation import clean
from orchestrator.models import TaskDefinition, Cluster, region

OPERATIONS = {}
# Operations that read only; every other one writes desired state (a trace step of its own).
READ_ONLY = ("Describe", "List")
MAX_TAGS = 50
MAX_PLACEMENT_STRATEGIES = 5
MAX_PLACEMENT_CONSTRAINTS = 10
_ARN_RE = re.compile(r"arn:aws[a-z-]*:ecs:[a-z0-9-]*:([0-9]{12}):([a-z-]+)/(.+)")
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")


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
            with state_database.reading():  # a snapshot; reads never queue behind writers
                return handler(context, params)
        # Validation and the write share one transaction, as admission and the etcd write share
        # one request in the kube-apiserver: the step lasts until the commit.
        with traces.step("state_database", "write", message=f"{operation_name}: desired state written",
                         trace_id=context.trace_id) as write:
            write.skip = True  # a refused request writes nothing: no step
            with transaction.atomic():
                # One account's writes take turns, as on SQLite, so that a quota or a clientToken
                # checked here still holds at the commit (the account row first: no deadlock).
                quotas.hold(account)
                response = handler(context, params)
            write.skip = False
        return response
    except IntegrityError:
        # Two requests raced on a unique name or revision; the loser may simply retry.
        raise EcsError("ConflictException", "A concurrent request changed the same resource. Retry the request.") from None


# --- helpers ---------------------------------------------------------------------------------


def in_region(arn):
    """Whether an ARN names the region the call acts in."""
    parts = arn.split(":", 4)
    return len(parts) > 3 and parts[3] == region()


def _parse_arn(value, kind, account):
    """The resource part of an ECS ARN of ``kind`` in ``account`` and the call's region, or None
    if it is another (another region's objects are not this region's)."""
    match = _ARN_RE.fullmatch(value)
    if not match or match.group(2) != kind or match.group(1) != account.account_id or not in_region(value):
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
    cluster = Cluster.objects.filter(account=ctx.account, region=region(), name=name).first() if name else None
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
    rows = deleted_task_definitions.present(TaskDefinition.objects.filter(account=ctx.account, region=region(), family=family))
    if revision:
        number = wire.ascii_int(revision, max_digits=9)
        found = rows.filter(revision=number).first() if number is not None else None
    else:
        found = rows.filter(status=TaskDefinition.ACTIVE).order_by("-revision").first()
    if found is None:
        raise EcsError(*not_found)
    return found


def _runnable_task_definition(ctx, ref, launch_type="FARGATE"):
    """A task definition that new tasks may use: it exists, is ACTIVE and fits the launch type."""
    td = _get_task_definition(ctx, ref, not_found=("ClientException", "TaskDefinition not found."))
    if td.status != TaskDefinition.ACTIVE:
        raise EcsError("ClientException", f"TaskDefinition is inactive ({td.family}:{td.revision}).")
    if launch_type not in td.body.get("compatibilities", []):
        raise EcsError("InvalidParameterException", f"Task definition does not support launch_type {launch_type}.")
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


def _page_by_key(rows, params, serialize, key="pk"):
    """One page of a List* result over ``rows`` ordered by ``key`` (unique, ascending): the
    token remembers the last key handed out, so a page deep in 10,000 rows is an index seek,
    not an OFFSET that walks every row before it. ``serialize`` takes one row of ``rows``."""
    max_results = params.get("maxResults", 100)
    if not 1 <= max_results <= 100:
        raise EcsError("InvalidParameterException", "maxResults must be between 1 and 100.")
    after = _decode_token(params.get("nextToken"), field="after") if params.get("nextToken") else None
    if after is not None:
        rows = rows.filter(**{f"{key}__gt": after})
    chunk = list(rows[:max_results + 1])
    items = chunk[:max_results]
    token = _encode_token(_key_of(items[-1], key), field="after") if len(chunk) > max_results else None
    return [serialize(row) for row in items], token


def _key_of(row, key):
    """The ordering key of one row (a model instance, a dict of values or a tuple's first item)."""
    if isinstance(row, dict):
        return row[key]
    if isinstance(row, tuple):
        return row[0]
    return getattr(row, key)


def _encode_token(offset, field="offset"):
    """An opaque nextToken for the page that starts at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({field: offset}).encode()).decode()


def _decode_token(token, field="offset"):
    """The offset (or the last key, ``field="after"``) a nextToken stands for;
    InvalidParameterException if it is not ours."""
    if not token:
        return 0
    try:
        offset = wire.json_object(base64.urlsafe_b64decode(token.encode("ascii")))[field]
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


def _describe_many(ctx, params, key, limit, kind, find_all, shape):
    """Shape each object ``params[key]`` names (1 to ``limit`` ids or ARNs of one cluster); the
    unknown ones are MISSING failures. ``find_all(ctx, cluster, refs)`` fetches them all at once
    (a few queries, not a few per object), None where there is none. Returns (shaped objects,
    failures)."""
    refs = params[key]
    if not 1 <= len(refs) <= limit:
        raise EcsError("InvalidParameterException", f"{key} must list between 1 and {limit} {key}.")
    cluster = _cluster_of(ctx, params, refs[0], kind)
    include = _include(params)
    found, failures = [], []
    for ref, obj in zip(refs, find_all(ctx, cluster, refs)):
        if obj is None:
            arn = ref if ref.startswith("arn:") else f"arn:aws:ecs:{region()}:{ctx.account.account_id}:{kind}/{cluster.name}/{ref}"
            failures.append(_missing(arn))
        else:
            found.append(shape(obj, include=include))
    return found, failures


# Operations of the resource families, each in its own module, register on import.
from orchestrator.frontend import (  # noqa: E402,F401,I001
    account_settings, attributes, capacity_providers, clusters, container_instances, deleted_task_definitions,
    deployments, execute_command, express_gateway, not_applicable, service_quotas, service_registries, services, tags,
    task_definitions, task_protection, task_sets, tasks,
)
