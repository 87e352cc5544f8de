"""The capacity manager (kube-scheduler): owns the warm-pool fleet and places tasks on it.

One placement pass runs at a time (the single queue key "placement"). A pass takes the
PROVISIONING tasks that want to run and have no instance, oldest first, and puts each on the
instance with the most room that fits it. Remaining capacity is derived from the tasks that
are placed on an instance and not STOPPED — never kept in a counter that could drift. A task
that fits nowhere stays PROVISIONING with a ``pending_reason`` until a task stops and frees
room (the agent asks for a new pass then).
"""
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from orchestrator import activity, bus
from orchestrator.models import ContainerInstance, Task

log = logging.getLogger(__name__)
PLACEMENT_KEY = "placement"


@dataclass
class InstanceRoom:
    """An instance and the CPU units / MiB it has left."""

    pk: int
    name: str
    cpu_free: int
    memory_free: int


@dataclass
class PendingTask:
    """A task waiting for an instance, and what it needs."""

    pk: int
    task_id: str
    cpu: int
    memory: int


@dataclass
class Placement:
    """The decision for one task: an instance (and why), or none (and why not)."""

    task_pk: int
    instance_pk: int | None
    instance_name: str = ""
    reason: str = ""
    extra: dict = field(default_factory=dict)


def no_capacity_reason(cpu, memory):
    """The pending reason of a task that fits on no instance."""
    return f"No Fargate capacity: no instance has {cpu} CPU units and {memory} MiB free"


def place(pending, instances):
    """Place ``pending`` tasks (oldest first) on ``instances``: a pure function of plain data.

    Picks, for each task, the instance with the most CPU left (then memory, then name) that
    fits it, and books the task's CPU and memory on it before placing the next one.
    """
    rooms = {i.pk: InstanceRoom(i.pk, i.name, i.cpu_free, i.memory_free) for i in instances}
    decisions = []
    for task in pending:
        fitting = [r for r in rooms.values() if r.cpu_free >= task.cpu and r.memory_free >= task.memory]
        if not fitting:
            decisions.append(Placement(task.pk, None, reason=no_capacity_reason(task.cpu, task.memory)))
            continue
        best = min(fitting, key=lambda r: (-r.cpu_free, -r.memory_free, r.name))
        reason = f"{best.name} has {best.cpu_free} CPU / {best.memory_free} MiB free"
        best.cpu_free -= task.cpu
        best.memory_free -= task.memory
        decisions.append(Placement(task.pk, best.pk, best.name, reason))
    return decisions


def ensure_fleet():
    """Make sure the warm pool exists: instances fleet-1..N on the configured engine, ACTIVE."""
    conf = settings.FARGATE_LAB
    for n in range(1, conf["FLEET_INSTANCES"] + 1):
        instance, created = ContainerInstance.objects.get_or_create(
            name=f"fleet-{n}",
            defaults={
                "engine_url": conf["DOCKER_URL"],
                "cpu_registered": conf["INSTANCE_CPU"],
                "memory_registered": conf["INSTANCE_MEMORY"],
                "status": ContainerInstance.ACTIVE,
            },
        )
        if created:
            activity.record("capacity_manager", "launch-instance", message=(
                f"{instance.name} joined the warm pool: {instance.cpu_registered} CPU units, "
                f"{instance.memory_registered} MiB"))


def instance_rooms():
    """The ACTIVE instances with their free CPU and memory, derived from the tasks on them."""
    used = {
        row["container_instance"]: row
        for row in Task.objects.filter(container_instance__isnull=False)
        .exclude(last_status=Task.STOPPED)
        .values("container_instance")
        .annotate(cpu=Sum("cpu"), memory=Sum("memory"))
    }
    rooms = []
    for instance in ContainerInstance.objects.filter(status=ContainerInstance.ACTIVE):
        use = used.get(instance.pk, {})
        rooms.append(InstanceRoom(
            instance.pk, instance.name,
            instance.cpu_registered - (use.get("cpu") or 0),
            instance.memory_registered - (use.get("memory") or 0),
        ))
    return rooms


class CapacityManager:
    """Runs placement passes; ``on_placed(task_pk)`` is told of each task it placed."""

    def __init__(self, on_placed=None):
        self.on_placed = on_placed or (lambda pk: None)

    def place_pending(self):
        """One placement pass over the waiting tasks; returns the number of tasks placed."""
        waiting = list(
            Task.objects.filter(
                last_status=Task.PROVISIONING, desired_status=Task.RUNNING, container_instance__isnull=True
            ).select_related("account", "cluster").order_by("created_at", "id")
        )
        if not waiting:
            return 0
        by_pk = {t.pk: t for t in waiting}
        pending = [PendingTask(t.pk, t.task_id, t.cpu, t.memory) for t in waiting]
        placed = 0
        for decision in place(pending, instance_rooms()):
            task = by_pk[decision.task_pk]
            if decision.instance_pk is None:
                self._wait(task, decision.reason)
                continue
            # The conditional update is the claim: a task already placed or stopped is skipped.
            if task.advance(Task.PROVISIONING, Task.PENDING,
                            container_instance_id=decision.instance_pk, pending_reason=""):
                placed += 1
                activity.record(
                    "capacity_manager", "place", task.arn,
                    f"placed task {task.task_id} ({task.cpu} CPU / {task.memory} MiB) on "
                    f"{decision.instance_name}: {decision.reason}",
                    trace_id=task.trace_id,
                )
                bus.publish("task", task.pk, origin="controlplane")
                self.on_placed(task.pk)
        return placed

    def _wait(self, task, reason):
        """Leave a task PROVISIONING with the reason why (said once, not on every pass)."""
        if task.pending_reason == reason:
            return
        changed = Task.objects.filter(pk=task.pk, last_status=Task.PROVISIONING).update(
            pending_reason=reason, updated_at=timezone.now()
        )
        if changed:
            activity.record("capacity_manager", "no-capacity", task.arn, f"task {task.task_id} waits: {reason}",
                            trace_id=task.trace_id)
            bus.publish("task", task.pk, origin="controlplane")
