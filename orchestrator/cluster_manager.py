"""The cluster manager (kube-controller-manager): the service scheduler.

For each service key it re-reads the service and its tasks, asks the pure ``plan`` what to
do, and applies the actions: keep an ACTIVE service at ``desired_count`` tasks of its primary
deployment, rolling old-deployment tasks into new ones within minimumHealthyPercent and
maximumPercent (the arithmetic is ``deployments.plan_rollout``), trip the deployment circuit
breaker (and roll back), move tasks off DRAINING instances within the same limits, throttle
launches of tasks that keep failing to start, stop every
task of a DRAINING (deleted) service and make it INACTIVE when none is left, keep the
service's and deployments' counts, and write service events worded as ECS words them. New
tasks are written PROVISIONING; the capacity manager places them.
"""
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from orchestrator import activity, bus, capacity_strategy, elb_health, pacing, quotas, task_health, task_sets, traces
from orchestrator import deployments as rollout
from orchestrator.deployments import CIRCUIT_BREAKER_REASON, STOPPED_REASON
from orchestrator.capacity_manager import NO_CONTAINER_INSTANCES, task_ceiling, too_big
from orchestrator.models import ContainerInstance, Deployment, ReconcilePass, Service, Task, TaskContainer

log = logging.getLogger(__name__)

NOT_YET_RUNNING = (Task.PROVISIONING, Task.PENDING, Task.ACTIVATING)
FAILURE_CODES = Task.FAILURE_CODES
# Task.lb_health_status (written from the targets by ``elb_health``) in the load balancer's words.
LB_HEALTH = {"HEALTHY": "healthy", "UNHEALTHY": "unhealthy"}
# How often a rollout waiting on load balancer or container health checks looks again.
HEALTH_POLL_SECONDS = 1.0
# Scheduler stops claimed per transaction (each its own conditional UPDATE, one commit for all).
STOP_BATCH = 250
THROTTLE_EVENT = ("is unable to consistently start tasks successfully. For more information, see the "
                  "Troubleshooting section of the Amazon ECS Developer Guide.")


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
    started_at: datetime | None = None
    # The load balancer's word ("healthy", "unhealthy", "initial", None) where the service has one.
    lb_health: str | None = None
    # Its container health checks' verdict (HEALTHY / UNHEALTHY / UNKNOWN), "" if it has none.
    container_health: str = ""
    # Placed on a DRAINING instance: ECS replaces it as a rolling update would.
    draining: bool = False
    capacity_provider: str = ""  # FARGATE or FARGATE_SPOT by the service's strategy; "" without one
    protected_until: datetime | None = None  # task scale-in protection, in force until then


@dataclass
class DeploymentState:
    deployment_id: str
    status: str
    rollout_state: str = Deployment.IN_PROGRESS
    desired_count: int = 0
    running_count: int = 0
    pending_count: int = 0
    failed_tasks: int = 0
    recorded_failed_tasks: int = 0  # what the row says (written when it changes)
    stop_requested: str = ""  # StopServiceDeployment asked for a rollback
    capacity_provider_strategy: list = field(default_factory=list)  # a task set's own


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
    minimum_healthy_percent: int = rollout.DEFAULT_MINIMUM_HEALTHY_PERCENT
    maximum_percent: int = rollout.DEFAULT_MAXIMUM_PERCENT
    # Restart throttling: consecutive tasks of the primary deployment that stopped without ever
    # running, and when the last did.
    failed_starts: int = 0
    last_failed_at: datetime | None = None
    throttled: bool = False
    # Health: the container health checks' and the load balancer's where the task and service have
    # them (both must pass), else RUNNING for this long.
    has_load_balancer: bool = False
    health_grace_seconds: float = 40.0
    health_check_grace_period: float = 0.0
    circuit_breaker: bool = False
    rollback: bool = False
    capacity_provider_strategy: list = field(default_factory=list)
    external: bool = False  # the EXTERNAL deployment controller: its deployments are task sets

    @property
    def primary(self):
        for deployment in self.deployments:
            if deployment.status == Deployment.PRIMARY:
                return deployment
        return None

    def last_completed(self, besides):
        """The newest COMPLETED deployment other than ``besides`` (deployments are newest first)."""
        for deployment in self.deployments:
            if deployment.deployment_id != besides and deployment.rollout_state == Deployment.COMPLETED:
                return deployment
        return None


# --- actions ------------------------------------------------------------------------------

@dataclass
class StartTasks:
    count: int
    deployment_id: str
    # Each new task's capacity provider, by the service's strategy over its deployment's live
    # tasks ([] without a strategy: the FARGATE launch type).
    providers: list = field(default_factory=list)


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


@dataclass
class FailDeployment:
    """The circuit breaker tripped: the deployment is FAILED and launches no more tasks."""

    deployment_id: str
    reason: str
    failed_tasks: int = 0


@dataclass
class Rollback:
    """Roll the service back to the last COMPLETED deployment (a new PRIMARY that adopts its tasks)."""

    failed_id: str
    to_id: str


def health(task, service, now):
    """(healthy, settling) of a live task: healthy counts toward minimumHealthyPercent; settling
    is RUNNING but not judged yet (grace period, or the first health checks). With container
    health checks the task is healthy once they pass (and, with a load balancer, its targets too)."""
    if task.last_status != Task.RUNNING or task.started_at is None:
        return False, False
    age = (now - task.started_at).total_seconds()
    if task.container_health == task_health.UNHEALTHY:
        return False, age < service.health_check_grace_period
    if task.container_health and task.container_health != task_health.HEALTHY:
        return False, True
    if task.container_health and not service.has_load_balancer:
        return True, False
    if service.has_load_balancer:
        if task.lb_health == "healthy":
            return True, False
        if task.lb_health in (None, "initial") or age < service.health_check_grace_period:
            return False, True
        return False, False
    if age >= service.health_grace_seconds:
        return True, False
    return False, True


def _created_order(tasks):
    """Each task's rank by creation (larger is newer), for the rollout's tie-breaks."""
    ranked = sorted(tasks, key=lambda t: (t.created_at, t.pk))
    return {t.pk: n for n, t in enumerate(ranked)}


def plan(service, tasks, now=None):
    """The actions that bring ``service`` (ServiceState) and its ``tasks`` (TaskState) together.

    Pure: reads plain data, returns a list of actions for the executor.
    1. A deleted (DRAINING) service: stop everything, INACTIVE once nothing is left.
    2. The circuit breaker: a primary deployment with as many failed tasks as the threshold
       is FAILED (and, with rollback, replaced by the last COMPLETED one).
    3. One rollout step (``deployments.plan_rollout``): start primary tasks, stop surplus and
       old ones within minimumHealthyPercent / maximumPercent; a FAILED deployment starts none.
    4. Restart throttling holds starts back after repeated failed starts.
    5. Retire old deployments with no task left; say steady state once; keep the counts.
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
    by_pk = {t.pk: t for t in live}

    def stop(chosen):
        if chosen:
            actions.append(StopTasks(
                [t.pk for t in chosen], [t.task_id for t in chosen], scaling_reason,
                running=any(t.last_status == Task.RUNNING for t in chosen),
            ))

    if service.status == Service.DRAINING:
        order = _created_order(live)
        stop(sorted(live, key=lambda t: (t.last_status == Task.RUNNING, -order[t.pk])))
        if not unstopped:
            actions.append(MarkInactive())
        actions.append(_counts(service, [], primary_id))
        return [a for a in actions if a is not None]

    if service.external:
        _plan_task_sets(service, live, unstopped, stopping, now, stop, actions)
        actions.append(_counts(service, unstopped, primary_id))
        return [a for a in actions if a is not None]

    want = service.desired_count
    failed = primary is not None and primary.rollout_state == Deployment.FAILED

    # 2. StopServiceDeployment, then the circuit breaker (only while the deployment is in progress).
    in_progress = primary is not None and primary.rollout_state == Deployment.IN_PROGRESS
    stopped = in_progress and primary.stop_requested == "ROLLBACK"
    tripped = (not stopped and in_progress and service.circuit_breaker
               and primary.failed_tasks >= rollout.circuit_breaker_threshold(want))
    if stopped or tripped:
        if stopped:
            actions.append(FailDeployment(primary_id, STOPPED_REASON, primary.failed_tasks))
            actions.append(AddEvent(f"(deployment {primary_id}) deployment stopped: StopServiceDeployment."))
        else:
            actions.append(FailDeployment(primary_id, CIRCUIT_BREAKER_REASON, primary.failed_tasks))
            actions.append(AddEvent(f"(deployment {primary_id}) deployment failed: tasks failed to start."))
        target = service.last_completed(primary_id) if service.rollback or stopped else None
        if target is not None:
            actions.append(Rollback(primary_id, target.deployment_id))
            actions.append(AddEvent(f"rolling back to deployment {target.deployment_id}."))
            actions.append(_counts(service, unstopped, primary_id))
            return [a for a in actions if a is not None]
        failed = True

    # 3. One rollout step.
    order = _created_order(live)
    judged = {t.pk: health(t, service, now) for t in live}
    # A task on a DRAINING instance is moved as a rolling update moves old tasks: its replacement
    # starts within maximumPercent, and it stops while minimumHealthyPercent holds (ECS's draining).
    # A failed deployment's tasks are not waited for (a rollback stops them even while their
    # health is not judged yet).
    abandoned = {d.deployment_id for d in service.deployments
                 if d.rollout_state == Deployment.FAILED and d.deployment_id != primary_id}
    rollout_tasks = [
        rollout.RolloutTask(
            key=t.pk, primary=t.deployment_id == primary_id and not t.draining, running=t.last_status == Task.RUNNING,
            healthy=judged[t.pk][0], created_order=order[t.pk],
            settling=judged[t.pk][1] and t.deployment_id not in abandoned,
            protected=t.protected_until is not None and t.protected_until > now,
        )
        for t in live
    ]
    step = rollout.plan_rollout(want, rollout_tasks, service.minimum_healthy_percent, service.maximum_percent,
                                    stopping=len(stopping))
    chosen = step.stop
    start = step.start
    if failed:  # a FAILED deployment launches nothing and keeps the old tasks it could not replace
        start = 0
        chosen = [pk for pk in chosen if by_pk[pk].deployment_id == primary_id and not by_pk[pk].draining]
    old_live = [t for t in live if t.deployment_id != primary_id or t.draining]

    # 4. Restart throttling.
    started = False
    if start > 0:
        delay = rollout.throttle_delay(service.failed_starts)
        waited = (now - service.last_failed_at).total_seconds() if service.last_failed_at else delay
        if delay and waited < delay:
            actions.append(RequeueAfter(delay - waited))
            if not service.throttled:
                actions.append(SetThrottled(True))
                actions.append(AddEvent(THROTTLE_EVENT))
        else:
            if service.throttled:
                actions.append(SetThrottled(False))
            providers = capacity_strategy.fill(
                service.capacity_provider_strategy,
                [t.capacity_provider for t in live if t.deployment_id == primary_id], start)
            actions.append(StartTasks(start, primary_id, providers))
            started = True
    stop([by_pk[pk] for pk in chosen])

    # A rollout waiting for new tasks to turn healthy looks again when the next one may have.
    settling = [t for t in live if judged[t.pk][1]]
    if old_live and settling and not failed:
        if service.has_load_balancer or any(t.container_health for t in settling):
            wait = HEALTH_POLL_SECONDS
        else:
            wait = min(service.health_grace_seconds - (now - t.started_at).total_seconds() for t in settling)
        actions.append(RequeueAfter(max(wait, 0.05)))

    # Protected tasks that a scale-in or the rollout had to leave: look again when the first
    # protection expires (UpdateTaskProtection also looks at once when it lifts one).
    guarded = [t.protected_until for t in live if t.protected_until is not None and t.protected_until > now]
    primary_count = sum(1 for t in live if t.deployment_id == primary_id and not t.draining)
    if guarded and (old_live or primary_count > want):
        actions.append(RequeueAfter(max((min(guarded) - now).total_seconds(), 0.05)))

    # 5. Retire old deployments with nothing left.
    for deployment in service.deployments:
        if deployment.status == Deployment.ACTIVE and not any(
            t.deployment_id == deployment.deployment_id for t in unstopped
        ):
            actions.append(RetireDeployment(deployment.deployment_id))

    # Steady state: exactly ``want`` primary tasks, all RUNNING, nothing else alive.
    primary_live = [t for t in live if t.deployment_id == primary_id and not t.draining]
    steady = (
        not started and not chosen and not old_live and not stopping and len(primary_live) == want
        and all(t.last_status == Task.RUNNING for t in primary_live)
    )
    if steady and not service.steady:
        actions.append(SetSteady(True))
        actions.append(AddEvent("has reached a steady state."))
        if primary and primary.rollout_state == Deployment.IN_PROGRESS:
            actions.append(CompleteRollout(primary_id))
            actions.append(AddEvent(f"(deployment {primary_id}) deployment completed."))
    elif not steady and service.steady:
        actions.append(SetSteady(False))

    actions.append(_counts(service, unstopped, primary_id))
    return [a for a in actions if a is not None]


def _plan_task_sets(service, live, unstopped, stopping, now, stop, actions):
    """A pass over an EXTERNAL service (``task_sets.plan_task_sets``): each task set kept at its
    computedDesiredCount, a deleted one's tasks stopped and the task set retired."""
    order = _created_order(live)
    step = task_sets.plan_task_sets(
        [(d.deployment_id, d.status, d.desired_count) for d in service.deployments if d.status != Deployment.INACTIVE],
        [task_sets.SetTask(t.pk, t.deployment_id, t.last_status == Task.RUNNING, order[t.pk],
                           protected=t.protected_until is not None and t.protected_until > now) for t in live],
        {t.deployment_id for t in unstopped}, len(stopping))
    strategies = {d.deployment_id: d.capacity_provider_strategy for d in service.deployments}
    for ident, count in step.start.items():
        providers = capacity_strategy.fill(
            strategies.get(ident, []), [t.capacity_provider for t in live if t.deployment_id == ident], count)
        actions.append(StartTasks(count, ident, providers))
    by_pk = {t.pk: t for t in live}
    stop([by_pk[pk] for pk in step.stop])
    actions.extend(RetireDeployment(ident) for ident in step.retire)
    if step.steady and not service.steady:
        actions.append(SetSteady(True))
        actions.append(AddEvent("has reached a steady state."))
    elif not step.steady and service.steady:
        actions.append(SetSteady(False))


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
        if service.external:  # a task set's computedDesiredCount, written by the frontend
            desired = d.desired_count if service.status == Service.ACTIVE else 0
        r, p = count(mine)
        if (desired, r, p, d.failed_tasks) != (d.desired_count, d.running_count, d.pending_count,
                                              d.recorded_failed_tasks):
            per_deployment[d.deployment_id] = (desired, r, p, d.failed_tasks)
    if (running, pending) == (service.running_count, service.pending_count) and not per_deployment:
        return None
    return SetCounts(running, pending, per_deployment)


# --- a pass in words ----------------------------------------------------------------------

# Actions that change what runs: a pass that chose one acts on its own, so it starts a trace
# when no request or reaction asked for it.
ACTING = (StartTasks, StopTasks, FailDeployment, Rollback)


def describe_action(action):
    """One action of the plan in a few words ("start 1", "stop 2: …"); "" for bookkeeping."""
    if isinstance(action, StartTasks):
        return f"start {action.count}"
    if isinstance(action, StopTasks):
        return f"stop {len(action.task_pks)}" + (" running" if action.running else "")
    if isinstance(action, FailDeployment):
        return f"fail deployment {action.deployment_id} ({action.failed_tasks} failed tasks)"
    if isinstance(action, Rollback):
        return f"roll back to {action.to_id}"
    if isinstance(action, CompleteRollout):
        return "complete the rollout"
    if isinstance(action, RetireDeployment):
        return f"retire deployment {action.deployment_id}"
    if isinstance(action, MarkInactive):
        return "mark INACTIVE"
    if isinstance(action, SetThrottled):
        return "throttle starts" if action.throttled else "stop throttling"
    if isinstance(action, RequeueAfter):
        return f"look again in {action.seconds:.1f} s"
    if isinstance(action, SetSteady) and action.steady:
        return "steady state"
    return ""


def describe_pass(service, tasks, actions):
    """(desired, running, pending, the actions in words, the pass in one line) of one pass:
    "desired 3, running 2, pending 0 → start 1". Pure, like ``plan``."""
    live = [t for t in tasks if t.last_status != Task.STOPPED and t.desired_status == Task.RUNNING]
    running = sum(1 for t in live if t.last_status == Task.RUNNING)
    pending = sum(1 for t in live if t.last_status in NOT_YET_RUNNING)
    words = [w for w in (describe_action(a) for a in actions) if w]
    desired = service.desired_count if service.status == Service.ACTIVE else 0
    observed = f"desired {desired}, running {running}, pending {pending}"
    if service.status != Service.ACTIVE:
        observed = f"{service.status}: {observed}"
    return desired, running, pending, words, f"{observed} → {', '.join(words) if words else 'nothing to do'}"


# --- the executor -------------------------------------------------------------------------

def load(service_pk, now=None):
    """The ServiceState and TaskStates of one service from the database (None if it is gone)."""
    service = Service.objects.filter(pk=service_pk).first()
    if service is None:
        return None, []
    config = service.deployment_configuration or {}
    breaker = config.get("deploymentCircuitBreaker") or {}
    rows = list(service.deployments.all())
    failures = _failed_tasks(service)
    deployment_states = [
        DeploymentState(d.deployment_id, d.status, d.rollout_state, d.desired_count, d.running_count,
                        d.pending_count, failed_tasks=failures.get(d.pk, 0), recorded_failed_tasks=d.failed_tasks,
                        stop_requested=d.stop_requested,
                        capacity_provider_strategy=list(d.revision.get("capacityProviderStrategy") or [])
                        if service.deployment_controller == "EXTERNAL" else [])
        for d in rows
    ]
    state = ServiceState(
        pk=service.pk, name=service.name, status=service.status, desired_count=service.desired_count,
        deployments=deployment_states, steady=service.steady, running_count=service.running_count,
        pending_count=service.pending_count,
        minimum_healthy_percent=int(config.get("minimumHealthyPercent", rollout.DEFAULT_MINIMUM_HEALTHY_PERCENT)),
        maximum_percent=int(config.get("maximumPercent", rollout.DEFAULT_MAXIMUM_PERCENT)),
        has_load_balancer=bool(service.load_balancers),
        health_grace_seconds=float(settings.FARGATE_LAB["HEALTH_GRACE_SECONDS"]),
        health_check_grace_period=float(service.health_check_grace_period or 0),
        circuit_breaker=bool(breaker.get("enable")), rollback=bool(breaker.get("rollback")),
        capacity_provider_strategy=list(service.capacity_provider_strategy),
        external=service.deployment_controller == "EXTERNAL",
    )
    tasks = [
        TaskState(t["pk"], t["task_id"], t["desired_status"], t["last_status"], t["created_at"],
                  t["deployment__deployment_id"] or "", t["started_at"],
                  LB_HEALTH.get(t["lb_health_status"], "initial") if state.has_load_balancer else None,
                  t["container_health_status"], t["container_instance__status"] == ContainerInstance.DRAINING,
                  t["capacity_provider"], t["protected_until"])
        for t in service.tasks.exclude(last_status=Task.STOPPED).values(
            "pk", "task_id", "desired_status", "last_status", "created_at", "deployment__deployment_id",
            "started_at", "lb_health_status", "container_health_status", "container_instance__status",
            "capacity_provider", "protected_until")
    ]
    # Restart throttling counts the primary deployment's failures only: a new deployment (a new
    # task definition, or a forced one) starts afresh.
    primary = next((d for d in rows if d.status == Deployment.PRIMARY), None)
    if primary is not None:
        state.failed_starts, state.last_failed_at = service.failed_starts(primary)
    return service, (state, tasks)


def healthy_filter(service, now):
    """``health(task, …)[0]`` of a live task wanted RUNNING, as a query on the task's own row:
    what the pages count (ready replicas) without loading a service's thousands of tasks."""
    base = Q(last_status=Task.RUNNING, desired_status=Task.RUNNING, started_at__isnull=False)
    container_ok = Q(container_health_status="") | Q(container_health_status=task_health.HEALTHY)
    if service.load_balancers:
        lb_healthy = [status for status, health_ in LB_HEALTH.items() if health_ == "healthy"]
        return base & container_ok & Q(lb_health_status__in=lb_healthy)
    grace = timedelta(seconds=float(settings.FARGATE_LAB["HEALTH_GRACE_SECONDS"]))
    return base & (Q(container_health_status=task_health.HEALTHY)
                   | Q(container_health_status="", started_at__lte=now - grace))


def healthy_tasks(service_pk, now=None):
    """task id -> deployment id of the service's live tasks that count as healthy, judged as the
    rollout judges them (what Kubernetes calls ready replicas)."""
    service = Service.objects.filter(pk=service_pk).first()
    if service is None:
        return {}
    rows = service.tasks.filter(healthy_filter(service, now or timezone.now()))
    return {task_id: deployment_id or "" for task_id, deployment_id in
            rows.values_list("task_id", "deployment__deployment_id")}


def healthy_count(service, now=None):
    """How many of the service's tasks ``healthy_tasks`` names, counted by the database."""
    return service.tasks.filter(healthy_filter(service, now or timezone.now())).count()


def _failed_tasks(service):
    """Deployment pk -> how many of its tasks failed (stopped on their own, or failed health checks)."""
    failed = {}
    # Only the failures of live deployments are counted (an INACTIVE one keeps what was recorded),
    # and SQLite picks them out: every pass would otherwise read the service's whole history.
    rows = service.tasks.filter(
        Q(stop_code__in=FAILURE_CODES) | Q(stopped_reason__icontains="health check"),
        last_status=Task.STOPPED, deployment__status__in=(Deployment.PRIMARY, Deployment.ACTIVE),
    ).exclude(stop_code__in=("UserInitiated",)).values_list("deployment_id", flat=True)
    for deployment_pk in rows:
        failed[deployment_pk] = failed.get(deployment_pk, 0) + 1
    return failed


class ClusterManager:
    """Applies the scheduler's plan; ``enqueue(key, delay=0)`` asks for more work."""

    def __init__(self, enqueue):
        self.enqueue = enqueue
        # Throttled services (said once per episode); process memory is enough for a message.
        self._throttled = set()

    def sync_service(self, service_pk):
        """One level-triggered pass over a service; returns the actions applied.

        The pass is kept (``ReconcilePass``) and, when it works for a trace or acts on its own
        (then starting a trace), recorded as a step of it."""
        started_at, started = timezone.now(), time.perf_counter()
        with traces.continuing(traces.current()):  # a trace begun in this pass ends with it
            # Health step: tasks that failed their ELB or container health checks are stopped
            # first, so that the plan below replaces them in this very pass (in the trace the
            # failure began).
            elb_health.check_service(service_pk, self.enqueue)
            task_health.check_service(service_pk, self.enqueue)
            service, loaded = load(service_pk)
            if service is None:
                return []
            state, tasks = loaded
            state.throttled = service.pk in self._throttled
            actions = plan(state, tasks)
            if any(isinstance(a, ACTING) for a in actions):
                traces.adopt("cluster_manager", "reconcile", service.arn, service.account)
            for action in actions:
                self.apply(service, action)
            duration_ms = (time.perf_counter() - started) * 1000
            desired, running, pending, words, summary = describe_pass(state, tasks, actions)
            keep_pass(service, traces.current(), started_at, duration_ms, desired, running, pending, words, summary)
            if traces.current():
                activity.record("cluster_manager", "reconcile", service.arn, f"service {service.name}: {summary}",
                                started_at=started_at, duration_ms=round(duration_ms, 3))
        return actions

    def apply(self, service, action):
        """Carry out one action of the plan."""
        kind = type(action).__name__
        handler = getattr(self, f"_apply_{kind}")
        handler(service, action)

    def _apply_StartTasks(self, service, action):
        deployment = service.deployments.filter(deployment_id=action.deployment_id).first()
        task_definition = deployment.task_definition if deployment else service.task_definition
        refusal = too_big(task_definition.cpu, task_definition.memory, task_ceiling())
        if refusal:  # no instance could ever hold one: start none, and say why (once), as ECS does
            self._say_once(service, "was unable to place a task because no container instance met all of its "
                                    f"requirements. Reason: {refusal[0]}: {refusal[1]}")
            return
        # A task set's tasks take its own launch settings; a deployment's, the service's.
        launch = deployment.revision if deployment is not None and service.deployment_controller == "EXTERNAL" else {
            "launchType": service.launch_type, "networkConfiguration": service.network_configuration}
        if launch.get("launchType") == "EC2":  # ECS's default launch type: the caller's instances, none here
            self._say_once(service, "was unable to place a task because no container instance met all of its "
                                    f"requirements. Reason: {NO_CONTAINER_INSTANCES} For more information, see the "
                                    "Troubleshooting section of the Amazon ECS Developer Guide.")
            return
        # With AWS's pace kept, the scheduler starts what the account's launch bucket allows
        # and comes back for the rest once it has refilled.
        count, wait = pacing.take(service.account_id, action.count, partial=True)
        if count < action.count:
            self.enqueue(f"service:{service.pk}", delay=wait)
        with transaction.atomic():
            # The account's vCPU quota bounds what starts; the resync comes back when tasks stop.
            # The tasks and their containers are two INSERTs however many start.
            providers = (action.providers or [""] * action.count)[:count]
            fitting = quotas.tasks_that_fit(service.account, task_definition.cpu, providers)
            created = Task.objects.bulk_create([
                Task(
                    account=service.account, cluster=service.cluster, task_definition=task_definition,
                    service=service, deployment=deployment, group=f"service:{service.name}",
                    started_by=action.deployment_id, launch_type=launch.get("launchType", "FARGATE"),
                    capacity_provider=provider, cpu=task_definition.cpu, memory=task_definition.memory,
                    network_configuration=launch.get("networkConfiguration") or {},
                    enable_execute_command=service.enable_execute_command,
                    trace_id=traces.current() or activity.new_trace_id(),
                )
                for provider in fitting
            ])
            definitions = task_definition.container_definitions
            TaskContainer.objects.bulk_create([
                TaskContainer(
                    task=task, name=c.get("name", ""), image=c.get("image", ""),
                    essential=c.get("essential", True), cpu=c.get("cpu") or 0, memory=c.get("memory"),
                )
                for task in created for c in definitions
            ])
        if created:
            ids = " ".join(f"(task {t.task_id})" for t in created)
            service.add_event(f"has started {len(created)} tasks: {ids}.")
        if len(fitting) < len(providers):  # after the start, so that the next pass finds it the latest
            self._say_once(service, f"was unable to place a task. Reason: {quotas.VCPU_LIMIT_REASON}. "
                                    "For more information, see the Troubleshooting section of the Amazon ECS "
                                    "Developer Guide.")
        if not created:
            return
        with activity.batched():
            for task in created:
                activity.record("cluster_manager", "start-task", task.arn,
                                f"service {service.name} is short of tasks: started task {task.task_id} "
                                f"({action.deployment_id})", trace_id=task.trace_id)
                bus.publish("task", task.pk, origin="controlplane")
        bus.publish("service", service.pk, origin="controlplane")
        self.enqueue("placement")

    def _say_once(self, service, message):
        """Add a service event unless it is the latest one already (a refusal is said once a spell)."""
        latest = service.events.first()
        if latest is None or latest.message != f"(service {service.name}) {message}":
            self._apply_AddEvent(service, AddEvent(message))
            bus.publish("service", service.pk, origin="controlplane")

    def _apply_StopTasks(self, service, action):
        now = timezone.now()
        stopped = []
        chosen = list(zip(action.task_pks, action.task_ids))
        # Each stop is its own conditional UPDATE, STOP_BATCH of them to a transaction (one commit).
        for first in range(0, len(chosen), STOP_BATCH):
            claimed = []
            with transaction.atomic():
                for pk, task_id in chosen[first:first + STOP_BATCH]:
                    changed = Task.objects.filter(pk=pk, desired_status=Task.RUNNING).update(
                        desired_status=Task.STOPPED, stop_code="ServiceSchedulerInitiated",
                        stopped_reason=action.reason, stopping_at=now, updated_at=now,
                        stop_trace_id=traces.current(),
                    )
                    if changed:  # else somebody stopped it first
                        claimed.append((pk, task_id))
                        bus.publish("task", pk, origin="controlplane")
            for pk, task_id in claimed:  # once committed, so that the agent's pass finds it to stop
                stopped.append(task_id)
                self.enqueue(f"task:{pk}", urgent=True)  # stops go before the starts waiting
        if stopped:
            ids = " ".join(f"(task {t})" for t in stopped)
            word = "running tasks" if action.running else "tasks"
            service.add_event(f"has stopped {len(stopped)} {word}: {ids}.")
            activity.record("cluster_manager", "stop-tasks", service.arn,
                            f"service {service.name}: stopping {len(stopped)} task(s): {ids}; {action.reason}")
            bus.publish("service", service.pk, origin="controlplane")

    def _apply_SetCounts(self, service, action):
        Service.objects.filter(pk=service.pk).update(running_count=action.running, pending_count=action.pending)
        for deployment_id, (desired, running, pending, failed) in action.deployments.items():
            Deployment.objects.filter(deployment_id=deployment_id).update(
                desired_count=desired, running_count=running, pending_count=pending, failed_tasks=failed,
                updated_at=timezone.now(),
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
            updated_at=timezone.now(), finished_at=timezone.now(),
        )
        activity.record("cluster_manager", "rollout-completed", service.arn,
                        f"deployment {action.deployment_id} of service {service.name} completed")

    def _apply_RetireDeployment(self, service, action):
        Deployment.objects.filter(deployment_id=action.deployment_id,
                                  status__in=(Deployment.ACTIVE, Deployment.DRAINING)).update(
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

    def _apply_FailDeployment(self, service, action):
        changed = Deployment.objects.filter(
            deployment_id=action.deployment_id, rollout_state=Deployment.IN_PROGRESS
        ).update(rollout_state=Deployment.FAILED, rollout_state_reason=action.reason, failed_tasks=action.failed_tasks,
                 updated_at=timezone.now())
        if changed:
            Deployment.objects.filter(deployment_id=action.deployment_id, stopped_at=None).update(
                stopped_at=timezone.now())
            activity.record("cluster_manager", "rollout-failed", service.arn,
                            f"deployment {action.deployment_id} of service {service.name} FAILED: {action.reason}")
            bus.publish("service", service.pk, origin="controlplane")

    def _apply_Rollback(self, service, action):
        """A new PRIMARY deployment of the last COMPLETED one's task definition, which takes over
        that deployment's live tasks (they already run what we roll back to)."""
        now = timezone.now()
        with transaction.atomic():
            target = Deployment.objects.select_related("task_definition").get(deployment_id=action.to_id)
            failed = Deployment.objects.filter(deployment_id=action.failed_id).first()
            service.deployments.filter(status=Deployment.PRIMARY).update(status=Deployment.ACTIVE, updated_at=now)
            # It deploys the target's service revision again, on behalf of the failed deployment.
            rollback = Deployment.objects.create(
                service=service, deployment_id=Deployment.new_id(), status=Deployment.PRIMARY,
                task_definition=target.task_definition, desired_count=service.desired_count,
                rollout_state=Deployment.IN_PROGRESS, created_at=now, updated_at=now,
                revision_id=target.revision_number, revision=target.revision, rollback_of=failed,
                source_revisions=[failed.revision_number] if failed else [],
            )
            Task.objects.filter(deployment=target).exclude(last_status=Task.STOPPED).update(deployment=rollback)
            Deployment.objects.filter(pk=target.pk).update(
                status=Deployment.INACTIVE, desired_count=0, running_count=0, pending_count=0, updated_at=now)
            Service.objects.filter(pk=service.pk).update(task_definition=target.task_definition, steady=False)
        activity.record("cluster_manager", "rollback", service.arn,
                        f"service {service.name} rolls back from {action.failed_id} to {target.task_definition} "
                        f"(deployment {rollback.deployment_id}, after {action.to_id})")
        bus.publish("service", service.pk, origin="controlplane")
        self.enqueue(f"service:{service.pk}")



def keep_pass(service, trace_id, started_at, duration_ms, desired, running, pending, words, summary):
    """Keep one pass of the service (the last RECONCILE_PASSES_KEPT): a pass that repeats the
    last one with nothing to do counts up its ``repeats`` instead of pushing older ones out."""
    last = service.reconcile_passes.order_by("-started_at", "-id").first()
    if last is not None and not words and not last.actions and last.summary == summary:
        ReconcilePass.objects.filter(pk=last.pk).update(repeats=models.F("repeats") + 1, last_at=timezone.now())
        return
    ReconcilePass.objects.create(
        service=service, trace_id=trace_id or "", started_at=started_at, last_at=started_at,
        duration_ms=round(duration_ms, 3), desired=desired, running=running, pending=pending,
        actions=words, summary=summary,
    )
    keep = settings.FARGATE_LAB["RECONCILE_PASSES_KEPT"]
    old = list(service.reconcile_passes.order_by("-started_at", "-id").values_list("pk", flat=True)[keep:])
    if old:
        ReconcilePass.objects.filter(pk__in=old).delete()
    bus.publish("service", service.pk, origin="controlplane")
