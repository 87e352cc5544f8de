"""DeleteTaskDefinitions: an INACTIVE revision turns DELETE_IN_PROGRESS, then is gone.

As on ECS, a DELETE_IN_PROGRESS revision stays visible while a task that is not STOPPED or a
service (or one of its deployments) that is not INACTIVE still uses it; once nothing does, the
API no longer shows it. "Gone" is read from the state database on every call (level-triggered,
nothing has to notice the last task stopping); the row itself stays, so the family's next
revision still counts past it, as ECS keeps counting.
"""
from django.db.models import Exists, OuterRef, Q

from orchestrator import bus
from orchestrator.frontend import EcsError, shapes
from orchestrator.frontend.operations import _get_task_definition, _parse_arn, operation
from orchestrator.models import Deployment, Service, Task, TaskDefinition, region

MAX_TASK_DEFINITIONS = 10


def _in_use():
    """A condition on TaskDefinition rows: a live task, service or deployment still uses it."""
    return (
        Exists(Task.objects.filter(task_definition=OuterRef("pk")).exclude(last_status=Task.STOPPED))
        | Exists(Service.objects.filter(task_definition=OuterRef("pk")).exclude(status=Service.INACTIVE))
        | Exists(Deployment.objects.filter(task_definition=OuterRef("pk")).exclude(status=Deployment.INACTIVE))
    )


def present(rows):
    """``rows`` without the revisions that are deleted (DELETE_IN_PROGRESS and used by nothing live)."""
    return rows.filter(~Q(status=TaskDefinition.DELETE_IN_PROGRESS) | Q(_in_use()))


def _failure(ctx, ref, reason):
    """A DeleteTaskDefinitions failure entry."""
    arn = ref if ref.startswith("arn:") else f"arn:aws:ecs:{region()}:{ctx.account.account_id}:task-definition/{ref}"
    return {"arn": arn, "reason": reason}


@operation("DeleteTaskDefinitions")
def delete_task_definitions(ctx, params):
    """Move up to 10 INACTIVE revisions to DELETE_IN_PROGRESS; the others are failures."""
    refs = params["taskDefinitions"]
    if not 1 <= len(refs) <= MAX_TASK_DEFINITIONS:
        raise EcsError("InvalidParameterException",
                       f"taskDefinitions must list between 1 and {MAX_TASK_DEFINITIONS} task definitions.")
    deleted, failures = [], []
    for ref in refs:
        family_ref = (_parse_arn(ref, "task-definition", ctx.account) or "") if ref.startswith("arn:") else ref
        if ":" not in family_ref:
            failures.append(_failure(ctx, ref, "The specified task definition identifier is invalid. "
                                               "Specify a revision: family:revision or the full ARN."))
            continue
        try:
            td = _get_task_definition(ctx, ref)
        except EcsError:
            failures.append(_failure(ctx, ref, "The specified task definition does not exist."))
            continue
        if td.status == TaskDefinition.ACTIVE:
            failures.append(_failure(ctx, td.arn, "The specified task definition is still in ACTIVE status. "
                                                  "Please deregister the target and try again."))
            continue
        if td.status == TaskDefinition.INACTIVE:
            TaskDefinition.objects.filter(pk=td.pk, status=TaskDefinition.INACTIVE).update(
                status=TaskDefinition.DELETE_IN_PROGRESS)
            td.status = TaskDefinition.DELETE_IN_PROGRESS
            bus.publish("task_definition", td.pk)
        deleted.append(shapes.task_definition_shape(td))
    return {"taskDefinitions": deleted, "failures": failures}
