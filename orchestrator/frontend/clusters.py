"""Cluster operations: CreateCluster, DescribeClusters, ListClusters, DeleteCluster, UpdateCluster,
UpdateClusterSettings.

``configuration`` (ECS Exec logging and KMS keys) is stored and echoed as given: the lab has no
KMS and no ECS Exec log delivery. ``serviceConnectDefaults`` is the namespace Service Connect uses
when a service names none (``service_registries``).
"""
from django.utils import timezone

from orchestrator import bus
from orchestrator.frontend import EcsError, service_quotas, shapes
from orchestrator.frontend.operations import (
    _check_tags, _cluster_name, _get_cluster, _include, _missing, _page, _paged_response, operation,
)
from orchestrator.frontend.validation import check_name
from orchestrator.models import Cluster, Service, Task, region

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


@operation("CreateCluster")
def create_cluster(ctx, params):
    """Create a cluster (or return the existing ACTIVE one, as ECS does); reactivate an INACTIVE one."""
    name = params.get("clusterName", "default")
    check_name(name, "Cluster name")
    fields = create_fields(ctx, params)
    fields["tags"] = _check_tags(params.get("tags", []))
    if not Cluster.objects.filter(account=ctx.account, region=region(), name=name, status=Cluster.ACTIVE).exists():
        service_quotas.check_clusters(ctx.account)
    cluster, created = Cluster.objects.get_or_create(account=ctx.account, region=region(), name=name, defaults=fields)
    if not created and cluster.status == Cluster.INACTIVE:
        for field, value in fields.items():
            setattr(cluster, field, value)
        cluster.status = Cluster.ACTIVE
        cluster.created_at = timezone.now()
        cluster.save(update_fields=("status", "created_at", *fields))
        created = True
    if created:
        bus.publish("cluster", cluster.pk)
    return {"cluster": shapes.cluster_shape(cluster, include=CLUSTER_INCLUDE)}


@operation("DescribeClusters")
def describe_clusters(ctx, params):
    """Describe clusters by name or ARN; unknown ones are failures with reason MISSING."""
    include = _include(params)
    clusters, failures = [], []
    for ref in params.get("clusters") or ["default"]:
        name = _cluster_name(ctx, ref)
        cluster = Cluster.objects.filter(account=ctx.account, region=region(), name=name).first() if name else None
        if cluster is None:
            arn = ref if ref.startswith("arn:") else f"arn:aws:ecs:{region()}:{ctx.account.account_id}:cluster/{ref}"
            failures.append(_missing(arn))
        else:
            clusters.append(shapes.cluster_shape(cluster, include=include))
    return {"clusters": clusters, "failures": failures}


@operation("ListClusters")
def list_clusters(ctx, params):
    """ARNs of the account's ACTIVE clusters."""
    rows = Cluster.objects.filter(account=ctx.account, region=region(), status=Cluster.ACTIVE).order_by("pk").select_related("account")
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
