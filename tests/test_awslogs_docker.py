"""The awslogs driver on real Docker: a container's output reaches its CloudWatch Logs stream
(prefix/container/task-id) with timestamps while it runs, outlives the container, survives a
control plane restart without a line twice, and a missing log group fails the task as ECS does."""
import time

import boto3
import pytest

from orchestrator import awslogs
from orchestrator.frontend import call
from orchestrator.models import LogEvent, LogStream, Task, TaskDefinition
from tests.support.cloudwatch import TailFollow

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]


def awslogs_definition(account, image, script, create_group=True, group="/ecs/web"):
    """Register a Fargate task definition whose container runs ``script`` and ships to awslogs."""
    options = {"awslogs-group": group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "ecs"}
    if create_group:
        options["awslogs-create-group"] = "true"
    body = call(account, "RegisterTaskDefinition", {
        "family": "logged", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{
            "name": "app", "image": image, "essential": True, "entryPoint": ["sh", "-c"], "command": [script],
            "logConfiguration": {"logDriver": "awslogs", "options": options}}]})
    return TaskDefinition.objects.get(family="logged", revision=body["taskDefinition"]["revision"])


@pytest.fixture
def logs(live_server, lab_rows):
    return boto3.client("logs", endpoint_url=live_server.url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def messages(logs, stream, group="/ecs/web"):
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    return [e["message"] for e in events]


def test_a_containers_output_reaches_its_stream_while_it_runs_and_outlives_it(
        control_plane, lab_rows, logs, docker_engine, wait_until):
    started = int(time.time() * 1000)
    definition = awslogs_definition(lab_rows.account, lab_rows.image,
                                    'echo "first line"; sleep 4; echo "ERROR after a while" >&2; sleep 0.3; echo last; exit 3')
    task = lab_rows.run_task(definition)
    stream = f"ecs/app/{task.task_id}"
    wait_until(lambda: LogStream.objects.filter(name=stream).exists(), 30, message="the stream ECS names")
    wait_until(lambda: "first line" in messages(logs, stream), 30, message="the first line, while the task runs")
    assert Task.objects.get(pk=task.pk).last_status in ("ACTIVATING", "RUNNING")
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 30, message="the task to stop")
    assert not docker_engine.list_containers(labels={"fargatelab.task-id": task.task_id})
    events = logs.get_log_events(logGroupName="/ecs/web", logStreamName=stream, startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["first line", "ERROR after a while", "last"]
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and started - 1000 <= stamps[0] and stamps[-1] <= int(time.time() * 1000)
    assert stamps[1] - stamps[0] >= 3900  # Docker's own times, not the time of shipping
    assert all(e["ingestionTime"] >= e["timestamp"] for e in events)
    found = logs.filter_log_events(logGroupName="/ecs/web", filterPattern="ERROR")["events"]
    assert [(e["logStreamName"], e["message"]) for e in found] == [(stream, "ERROR after a while")]
    group = logs.describe_log_groups(logGroupNamePrefix="/ecs/web")["logGroups"]
    assert [g["logGroupName"] for g in group] == ["/ecs/web"]  # created by awslogs-create-group


def test_a_missing_log_group_fails_the_task_as_ecs_does(control_plane, lab_rows, logs, docker_engine, wait_until):
    definition = awslogs_definition(lab_rows.account, lab_rows.image, "echo never", create_group=False,
                                    group="/ecs/missing")
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 30, message="the task to stop")
    task = Task.objects.get(pk=task.pk)
    assert task.stop_code == "TaskFailedToStart"
    assert task.stopped_reason == awslogs.MISSING_GROUP
    assert task.stopped_reason.startswith("ResourceInitializationError: failed to validate logger args:")
    assert "The specified log group does not exist." in task.containers.get().reason
    assert not docker_engine.list_containers(labels={"fargatelab.task-id": task.task_id})
    assert logs.describe_log_groups()["logGroups"] == []


def test_a_restarted_control_plane_resumes_each_follow_without_a_line_twice(
        control_plane, lab_rows, logs, wait_until):
    definition = awslogs_definition(lab_rows.account, lab_rows.image,
                                    'i=0; while [ $i -lt 600 ]; do echo "tick $i"; i=$((i+1)); sleep 0.1; done')
    task = lab_rows.run_task(definition)
    stream = f"ecs/app/{task.task_id}"
    wait_until(lambda: LogEvent.objects.filter(stream__name=stream).count() >= 5, 30, message="ticks shipped")
    control_plane.restart()
    before = LogEvent.objects.filter(stream__name=stream).count()
    wait_until(lambda: LogEvent.objects.filter(stream__name=stream).count() >= before + 10, 30,
               message="ticks shipped by the restarted control plane")
    ticks = [int(m.split()[1]) for m in messages(logs, stream)]
    assert ticks == list(range(len(ticks)))  # every tick once, in order, none lost across the restart


def test_aws_logs_tail_follow_prints_the_containers_lines(control_plane, lab_rows, logs, wait_until):
    """What `aws logs tail /ecs/web --follow` prints while a container runs: its lines, in
    order, each once, those printed after the tail started included."""
    definition = awslogs_definition(lab_rows.account, lab_rows.image,
                                    'echo "started"; sleep 3; i=0; while [ $i -lt 20 ]; do echo "tick $i"; '
                                    'i=$((i+1)); sleep 0.1; done; sleep 600')
    task = lab_rows.run_task(definition)
    tail = TailFollow(logs, "/ecs/web")
    wait_until(lambda: LogStream.objects.filter(name=f"ecs/app/{task.task_id}").exists(), 30, message="the stream")
    wait_until(lambda: tail.poll() is not None and "tick 19" in tail.messages(), 40, interval=0.5,
               message="the tail to print the last tick")
    assert tail.messages() == ["started"] + [f"tick {i}" for i in range(20)]
    assert {stream for stream, _ in tail.printed} == {f"ecs/app/{task.task_id}"}


def test_a_flooding_container_ships_within_its_rate_and_says_what_it_dropped(
        control_plane, lab_rows, logs, settings, wait_until):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "LOGS_SHIP_LINES_PER_SECOND": 50}
    definition = awslogs_definition(lab_rows.account, lab_rows.image,
                                    'sleep 1; i=0; while [ $i -lt 3000 ]; do echo "flood $i"; i=$((i+1)); done; '
                                    'sleep 2; echo "calm again"; sleep 600')
    task = lab_rows.run_task(definition)
    stream = f"ecs/app/{task.task_id}"
    wait_until(lambda: LogStream.objects.filter(name=stream).exists(), 30, message="the task's stream")
    wait_until(lambda: "calm again" in messages(logs, stream), 60, message="the line after the flood")
    shipped = messages(logs, stream)
    floods = [m for m in shipped if m.startswith("flood ")]
    dropped = [m for m in shipped if m.startswith("[fargate-lab] ")]
    assert 0 < len(floods) < 500 and dropped  # about 50 a second for the second or two it lasted
    assert sum(int(m.split()[1]) for m in dropped) == 3000 - len(floods)
    assert "lines a second" in dropped[0]
