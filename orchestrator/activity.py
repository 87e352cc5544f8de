"""Activity records: every step a component takes, for the dashboard's cards and traces.

``record`` writes one Activity row and publishes it on the bus, so an open dashboard shows
it at once. A row belongs to the current trace (see ``orchestrator.traces``) unless given
another; ``traces.step`` records a timed one.
"""
import logging

from orchestrator import bus, kubernetes, traces
from orchestrator.models import Activity, Task, TaskDefinition

log = logging.getLogger(__name__)


def new_trace_id():
    """A fresh trace id (16 hex digits)."""
    return traces.new_trace_id()


def record(component, action, object_arn="", message="", trace_id=None, **fields):
    """Write one activity row (component is frontend, state_database, cluster_manager,
    capacity_manager, agent, docker…) and publish it; returns the row. ``trace_id`` None means
    the current trace, "" none. Extra fields: caller, status_code, latency_ms, request,
    started_at, duration_ms, details."""
    row = Activity.objects.create(
        component=component, action=action, object_arn=object_arn, message=message,
        trace_id=traces.current() if trace_id is None else trace_id, **fields
    )
    bus.publish("activity", row.pk, component=component)
    return row


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
        revisions = TaskDefinition.objects.filter(account=account, family=family)
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
