"""Two students on one lab, attacking each other the way issue 10's probe did: through the
layers below the API (networks, the host's processes, ports and disk, the agent's workers),
with their own keys, against ``manage.py lab`` on the real Docker engine."""
import re
import subprocess
import sys

import pytest

from tests.support.common import ROOT
from tests.support.lab import lab_containers, poll
from tests.support.api import NETWORK

pytestmark = pytest.mark.docker


def web(family="web", **container):
    """A task definition of the demo image serving on port 80."""
    return {
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": "256", "memory": "512",
        "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                                  "portMappings": [{"containerPort": 80, "protocol": "tcp"}], **container}],
    }


def add_student(lab, name):
    """``manage.py addstudent NAME`` on the lab's database; an ECS client with the student's key."""
    out = subprocess.run([sys.executable, "manage.py", "addstudent", name], cwd=ROOT, env=lab.env,
                         capture_output=True, text=True, check=True).stdout
    key = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", out).group(1)
    secret = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", out).group(1)
    return lab.client(aws_access_key_id=key, aws_secret_access_key=secret)


def run_running(ecs, cluster, family, count=1):
    """Run ``count`` tasks and wait until they are RUNNING; their descriptions."""
    arns = [t["taskArn"] for t in ecs.run_task(cluster=cluster, taskDefinition=family, count=count,
                                                launchType="FARGATE", **NETWORK)["tasks"]]

    def running():
        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
        return all(t["lastStatus"] == "RUNNING" for t in tasks) and tasks

    return poll(running, message=f"{count} task(s) of {family} RUNNING")


def private_ip(task):
    return task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]


def container_of(docker_client, lab, task):
    [container] = [c for c in lab_containers(docker_client, lab.lab_id)
                   if c.labels["fargatelab.task-arn"] == task["taskArn"]]
    return container


def fetch_from(container, ip):
    """What an HTTP GET of http://<ip>/ made from inside ``container`` answers (busybox nc)."""
    result = container.exec_run(["sh", "-c", f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {ip} 80'])
    return result.output.decode(errors="replace")


def test_two_accounts_clusters_named_demo_do_not_share_a_network(lab, docker_client):
    alice, bob = lab.client(), add_student(lab, "bob")
    for ecs in (alice, bob):
        ecs.create_cluster(clusterName="demo")
        ecs.register_task_definition(**web())
    alices = run_running(alice, "demo", "web", count=2)
    [bobs] = run_running(bob, "demo", "web")

    probe = container_of(docker_client, lab, alices[0])
    # The probe works: Alice's task reaches her other task in her cluster …
    assert alices[1]["taskArn"] in fetch_from(probe, private_ip(alices[1]))
    # … and not Bob's, in his cluster of the same name.
    answer = fetch_from(probe, private_ip(bobs))
    assert "HTTP/" not in answer and bobs["taskArn"] not in answer
    networks = {name for task in (alices[0], bobs)
                for name in container_of(docker_client, lab, task).attrs["NetworkSettings"]["Networks"]}
    assert len(networks) == 2


@pytest.fixture
def strict_lab(tmp_path, docker_client, lab_demo_image):
    """A lab with small per-task limits, so that reaching them is cheap."""
    import uuid

    from tests.support.lab import LabProcess, remove_lab_objects

    lab = LabProcess(tmp_path, f"test-{uuid.uuid4().hex[:8]}", extra_env={
        "FARGATE_LAB_TASK_PIDS_LIMIT": "40", "FARGATE_LAB_TASK_LOG_MAX_SIZE": "1m",
        "FARGATE_LAB_TASK_LOG_MAX_FILE": "1", "FARGATE_LAB_TASK_LOG_PACE": "0"})
    lab.start()
    yield lab
    lab.stop()
    remove_lab_objects(docker_client, lab.lab_id)


def client_error(call, **params):
    """The (code, message) of the API error ``call(**params)`` raises."""
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(**params)
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def test_a_task_definition_cannot_publish_a_thousand_ports(lab):
    ecs = lab.client()
    many = [{"containerPort": 1000 + n} for n in range(1000)]
    code, message = client_error(ecs.register_task_definition, **web(portMappings=many))
    assert code == "ClientException" and "1000 port mappings" in message and "at most 10 per container" in message
    both = web(portMappings=[{"containerPort": 3000 + n} for n in range(10)])
    side = {"image": "fargate-lab/demo:latest", "essential": False}
    both["containerDefinitions"] += [
        {**side, "name": "side", "portMappings": [{"containerPort": 2000 + n} for n in range(10)]},
        {**side, "name": "side2", "portMappings": [{"containerPort": 4000}]},
    ]
    code, message = client_error(ecs.register_task_definition, **both)
    assert code == "ClientException" and "21 port mappings" in message and "at most 20 per task" in message
    twice = [{"containerPort": 80}, {"containerPort": 80, "protocol": "tcp"}]
    code, message = client_error(ecs.register_task_definition, **web(portMappings=twice))
    assert code == "ClientException" and "80/tcp" in message
    # The same port over TCP and UDP is two mappings, as on ECS.
    ecs.register_task_definition(**web(portMappings=[{"containerPort": 53}, {"containerPort": 53, "protocol": "udp"}]))
    assert ecs.list_task_definitions()["taskDefinitionArns"] == [
        "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1"]


def test_a_stop_timeout_longer_than_fargates_is_refused(lab):
    ecs = lab.client()
    for timeout in (121, 2 ** 31 - 1, -1):
        code, message = client_error(ecs.register_task_definition, **web(stopTimeout=timeout))
        assert code == "ClientException" and "from 0 to 120" in message
    ecs.register_task_definition(**web(stopTimeout=120))
    assert len(ecs.list_task_definitions()["taskDefinitionArns"]) == 1


def test_a_task_container_is_limited_in_cpu_memory_processes_and_log_size(strict_lab, docker_client):
    import os

    ecs = strict_lab.client()
    ecs.create_cluster(clusterName="demo")
    flood = "yes 0123456789012345678901234567890123456789 | head -c 5000000; echo flood-done; exec /demo/serve.sh"
    ecs.register_task_definition(**web(entryPoint=["sh", "-c"], command=[flood]))
    [task] = run_running(ecs, "demo", "web")
    container = container_of(docker_client, strict_lab, task)
    host = container.attrs["HostConfig"]
    assert host["NanoCpus"] == 250_000_000 and host["Memory"] == 512 * 1024 * 1024
    assert host["PidsLimit"] == 40
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}}

    # 5 MB of output, kept to about 1 MB on disk.
    poll(lambda: b"flood-done" in container.logs(), message="the flood written")
    assert os.path.getsize(container.attrs["LogPath"]) <= 1.1 * 1024 * 1024
    # A fork bomb stops at the limit (the task's own processes count too).
    result = container.exec_run(["sh", "-c", "for i in $(seq 60); do sleep 30 & done; echo forked-all"])
    assert b"can't fork" in result.output and b"forked-all" not in result.output


# A task that ignores SIGTERM (a shell that traps it), as a careless or hostile student writes.
STUBBORN = "trap '' TERM; while true; do sleep 1; done"


@pytest.fixture
def small_lab(tmp_path, docker_client, lab_demo_image):
    """A lab with two agent workers: fewer than the stubborn tasks one student stops."""
    import uuid

    from tests.support.lab import LabProcess, remove_lab_objects

    lab = LabProcess(tmp_path, f"test-{uuid.uuid4().hex[:8]}", extra_env={"FARGATE_LAB_WORKERS": "2"})
    lab.start()
    yield lab
    lab.stop()
    remove_lab_objects(docker_client, lab.lab_id)


def statuses(ecs, cluster, arns):
    return [t["lastStatus"] for t in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]]


def test_one_tenants_long_stops_do_not_hold_the_agents_from_another_tenant(small_lab):
    alice, bob = small_lab.client(), add_student(small_lab, "bob")
    alice.create_cluster(clusterName="demo")
    alice.register_task_definition(**web("stubborn", entryPoint=["sh", "-c"], command=[STUBBORN], stopTimeout=120,
                                         portMappings=[]))
    stubborn = [t["taskArn"] for t in run_running(alice, "demo", "stubborn", count=3)]
    for arn in stubborn:
        alice.stop_task(cluster="demo", task=arn, reason="class over")
    poll(lambda: statuses(alice, "demo", stubborn) == ["STOPPING"] * 3, message="the stubborn tasks STOPPING")

    bob.create_cluster(clusterName="demo")
    bob.register_task_definition(**web())
    run_running(bob, "demo", "web")
    # Bob's task ran while every one of Alice's was still given its two minutes to stop.
    assert statuses(alice, "demo", stubborn) == ["STOPPING"] * 3


def test_a_task_that_ignores_sigterm_is_killed_after_its_stop_timeout(lab):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**web("stubborn", entryPoint=["sh", "-c"], command=[STUBBORN], stopTimeout=2,
                                       portMappings=[]))
    [task] = run_running(ecs, "demo", "stubborn")
    ecs.stop_task(cluster="demo", task=task["taskArn"])

    def stopped():
        [task_now] = ecs.describe_tasks(cluster="demo", tasks=[task["taskArn"]])["tasks"]
        return task_now["lastStatus"] == "STOPPED" and task_now

    stopped_task = poll(stopped, message="the stubborn task STOPPED")
    assert stopped_task["containers"][0]["exitCode"] == 137  # SIGKILL
    assert (stopped_task["executionStoppedAt"] - stopped_task["stoppingAt"]).total_seconds() >= 2
