"""Cluster operations beyond create, describe, list and delete: UpdateCluster, UpdateClusterSettings.

``configuration`` (ECS Exec logging and KMS keys) and ``serviceConnectDefaults`` are stored and
echoed as given: the lab has no KMS, no ECS Exec log delivery and no Cloud Map to act on them.
"""
from orchestrator import bus
from orchestrator.frontend import EcsError, shapes
from orchestrator.frontend.operations import _get_cluster, operation

CONTAINER_INSIGHTS_VALUES = ("enhanced", "enabled", "disabled")
CLUSTER_INCLUDE = {"SETTINGS", "CONFIGURATIONS", "TAGS"}


def check_settings(settings):
    """Cluster settings as stored: containerInsights is the only name, enhanced/enabled/disabled its values."""
    stored = {}
    for setting in settings:
        value = setting.get("value")
        if "name" not in setting or value not in CONTAINER_INSIGHTS_VALUES:
            raise EcsError(
                "InvalidParameterException",
                "The containerInsights cluster setting takes the value enhanced, enabled or disabled.",
            )
        stored[setting["name"]] = value
    return [{"name": name, "value": value} for name, value in stored.items()]


def check_service_connect_defaults(defaults):
    """The cluster's serviceConnectDefaults as stored: a namespace name or ARN."""
    if defaults is None:
        return {}
    namespace = defaults["namespace"]
    if not 1 <= len(namespace) <= 1024:
        raise EcsError("InvalidParameterException", "serviceConnectDefaults.namespace must be 1-1024 characters.")
    return {"namespace": namespace}


@operation("UpdateCluster")
def update_cluster(ctx, params):
    """Change a cluster's settings, configuration and Service Connect defaults."""
    cluster = _get_cluster(ctx, params["cluster"])
    fields = []
    if "settings" in params:
        cluster.settings = check_settings(params["settings"])
        fields.append("settings")
    if "configuration" in params:
        cluster.configuration = params["configuration"]
        fields.append("configuration")
    if "serviceConnectDefaults" in params:
        cluster.service_connect_defaults = check_service_connect_defaults(params["serviceConnectDefaults"])
        fields.append("service_connect_defaults")
    if fields:
        cluster.save(update_fields=fields)
        bus.publish("cluster", cluster.pk)
    return {"cluster": shapes.cluster_shape(cluster, include=CLUSTER_INCLUDE)}


@operation("UpdateClusterSettings")
def update_cluster_settings(ctx, params):
    """Change a cluster's settings (containerInsights)."""
    cluster = _get_cluster(ctx, params["cluster"])
    cluster.settings = check_settings(params["settings"])
    cluster.save(update_fields=("settings",))
    bus.publish("cluster", cluster.pk)
    return {"cluster": shapes.cluster_shape(cluster, include=CLUSTER_INCLUDE)}


def create_fields(ctx, params):
    """The Cluster fields CreateCluster sets, checked; containerInsights defaults to the account setting."""
    from orchestrator.frontend import account_settings, capacity_providers

    settings = check_settings(params.get("settings", []))
    if not any(s["name"] == "containerInsights" for s in settings):
        settings.append({"name": "containerInsights",
                         "value": account_settings.effective(ctx.account, "containerInsights")})
    providers = capacity_providers.check_providers(params.get("capacityProviders", []))
    strategy = params.get("defaultCapacityProviderStrategy", [])
    return {
        "settings": settings,
        "capacity_providers": providers,
        "default_capacity_provider_strategy": capacity_providers.check_strategy(strategy, providers),
        "configuration": params.get("configuration", {}),
        "service_connect_defaults": check_service_connect_defaults(params.get("serviceConnectDefaults")),
    }
