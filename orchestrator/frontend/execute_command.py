"""ECS Exec: ExecuteCommand (``aws ecs execute-command``), the counterpart of ``kubectl exec``.

A task started with ``enableExecuteCommand`` (RunTask, or its service's CreateService /
UpdateService) runs the managed agent ExecuteCommandAgent in each container. ExecuteCommand
checks the task as ECS does and answers a session; on AWS the Session Manager plugin then
connects to its ``streamUrl``. That plugin cannot run here, so the session's ``streamUrl`` is the
lab's own terminal WebSocket for the task (the dashboard's, which authenticates by the
dashboard login and not by ``tokenValue``): the task page's terminal is where the command runs.
"""
import secrets
import uuid

from orchestrator.frontend import EcsError, shapes
from orchestrator.frontend.operations import _cluster_of, operation
from orchestrator.frontend.tasks import _find_task
from orchestrator.models import Task

NOT_ENABLED = (
    "The execute command failed because execute command was not enabled when the task was run or the execute "
    "command agent isn't running. Wait and try again or run a new task with execute command enabled and try again."
)
MAX_COMMAND = 4096


def stream_path(task, container_name):
    """The lab's terminal WebSocket for one container of a task."""
    return f"/ws/tasks/{task.pk}/exec/?container={container_name}"


@operation("ExecuteCommand")
def execute_command(ctx, params):
    """Check that the task runs the ECS Exec agent in the container asked for, and answer a session."""
    cluster = _cluster_of(ctx, params, params["task"], "task")
    task = _find_task(ctx, cluster, params["task"])
    if task is None:
        raise EcsError("InvalidParameterException", "The referenced task was not found.")
    if not params["interactive"]:
        raise EcsError("InvalidParameterException", "Interactive is the only mode supported currently.")
    if not 1 <= len(params["command"]) <= MAX_COMMAND:
        raise EcsError("InvalidParameterException", f"command must be 1-{MAX_COMMAND} characters.")
    containers = list(task.containers.order_by("id"))
    if "container" in params:
        container = next((c for c in containers if c.name == params["container"]), None)
        if container is None:
            raise EcsError("InvalidParameterException",
                           f"The container {params['container'][:255]} does not exist in the task.")
    elif len(containers) == 1:
        container = containers[0]
    else:
        raise EcsError("InvalidParameterException",
                       "The task has more than one container: name the container to run the command in.")
    if not task.enable_execute_command:
        raise EcsError("InvalidParameterException", NOT_ENABLED)
    if task.last_status != Task.RUNNING or shapes.exec_agent_status(container) != "RUNNING":
        raise EcsError("TargetNotConnectedException",
                       f"The execute command failed because the task is {task.last_status} and its "
                       "ExecuteCommandAgent is not RUNNING. Wait until the task is RUNNING and try again.")
    container_shape = shapes._container_shape(task, container)
    return {
        "clusterArn": task.cluster.arn,
        "containerArn": container_shape["containerArn"],
        "containerName": container.name,
        "interactive": True,
        "session": {
            "sessionId": f"ecs-execute-command-{uuid.uuid4().hex[:17]}",
            "streamUrl": stream_path(task, container.name),
            "tokenValue": secrets.token_urlsafe(32),
        },
        "taskArn": task.arn,
    }
