"""The task endpoint on real Docker (issue 12, item 5): a task reads its own metadata at
$ECS_CONTAINER_METADATA_URI_V4 and its role's credentials at 169.254.170.2, and nobody else's.

From inside the container the requests are made with the demo image's own busybox ``nc``
(busybox ``wget`` crashes in containers). The SDK check runs the lab's own Python with real
boto3 *in the container's network namespace* (``nsenter --net``) and with exactly the
container's environment (read from /proc/<pid>/environ): its packets leave through the task's
interface, are DNAT'd like the container's own, and nothing but the container's variables tells
botocore where the credentials and the API are. (No image with Python can be pulled offline.)
"""
import json
import os
import subprocess
import sys

import boto3
import botocore.exceptions
import pytest

from orchestrator import host_firewall, task_credentials
from orchestrator.models import Account, Cluster, Task, TaskContainer

ROLE = "arn:aws:iam::000000000000:role/web-task"
pytestmark = pytest.mark.docker


def http_get(container, path_expression):
    """GET http://169.254.170.2<path> from inside the container with busybox nc: (status, JSON body)."""
    script = (f'p="{path_expression}"; p="${{p#http://169.254.170.2}}"; '
              'printf "GET $p HTTP/1.0\\r\\nHost: 169.254.170.2\\r\\n\\r\\n" | nc -w 5 169.254.170.2 80')
    output = container.exec_run(["sh", "-c", script]).output.decode()
    head, _, body = output.partition("\r\n\r\n")
    assert head.startswith("HTTP/"), output
    return int(head.split()[1]), json.loads(body)


def container_env(container):
    return dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])


def running(lab_rows, wait_until, docker_client, **definition_fields):
    definition = lab_rows.task_definition()
    definition.body.update(definition_fields)
    definition.save(update_fields=["body"])
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 30, message="task RUNNING")
    task.refresh_from_db()
    (container,) = docker_client.containers.list(filters={"label": f"fargatelab.task-id={task.task_id}"})
    return task, container


def test_a_container_reads_its_own_task_and_stats(control_plane, lab_rows, wait_until, docker_client, lab_id):
    task, container = running(lab_rows, wait_until, docker_client)
    env = container_env(container)
    assert env["ECS_CONTAINER_METADATA_URI_V4"].startswith("http://169.254.170.2/v4/")
    assert env["ECS_CONTAINER_METADATA_URI"] == env["ECS_CONTAINER_METADATA_URI_V4"].replace("/v4/", "/v3/")
    assert env["AWS_ENDPOINT_URL"] == "http://169.254.170.2" and env["AWS_REGION"] == "us-east-1"
    assert "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" not in env  # no taskRoleArn, no credentials

    status, body = http_get(container, "$ECS_CONTAINER_METADATA_URI_V4/task")
    assert status == 200
    assert body["TaskARN"] == task.arn and body["Cluster"] == task.cluster.arn
    assert (body["Family"], body["Revision"], body["KnownStatus"]) == ("web", "1", "RUNNING")
    assert body["Limits"] == {"CPU": 0.25, "Memory": 512} and body["LaunchType"] == "FARGATE"
    (described,) = body["Containers"]
    address = container.attrs["NetworkSettings"]["Networks"]
    assert described["DockerId"] == container.id and described["Name"] == "web"
    assert described["Networks"][0]["IPv4Addresses"] == [next(iter(address.values()))["IPAddress"]]
    assert described["Labels"]["com.amazonaws.ecs.task-arn"] == task.arn

    status, body = http_get(container, "$ECS_CONTAINER_METADATA_URI_V4")
    assert status == 200 and body["DockerId"] == container.id and body["KnownStatus"] == "RUNNING"
    status, stats = http_get(container, "$ECS_CONTAINER_METADATA_URI_V4/stats")
    assert status == 200 and stats["memory_stats"]["usage"] > 0 and "cpu_stats" in stats
    status, stats = http_get(container, "$ECS_CONTAINER_METADATA_URI_V4/task/stats")
    assert status == 200 and list(stats) == [container.id] and stats[container.id]["pids_stats"]["current"] >= 1
    status, body = http_get(container, "$ECS_CONTAINER_METADATA_URI/task")  # v3 names the same endpoint
    assert status == 200 and body["TaskARN"] == task.arn
    assert http_get(container, "$ECS_CONTAINER_METADATA_URI_V4/nothing")[0] == 404

    control_plane.stop()  # the endpoint's DNAT goes with the firewall's rules
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True).stdout
    assert host_firewall.nat_chain_name(lab_id) not in nat


def test_a_task_gets_nothing_of_another_task(control_plane, lab_rows, wait_until, docker_client):
    """Another account's task (with a role) on another network: its paths answer 404 / ECS's
    credentials error to this task, even when this task knows them exactly."""
    task, container = running(lab_rows, wait_until, docker_client)
    other_account = Account.objects.create(account_id="111111111111")
    lab_rows.account, lab_rows.cluster = other_account, Cluster.objects.create(account=other_account, name="other")
    other, other_container = running(lab_rows, wait_until, docker_client, taskRoleArn=ROLE.replace("0" * 12, "1" * 12))
    theirs = container_env(other_container)

    assert http_get(container, theirs["ECS_CONTAINER_METADATA_URI_V4"] + "/task")[0] == 404
    assert http_get(container, theirs["ECS_CONTAINER_METADATA_URI_V4"] + "/stats")[0] == 404
    assert http_get(container, theirs["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]) == (
        400, {"code": "InvalidIdInRequest", "message": "CredentialsV2Request: Credentials not found"})
    guessed = f"/v4/{other.task_id}-{'0' * 32}/task"
    assert http_get(container, guessed)[0] == 404
    # Its own paths still answer it.
    assert http_get(other_container, theirs["ECS_CONTAINER_METADATA_URI_V4"] + "/task")[1]["TaskARN"] == other.arn
    assert http_get(other_container, theirs["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"])[0] == 200


def test_boto3_in_a_task_with_a_role_lists_its_own_clusters_tasks_with_no_keys(
        control_plane, lab_rows, wait_until, docker_client, tmp_path):
    task, container = running(lab_rows, wait_until, docker_client, taskRoleArn=ROLE)
    env = container_env(container)
    assert env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] == task_credentials.relative_uri(task)
    status, credentials = http_get(container, "$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    assert status == 200 and credentials["RoleArn"] == ROLE and credentials["AccessKeyId"].startswith("ASIA")
    assert set(credentials) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}

    script = (
        "import boto3, json\n"
        "ecs = boto3.client('ecs')\n"
        f"print(json.dumps(ecs.list_tasks(cluster={task.cluster.name!r})['taskArns']))\n"
    )
    pid = container.attrs["State"]["Pid"]
    environ = dict(item.split("=", 1) for item in
                   open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if "=" in item)
    environ.update({"HOME": str(tmp_path), "PATH": os.environ["PATH"]})  # no ~/.aws, no keys of ours
    assert not any(name in environ for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"))
    result = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", script],
                            env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [task.arn]


def test_role_credentials_stop_working_when_the_task_stops(control_plane, lab_rows, wait_until, docker_client):
    task, container = running(lab_rows, wait_until, docker_client, taskRoleArn=ROLE)
    credentials = http_get(container, "$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")[1]
    # The API at the endpoint itself, from the host (the lab's own loopback listener).
    ecs = boto3.client("ecs", endpoint_url=f"http://127.0.0.1:{control_plane.task_endpoint.port}",
                       region_name="us-east-1", aws_access_key_id=credentials["AccessKeyId"],
                       aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["Token"])
    assert ecs.list_tasks(cluster=task.cluster.name)["taskArns"] == [task.arn]

    Task.objects.filter(pk=task.pk).update(desired_status="STOPPED")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ecs.list_tasks(cluster=task.cluster.name)
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert TaskContainer.objects.filter(task=task).exists()
