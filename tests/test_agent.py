"""The agent: plan_task on plain data, and tasks run as real containers on Docker."""
import pytest

from orchestrator.agent import (
    AwaitExit, KillContainers, SignalStop, Advance, ContainerSeen, ContainerWanted, CreateContainers, EnqueueService, EnsureImages, MarkStopping,
    RecordExits, RemoveContainers, ReportRunning, RequestPlacement, StartContainers, TaskWanted,
    plan_task,
)
from orchestrator.models import Activity, Task


def wanted(desired, last, has_instance=True, names=("web",)):
    return TaskWanted(desired, last, [ContainerWanted(n, True) for n in names], has_instance=has_instance)


def test_it_asks_for_placement_while_provisioning():
    assert plan_task(wanted("RUNNING", "PROVISIONING", has_instance=False), []) == [RequestPlacement()]


def test_it_launches_a_pending_task():
    actions = plan_task(wanted("RUNNING", "PENDING"), [])
    assert actions == [EnsureImages(), CreateContainers(["web"]), StartContainers(["web"]),
                       Advance("PENDING", "ACTIVATING"), ReportRunning()]


def test_it_adopts_a_container_created_before_a_crash():
    actions = plan_task(wanted("RUNNING", "PENDING"), [ContainerSeen("abc", "web", "created")])
    assert actions == [StartContainers(["web"]), Advance("PENDING", "ACTIVATING"), ReportRunning()]


def test_it_does_nothing_for_a_running_task_with_its_container():
    assert plan_task(wanted("RUNNING", "RUNNING"), [ContainerSeen("abc", "web", "running")]) == []


def test_it_stops_a_task_whose_essential_container_exited():
    actions = plan_task(wanted("RUNNING", "RUNNING"), [ContainerSeen("abc", "web", "exited")])
    assert actions[0] == MarkStopping("EssentialContainerExited", "Essential container in task exited")
    assert Advance("RUNNING", "DEACTIVATING") in actions
    assert not [a for a in actions if isinstance(a, (SignalStop, AwaitExit))]  # it is already dead
    assert actions[-4:] == [RemoveContainers(["abc"]), Advance("DEPROVISIONING", "STOPPED"),
                            RequestPlacement(), EnqueueService()]


def test_it_stops_a_running_task_whose_container_was_lost():
    actions = plan_task(wanted("RUNNING", "RUNNING"), [])
    assert actions[0] == MarkStopping("EssentialContainerExited", "Task stopped: its container was lost")
    assert Advance("DEPROVISIONING", "STOPPED") in actions


def stopping(deadline=None, timeout=30, last="STOPPING"):
    return TaskWanted("STOPPED", last, [ContainerWanted("web", True, timeout, deadline)], has_instance=True)


def test_it_walks_a_stop_through_every_state():
    actions = plan_task(stopping(last="RUNNING"), [ContainerSeen("abc", "web", "running")], now=1000.0)
    # SIGTERM with a deadline, then the pass ends: no worker waits while the container stops.
    assert actions == [
        Advance("RUNNING", "DEACTIVATING"), Advance("DEACTIVATING", "STOPPING"), SignalStop({"abc": 1030.0}),
        AwaitExit(1030.0),
    ]
    # Its "die" event brings the task back: it exited, and the stop goes on to STOPPED.
    assert plan_task(stopping(1030.0), [ContainerSeen("abc", "web", "exited")], now=1001.0) == [
        Advance("STOPPING", "DEPROVISIONING"), RecordExits(), RemoveContainers(["abc"]),
        Advance("DEPROVISIONING", "STOPPED"), RequestPlacement(), EnqueueService(),
    ]


def test_it_waits_for_a_signalled_container_until_its_deadline_without_signalling_again():
    assert plan_task(stopping(1030.0), [ContainerSeen("abc", "web", "running")], now=1010.0) == [AwaitExit(1030.0)]


def test_it_kills_a_container_still_running_at_its_deadline():
    assert plan_task(stopping(1030.0), [ContainerSeen("abc", "web", "running")], now=1030.0) == [
        KillContainers(["abc"]), AwaitExit(1031.0)]


def test_it_gives_each_container_its_own_stop_timeout():
    task = TaskWanted("STOPPED", "STOPPING", [ContainerWanted("web", True, 120), ContainerWanted("log", False, 0)],
                      has_instance=True)
    seen = [ContainerSeen("w", "web", "running"), ContainerSeen("l", "log", "running")]
    assert plan_task(task, seen, now=10.0) == [SignalStop({"w": 130.0, "l": 10.0}), KillContainers(["l"]),
                                               AwaitExit(11.0)]


def test_it_stops_a_provisioning_task_at_once():
    actions = plan_task(wanted("STOPPED", "PROVISIONING", has_instance=False), [])
    assert actions[:2] == [RecordExits(), Advance("PROVISIONING", "STOPPED")]


def test_a_task_whose_pull_failed_stops_its_containers_with_it():
    actions = plan_task(wanted("STOPPED", "PENDING"), [])
    assert actions[:2] == [RecordExits(), Advance("PENDING", "STOPPED")]


def test_it_removes_containers_of_a_stopped_task():
    assert plan_task(wanted("STOPPED", "STOPPED"), [ContainerSeen("abc", "web", "exited")]) == [
        RemoveContainers(["abc"])]


@pytest.mark.django_db
def test_it_builds_the_container_from_the_definition_and_overrides(settings):
    from orchestrator.agent import container_spec
    from orchestrator.models import Account, Cluster, TaskContainer, TaskDefinition

    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="prod")
    definition = TaskDefinition.objects.create(account=account, family="api", revision=1, cpu=1024, memory=2048, body={
        "containerDefinitions": [{
            "name": "api", "image": "demo", "cpu": 512, "memoryReservation": 256, "entryPoint": ["/bin/sh", "-c"],
            "command": ["serve"], "workingDirectory": "/srv", "user": "nobody", "stopTimeout": 5,
            "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "portMappings": [{"containerPort": 8080, "protocol": "udp"}],
        }]})
    task = Task.objects.create(account=account, cluster=cluster, task_definition=definition, cpu=1024, memory=2048,
                               overrides={"containerOverrides": [
                                   {"name": "api", "command": ["other"], "environment": [{"name": "B", "value": "3"}]}]})
    container = TaskContainer.objects.create(task=task, name="api", image="demo", cpu=512)
    spec = container_spec(task, container, "lab1", "fargatelab-lab1-prod")
    assert spec["name"] == f"fargatelab-lab1-{task.task_id}-api"
    assert spec["nano_cpus"] == 500_000_000  # the container's 512 units
    assert spec["memory"] == 2048 * 1048576 and spec["memory_reservation"] == 256 * 1048576
    assert spec["command"] == ["other"] and spec["entrypoint"] == ["/bin/sh", "-c"]
    assert spec["working_dir"] == "/srv" and spec["user"] == "nobody" and spec["stop_timeout"] == 5
    assert spec["env"]["A"] == "1" and spec["env"]["B"] == "3"
    assert spec["env"]["AWS_REGION"] == spec["env"]["AWS_DEFAULT_REGION"] == settings.FARGATE_LAB["REGION"]
    assert spec["ports"] == [(8080, "udp")] and spec["network"] == "fargatelab-lab1-prod"


@pytest.mark.docker
def test_it_runs_a_task_with_its_limits_env_and_labels(control_plane, lab_rows, docker_engine, lab_id, wait_until):
    definition = lab_rows.task_definition(environment=[{"name": "GREETING", "value": "hello"}],
                                          command=["/demo/serve.sh"])
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 20, message="task RUNNING")
    task.refresh_from_db()
    container = task.containers.get()
    data = docker_engine.inspect(container.docker_id)
    assert data["HostConfig"]["NanoCpus"] == 250_000_000
    assert data["HostConfig"]["Memory"] == 512 * 1024 * 1024
    env = dict(e.split("=", 1) for e in data["Config"]["Env"])
    assert env["GREETING"] == "hello"
    assert env["FARGATE_LAB_TASK_ARN"] == task.arn
    assert env["AWS_EXECUTION_ENV"] == "AWS_ECS_FARGATE"
    assert data["Config"]["Cmd"] == ["/demo/serve.sh"]
    labels = data["Config"]["Labels"]
    assert labels["fargatelab.lab"] == lab_id
    assert labels["fargatelab.task-arn"] == task.arn
    assert labels["fargatelab.task-id"] == task.task_id
    assert labels["fargatelab.cluster"] == lab_rows.cluster.name
    assert labels["fargatelab.instance"] == task.container_instance.name
    assert labels["fargatelab.container-name"] == "web"
    assert data["Name"] == f"/fargatelab-{lab_id}-{task.task_id}-web"
    assert task.private_ip
    assert task.started_at and task.connectivity_at and task.pull_started_at
    [binding] = container.network_bindings
    assert binding["bindIP"] == "127.0.0.1" and binding["containerPort"] == 80 and binding["hostPort"] > 0
    assert container.last_status == "RUNNING"


@pytest.mark.docker
def test_it_stops_a_task_with_its_exit_code_and_removes_the_container(
        control_plane, lab_rows, docker_engine, wait_until):
    task = lab_rows.run_task()
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 20, message="task RUNNING")
    docker_id = task.containers.get().docker_id
    Task.objects.filter(pk=task.pk).update(desired_status="STOPPED", stop_code="UserInitiated",
                                           stopped_reason="Task stopped by user")
    from orchestrator import bus
    bus.publish("task", task.pk)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 20, message="task STOPPED")
    task.refresh_from_db()
    container = task.containers.get()
    assert container.exit_code == 0  # the demo exits 0 on SIGTERM
    assert container.last_status == "STOPPED"
    assert "demo: serving task" in container.log_tail
    assert task.stopped_at and task.execution_stopped_at and task.stopping_at
    assert task.stopped_reason == "Task stopped by user"
    assert docker_engine.list_containers() == []
    with pytest.raises(Exception):
        docker_engine.inspect(docker_id)


@pytest.mark.docker
def test_it_stops_a_task_whose_image_cannot_be_pulled(control_plane, lab_rows, docker_engine, wait_until):
    definition = lab_rows.task_definition(image="127.0.0.1:1/nowhere/nothing:latest")
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 30, message="task STOPPED")
    task.refresh_from_db()
    assert task.stop_code == "TaskFailedToStart"
    assert task.stopped_reason.startswith("CannotPullContainerError:")
    assert task.pull_started_at is None or task.started_at is None
    assert docker_engine.list_containers() == []
    container = task.containers.get()
    assert (container.last_status, container.exit_code) == ("STOPPED", None)
    assert container.reason.startswith("CannotPullContainerError:")


@pytest.mark.docker
def test_it_fails_a_task_whose_image_name_docker_refuses_once(control_plane, lab_rows, docker_engine, wait_until,
                                                               caplog):
    definition = lab_rows.task_definition(image="UPPER/Case:1")
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 30, message="task STOPPED")
    task.refresh_from_db()
    assert task.stop_code == "TaskFailedToStart"
    assert task.stopped_reason.startswith("CannotPullContainerError: ")
    assert "repository name must be lowercase" in task.stopped_reason
    assert task.containers.get().reason == task.stopped_reason
    # Failed once, not retried in a loop that logs a traceback each time.
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    # The pass writes its activity rows when it ends (activity.batched), after the STOPPED it published.
    failed = Activity.objects.filter(object_arn=task.arn, action="failed")
    wait_until(failed.exists, 10, message="the pass's activity rows written")
    assert failed.count() == 1
    assert docker_engine.list_containers() == []


@pytest.mark.docker
def test_it_kills_and_streams_logs_through_the_dashboard_helpers(control_plane, lab_rows, wait_until):
    from orchestrator.agent import kill_task_container, stream_logs

    task = lab_rows.run_task()
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 20, message="task RUNNING")
    task.refresh_from_db()
    wait_until(lambda: any("demo: serving task" in line for line in stream_logs(task, follow=False)), 10,
               message="the demo's first line in the logs")
    assert kill_task_container(task) is True
    assert Activity.objects.filter(component="agent", action="kill", object_arn=task.arn).count() == 1
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 20, message="task STOPPED")
    task.refresh_from_db()
    assert task.containers.get().exit_code == 137
    assert task.stop_code == "EssentialContainerExited"
    assert any("demo: serving task" in line for line in stream_logs(task, follow=True))
