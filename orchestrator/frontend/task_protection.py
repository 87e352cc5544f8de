"""Task scale-in protection: UpdateTaskProtection and GetTaskProtection.

A protected task of a service is never stopped by a scale-in or a deployment
(``orchestrator.deployments.plan_rollout``): the service stays above its desired count, or the
rollout waits, until the protection is removed or expires (120 minutes by default, at most 2,880).
Only tasks of a service can be protected; a standalone task is a TASK_NOT_VALID failure.
Nearest Kubernetes counterpart: the ``controller.kubernetes.io/pod-deletion-cost`` annotation,
which only orders a ReplicaSet's scale-down; nothing in Kubernetes holds a rollout for a Pod.
"""
from datetime import timedelta

from django.utils import timezone

from orchestrator import bus
from orchestrator.frontend import EcsError, shapes
from orchestrator.frontend.operations import _get_cluster, operation
from orchestrator.frontend.tasks import _find_task, _task_rows
from orchestrator.models import Task, region

MAX_TASKS = 10  # UpdateTaskProtection
MAX_READ = 100  # GetTaskProtection
DEFAULT_MINUTES = 120
MAX_MINUTES = 2880


def protected_task_shape(task, now):
    """A ProtectedTask: the ARN, whether protection is in force, and until when."""
    enabled = task.protected_until is not None and task.protected_until > now
    data = {"taskArn": task.arn, "protectionEnabled": enabled}
    if enabled:
        data["expirationDate"] = shapes.epoch(task.protected_until)
    return data


def _failure(ctx, cluster, ref, reason, detail=None):
    """A Failure entry for a task that cannot be protected (or read)."""
    arn = ref if ref.startswith("arn:") else f"arn:aws:ecs:{region()}:{ctx.account.account_id}:task/{cluster.name}/{ref}"
    failure = {"arn": arn, "reason": reason}
    if detail:
        failure["detail"] = detail
    return failure


def _tasks(ctx, cluster, refs, limit):
    """(the service tasks ``refs`` name, failures for the others)."""
    if not 1 <= len(refs) <= limit:
        raise EcsError("InvalidParameterException", f"tasks must list between 1 and {limit} tasks.")
    found, failures = [], []
    for ref in refs:
        task = _find_task(ctx, cluster, ref)
        if task is None:
            failures.append(_failure(ctx, cluster, ref, "MISSING"))
        elif task.service_id is None:
            failures.append(_failure(ctx, cluster, task.arn, "TASK_NOT_VALID",
                                     "Task protection applies only to tasks that belong to a service."))
        elif task.desired_status == Task.STOPPED:
            failures.append(_failure(ctx, cluster, task.arn, "TASK_NOT_VALID", "The task is stopping or stopped."))
        else:
            found.append(task)
    return found, failures


@operation("UpdateTaskProtection")
def update_task_protection(ctx, params):
    """Turn scale-in protection on (for expiresInMinutes, reset on every call) or off for up to 10 tasks."""
    cluster = _get_cluster(ctx, params["cluster"])
    enabled = params["protectionEnabled"]
    minutes = params.get("expiresInMinutes", DEFAULT_MINUTES)
    if enabled and not 1 <= minutes <= MAX_MINUTES:
        raise EcsError("InvalidParameterException",
                       f"expiresInMinutes must be between 1 and {MAX_MINUTES} (48 hours).")
    tasks, failures = _tasks(ctx, cluster, params["tasks"], MAX_TASKS)
    now = timezone.now()
    until = now + timedelta(minutes=minutes) if enabled else None
    for task in tasks:
        Task.objects.filter(pk=task.pk).update(protected_until=until, updated_at=now)
        task.protected_until = until
        bus.publish("task", task.pk)
        bus.publish("service", task.service_id)  # a lifted protection may let a scale-in go on
    return {"protectedTasks": [protected_task_shape(t, now) for t in tasks], "failures": failures}


@operation("GetTaskProtection")
def get_task_protection(ctx, params):
    """The protection of the tasks named (up to 100), or of every live service task of the cluster."""
    cluster = _get_cluster(ctx, params["cluster"])
    now = timezone.now()
    if "tasks" in params:
        tasks, failures = _tasks(ctx, cluster, params["tasks"], MAX_READ)
    else:
        tasks = _task_rows(Task.objects.filter(cluster=cluster, service__isnull=False,
                                               desired_status=Task.RUNNING)).order_by("pk")
        failures = []
    return {"protectedTasks": [protected_task_shape(t, now) for t in tasks], "failures": failures}
