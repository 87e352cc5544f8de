"""The cluster manager (kube-controller-manager): the service scheduler.

For each service key it re-reads the service and its tasks, asks the pure ``plan`` what to
do, and applies the actions: keep an ACTIVE service at ``desired_count`` tasks of its primary
deployment (start the missing ones, stop the surplus, replace old-deployment tasks), stop
every task of a DRAINING (deleted) service and make it INACTIVE when none is left, keep the
service's and deployments' running/pending counts, and write service events worded as ECS
words them. New tasks are written PROVISIONING; the capacity manager places them.
"""
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from orchestrator import activity, bus
from orchestrator.models import Deployment, Service, Task, TaskContainer

log = logging.getLogger(__name__)

NOT_YET_RUNNING = (Task.PROVISIONING, Task.PENDING, Task.ACTIVATING)
# Tasks that failed to start this many times in a row make the scheduler wait before the next.
THROTTLE_AFTER = 3
THROTTLE_BASE_SECONDS = 10
THROTTLE_MAX_SECONDS = 15 * 60


# --- plain data the plan works on ---------------------------------------------------------

@dataclass
class TaskState:
    """What the scheduler needs to know of one task of the service."""

    pk: int
    task_id: str
    desired_status: str
    last_status: str
    created_at: datetime
    deployment_id: str = ""


@dataclass
class DeploymentState:
    deployment_id: str
    status: str
    rollout_state: str = Deployment.IN_PROGRESS
    desired_count: int = 0
    running_count: int = 0
    pending_count: int = 0


@dataclass
class ServiceState:
    """The desired state of a service plus what the last pass wrote of its observed state."""

    pk: int
    name: str
    status: str
    desired_count: int
    deployments: list = field(default_factory=list)
    steady: bool = False
    running_count: int = 0
    pending_count: int = 0
    minimum_healthy_percent: int = 100
    maximum_percent: int = 200
    # Restart throttling: consecutive tasks that stopped without ever running, and when the last did.
    failed_starts: int = 0
    last_failed_at: datetime | None = None
    throttled: bool = False

    @property
    def primary(self):
        for deployment in self.deployments:
            if deployment.status == Deployment.PRIMARY:
                return deployment
        return None


# --- actions ------------------------------------------------------------------------------

@dataclass
class StartTasks:
    count: int
    deployment_id: str


@dataclass
class StopTasks:
    task_pks: list
    task_ids: list
    reason: str
    running: bool  # whether the event says "running tasks"


@dataclass
class SetCounts:
    running: int
    pending: int
    deployments: dict  # deployment_id -> (desired, running, pending)


@dataclass
class AddEvent:
    message: str


@dataclass
class SetSteady:
    steady: bool


@dataclass
class SetThrottled:
    throttled: bool


@dataclass
class CompleteRollout:
    deployment_id: str


@dataclass
class RetireDeployment:
    deployment_id: str


@dataclass
class MarkInactive:
    pass


@dataclass
class RequeueAfter:
    seconds: float


def throttle_delay(failed_starts):
    """Seconds to wait before the next start after ``failed_starts`` failures in a row."""
    if failed_starts < THROTTLE_AFTER:
        return 0
    return min(THROTTLE_MAX_SECONDS, THROTTLE_BASE_SECONDS * 2 ** (failed_starts - THROTTLE_AFTER))


def _newest_first(tasks):
    return sorted(tasks, key=lambda t: (t.created_at, t.pk), reverse=True)


def _stop_order(tasks):
    """Surplus tasks in the order to stop them: not yet running first, newest first."""
    return [t for t in _newest_first(tasks) if t.last_status in NOT_YET_RUNNING] + [
        t for t in _newest_first(tasks) if t.last_status not in NOT_YET_RUNNING
    ]


def plan(service, tasks, now=None):
    """The actions that bring ``service`` (ServiceState) and its ``tasks`` (TaskState) together.

    Pure: reads plain data, returns a list of actions for the executor.
    """
    now = now or timezone.now()
    if service.status == Service.INACTIVE:
        return []
    actions = []
    primary = service.primary
    primary_id = primary.deployment_id if primary else ""
    scaling_reason = f"Scaling activity initiated by (deployment {primary_id})"
    unstopped = [t for t in tasks if t.last_status != Task.STOPPED]
    live = [t for t in unstopped if t.desired_status == Task.RUNNING]
    stopping = [t for t in unstopped if t.desired_status != Task.RUNNING]

    def stop(chosen):
        if chosen:
            actions.append(StopTasks(
                [t.pk for t in chosen], [t.task_id for t in chosen], scaling_reason,
                running=any(t.last_status == Task.RUNNING for t in chosen),
            ))

    if service.status == Service.DRAINING:
        stop(_stop_order(live))
        if not unstopped:
            actions.append(MarkInactive())
        actions.append(_counts(service, [], primary_id))
        return [a for a in actions if a is not None]

    want = service.desired_count
    primary_live = [t for t in live if t.deployment_id == primary_id]
    old_live = [t for t in live if t.deployment_id != primary_id]
    started = False

    # 1. Start what the primary deployment lacks, within maximumPercent, unless throttled.
    missing = want - len(primary_live)
    if missing > 0:
        count = missing
        if old_live:  # a rolling update may not exceed maximumPercent of ``want`` tasks
            count = min(missing, max(math.floor(want * service.maximum_percent / 100) - len(live), 0))
        delay = throttle_delay(service.failed_starts)
        waited = (now - service.last_failed_at).total_seconds() if service.last_failed_at else delay
        if delay and waited < delay:
            actions.append(RequeueAfter(delay - waited))
            if not service.throttled:
                actions.append(SetThrottled(True))
                actions.append(AddEvent("is unable to consistently start tasks successfully."))
            count = 0
        elif service.throttled:
            actions.append(SetThrottled(False))
        if count > 0:
            actions.append(StartTasks(count, primary_id))
            started = True
    # 2. Stop the primary's surplus (scale in): not yet running first, newest first.
    elif missing < 0:
        stop(_stop_order(primary_live)[: -missing])

    # 3. Replace old-deployment tasks while keeping minimumHealthyPercent of ``want`` running.
    if old_live:
        floor_ = math.ceil(want * service.minimum_healthy_percent / 100)
        running_primary = sum(1 for t in primary_live if t.last_status == Task.RUNNING)
        old_running = [t for t in old_live if t.last_status == Task.RUNNING]
        removable = max(running_primary + len(old_running) - floor_, 0)
        stop([t for t in old_live if t.last_status != Task.RUNNING] + _newest_first(old_running)[:removable])

    # 4. Retire old deployments with nothing left.
    for deployment in service.deployments:
        if deployment.status == Deployment.ACTIVE and not any(
            t.deployment_id == deployment.deployment_id for t in unstopped
        ):
            actions.append(RetireDeployment(deployment.deployment_id))

    # 5. Steady state: exactly ``want`` primary tasks, all RUNNING, nothing else alive.
    steady = (
        not started and not old_live and not stopping and missing == 0
        and all(t.last_status == Task.RUNNING for t in primary_live)
    )
    if steady and not service.steady:
        actions.append(SetSteady(True))
        actions.append(AddEvent("has reached a steady state."))
        if primary and primary.rollout_state == Deployment.IN_PROGRESS:
            actions.append(CompleteRollout(primary_id))
    elif not steady and service.steady:
        actions.append(SetSteady(False))

    actions.append(_counts(service, unstopped, primary_id))
    return [a for a in actions if a is not None]


def _counts(service, unstopped, primary_id):
    """A SetCounts action if the observed counts changed, else None."""
    def count(tasks):
        running = sum(1 for t in tasks if t.last_status == Task.RUNNING and t.desired_status == Task.RUNNING)
        pending = sum(1 for t in tasks if t.last_status in NOT_YET_RUNNING and t.desired_status == Task.RUNNING)
        return running, pending

    running, pending = count(unstopped)
    per_deployment = {}
    for d in service.deployments:
        if d.status == Deployment.INACTIVE:
            continue
        mine = [t for t in unstopped if t.deployment_id == d.deployment_id]
        desired = service.desired_count if d.deployment_id == primary_id and service.status == Service.ACTIVE else 0
        r, p = count(mine)
        if (desired, r, p) != (d.desired_count, d.running_count, d.pending_count):
            per_deployment[d.deployment_id] = (desired, r, p)
    if (running, pending) == (service.running_count, service.pending_count) and not per_deployment:
        return None
    return SetCounts(running, pending, per_deployment)


# --- the executor -------------------------------------------------------------------------

def load(service_pk):
    """The ServiceState and TaskStates of one service from the database (None if it is gone)."""
    service = Service.objects.filter(pk=service_pk).first()
    if service is None:
        return None, []
    config = service.deployment_configuration or {}
    deployments = [
        DeploymentState(d.deployment_id, d.status, d.rollout_state, d.desired_count, d.running_count, d.pending_count)
        for d in service.deployments.all()
    ]
    state = ServiceState(
        pk=service.pk, name=service.name, status=service.status, desired_count=service.desired_count,
        deployments=deployments, steady=service.steady, running_count=service.running_count,
        pending_count=service.pending_count,
        minimum_healthy_percent=int(config.get("minimumHealthyPercent", 100)),
        maximum_percent=int(config.get("maximumPercent", 200)),
    )
    tasks = [
        TaskState(t["pk"], t["task_id"], t["desired_status"], t["last_status"], t["created_at"],
                  t["deployment__deployment_id"] or "")
        for t in service.tasks.exclude(last_status=Task.STOPPED).values(
            "pk", "task_id", "desired_status", "last_status", "created_at", "deployment__deployment_id")
    ]
    recent = service.tasks.filter(last_status=Task.STOPPED).order_by("-stopped_at", "-id").values(
        "started_at", "stop_code", "stopped_at")[:12]
    for row in recent:
        if row["started_at"] is not None or row["stop_code"] not in ("TaskFailedToStart", "EssentialContainerExited"):
            break
        state.failed_starts += 1
        state.last_failed_at = state.last_failed_at or row["stopped_at"]
    return service, (state, tasks)


class ClusterManager:
    """Applies the scheduler's plan; ``enqueue(key, delay=0)`` asks for more work."""

    def __init__(self, enqueue):
        self.enqueue = enqueue
        # Throttled services (said once per episode); process memory is enough for a message.
        self._throttled = set()

    def sync_service(self, service_pk):
        """One level-triggered pass over a service; returns the actions applied."""
        service, loaded = load(service_pk)
        if service is None:
            return []
        state, tasks = loaded
        state.throttled = service.pk in self._throttled
        actions = plan(state, tasks)
        for action in actions:
            self.apply(service, action)
        return actions

    def apply(self, service, action):
        """Carry out one action of the plan."""
        kind = type(action).__name__
        handler = getattr(self, f"_apply_{kind}")
        handler(service, action)

    def _apply_StartTasks(self, service, action):
        deployment = service.deployments.filter(deployment_id=action.deployment_id).first()
        task_definition = deployment.task_definition if deployment else service.task_definition
        created = []
        with transaction.atomic():
            for _ in range(action.count):
                task = Task.objects.create(
                    account_id=service.account_id, cluster_id=service.cluster_id, task_definition=task_definition,
                    service=service, deployment=deployment, group=f"service:{service.name}",
                    started_by=action.deployment_id, launch_type=service.launch_type,
                    cpu=task_definition.cpu, memory=task_definition.memory,
                    trace_id=activity.new_trace_id(),
                )
                TaskContainer.objects.bulk_create([
                    TaskContainer(
                        task=task, name=c.get("name", ""), image=c.get("image", ""),
                        essential=c.get("essential", True), cpu=c.get("cpu") or 0, memory=c.get("memory"),
                    )
                    for c in task_definition.container_definitions
                ])
                created.append(task)
        ids = " ".join(f"(task {t.task_id})" for t in created)
        service.add_event(f"has started {len(created)} tasks: {ids}.")
        for task in created:
            activity.record("cluster_manager", "start-task", task.arn,
                            f"service {service.name} is short of tasks: started task {task.task_id} "
                            f"({action.deployment_id})", trace_id=task.trace_id)
            bus.publish("task", task.pk, origin="controlplane")
        bus.publish("service", service.pk, origin="controlplane")
        self.enqueue("placement")

    def _apply_StopTasks(self, service, action):
        now = timezone.now()
        stopped = []
        for pk, task_id in zip(action.task_pks, action.task_ids):
            changed = Task.objects.filter(pk=pk, desired_status=Task.RUNNING).update(
                desired_status=Task.STOPPED, stop_code="ServiceSchedulerInitiated",
                stopped_reason=action.reason, stopping_at=now, updated_at=now,
            )
            if changed:  # else somebody stopped it first
                stopped.append(task_id)
                bus.publish("task", pk, origin="controlplane")
                self.enqueue(f"task:{pk}")
        if stopped:
            ids = " ".join(f"(task {t})" for t in stopped)
            word = "running tasks" if action.running else "tasks"
            service.add_event(f"has stopped {len(stopped)} {word}: {ids}.")
            activity.record("cluster_manager", "stop-tasks", service.arn,
                            f"service {service.name}: stopping {len(stopped)} task(s): {ids}; {action.reason}")
            bus.publish("service", service.pk, origin="controlplane")

    def _apply_SetCounts(self, service, action):
        Service.objects.filter(pk=service.pk).update(running_count=action.running, pending_count=action.pending)
        for deployment_id, (desired, running, pending) in action.deployments.items():
            Deployment.objects.filter(deployment_id=deployment_id).update(
                desired_count=desired, running_count=running, pending_count=pending, updated_at=timezone.now()
            )
        bus.publish("service", service.pk, origin="controlplane")

    def _apply_AddEvent(self, service, action):
        service.add_event(action.message)
        activity.record("cluster_manager", "service-event", service.arn, f"(service {service.name}) {action.message}")
        bus.publish("service", service.pk, origin="controlplane")

    def _apply_SetSteady(self, service, action):
        Service.objects.filter(pk=service.pk).update(steady=action.steady)

    def _apply_SetThrottled(self, service, action):
        if action.throttled:
            self._throttled.add(service.pk)
        else:
            self._throttled.discard(service.pk)

    def _apply_CompleteRollout(self, service, action):
        Deployment.objects.filter(deployment_id=action.deployment_id, rollout_state=Deployment.IN_PROGRESS).update(
            rollout_state=Deployment.COMPLETED,
            rollout_state_reason="ECS deployment {} completed.".format(action.deployment_id),
            updated_at=timezone.now(),
        )
        activity.record("cluster_manager", "rollout-completed", service.arn,
                        f"deployment {action.deployment_id} of service {service.name} completed")

    def _apply_RetireDeployment(self, service, action):
        Deployment.objects.filter(deployment_id=action.deployment_id, status=Deployment.ACTIVE).update(
            status=Deployment.INACTIVE, running_count=0, pending_count=0, desired_count=0, updated_at=timezone.now()
        )
        activity.record("cluster_manager", "retire-deployment", service.arn,
                        f"deployment {action.deployment_id} of service {service.name} has no tasks left")

    def _apply_MarkInactive(self, service, action):
        changed = Service.objects.filter(pk=service.pk, status=Service.DRAINING).update(
            status=Service.INACTIVE, running_count=0, pending_count=0, updated_at=timezone.now()
        )
        if changed:
            service.deployments.exclude(status=Deployment.INACTIVE).update(
                status=Deployment.INACTIVE, running_count=0, pending_count=0, desired_count=0
            )
            activity.record("cluster_manager", "service-inactive", service.arn,
                            f"service {service.name} was deleted and has no tasks left: INACTIVE")
            bus.publish("service", service.pk, origin="controlplane")

    def _apply_RequeueAfter(self, service, action):
        self.enqueue(f"service:{service.pk}", delay=action.seconds)

