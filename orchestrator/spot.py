"""Fargate Spot: capacity that Fargate takes back (Kubernetes: a preempted spot node).

What AWS does, and the lab with it: when Fargate needs a FARGATE_SPOT task's capacity back, ECS
gives the task a two-minute warning. The warning is a task state change (desiredStatus STOPPED,
stopCode ``SpotInterruption``, stoppedReason "Your Spot Task was interrupted.") and SIGTERM to
the task's containers at once; each container gets SIGKILL after its stopTimeout (at most 120 s,
which is why Fargate caps it there), and the task is gone when the warning ends at the latest.
A service's scheduler starts the replacement as soon as the warning comes, not after the stop.

The lab draws interruptions at ``SPOT_INTERRUPTION_RATE`` per FARGATE_SPOT task and hour (on the
leader's resync loop; 0 never), or a teacher interrupts one task from its page. The warning lasts
``SPOT_WARNING_SECONDS`` (120, as on AWS; shorter for tests and classes): the agent stops the
task's containers as for any stop, its SIGKILL deadline and any draining of its targets bounded
by the warning's end.
"""
import math
import random
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from orchestrator import activity, bus, traces
from orchestrator.models import Task

PROVIDER = "FARGATE_SPOT"
STOP_CODE = "SpotInterruption"
REASON = "Your Spot Task was interrupted."


def warning_seconds():
    """How long a Spot interruption's warning lasts (ECS: two minutes)."""
    return settings.FARGATE_LAB["SPOT_WARNING_SECONDS"]


def chance(rate_per_hour, seconds):
    """The probability that one task is interrupted within ``seconds`` at ``rate_per_hour``
    (interruptions arrive as a Poisson process)."""
    if rate_per_hour <= 0 or seconds <= 0:
        return 0.0
    return 1.0 - math.exp(-rate_per_hour * seconds / 3600.0)


def draw(candidates, rate_per_hour, seconds, rng=random):
    """The candidates (FARGATE_SPOT tasks running now) that an interruption hits within ``seconds``."""
    p = chance(rate_per_hour, seconds)
    return [candidate for candidate in candidates if p and rng.random() < p]


def stop_by(task):
    """When an interrupted task must be gone (epoch seconds): the end of its warning; else None."""
    if task.stop_code != STOP_CODE or task.stopping_at is None:
        return None
    return (task.stopping_at + timedelta(seconds=warning_seconds())).timestamp()


def interruptible(task):
    """Whether ``task`` can be interrupted now: a FARGATE_SPOT task that runs and is meant to."""
    return (task.capacity_provider == PROVIDER and task.desired_status == Task.RUNNING
            and task.last_status == Task.RUNNING)


def interrupt(task, by="the capacity manager reclaims the capacity"):
    """Give a running FARGATE_SPOT task its interruption warning (a conditional UPDATE: a task
    already stopping is left alone); True if this call interrupted it. Starts the trace the stop,
    the warning's end and the service's replacement continue."""
    now, trace = timezone.now(), traces.new_trace_id()
    changed = Task.objects.filter(pk=task.pk, capacity_provider=PROVIDER, desired_status=Task.RUNNING,
                                  last_status=Task.RUNNING).update(
        desired_status=Task.STOPPED, stop_code=STOP_CODE, stopped_reason=REASON, stopping_at=now, updated_at=now,
        stop_trace_id=trace)
    if not changed:
        return False
    traces.begin("capacity_manager", "spot-interruption", task.arn, task.account, trace_id=trace, started_at=now)
    seconds = warning_seconds()
    activity.record("capacity_manager", "spot-interruption", task.arn,
                    f"Spot interruption of task {task.task_id} ({by}): {REASON} Its containers get SIGTERM now "
                    f"and SIGKILL after their stopTimeout, at the latest when the {seconds:g} s warning ends",
                    trace_id=trace, started_at=now, duration_ms=0)
    if task.service_id:
        task.service.add_event(
            f"task {task.task_id} will be interrupted: {REASON} (Fargate Spot capacity is reclaimed within "
            f"{seconds:g} s; the service starts a replacement)", trace_id=trace)
        bus.publish("service", task.service_id)
    bus.publish("task", task.pk, stop=True)  # the agent takes it before any waiting starts
    return True


def sweep(seconds, rng=random):
    """Draw this period's interruptions among the lab's running FARGATE_SPOT tasks (the leader
    calls it every resync); returns how many tasks were interrupted."""
    rate = settings.FARGATE_LAB["SPOT_INTERRUPTION_RATE"]
    if rate <= 0:
        return 0
    running = Task.objects.select_related("account", "cluster", "service").filter(
        capacity_provider=PROVIDER, desired_status=Task.RUNNING, last_status=Task.RUNNING)
    return sum(interrupt(task, by=f"drawn at {rate:g} interruptions per task-hour")
               for task in draw(list(running), rate, seconds, rng))
