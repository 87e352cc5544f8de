"""Capacity providers: Fargate's two built-in ones, FARGATE and FARGATE_SPOT.

Auto Scaling group capacity providers need EC2 instances the caller owns; the lab's fleet is
Fargate's, hidden and managed for the caller, so creating, updating or deleting one is refused.
"""
from orchestrator import bus
from orchestrator.frontend import EcsError, shapes
from orchestrator.frontend.operations import _get_cluster, _include, _page, _paged_response, operation
from orchestrator.models import region

BUILT_IN = ("FARGATE", "FARGATE_SPOT")
NO_AUTO_SCALING = (
    "Fargate Lab runs the Fargate launch type only: its capacity is Fargate's (the built-in FARGATE and "
    "FARGATE_SPOT capacity providers), and there are no Auto Scaling groups of EC2 container instances "
    "for a capacity provider to manage."
)


def arn(account, name):
    """The ARN of a capacity provider of ``account``."""
    return f"arn:aws:ecs:{region()}:{account.account_id}:capacity-provider/{name}"


def _name(ctx, ref):
    """A capacity provider name from a name or an ARN of this account."""
    prefix = arn(ctx.account, "")
    return ref[len(prefix):] if ref.startswith(prefix) else ref


def capacity_provider_shape(account, name, include=()):
    """A built-in capacity provider as DescribeCapacityProviders returns it."""
    data = {"capacityProviderArn": arn(account, name), "name": name, "status": "ACTIVE", "type": name}
    if "TAGS" in include:
        data["tags"] = []
    return data


def check_strategy(strategy, available=None):
    """Refuse a capacity provider strategy ECS would refuse: providers other than Fargate's (or
    not among the cluster's ``available`` ones), a provider twice, more than one base, no weight."""
    names = check_providers([item["capacityProvider"] for item in strategy])
    for name in names:
        if available is not None and name not in available:
            raise EcsError(
                "InvalidParameterException",
                f"The specified capacity provider strategy cannot contain a capacity provider ({name}) "
                "that is not associated with the cluster.",
            )
    if sum(1 for item in strategy if item.get("base", 0) > 0) > 1:
        raise EcsError(
            "InvalidParameterException",
            "Only one capacity provider in a capacity provider strategy can have a base defined.",
        )
    if strategy and not any(item.get("weight", 0) > 0 for item in strategy):
        raise EcsError(
            "InvalidParameterException",
            "At least one capacity provider in a capacity provider strategy must have a weight greater than zero.",
        )
    return [{"capacityProvider": i["capacityProvider"], "weight": i.get("weight", 0), "base": i.get("base", 0)}
            for i in strategy]


def check_providers(names):
    """Refuse capacity providers other than FARGATE and FARGATE_SPOT, or one named twice."""
    for name in names:
        if name not in BUILT_IN:
            raise EcsError(
                "InvalidParameterException",
                f"The specified capacity provider {name[:255]} does not exist. {NO_AUTO_SCALING}",
            )
    if len(set(names)) != len(names):
        raise EcsError("InvalidParameterException", "A list of capacity providers names each one once.")
    return list(names)


@operation("DescribeCapacityProviders")
def describe_capacity_providers(ctx, params):
    """The built-in FARGATE and FARGATE_SPOT (all, or those named); others are MISSING failures."""
    include = _include(params)
    refs = params.get("capacityProviders")
    if refs is None:
        page_params = dict(params, maxResults=params.get("maxResults", 10))
        if not 1 <= page_params["maxResults"] <= 10:
            raise EcsError("InvalidParameterException", "maxResults must be between 1 and 10.")
        items, token = _page(list(BUILT_IN), page_params, lambda n: capacity_provider_shape(ctx.account, n, include))
        return {**_paged_response("capacityProviders", items, token), "failures": []}
    if len(refs) > 100:
        raise EcsError("InvalidParameterException", "capacityProviders must list at most 100 capacity providers.")
    found, failures = [], []
    for ref in refs:
        name = _name(ctx, ref)
        if name in BUILT_IN:
            found.append(capacity_provider_shape(ctx.account, name, include))
        else:
            failures.append({"arn": ref if ref.startswith("arn:") else arn(ctx.account, ref), "reason": "MISSING"})
    return {"capacityProviders": found, "failures": failures}


@operation("PutClusterCapacityProviders")
def put_cluster_capacity_providers(ctx, params):
    """Set a cluster's capacity providers and its default capacity provider strategy."""
    cluster = _get_cluster(ctx, params["cluster"])
    providers = check_providers(params["capacityProviders"])
    cluster.capacity_providers = providers
    cluster.default_capacity_provider_strategy = check_strategy(params["defaultCapacityProviderStrategy"], providers)
    cluster.save(update_fields=("capacity_providers", "default_capacity_provider_strategy"))
    bus.publish("cluster", cluster.pk)
    return {"cluster": shapes.cluster_shape(cluster, include={"SETTINGS", "CONFIGURATIONS"})}


def _refuse_auto_scaling(ctx, params):
    """Refuse a call that would manage an Auto Scaling group capacity provider."""
    name = _name(ctx, params.get("name") or params.get("capacityProvider") or "")
    if name in BUILT_IN:
        raise EcsError("ClientException", f"The capacity provider {name} is built into Fargate and cannot be changed.")
    raise EcsError("ClientException", NO_AUTO_SCALING)


@operation("CreateCapacityProvider")
def create_capacity_provider(ctx, params):
    """Refused: a reserved name as ECS refuses it, anything else because there are no Auto Scaling groups."""
    if params["name"].lower().startswith(("aws", "ecs", "fargate")):
        raise EcsError(
            "InvalidParameterException",
            "The capacity provider name cannot start with 'aws', 'ecs' or 'fargate': those are reserved.",
        )
    _refuse_auto_scaling(ctx, params)


@operation("UpdateCapacityProvider")
def update_capacity_provider(ctx, params):
    """Refused: FARGATE and FARGATE_SPOT cannot be changed and there are no other capacity providers."""
    _refuse_auto_scaling(ctx, params)


@operation("DeleteCapacityProvider")
def delete_capacity_provider(ctx, params):
    """Refused: FARGATE and FARGATE_SPOT cannot be deleted and there are no other capacity providers."""
    _refuse_auto_scaling(ctx, params)


def strategy_for(params, cluster):
    """The capacity provider strategy an UpdateService asks for, checked against the cluster's
    providers; [] means the FARGATE launch type."""
    return check_strategy(list(params.get("capacityProviderStrategy", [])), cluster.capacity_providers)


def launch_for(params, cluster):
    """What a RunTask, CreateService or CreateTaskSet runs on, as ECS decides it: (launch type,
    checked capacity provider strategy).

    1. Its own launchType, or its own capacityProviderStrategy (its tasks run as FARGATE does).
    2. With neither, the cluster's default capacity provider strategy.
    3. With no default either, ECS's EC2 launch type: the caller's own EC2 container instances,
       of which a Fargate cluster has none (RunTask is refused, a service places nothing)."""
    if params.get("capacityProviderStrategy") or "launchType" in params:
        return "FARGATE", strategy_for(params, cluster)
    if cluster.default_capacity_provider_strategy:
        return "FARGATE", check_strategy(list(cluster.default_capacity_provider_strategy), cluster.capacity_providers)
    return "EC2", []
