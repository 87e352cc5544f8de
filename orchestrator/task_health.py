"""Container health checks: a container's healthStatus, the task's as ECS combines them, and the
service scheduler's reaction to an UNHEALTHY task.

A container definition's ``healthCheck`` is the container's Docker health check; the agent reads
its result (Docker's ``health_status`` events, and the state a list or inspect shows) into the
container's ``health_status`` and the task's ``container_health_status``. The task's
``health_status`` (what DescribeTasks shows) combines that with its load balancer's part
(``elb_health``): with both, the task is HEALTHY only when both pass.

ECS stops a service's task whose health turns UNHEALTHY (after the service's
``healthCheckGracePeriodSeconds``) and the scheduler replaces it; a task started by RunTask
goes on regardless of its health, as on ECS. Kubernetes counterpart: a liveness probe that
fails restarts the container, a readiness probe gates the rollout.
"""
from django.utils import timezone

from orchestrator import activity, bus, traces
from orchestrator.models import Service, Task

HEALTHY, UNHEALTHY, UNKNOWN = "HEALTHY", "UNHEALTHY", "UNKNOWN"
DOCKER_HEALTH = {"healthy": HEALTHY, "unhealthy": UNHEALTHY}
FAILED_REASON = "Task failed container health checks"


def container_health(docker_health, has_check):
    """A container's healthStatus from Docker's health ("starting", "healthy", "unhealthy", "");
    UNKNOWN without a health check in its definition (ECS ignores one baked into the image)."""
    return DOCKER_HEALTH.get(docker_health, UNKNOWN) if has_check else UNKNOWN


def combine_statuses(statuses):
    """UNHEALTHY if any is, HEALTHY if all are, else UNKNOWN."""
    statuses = set(statuses)
    if UNHEALTHY in statuses:
        return UNHEALTHY
    return HEALTHY if statuses == {HEALTHY} else UNKNOWN


def containers_health(containers):
    """The task's health from its containers, as ECS combines them; "" when none has a check.

    ``containers``: (essential, has_check, health_status) each. The essential containers with a
    check decide; the non-essential ones only when no essential container has one.
    """
    checked = [c for c in containers if c[0] and c[1]] or [c for c in containers if c[1]]
    return combine_statuses(c[2] for c in checked) if checked else ""


def combine(lb_part, container_part):
    """The task's healthStatus from its load balancer's part and its containers' ("" where it has
    none): with both, HEALTHY only when both are."""
    parts = [p for p in (lb_part, container_part) if p]
    return combine_statuses(parts) if parts else UNKNOWN


def write_part(task_pk, **part):
    """Write one part (``lb_health_status`` or ``container_health_status``) and the combined
    ``health_status``; True if the part changed. The combined value is written on the condition
    that neither part moved meanwhile: if one did, its writer writes the combination. A part
    that already holds the value is only read: every service pass asks this of each task, and
    an UPDATE of nothing still took a turn at the state database's write lock."""
    if not Task.objects.filter(pk=task_pk).exclude(**part).exists():
        return False
    if not Task.objects.filter(pk=task_pk).exclude(**part).update(**part):
        return False
    row = Task.objects.filter(pk=task_pk).values("lb_health_status", "container_health_status").first()
    if row is not None:
        Task.objects.filter(pk=task_pk, **row).update(
            health_status=combine(row["lb_health_status"], row["container_health_status"]))
    return True


def has_check(definition):
    """Whether a container definition has a health check ECS runs."""
    return bool((definition.get("healthCheck") or {}).get("command"))


def check_service(service_pk, enqueue, now=None):
    """Stop the service's RUNNING tasks whose container health is UNHEALTHY, once the service's
    grace period since each started is over; returns the pks stopped. The plan of the same
    pass sees them stopping and starts their replacements."""
    service = Service.objects.select_related("account", "cluster").filter(pk=service_pk).first()
    if service is None or service.status != Service.ACTIVE:
        return []
    now = now or timezone.now()
    grace = service.health_check_grace_period or 0
    stopped = []
    for task in service.tasks.select_related("account", "cluster").filter(
            desired_status=Task.RUNNING, last_status=Task.RUNNING, container_health_status=UNHEALTHY):
        waited = (now - (task.started_at or now)).total_seconds()
        if waited < grace:  # ECS ignores failed checks during the grace period: look again after it
            enqueue(f"service:{service.pk}", delay=grace - waited)
            continue
        if _stop_unhealthy(service, task, now):
            stopped.append(task.pk)
            enqueue(f"task:{task.pk}", urgent=True)
    return stopped


def _stop_unhealthy(service, task, now):
    """Stop one task that failed its container health checks; False if it was already stopping."""
    unhealthy = ", ".join(task.containers.filter(health_status=UNHEALTHY).values_list("name", flat=True))
    return stop_failed_task(
        service, task, now, reason=FAILED_REASON, claim={"container_health_status": UNHEALTHY},
        detected_by="agent", event=f"(task {task.task_id}) failed container health checks.",
        steps=[("cluster_manager", "stop-unhealthy",
                f"service {service.name}: task {task.task_id} failed container health checks "
                f"({unhealthy or 'its containers'}); stopping it")],
    )


def stop_failed_task(service, task, now, *, reason, claim, detected_by, steps, event):
    """Stop one RUNNING service task whose health checks failed, as ECS's service scheduler does
    (the same pass then starts its replacement). The stop is a conditional UPDATE on ``claim``
    (False when another worker got there first, or the task turned healthy meanwhile); the
    failure starts a trace (``detected_by``), unless a request is being worked on, that the
    stop, the replacement and its placement continue; ``steps`` (component, action, message)
    are recorded on it in order, then ECS's service events: ``event``, and the stop."""
    changed = Task.objects.filter(pk=task.pk, desired_status=Task.RUNNING, **claim).update(
        desired_status=Task.STOPPED, stop_code="ServiceSchedulerInitiated", stopped_reason=reason,
        stopping_at=now, updated_at=now,
    )
    if not changed:
        return False
    trace = traces.adopt(detected_by, "health-check-failed", task.arn, service.account)
    Task.objects.filter(pk=task.pk).update(stop_trace_id=trace)
    for component, action, message in steps:
        activity.record(component, action, task.arn, message, trace_id=trace)
    service.add_event(event)
    service.add_event(f"has stopped 1 running tasks: (task {task.task_id}).")
    bus.publish("task", task.pk, origin="controlplane")
    bus.publish("service", service.pk, origin="controlplane")
    return True
