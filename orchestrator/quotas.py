"""Service quotas per account, named as AWS Service Quotas names them.

Each quota has AWS's default, which the lab's default account keeps (the teacher's, or a lone
user's), and a classroom default for every other account (a student's), sized so that 30
students fit on one machine of two cores: the fleet grows to ``FARGATE_LAB_MAX_INSTANCES``
(16) instances of the engine's 2 vCPU, 32 vCPU in all, and 30 students × 1 vCPU On-Demand is
30 of them. A value set on the account (by a teacher, in the admin or on the account's quota
page) replaces either default. The frontend checks a quota in the transaction of the write it
limits; the cluster manager checks the vCPU quota before it starts a service's tasks.
"""
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Quota:
    """One quota: its Service Quotas code and name, the Account field that overrides it, its defaults."""

    code: str
    service_code: str
    name: str
    field: str
    aws_default: float
    classroom_setting: str
    unit: str


QUOTAS = (
    Quota("L-3032A538", "fargate", "Fargate On-Demand vCPU resource count", "fargate_on_demand_vcpu_quota",
          4000, "QUOTA_FARGATE_ON_DEMAND_VCPU", "vCPU"),
    Quota("L-36FBB829", "fargate", "Fargate Spot vCPU resource count", "fargate_spot_vcpu_quota",
          4000, "QUOTA_FARGATE_SPOT_VCPU", "vCPU"),
    Quota("L-21C621EB", "ecs", "Clusters per account", "clusters_quota", 10000, "QUOTA_CLUSTERS", "clusters"),
    Quota("L-9EF96962", "ecs", "Services per cluster", "services_per_cluster_quota", 5000,
          "QUOTA_SERVICES_PER_CLUSTER", "services"),
    Quota("", "ecs", "Tasks per service", "tasks_per_service_quota", 5000, "QUOTA_TASKS_PER_SERVICE", "tasks"),
)
BY_FIELD = {quota.field: quota for quota in QUOTAS}
ON_DEMAND_VCPU, SPOT_VCPU, CLUSTERS, SERVICES_PER_CLUSTER, TASKS_PER_SERVICE = QUOTAS
SPOT = "FARGATE_SPOT"
# What ECS says when a task would take the account over its vCPU quota (RunTask's failure
# reason; a service event adds "For more information, …").
VCPU_LIMIT_REASON = "You've reached the limit on the number of vCPUs you can run concurrently"


def default(quota, account):
    """The quota's value for ``account`` when no value is set on it."""
    if account.account_id == settings.FARGATE_LAB["DEFAULT_ACCOUNT"]:
        return quota.aws_default
    return settings.FARGATE_LAB[quota.classroom_setting]


def value(quota, account):
    """The quota's applied value for ``account``: the one set on it, else the default."""
    own = getattr(account, quota.field)
    return default(quota, account) if own is None else own


def hold(account):
    """Lock ``account``'s row until the transaction ends, before a quota is checked against the
    write it limits: on PostgreSQL two such transactions of one account would otherwise both
    count the same usage and both pass. (SQLite's IMMEDIATE transactions already take turns;
    there this is a no-op.)"""
    from orchestrator.models import Account

    list(Account.objects.select_for_update().filter(pk=account.pk).values_list("pk", flat=True))


def vcpu_quota_for(capacity_provider):
    """The vCPU quota tasks of this capacity provider count against."""
    return SPOT_VCPU if capacity_provider == SPOT else ON_DEMAND_VCPU


def vcpu_in_use(account, capacity_provider=""):
    """vCPUs of the account's tasks that hold capacity (every task not yet STOPPED) on this
    capacity provider's quota, as Fargate's ResourceCount counts them."""
    from orchestrator.models import Task

    tasks = Task.objects.filter(account=account).exclude(last_status=Task.STOPPED)
    tasks = tasks.filter(capacity_provider=SPOT) if capacity_provider == SPOT else tasks.exclude(capacity_provider=SPOT)
    return sum(tasks.values_list("cpu", flat=True)) / 1024


def vcpu_room(account, capacity_provider=""):
    """(quota, its value, vCPUs in use, vCPUs left) of the quota tasks of ``capacity_provider`` count against."""
    quota = vcpu_quota_for(capacity_provider)
    limit, used = value(quota, account), vcpu_in_use(account, capacity_provider)
    return quota, limit, used, max(0.0, limit - used)


def tasks_that_fit(account, cpu, providers):
    """Of tasks of ``cpu`` units, one per entry of ``providers`` (their capacity providers), those
    that fit in the account's vCPU quotas now, in order: the list of their providers (call in the
    transaction that starts them: it holds the account)."""
    hold(account)
    room = {}
    fitting = []
    for provider in providers:
        key = SPOT if provider == SPOT else ""
        if key not in room:
            room[key] = vcpu_room(account, key)[3] * 1024
        if cpu <= room[key] + 1e-6:
            room[key] -= cpu
            fitting.append(provider)
    return fitting


def usage(account):
    """Each quota with its applied value, whether the account sets it, and what is in use now,
    for the quota pages: [(quota, value, own, in_use)]."""
    from orchestrator.models import Cluster, Service, region

    # Clusters count per region, as CreateCluster's check does (``service_quotas.check_clusters``).
    clusters = Cluster.objects.filter(account=account, region=region(), status=Cluster.ACTIVE)
    services = Service.objects.filter(account=account).exclude(status=Service.INACTIVE)
    busiest_cluster = max((services.filter(cluster=c).count() for c in clusters), default=0)
    largest_service = max(services.values_list("desired_count", flat=True), default=0)
    in_use = {
        ON_DEMAND_VCPU.field: vcpu_in_use(account), SPOT_VCPU.field: vcpu_in_use(account, SPOT),
        CLUSTERS.field: clusters.count(), SERVICES_PER_CLUSTER.field: busiest_cluster,
        TASKS_PER_SERVICE.field: largest_service,
    }
    return [(q, value(q, account), getattr(account, q.field) is not None, in_use[q.field]) for q in QUOTAS]
