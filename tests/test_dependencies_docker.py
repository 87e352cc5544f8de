"""dependsOn on real Docker: containers start in dependency order (Docker's own start times),
a SUCCESS init container runs to completion first, a HEALTHY dependency's health check passes
before its dependent starts, a sidecar runs beside the app, and the task stops in reverse order."""
import pytest

from orchestrator.agent import docker_time
from orchestrator.docker_engine import LABEL_TASK_ID
from orchestrator.frontend import call
from orchestrator.models import Task, TaskContainer, TaskDefinition

# Exits at once on SIGTERM, so that the stop order is Docker's, not stopTimeout's.
SERVE = "trap 'exit 0' TERM; {before} while true; do sleep 0.2; done"


def container(name, essential=True, script="", **fields):
    return {"name": name, "image": "fargate-lab/demo:latest", "essential": essential,
            "entryPoint": ["sh", "-c"], "command": [script or SERVE.format(before="")], **fields}


def register(account, containers):
    body = call(account, "RegisterTaskDefinition", {
        "family": "ordered", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": "256", "memory": "512", "containerDefinitions": containers})
    return TaskDefinition.objects.get(account=account, family="ordered", revision=body["taskDefinition"]["revision"])


def inspect_all(docker_engine, task):
    return {c["labels"]["fargatelab.container-name"]: docker_engine.inspect(c["id"])
            for c in docker_engine.list_containers(labels={LABEL_TASK_ID: task.task_id})}


@pytest.mark.docker
def test_containers_start_in_dependency_order_and_stop_in_reverse(control_plane, lab_rows, docker_engine, wait_until):
    definition = register(lab_rows.account, [
        container("db", script=SERVE.format(before="sleep 1; touch /tmp/ready;"),
                  healthCheck={"command": ["CMD-SHELL", "test -f /tmp/ready"], "interval": 5, "retries": 3}),
        container("init", essential=False, script="echo migrated; exit 0"),
        container("app", dependsOn=[{"containerName": "init", "condition": "SUCCESS"},
                                    {"containerName": "db", "condition": "HEALTHY"}]),
        container("sidecar", essential=False, dependsOn=[{"containerName": "app", "condition": "START"}]),
    ])
    task = lab_rows.run_task(definition)
    wait_until(lambda: TaskContainer.objects.filter(task=task, name="app", reason__startswith="Waiting for").exists(),
               30, message="the app to wait for its dependencies")
    assert Task.objects.get(pk=task.pk).last_status == Task.PENDING
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == Task.RUNNING, 60, message="task RUNNING")

    seen = inspect_all(docker_engine, task)
    started = {name: docker_time(data["State"]["StartedAt"]) for name, data in seen.items()}
    assert seen["init"]["State"]["Status"] == "exited" and seen["init"]["State"]["ExitCode"] == 0
    assert docker_time(seen["init"]["State"]["FinishedAt"]) <= started["app"]
    first_pass = min(docker_time(check["End"][:19] + "Z") for check in seen["db"]["State"]["Health"]["Log"]
                     if check["ExitCode"] == 0)
    assert started["db"] < first_pass <= started["app"] <= started["sidecar"]
    assert seen["sidecar"]["State"]["Running"] and seen["app"]["State"]["Running"]
    rows = {c.name: c for c in TaskContainer.objects.filter(task=task)}
    assert rows["init"].last_status == "STOPPED" and rows["init"].exit_code == 0 and rows["app"].reason == ""

    call(lab_rows.account, "StopTask", {"cluster": lab_rows.cluster.name, "task": task.task_id})
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == Task.STOPPED, 60, message="task STOPPED")
    stopped = {c.name: c.stopped_at for c in TaskContainer.objects.filter(task=task)}
    assert stopped["sidecar"] <= stopped["app"] <= stopped["db"]


@pytest.mark.docker
def test_a_failed_init_container_stops_the_task_before_the_app_starts(control_plane, lab_rows, docker_engine,
                                                                      wait_until):
    definition = register(lab_rows.account, [
        container("init", essential=False, script="exit 3"),
        container("app", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}]),
    ])
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == Task.STOPPED, 60, message="task STOPPED")
    task.refresh_from_db()
    assert task.stop_code == "TaskFailedToStart"
    assert "dependency init exited with code 3" in task.stopped_reason
    assert TaskContainer.objects.get(task=task, name="app").started_at is None


@pytest.mark.docker
def test_a_dependency_not_healthy_within_its_start_timeout_gives_the_app_up(control_plane, lab_rows, docker_engine,
                                                                             wait_until):
    definition = register(lab_rows.account, [
        container("db", healthCheck={"command": ["CMD-SHELL", "exit 1"], "interval": 5, "retries": 1},
                  startTimeout=3),
        container("app", dependsOn=[{"containerName": "db", "condition": "HEALTHY"}]),
    ])
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == Task.STOPPED, 60, message="task STOPPED")
    task.refresh_from_db()
    assert task.stop_code == "TaskFailedToStart"
    assert task.stopped_reason == ("app was not started: dependency db was not HEALTHY within its startTimeout of 3 s")
    rows = {c.name: c for c in TaskContainer.objects.filter(task=task)}
    assert rows["app"].started_at is None and rows["db"].started_at is not None
