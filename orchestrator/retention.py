"""What the state database keeps, so that it grows with the work in hand and not with time.

ECS keeps a STOPPED task visible for about an hour, then forgets it (DescribeTasks answers it
MISSING); Kubernetes' Pod garbage collector does the same with terminated Pods beyond
``--terminated-pod-gc-threshold``. The activity feed is pruned like traces (``traces.prune``):
by age, and beyond a count, the oldest first. The leader runs both on its resync loop.
"""
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from orchestrator.models import Activity, Deployment, Task

# Rows deleted per statement: short write transactions, so the frontend's writes never queue
# long behind a prune on SQLite.
CHUNK = 500


def _delete_in_chunks(queryset):
    """Delete the rows of ``queryset`` CHUNK at a time; returns how many went."""
    gone = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:CHUNK])
        if not ids:
            return gone
        queryset.model.objects.filter(pk__in=ids).delete()
        gone += len(ids)


def prune_stopped_tasks(now=None):
    """Forget tasks STOPPED longer than STOPPED_TASK_RETENTION_SECONDS ago; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.FARGATE_LAB["STOPPED_TASK_RETENTION_SECONDS"])
    old = Task.objects.filter(last_status=Task.STOPPED).filter(
        Q(stopped_at__lt=cutoff) | Q(stopped_at__isnull=True, created_at__lt=cutoff)
    # A rollout still in progress counts its failed tasks for the circuit breaker: keep them.
    ).exclude(deployment__rollout_state=Deployment.IN_PROGRESS)
    return _delete_in_chunks(old)


def prune_activity(now=None):
    """Delete activity rows older than ACTIVITY_RETENTION_SECONDS or beyond the newest
    ACTIVITY_RETENTION_COUNT; returns how many went."""
    conf = settings.FARGATE_LAB
    now = now or timezone.now()
    doomed = Q(created_at__lt=now - timedelta(seconds=conf["ACTIVITY_RETENTION_SECONDS"]))
    keep = conf["ACTIVITY_RETENTION_COUNT"]
    boundary = Activity.objects.order_by("-created_at", "-id").values_list("created_at", "id")[keep:keep + 1]
    if boundary:
        at, pk = boundary[0]
        doomed |= Q(created_at__lt=at) | Q(created_at=at, id__lte=pk)
    return _delete_in_chunks(Activity.objects.filter(doomed))


def prune(now=None):
    """Both prunes; returns (tasks, activity rows) deleted."""
    return prune_stopped_tasks(now), prune_activity(now)
