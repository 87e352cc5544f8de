"""ELB health checks as the service scheduler acts on them (an ECS service with a load balancer).

The cluster manager's pass over a service calls ``check_service`` first. It writes each
load-balanced task's load balancer part of its health (``lb_health_status``: HEALTHY /
UNHEALTHY / UNKNOWN while the first checks run; ``task_health`` combines it with the container
health checks' into ``health_status``) from its targets, and stops a RUNNING task whose target is unhealthy once the service's
``healthCheckGracePeriodSeconds`` since the task started are over — as ECS does, with stop
code ServiceSchedulerInitiated and the reason "Task failed ELB health checks in
(target-group …)". The plan that follows in the same pass sees the task stopping and starts
its replacement; the agent drains and stops the failed task.
"""
import logging

from django.utils import timezone

from orchestrator import bus, load_balancer, task_health
from orchestrator.models import Service, Target, Task

log = logging.getLogger(__name__)

HEALTH_STATUS = {"healthy": "HEALTHY", "unhealthy": "UNHEALTHY"}


def failed_reason(target_group_arn):
    """The stopped reason ECS gives a task its load balancer found unhealthy."""
    return f"Task failed ELB health checks in (target-group {target_group_arn})"


def check_service(service_pk, enqueue, now=None):
    """Write the health of the service's load-balanced tasks and stop the unhealthy ones past
    the grace period; returns the pks of the tasks it stopped. ``enqueue(key, delay=…)``
    asks for another look when a grace period ends."""
    service = Service.objects.select_related("account", "cluster").filter(pk=service_pk).first()
    # An EXTERNAL service's task sets each have their own target groups.
    if service is None or service.status != Service.ACTIVE or not (
            service.load_balancers or service.deployment_controller == "EXTERNAL"):
        return []
    now = now or timezone.now()
    grace = service.health_check_grace_period or 0
    stopped = []
    tasks = service.tasks.select_related("account", "cluster").filter(desired_status=Task.RUNNING).exclude(
        last_status=Task.STOPPED)
    for task in tasks:
        health = load_balancer.task_health(task)
        if task_health.write_part(task.pk, lb_health_status=HEALTH_STATUS.get(health, "UNKNOWN")):
            bus.publish("task", task.pk, origin="controlplane")
        if health != "unhealthy" or task.last_status != Task.RUNNING:
            continue
        waited = (now - (task.started_at or now)).total_seconds()
        if waited < grace:  # ECS ignores unhealthy checks during the grace period: look again after it
            enqueue(f"service:{service.pk}", delay=grace - waited)
            continue
        if _stop_unhealthy(service, task, now):
            stopped.append(task.pk)
            enqueue(f"task:{task.pk}")
    return stopped


def _stop_unhealthy(service, task, now):
    """Stop one task that failed its ELB health checks; False if it was already stopping."""
    target = (Target.objects.select_related("target_group").filter(task=task, state=Target.UNHEALTHY)
              .order_by("id").first())
    if target is None:  # it turned healthy again meanwhile
        return False
    arn = target.target_group.arn
    why = target.description or target.reason or "Health checks failed"
    group = target.target_group.name
    return task_health.stop_failed_task(
        service, task, now, reason=failed_reason(arn), claim={}, detected_by="load_balancer",
        event=f"(task {task.task_id}) (port {target.port}) is unhealthy in (target-group {arn}) due to (reason {why}).",
        steps=[
            ("load_balancer", "health-check-failed", f"{target.target_id}:{target.port} failed the health checks of {group}: {why}"),
            ("cluster_manager", "stop-unhealthy",
             f"service {service.name}: task {task.task_id} failed ELB health checks in {group} ({why}); stopping it"),
        ],
    )
