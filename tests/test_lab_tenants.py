"""Two students on one lab, attacking each other the way issue 10's probe did: through the
layers below the API (networks, the host's processes, ports and disk, the agent's workers),
with their own keys, against ``manage.py lab`` on the real Docker engine."""
import re
import subprocess
import sys

import pytest

from tests.support.common import ROOT
from tests.support.lab import lab_containers, poll

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
                                                launchType="FARGATE")["tasks"]]

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
