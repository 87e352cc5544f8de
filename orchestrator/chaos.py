"""Chaos for the class: what the teacher does to every student's objects at once, each told on
the affected students' pages (an ``Announcement`` per account, published on the bus).

- ``kill_one_task_per_service``: one RUNNING task of every ACTIVE service has its essential
  container SIGKILLed behind the control plane's back; each service replaces its task.
- ``drain_instance``: an ACTIVE instance turns DRAINING, as UpdateContainerInstancesState does
  on ECS: nothing new is placed on it, its service tasks are replaced elsewhere within each
  deployment's minimumHealthyPercent and maximumPercent (``cluster_manager.plan``), standalone
  tasks run on; once empty it leaves the fleet, and the warm pool launches another.
- ``disconnect_agent``: an instance's agent is cut off for N seconds: its tasks keep running,
  the control plane marks it agentConnected false and places nothing there, nobody reports
  what happens to its containers; then it reconnects and reconciles (``agent.sync_instance``).
- ``fill_capacity``: every ACTIVE instance gets a task of the lab's own chaos account that
  reserves all the room it has left, so students' next tasks wait ("No Fargate capacity") until
  the capacity manager launches instances; ``release_capacity`` stops those tasks.
"""
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from orchestrator import activity, bus, traces
from orchestrator.models import (
    Account, Announcement, Cluster, ContainerInstance, Service, Task, TaskContainer, TaskDefinition, default_region,
    lab_setting,
)

# The lab's own account for the tasks that fill the fleet (no user is a member of it).
CHAOS_ACCOUNT_ID = "999999999999"
FILLER_CLUSTER = "fleet-filler"
# The smallest task Fargate runs: an instance with less left than this is full.
SMALLEST = (256, 512)
MAX_DISCONNECT_SECONDS = 600
# How long an announcement stays on the students' pages.
ANNOUNCEMENT_SECONDS = 600


class ChaosError(Exception):
    """What the teacher asked cannot be done (an instance not ACTIVE, a bad duration)."""


def announce(account_pks, kind, message):
    """Put ``message`` on the pages of each account in ``account_pks``; the rows made."""
    rows = [Announcement.objects.create(account_id=pk, kind=kind, message=message) for pk in sorted(set(account_pks))]
    for row in rows:
        bus.publish("announcement", row.pk)
    return rows


def current_announcements(account_pk, limit=3):
    """The account's announcements of the last ANNOUNCEMENT_SECONDS, newest first."""
    since = timezone.now() - timedelta(seconds=ANNOUNCEMENT_SECONDS)
    return list(Announcement.objects.filter(account_id=account_pk, created_at__gte=since)[:limit])


def student_accounts():
    """The accounts that non-staff users act as (every student's, the default one for users in none)."""
    users = get_user_model().objects.filter(is_active=True, is_staff=False, is_superuser=False)
    return {Account.of_user(user).pk for user in users}


def kill_one_task_per_service(caller="teacher"):
    """SIGKILL one RUNNING task's container in every ACTIVE service; the tasks killed."""
    from orchestrator.agent import kill_task_container

    killed = []
    services = Service.objects.filter(status=Service.ACTIVE).exclude(account__account_id=CHAOS_ACCOUNT_ID)
    for service in services.select_related("account", "cluster").order_by("pk"):
        task = (service.tasks.filter(last_status=Task.RUNNING, desired_status=Task.RUNNING)
                .select_related("account", "cluster", "container_instance").order_by("started_at", "pk").first())
        if task is None:
            continue
        try:
            done = kill_task_container(task)
        except Exception as exc:  # an engine gone: the other services' kills go on
            activity.record("agent", "kill-failed", task.arn, f"chaos could not kill task {task.task_id}: {exc}")
            continue
        if done:
            killed.append(task)
            announce([task.account_id], "kill", (
                f"Chaos: the teacher killed task {task.task_id[:8]} of your service {service.name} (cluster "
                f"{task.cluster.name}). Watch the agent report it STOPPED and the service scheduler start a "
                "replacement, as a ReplicaSet replaces a deleted Pod."))
    activity.record("cluster_manager", "chaos-kill", message=(
        f"{caller} killed one task in each of {len(killed)} service(s)"), caller=caller)
    return killed


def _instance_accounts(instance):
    return set(Task.objects.filter(container_instance=instance).exclude(last_status=Task.STOPPED)
               .values_list("account_id", flat=True))


def drain_instance(instance, caller="teacher"):
    """Set an ACTIVE instance DRAINING; the services whose tasks it runs move them away."""
    changed = ContainerInstance.objects.filter(pk=instance.pk, status=ContainerInstance.ACTIVE).update(
        status=ContainerInstance.DRAINING)
    if not changed:
        raise ChaosError(f"{instance.name} is {instance.status}, not ACTIVE: only an ACTIVE instance can be drained.")
    live = Task.objects.filter(container_instance=instance).exclude(last_status=Task.STOPPED)
    services = set(live.exclude(service=None).values_list("service_id", flat=True))
    activity.record("capacity_manager", "drain-instance", message=(
        f"draining {instance.name} ({caller}'s chaos): {live.count()} task(s) on it, "
        f"{len(services)} service(s) move theirs"), caller=caller)
    bus.publish("instance", instance.pk)
    for pk in services:
        bus.publish("service", pk)
    announce(_instance_accounts(instance) - {_chaos_account_pk()}, "drain", (
        f"Chaos: the teacher is draining {instance.name}, an instance your tasks run on. Nothing new is "
        "placed there; your services' tasks are replaced on other instances without dropping below their "
        "minimum healthy percent (kubectl drain); tasks you ran yourself keep running."))
    return len(services)


def disconnect_agent(instance, seconds, caller="teacher"):
    """Cut an instance's agent off for ``seconds``; its tasks keep running, unreported."""
    if not isinstance(seconds, int) or not 1 <= seconds <= MAX_DISCONNECT_SECONDS:
        raise ChaosError(f"The agent can be disconnected for 1 to {MAX_DISCONNECT_SECONDS} seconds.")
    until = timezone.now() + timedelta(seconds=seconds)
    changed = ContainerInstance.objects.filter(
        pk=instance.pk, status__in=(ContainerInstance.ACTIVE, ContainerInstance.DRAINING),
        agent_disconnected_until__isnull=True,
    ).update(agent_connected=False, agent_disconnected_until=until)
    if not changed:
        raise ChaosError(f"{instance.name}'s agent is already disconnected, or the instance is {instance.status}.")
    activity.record("agent", "disconnected", message=(
        f"the agent of {instance.name} is disconnected for {seconds} s ({caller}'s chaos): its tasks run on, "
        "unreported; nothing is placed there"), caller=caller)
    bus.publish("instance", instance.pk, disconnected=seconds)
    announce(_instance_accounts(instance) - {_chaos_account_pk()}, "disconnect", (
        f"Chaos: the agent of {instance.name}, an instance your tasks run on, lost its connection for {seconds} s. "
        "Your tasks keep running, but nobody reports on them (agentConnected false, a NotReady node); when it "
        "comes back it reconciles what happened meanwhile."))


def _chaos_account_pk():
    return Account.objects.filter(account_id=CHAOS_ACCOUNT_ID).values_list("pk", flat=True).first()


def _filler_definition():
    """The chaos account, its cluster and the filler's task definition (made once)."""
    account, _ = Account.objects.get_or_create(account_id=CHAOS_ACCOUNT_ID, defaults={"name": "chaos"})
    cluster, _ = Cluster.objects.get_or_create(account=account, region=default_region(), name=FILLER_CLUSTER)
    definition = TaskDefinition.objects.filter(account=account, region=default_region(), family="filler").order_by("-revision").first()
    if definition is None:
        body = {"family": "filler", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
                "cpu": "256", "memory": "512",
                "containerDefinitions": [{"name": "filler", "image": lab_setting("DEMO_IMAGE"), "essential": True}]}
        definition = TaskDefinition.objects.create(account=account, region=default_region(), family="filler", revision=1, cpu=256,
                                                   memory=512, body=body)
    return account, cluster, definition


def fill_capacity(caller="teacher"):
    """One task per ACTIVE instance reserving all the CPU and memory it has left; the tasks."""
    from orchestrator.capacity_manager import instance_rooms

    account, cluster, definition = _filler_definition()
    created = []
    with transaction.atomic():
        for room in instance_rooms():
            if room.status != ContainerInstance.ACTIVE or not room.agent_connected:
                continue
            if room.cpu_free < SMALLEST[0] or room.memory_free < SMALLEST[1]:
                continue
            name = room.attributes["fargatelab.instance-name"]
            task = Task.objects.create(
                account=account, cluster=cluster, task_definition=definition, cpu=room.cpu_free,
                memory=room.memory_free, group="chaos:fill", started_by="chaos",
                placement_constraints=[{"type": "memberOf",
                                        "expression": f"attribute:fargatelab.instance-name == {name}"}],
                trace_id=traces.current() or activity.new_trace_id(),
            )
            TaskContainer.objects.create(task=task, name="filler", image=lab_setting("DEMO_IMAGE"), essential=True)
            created.append(task)
    for task in created:
        bus.publish("task", task.pk)
    activity.record("capacity_manager", "chaos-fill", message=(
        f"{caller} filled the fleet: {len(created)} task(s) take the room left on every instance"), caller=caller)
    announce(student_accounts(), "fill", (
        "Chaos: the teacher filled the fleet's capacity. A task you start now finds no instance with room: it waits "
        "(PROVISIONING, \"No Fargate capacity\") until the capacity manager launches an instance for it, as the "
        "cluster autoscaler adds a node for an unschedulable Pod."))
    return created


def release_capacity(caller="teacher"):
    """Stop the tasks that fill the fleet; how many were stopped."""
    now = timezone.now()
    pks = list(Task.objects.filter(account__account_id=CHAOS_ACCOUNT_ID, group="chaos:fill",
                                   desired_status=Task.RUNNING).values_list("pk", flat=True))
    stopped = Task.objects.filter(pk__in=pks, desired_status=Task.RUNNING).update(
        desired_status=Task.STOPPED, stop_code="UserInitiated", stopped_reason="Chaos over: capacity released",
        stopping_at=now, updated_at=now)
    for pk in pks:
        bus.publish("task", pk, stop=True)
    if stopped:
        activity.record("capacity_manager", "chaos-release", message=f"{caller} released the fleet's capacity",
                        caller=caller)
        announce(student_accounts(), "release", "Chaos over: the teacher released the fleet's capacity.")
    return stopped
