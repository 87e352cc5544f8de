"""Task output through the paced log reader on a real engine (issue 10's log floods): a task
container on the local engine writes through Docker's syslog driver to the lab's reader, which
holds a flood back on the container's own pipe; `docker logs` keeps it (Docker's dual-logging
cache, rotated as configured); the reader outlives a control plane restart and is started again
when it dies; without a pace, and on a remote engine, containers get json-file, rotated."""
import os
import signal
import time

import pytest

from orchestrator import paced_logs
from orchestrator.agent import TaskSync
from orchestrator.docker_engine import DockerEngine, _log_config
from orchestrator.models import Task

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]

TICKS = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"
FLOOD = "yes 'a log line as long as a log line tends to be, over and over again'"


def running_container(lab_rows, wait_until, command):
    task = lab_rows.run_task(lab_rows.task_definition(entryPoint=["sh", "-c"], command=[command], portMappings=[]))
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 60, message="task RUNNING")
    return task.containers.get().docker_id


def last_tick(engine, container_id):
    lines = [line for line in engine.logs(container_id, tail=5) if line.startswith("tick ")]
    return int(lines[-1].split()[1]) if lines else 0


def test_a_task_container_writes_through_the_reader_and_docker_logs_keeps_it(
        control_plane, lab_rows, docker_engine, lab_id, wait_until, settings):
    container_id = running_container(lab_rows, wait_until, TICKS)
    config = docker_engine.inspect(container_id)["HostConfig"]["LogConfig"]
    assert config == {"Type": "syslog", "Config": {
        "syslog-address": f"unix://{paced_logs.socket_path(lab_id)}", "cache-disabled": "false"}}
    wait_until(lambda: last_tick(docker_engine, container_id) >= 2, 20, message="ticks in docker logs")
    followed = iter(docker_engine.logs(container_id, follow=True, tail=1))
    assert next(followed).startswith("tick ")  # followed too, as the task page and awslogs read it


def test_a_flooding_task_is_held_back_on_its_own_pipe(control_plane, lab_rows, docker_engine, wait_until):
    container_id = running_container(lab_rows, wait_until, FLOOD)
    started = time.monotonic()
    wait_until(lambda: sum(1 for _ in docker_engine.logs(container_id, tail=100)) == 100, 20,
               message="the flood in docker logs")
    time.sleep(3)  # the flood's output over time is what is measured (time itself, not a condition)
    kept = sum(len(line) + 1 for line in docker_engine.logs(container_id, tail=None))
    elapsed = time.monotonic() - started
    pace = paced_logs.pace()
    # What the reader took at its pace, a second's worth ahead, and what the socket buffers hold;
    # json-file takes tens of MB a second of this flood.
    assert kept <= pace * (elapsed + 1) + 2 * 1024 * 1024


def test_the_reader_outlives_a_control_plane_restart_and_comes_back_when_killed(
        control_plane, lab_rows, docker_engine, lab_id, wait_until):
    container_id = running_container(lab_rows, wait_until, TICKS)
    reader = paced_logs.reader_pid(lab_id)
    assert reader is not None and reader != os.getpid()

    control_plane.restart()
    assert paced_logs.reader_pid(lab_id) == reader and paced_logs.answers(paced_logs.socket_path(lab_id))
    before = last_tick(docker_engine, container_id)
    wait_until(lambda: last_tick(docker_engine, container_id) > before + 2, 20, message="ticks after the restart")

    os.kill(reader, signal.SIGKILL)
    wait_until(lambda: paced_logs.reader_pid(lab_id) not in (None, reader)
               and paced_logs.answers(paced_logs.socket_path(lab_id)), 30,
               message="the agent's relist to start a reader")
    before = last_tick(docker_engine, container_id)
    wait_until(lambda: last_tick(docker_engine, container_id) > before + 2, 20,
               message="ticks again once Docker reconnects to the new reader")


def test_without_a_pace_a_task_container_gets_json_file(control_plane, lab_rows, docker_engine, wait_until, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "TASK_LOG_PACE": 0}
    container_id = running_container(lab_rows, wait_until, TICKS)
    assert docker_engine.inspect(container_id)["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {
        "max-size": settings.FARGATE_LAB["TASK_LOG_MAX_SIZE"],
        "max-file": str(settings.FARGATE_LAB["TASK_LOG_MAX_FILE"])}}
    wait_until(lambda: last_tick(docker_engine, container_id) >= 2, 20, message="ticks in docker logs")


def test_a_remote_engines_containers_get_json_file_rotated():
    sync = TaskSync.__new__(TaskSync)  # only its engine matters here
    sync.engine = DockerEngine("tcp://192.0.2.10:2376", lab="test-remote")
    assert sync.paced_log_address() is None
    config = _log_config({"log_max_size": "10m", "log_max_file": 3, "log_address": None})
    assert (config["Type"], config["Config"]) == ("json-file", {"max-size": "10m", "max-file": "3"})
