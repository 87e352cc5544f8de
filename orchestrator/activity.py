"""Activity records: every step a component takes, for the dashboard's cards and traces.

``record`` writes one Activity row and publishes it on the bus, so an open dashboard shows
it at once. A row belongs to the current trace (see ``orchestrator.traces``) unless given
another; ``traces.step`` records a timed one. Within ``batched()`` (a control-plane pass) the
rows wait and are written together in one INSERT when the block ends, each with the time it
was recorded: a pass that places or starts 500 tasks writes its rows once, not 500 times.
"""
import contextlib
import logging
import threading

from orchestrator import bus, kubernetes, traces
from orchestrator.models import Activity, Task, TaskDefinition, region

log = logging.getLogger(__name__)
_pending = threading.local()  # .rows: the rows recorded within ``batched()``, or None outside it


def new_trace_id():
    """A fresh trace id (16 hex digits)."""
    return traces.new_trace_id()


def record(component, action, object_arn="", message="", trace_id=None, **fields):
    """Write one activity row (component is frontend, state_database, cluster_manager,
    capacity_manager, agent, docker…) and publish it; returns the row. ``trace_id`` None means
    the current trace, "" none. Extra fields: caller, status_code, latency_ms, request,
    started_at, duration_ms, details. Within ``batched()`` the row is written (and gets its pk)
    when the block ends."""
    row = Activity(
        component=component, action=action, object_arn=object_arn, message=message,
        trace_id=traces.current() if trace_id is None else trace_id, **fields
    )
    rows = getattr(_pending, "rows", None)
    if rows is not None:
        rows.append(row)
        return row
    row.save(force_insert=True)
    bus.publish("activity", row.pk, component=component)
    return row


@contextlib.contextmanager
def batched():
    """Collect the rows ``record`` writes within the block and write them in one INSERT at its
    end (also when it raises: a failed pass's steps are kept), then publish each. Nested blocks
    write with the outermost."""
    if getattr(_pending, "rows", None) is not None:
        yield
        return
    _pending.rows = []
    try:
        yield
    finally:
        rows, _pending.rows = _pending.rows, None
        if rows:
            Activity.objects.bulk_create(rows)
            for row in rows:
                bus.publish("activity", row.pk, component=row.component)


def api_request(account, operation, params):
    """What the activity log keeps of an ECS call: its safe parameters, and what kubectl's
    form of it needs that the parameters do not say (the task definition's containers, a
    task's Pod name), looked up in ``account``. Never raises: the log must not fail a call."""
    known = {}
    try:
        known = _known(account, operation, params if isinstance(params, dict) else {})
    except Exception:  # a lookup for display only; the call itself already answered
        log.exception("could not look up the kubectl form of %s", operation)
    return {"params": kubernetes.request_summary(params), "known": known}


def _known(account, operation, params):
    """The containers and Pod name behind an ECS call's names (see ``api_request``)."""
    if operation == "RegisterTaskDefinition":
        return {"containers": kubernetes.containers_of(params.get("containerDefinitions"))}
    known = {}
    reference = params.get("taskDefinition")
    if isinstance(reference, str) and account is not None:
        family, revision = kubernetes.family_revision(reference)
        revisions = TaskDefinition.objects.filter(account=account, region=region(), family=family)
        found = (revisions.filter(revision=revision) if revision else
                 revisions.filter(status=TaskDefinition.ACTIVE).order_by("-revision")).first()
        if found is not None:
            known["containers"] = kubernetes.containers_of(found.container_definitions)
    tasks = params.get("tasks") if operation == "DescribeTasks" else [params.get("task")]
    if isinstance(tasks, list) and len(tasks) == 1 and isinstance(tasks[0], str) and account is not None:
        task = (Task.objects.select_related("service", "deployment", "task_definition")
                .filter(account=account, task_id=kubernetes.last_part(tasks[0])).first())
        if task is not None:
            known["pod"] = task.pod_name
    return known
