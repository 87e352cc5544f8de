"""The task-definition fields the lab honours, seen from inside real containers on real Docker."""
import pytest

from orchestrator.frontend import call
from orchestrator.models import Task, TaskDefinition
from tests.support.api import HARDENED_CONTAINER

# What the container reports about itself, then it waits to be inspected.
PROBE = (
    "echo uid=$(id -u) gid=$(id -g) cwd=$(pwd); "
    "grep 'Max open files' /proc/self/limits; "
    "(echo x > /probe) 2>/dev/null && echo root=writable || echo root=readonly; "
    "grep CapBnd /proc/self/status; "
    "echo keepalive=$(cat /proc/sys/net/ipv4/tcp_keepalive_time); "
    "echo pid1=$(cat /proc/1/comm); "
    "echo probe-done; exec sleep 600"
)

NET_RAW, SYS_PTRACE, MKNOD, CHOWN = 13, 19, 27, 0


def register(account, image, **container):
    """Register a Fargate task definition through the frontend (its admission included)."""
    body = call(account, "RegisterTaskDefinition", {
        "family": "hardened", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": "256", "memory": "512",
        "containerDefinitions": [{"name": "app", "image": image, "essential": True, **container}],
    })
    return TaskDefinition.objects.get(family="hardened", revision=body["taskDefinition"]["revision"])


def probe(lab_rows, docker_engine, wait_until, **container):
    """Run a task of the probe, wait for its report; return (inspect data, report lines)."""
    definition = register(lab_rows.account, lab_rows.image, entryPoint=["sh", "-c"], command=[PROBE], **container)
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 30, message="task RUNNING")
    docker_id = task.containers.get().docker_id
    wait_until(lambda: "probe-done" in "\n".join(docker_engine.logs(docker_id)), 20, message="the probe's report")
    lines = [line.strip() for line in docker_engine.logs(docker_id)]
    return docker_engine.inspect(docker_id), lines


def bounding_set(lines):
    return int(next(line for line in lines if line.startswith("CapBnd")).split()[1], 16)


@pytest.mark.docker
def test_it_runs_a_container_as_hardened_as_its_definition_asks(control_plane, lab_rows, docker_engine, wait_until):
    data, lines = probe(lab_rows, docker_engine, wait_until, **HARDENED_CONTAINER)
    assert "uid=1000 gid=1000 cwd=/tmp" in lines
    assert "root=readonly" in lines
    limits = next(line for line in lines if line.startswith("Max open files")).split()
    assert limits[3:5] == ["1024", "4096"]
    assert "keepalive=123" in lines
    assert "pid1=docker-init" in lines
    caps = bounding_set(lines)
    assert not caps & (1 << NET_RAW) and not caps & (1 << MKNOD)
    assert caps & (1 << SYS_PTRACE) and caps & (1 << CHOWN)
    host = data["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["Init"] is True
    assert sorted(host["CapDrop"]) == ["MKNOD", "NET_RAW"] and host["CapAdd"] == ["SYS_PTRACE"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 4096}]
    assert host["Sysctls"] == {"net.ipv4.tcp_keepalive_time": "123"}
    config = data["Config"]
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/tmp" and config["StopTimeout"] == 20
    assert config["Tty"] is True and config["OpenStdin"] is True
    assert config["Labels"]["team"] == "blue"


@pytest.mark.docker
def test_without_those_fields_a_container_keeps_dockers_defaults(control_plane, lab_rows, docker_engine, wait_until):
    data, lines = probe(lab_rows, docker_engine, wait_until)
    assert "root=writable" in lines and "uid=0 gid=0 cwd=/" in lines
    caps = bounding_set(lines)
    assert caps & (1 << NET_RAW) and not caps & (1 << SYS_PTRACE)
    assert data["HostConfig"]["ReadonlyRootfs"] is False and not data["HostConfig"]["Init"]
    assert data["Config"]["Tty"] is False and data["Config"]["OpenStdin"] is False


@pytest.mark.docker
def test_the_engine_never_lets_docker_labels_pass_for_the_labs_own(docker_engine, demo_image, lab_id):
    """Even past the frontend's refusal, a definition's labels cannot claim another lab or task."""
    container_id = docker_engine.create_container({
        "name": f"fargatelab-{lab_id}-labels", "image": demo_image,
        "labels": {"fargatelab.task-arn": "arn:mine"},
        "docker_labels": {"fargatelab.lab": "another-lab", "FargateLab.task-arn": "arn:theirs", "team": "blue"},
    })
    labels = docker_engine.inspect(container_id)["Config"]["Labels"]
    assert labels["fargatelab.lab"] == lab_id and labels["fargatelab.task-arn"] == "arn:mine"
    assert "FargateLab.task-arn" not in labels and labels["team"] == "blue"


@pytest.mark.docker
def test_the_engine_refuses_capabilities_fargate_does_not_allow(docker_engine, demo_image, lab_id):
    from orchestrator.docker_engine import EngineError

    with pytest.raises(EngineError, match="SYS_ADMIN"):
        docker_engine.create_container({"name": f"fargatelab-{lab_id}-caps", "image": demo_image,
                                        "cap_add": ["SYS_ADMIN"]})
    assert docker_engine.list_containers() == []
