"""Traces: one request or reaction followed through the control plane, step by step.

A trace starts where work starts: an API call (the frontend, for the CLI, the SDKs and the
dashboard's forms alike), a container that died (a Docker ``die`` event), a relist that found
a container missing, a failed load balancer health check, or a scheduler pass that acts on its
own. Its id then travels with the key through the work queues (``WorkQueue`` keeps the trace
of whoever asked for a key, a Task row the trace that created it), and every component that
works on it records a step: component, action, object, start and duration (``step``).

The current trace of a thread is a context variable: ``continuing(trace_id)`` sets it for a
block (a worker does so around each key), ``activity.record`` and ``enqueue`` read it. Steps are
Activity rows; a ``Trace`` row says whose the trace is and what started it. ``KUBERNETES`` maps
each step to what does the same work in Kubernetes, for the trace page and its JSON.
"""
import contextvars
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from orchestrator.models import Activity, Trace

_current = contextvars.ContextVar("fargate_lab_trace", default="")
# Whether a ``continuing`` block encloses this code: only then may ``adopt`` change the current
# trace (it ends with the block, never leaking into whatever the thread does next).
_scoped = contextvars.ContextVar("fargate_lab_trace_scoped", default=False)

# component, action -> the Kubernetes counterpart of the step; (component, "*") is the
# component's default. One table, read by the trace page and the JSON the map replays.
KUBERNETES = {
    ("frontend", "*"): "kube-apiserver: authentication, authorization, admission",
    ("state_database", "write"): "kube-apiserver → etcd: the object is written (etcd Txn)",
    ("state_database", "*"): "etcd",
    ("cluster_manager", "reconcile"): "ReplicaSet controller: syncReplicaSet (desired vs observed)",
    ("cluster_manager", "start-task"): "ReplicaSet controller: create Pod",
    ("cluster_manager", "stop-tasks"): "ReplicaSet controller: delete Pods",
    ("cluster_manager", "stop-unhealthy"): "kubelet liveness probe failed: the Pod is restarted",
    ("cluster_manager", "service-event"): "Event (kubectl describe deployment)",
    ("cluster_manager", "rollout-completed"): "Deployment controller: rollout complete",
    ("cluster_manager", "rollout-failed"): "Deployment controller: ProgressDeadlineExceeded",
    ("cluster_manager", "rollback"): "kubectl rollout undo",
    ("cluster_manager", "autoscale"): "HorizontalPodAutoscaler controller: scale the Deployment's replicas "
                                      "(kubectl autoscale)",
    ("cluster_manager", "*"): "kube-controller-manager",
    ("capacity_manager", "place"): "kube-scheduler: Filter, Score, Bind",
    ("capacity_manager", "no-capacity"): "kube-scheduler: FailedScheduling (Pod stays Pending)",
    ("capacity_manager", "launch-instance"): "cluster autoscaler: scale up a node group",
    ("capacity_manager", "instance-active"): "a new Node turns Ready",
    ("capacity_manager", "drain-instance"): "cluster autoscaler: drain a node (kubectl drain)",
    ("capacity_manager", "recycle-instance"): "cluster autoscaler: remove the node",
    ("capacity_manager", "spot-interruption"): "node preemption: the cloud reclaims a spot node; the kubelet's "
                                               "graceful node shutdown gives each Pod its grace period, and the "
                                               "ReplicaSet controller recreates it on another node",
    ("capacity_manager", "*"): "kube-scheduler",
    ("agent", "sync"): "kubelet: SyncPod",
    ("agent", "pull"): "kubelet: Pulling image",
    ("agent", "pulled"): "CRI ImageService.PullImage",
    ("agent", "pull-progress"): "kubelet: Pulling image",
    ("agent", "create"): "CRI RuntimeService.CreateContainer",
    ("agent", "adopt"): "kubelet: adopt a running container (after a restart)",
    ("agent", "start"): "CRI RuntimeService.StartContainer",
    ("agent", "register"): "EndpointSlice controller: add the Pod's address",
    ("agent", "running"): "kubelet status manager: Pod Running (status update to the API server)",
    ("agent", "failed"): "kubelet: Pod Failed",
    ("agent", "died"): "kubelet PLEG: container exited",
    ("agent", "deregister"): "EndpointSlice controller: remove the Pod (terminating)",
    ("agent", "stop"): "CRI RuntimeService.StopContainer (SIGTERM, then SIGKILL)",
    ("agent", "stopped"): "kubelet status manager: Pod Succeeded / Failed",
    ("agent", "remove"): "CRI RuntimeService.RemoveContainer",
    ("agent", "kill"): "kill -9 behind the kubelet's back",
    ("agent", "relist"): "kubelet PLEG relist: a container is gone",
    ("agent", "health"): "kubelet prober: a liveness / readiness probe result",
    ("agent", "health-check-failed"): "kubelet liveness probe failed",
    ("agent", "remove-orphan"): "kubelet: remove an orphaned container",
    ("agent", "*"): "kubelet",
    ("docker", "die"): "container runtime event: container exited (seen by the kubelet's PLEG)",
    ("docker", "*"): "container runtime (containerd via CRI)",
    ("load_balancer", "health-check-failed"): "readiness / liveness probe failed",
    ("load_balancer", "register_task"): "EndpointSlice: endpoint added",
    ("load_balancer", "deregister_task"): "EndpointSlice: endpoint terminating",
    ("load_balancer", "*"): "Service / Ingress controller",
    ("registry", "*"): "OCI image registry",
}


def kubernetes_counterpart(component, action):
    """What does the work of step ``component``/``action`` in Kubernetes."""
    return KUBERNETES.get((component, action)) or KUBERNETES.get((component, "*"), "")


# --- the current trace ----------------------------------------------------------------------

def current():
    """The trace this thread works for now ("" when none)."""
    return _current.get()


@contextmanager
def continuing(trace_id):
    """Work for ``trace_id`` within the block (a trace begun inside ends with the block)."""
    token, scoped = _current.set(trace_id or ""), _scoped.set(True)
    try:
        yield trace_id
    finally:
        _scoped.reset(scoped)
        _current.reset(token)


def new_trace_id():
    """A fresh trace id (16 hex digits)."""
    import uuid

    return uuid.uuid4().hex[:16]


def begin(component, action, object_arn="", account=None, trace_id=None, started_at=None):
    """Start a trace (write its Trace row, unless one with ``trace_id`` is there already) and
    return its id; it is not made current. One ``INSERT … ON CONFLICT DO NOTHING`` (SQLite's
    ``INSERT OR IGNORE``): get_or_create's look first, savepoint and release were four round
    trips to PostgreSQL in every API call."""
    trace_id = trace_id or new_trace_id()
    Trace.objects.bulk_create([Trace(
        trace_id=trace_id, account=account, component=component, action=action[:64],
        object_arn=(object_arn or "")[:512], started_at=started_at or timezone.now(),
    )], ignore_conflicts=True)
    return trace_id


def adopt(component, action, object_arn="", account=None):
    """The current trace; when there is none, begin one and make it current (for the rest of
    the enclosing ``continuing`` block): a reaction that starts work of its own."""
    if current():
        return current()
    trace_id = begin(component, action, object_arn, account)
    if _scoped.get():
        _current.set(trace_id)
    return trace_id


# --- steps ------------------------------------------------------------------------------------

@dataclass
class Step:
    """A step being worked on: set ``message`` (and ``details``) before the block ends."""

    component: str
    action: str
    object_arn: str = ""
    message: str = ""
    trace_id: str | None = None
    details: dict = field(default_factory=dict)
    skip: bool = False  # set to record nothing after all


def _arn(obj):
    return obj if isinstance(obj, str) else getattr(obj, "arn", "") if obj is not None else ""


@contextmanager
def step(component, action, obj=None, message="", trace_id=None, **fields):
    """Record one step of ``component`` doing ``action`` on ``obj`` (an ARN or an object with
    ``.arn``), timed from the block's start to its end, in ``trace_id`` (default: the current
    trace). A block that raises is recorded too, with what went wrong."""
    from orchestrator import activity

    started_at, started = timezone.now(), time.perf_counter()
    work = Step(component, action, _arn(obj)[:512], message, trace_id)
    try:
        yield work
    except BaseException as exc:
        if not work.message or work.message == message:
            work.message = f"{message} (interrupted: {type(exc).__name__}{': ' + str(exc) if str(exc) else ''})"
        raise
    finally:
        if not work.skip:
            activity.record(
                component, action, work.object_arn, work.message[:4000], work.trace_id,
                started_at=started_at, duration_ms=round((time.perf_counter() - started) * 1000, 3),
                details=work.details, **fields,
            )


def record_call(component, operation, trace_id, account, started_at, latency_ms, object_arn="", message="",
                **fields):
    """Start the trace of one API call and record the call as its first step (the frontend, or
    the ELBv2 and ECR endpoints beside it), timed from the request's arrival."""
    from orchestrator import activity, state_database

    trace = Trace(trace_id=trace_id, account=account, component=component, action=operation[:64],
                  object_arn=(object_arn or "")[:512], started_at=started_at or timezone.now())

    def write():  # one commit for both rows: every API call writes them
        # ``begin``'s row in one INSERT that skips an id already begun, instead of get_or_create's
        # SELECT, savepoint and INSERT: a read call's whole write is these two statements.
        Trace.objects.bulk_create([trace], ignore_conflicts=True)
        return activity.record(component, operation, object_arn[:512], message[:2000], trace_id,
                               started_at=started_at, duration_ms=round(latency_ms, 3),
                               latency_ms=round(latency_ms, 2), **fields)

    # A call that wrote commits them with its own writes; a read's are committed together with
    # the other reads' that wait for the same turn (30 students' DescribeServices, one turn), on
    # PostgreSQL at once, without waiting for the disk (they are for watching: group_commit).
    return state_database.group_commit(write, synchronous=False)


# --- reading a trace --------------------------------------------------------------------------

def visible_to(trace_id, account, staff=False):
    """The Trace ``trace_id`` if ``account`` may see it (staff see every trace), else None."""
    found = Trace.objects.filter(trace_id=trace_id).select_related("account").first()
    if found is None:
        return None
    if staff or (account is not None and found.account_id == account.pk):
        return found
    return None


def steps(trace_id):
    """The steps of a trace ordered by start, as the JSON endpoint gives them: component,
    action, object_arn, message, start_ms (from the first step's start), duration_ms,
    kubernetes, details (what a decision weighed), and for an ECS call its aws CLI form and the
    kubectl command that does the same ("" for other steps)."""
    rows = sorted(Activity.objects.filter(trace_id=trace_id), key=lambda a: (a.step_start, a.pk))
    if not rows:
        return []
    origin = rows[0].step_start
    return [
        {
            "component": row.component,
            "action": row.action,
            "object_arn": row.object_arn,
            "message": row.message,
            "start_ms": round((row.step_start - origin).total_seconds() * 1000, 3),
            "duration_ms": round(row.duration_ms or 0.0, 3),
            "kubernetes": kubernetes_counterpart(row.component, row.action),
            "details": row.details or {},
            "aws_command": row.aws_command,
            "kubectl_command": row.kubectl_command,
        }
        for row in rows
    ]


def span_ms(trace_steps):
    """From the first step's start to the last step's end, in milliseconds."""
    return max((s["start_ms"] + s["duration_ms"] for s in trace_steps), default=0.0)


def traces_of(object_arn, limit=20):
    """The ids of the traces that touched an object, newest first."""
    seen = []
    for trace_id in (Activity.objects.filter(object_arn=object_arn).exclude(trace_id="")
                     .order_by("-created_at", "-id").values_list("trace_id", flat=True)[:500]):
        if trace_id not in seen:
            seen.append(trace_id)
        if len(seen) >= limit:
            break
    return seen


# --- keeping the database small ---------------------------------------------------------------

def prune(now=None):
    """Delete traces (and their steps) older than TRACE_RETENTION_SECONDS or beyond the newest
    TRACE_RETENTION_COUNT; returns how many traces went."""
    conf = settings.FARGATE_LAB
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=conf["TRACE_RETENTION_SECONDS"])
    doomed = Q(started_at__lt=cutoff)
    keep = conf["TRACE_RETENTION_COUNT"]
    newest = Trace.objects.order_by("-started_at", "-id").values_list("started_at", "id")[keep:keep + 1]
    if newest:
        at, pk = newest[0]
        doomed |= Q(started_at__lt=at) | Q(started_at=at, id__lte=pk)
    ids = list(Trace.objects.filter(doomed).values_list("trace_id", flat=True)[:10_000])
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        Activity.objects.filter(trace_id__in=chunk).delete()
        Trace.objects.filter(trace_id__in=chunk).delete()
    # Steps of traces that never had a Trace row (written before traces were kept) age out too.
    Activity.objects.filter(created_at__lt=cutoff).exclude(trace_id="").delete()
    return len(ids)
