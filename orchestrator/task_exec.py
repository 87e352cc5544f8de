"""ECS Exec's terminal (``kubectl exec -it``): a shell in one container of a running task.

The dashboard's terminal WebSocket (``dashboard/exec_consumer.py``) opens a session here; the
session is an interactive ``docker exec`` on the task's instance, through the Docker adapter.
Only a RUNNING task started with ``enableExecuteCommand`` gets one, as on ECS.
"""
from orchestrator.agent import engine_for
from orchestrator.docker_engine import LABEL_CONTAINER_NAME, LABEL_TASK_ID
from orchestrator.models import Task

# busybox's shell is in every image the lab builds; a real image may have bash, but sh is everywhere.
SHELL = ["/bin/sh"]


class ExecRefused(Exception):
    """Why a task's container takes no terminal (said on the page)."""


def open_session(task, container_name, rows=24, cols=80, command=SHELL):
    """An ExecSession of ``command`` in the task's container ``container_name``; ExecRefused if
    the task does not run ECS Exec's agent there."""
    if not task.enable_execute_command:
        raise ExecRefused("This task was not started with enableExecuteCommand, so ECS Exec's agent does not run "
                          "in it: run a new task (or force a new deployment) with execute command enabled.")
    if task.last_status != Task.RUNNING:
        raise ExecRefused(f"The task is {task.last_status}: a terminal needs a RUNNING task.")
    engine = engine_for(task)
    for container in engine.list_containers(labels={LABEL_TASK_ID: task.task_id}):
        if container["labels"].get(LABEL_CONTAINER_NAME) == container_name and container["state"] == "running":
            return engine.exec_session(container["id"], command, rows=rows, cols=cols)
    raise ExecRefused(f"The container {container_name} of this task is not running.")
