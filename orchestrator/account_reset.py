"""Resetting an account (the teacher's "start this student over"): every object of the account
and every container and network of its tasks go; its users, access keys and quotas stay, and
its users' labs start over.

The steps, in an order that leaves no window for the control plane to act on what goes:
1. Claim: every task of the account not yet STOPPED is marked STOPPED with a conditional
   UPDATE, so no agent pass starts, registers or reports it any more (a pass in flight loses
   its next claim and stops there).
2. Containers: every container of the lab whose task ARN names the account is removed, on
   every engine of the fleet (by the lab's labels: nothing of another account or another lab).
3. Objects: load balancers, target groups and repositories through their own operations (the
   data plane closes the listeners, the registry drops the images), then every other row of the
   account, in an order the foreign keys allow, in one transaction.
4. Sweep: containers once more (one an agent created during step 2 carries a task now gone),
   then the account's networks and its EFS file systems (their Docker volumes: the files go).
5. Labs: each of the account's lab runs starts over (``classroom.progress.restart``).

Objects other helpers add per account (log groups, parameters, secrets…) go with step 3's
sweep of every model that has an ``account`` foreign key, except those in ``KEPT``.
"""
import logging

from django.apps import apps
from django.db import models, transaction
from django.utils import timezone

from orchestrator import activity, bus
from orchestrator.docker_engine import LABEL_ACCOUNT, LABEL_TASK_ARN, DockerEngine, EngineError
from orchestrator.models import (
    Account, Cluster, ContainerInstance, Deployment, LoadBalancer, Repository, Service, TargetGroup, Task, TaskDefinition,
    acting_in,
)

log = logging.getLogger(__name__)

# Rows of an account a reset keeps: who the student is (their key) and their lab runs, which
# start over instead (step 5).
KEPT = {"orchestrator.AccessKey", "classroom.LabProgress"}
REASON = "Account reset by the teacher"


def _engines():
    """Every Docker engine the fleet has used or may use."""
    from orchestrator.capacity_manager import fleet_engines

    urls = set(ContainerInstance.objects.values_list("engine_url", flat=True)) | set(fleet_engines())
    return [DockerEngine.for_url(url) for url in sorted(urls)]


def account_containers(engine, account):
    """The lab's containers on ``engine`` whose task belongs to ``account``."""
    marker = f":{account.account_id}:task/"
    return [c for c in engine.list_containers() if marker in c["labels"].get(LABEL_TASK_ARN, "")]


def _remove_containers(account):
    """Remove the account's containers on every engine; how many were removed."""
    removed = 0
    for engine in _engines():
        try:
            for container in account_containers(engine, account):
                engine.remove(container["id"], force=True)
                removed += 1
        except EngineError as exc:  # an engine down: its containers go by the relist when it returns
            log.warning("reset of %s: containers on %s stay for now: %s", account, engine.describe(), exc)
    return removed


def _claim_tasks(account):
    """Mark every live task of the account STOPPED so that the control plane leaves it alone."""
    now = timezone.now()
    pks = list(Task.objects.filter(account=account).exclude(last_status=Task.STOPPED).values_list("pk", flat=True))
    Task.objects.filter(pk__in=pks).exclude(last_status=Task.STOPPED).update(
        desired_status=Task.STOPPED, last_status=Task.STOPPED, stop_code="UserInitiated", stopped_reason=REASON,
        stopping_at=now, stopped_at=now, execution_stopped_at=now, updated_at=now)
    return pks


def _delete_through_operations(account):
    """Load balancers, target groups and repositories, as their APIs delete them."""
    from orchestrator import registry
    from orchestrator.elbv2 import operations as elbv2

    for lb in list(LoadBalancer.objects.filter(account=account)):
        with acting_in(lb.region):  # each region's, as a call in that region deletes it
            elbv2.delete_load_balancer(account, {"LoadBalancerArn": lb.arn}, caller="teacher:reset")
    for tg in list(TargetGroup.objects.filter(account=account)):
        with acting_in(tg.region):
            elbv2.delete_target_group(account, {"TargetGroupArn": tg.arn}, caller="teacher:reset")
    try:  # the images go with their repositories (from disk even when the registry is down)
        registry.remove_account_repositories(account)
    except Exception as exc:  # whatever went wrong, the rows go below and the reset goes on
        log.warning("reset of %s: repositories: %s", account, exc)


def owned_models():
    """Every model with a foreign key ``account`` to Account, but those the reset keeps."""
    found = []
    for model in apps.get_models():
        field = next((f for f in model._meta.fields if f.name == "account"), None)
        if isinstance(field, models.ForeignKey) and field.related_model is Account \
                and model._meta.label not in KEPT:
            found.append(model)
    return found


def _delete_rows(account):
    """Every remaining row of the account: tasks before task definitions (PROTECT), then the rest."""
    with transaction.atomic():
        Task.objects.filter(account=account).delete()
        Deployment.objects.filter(service__account=account).delete()
        Service.objects.filter(account=account).delete()
        TaskDefinition.objects.filter(account=account).delete()
        for model in owned_models():
            model.objects.filter(account=account).delete()


def _restart_labs(account):
    """Each lab run of the account starts over (the labs' own restart); how many."""
    try:
        from classroom import progress
        from classroom.models import LabProgress
    except ImportError:  # a build without the labs
        return 0
    runs = list(LabProgress.objects.filter(account=account))
    for run in runs:
        progress.restart(run)
    return len(runs)


def reset_account(account, caller="teacher"):
    """Remove every object, container, network and EFS volume of ``account`` and start its labs
    over; returns what went ({"tasks", "containers", "networks", "volumes", "labs"})."""
    tasks = _claim_tasks(account)
    for pk in tasks:
        bus.publish("task", pk)
    # What the pages list, published once gone so that open pages drop them.
    gone = {kind: list(model.objects.filter(account=account).values_list("pk", flat=True))
            for kind, model in (("cluster", Cluster), ("service", Service), ("task_definition", TaskDefinition))}
    containers = _remove_containers(account)
    _delete_through_operations(account)
    _delete_rows(account)
    containers += _remove_containers(account)
    networks, volumes = [], []
    for engine in _engines():
        try:
            networks += engine.remove_unused_networks(labels={LABEL_ACCOUNT: account.account_id})
            volumes += engine.remove_volumes(labels={LABEL_ACCOUNT: account.account_id})
        except EngineError as exc:
            log.warning("reset of %s: networks or volumes on %s stay for now: %s", account, engine.describe(), exc)
    labs = _restart_labs(account)
    done = {"tasks": len(tasks), "containers": containers, "networks": len(networks), "volumes": len(volumes),
            "labs": labs}
    activity.record("frontend", "ResetAccount", "", (
        f"account {account.account_id} reset by {caller}: {done['tasks']} task(s), {containers} container(s), "
        f"{len(networks)} network(s), {len(volumes)} EFS volume(s) removed; {labs} lab(s) restarted"), caller=caller)
    for kind, pks in gone.items():
        for pk in pks:
            bus.publish(kind, pk)
    return done
