"""The frontend's quota checks: each runs in the transaction of the write it limits, and a
request over a quota changes nothing (``orchestrator.quotas`` holds the quotas themselves)."""
from collections import Counter

from orchestrator import quotas
from orchestrator.frontend import EcsError
from orchestrator.models import Cluster, Service, region


def _over(quota, limit):
    """The ClientException for a request that would take the account over ``quota``."""
    code = f" ({quota.code})" if quota.code else ""
    return EcsError("ClientException", f"You've reached the limit on the number of {quota.unit} you can create: "
                                       f"the quota {quota.name}{code} of this account is {limit:g}.")


def check_clusters(account):
    """CreateCluster of a new cluster: refused when the account has its quota of ACTIVE clusters."""
    limit = account.quota(quotas.CLUSTERS)
    if Cluster.objects.filter(account=account, region=region(), status=Cluster.ACTIVE).count() >= limit:
        raise _over(quotas.CLUSTERS, limit)


def check_services(account, cluster):
    """CreateService: refused when the cluster has its quota of services (INACTIVE ones aside)."""
    limit = account.quota(quotas.SERVICES_PER_CLUSTER)
    if Service.objects.filter(cluster=cluster).exclude(status=Service.INACTIVE).count() >= limit:
        raise _over(quotas.SERVICES_PER_CLUSTER, limit)


def check_desired_count(account, count):
    """CreateService and UpdateService: a desired count above Tasks per service is refused."""
    limit = account.quota(quotas.TASKS_PER_SERVICE)
    if count > limit:
        raise EcsError("ClientException", f"The desired count {count} is above the quota {quotas.TASKS_PER_SERVICE.name} "
                                          f"of this account ({limit:g} tasks).")


def run_task_failures(account, cpu, providers):
    """RunTask's failures (one per task asked, as ECS answers) when the tasks, one per entry of
    ``providers``, would take the account over a vCPU quota; [] when they fit."""
    for provider, count in Counter(providers).items():
        quota, limit, used, room = quotas.vcpu_room(account, provider)
        asked = count * cpu / 1024
        if asked > room + 1e-9:
            detail = (f"{quota.name} ({quota.code}) is {limit:g} vCPU; {used:g} in use, "
                      f"{asked:g} asked for {count} task(s) of {cpu} CPU units.")
            return [{"reason": quotas.VCPU_LIMIT_REASON, "detail": detail} for _ in providers]
    return []
