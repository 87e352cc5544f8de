"""The task endpoint on real Docker (issue 12, item 5): a task reads its own metadata at
$ECS_CONTAINER_METADATA_URI_V4 and its role's credentials at 169.254.170.2, and nobody else's.

From inside the container the requests are made with the demo image's own busybox ``nc``
(busybox ``wget`` crashes in containers), and the SDK check runs real boto3 as the task's own
command, in an image built from the test's Python (no Python image can be pulled offline).
"""
import json
import subprocess

import boto3
import botocore.exceptions
import pytest

from orchestrator import host_firewall, task_credentials
from orchestrator.models import Account, Cluster, Task, TaskContainer

ROLE = "arn:aws:iam::000000000000:role/web-task"
pytestmark = pytest.mark.docker


@pytest.fixture
def python_image():
    from tests.support.python_image import build_python_image

    return build_python_image()


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
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 90, message="task RUNNING")
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
    status, again = http_get(container, "$ECS_CONTAINER_METADATA_URI_V4/stats")
    # The sample before comes with it (as from the ECS agent), so one answer gives a CPU percentage.
    assert again["precpu_stats"] == stats["cpu_stats"] and again["preread"] == stats["read"]
    status, stats = http_get(container, "$ECS_CONTAINER_METADATA_URI_V4/task/stats")
    assert status == 200 and list(stats) == [container.id] and stats[container.id]["pids_stats"]["current"] >= 1
    status, body = http_get(container, "$ECS_CONTAINER_METADATA_URI/task")  # v3 names the same endpoint
    assert status == 200 and body["TaskARN"] == task.arn
    assert http_get(container, "$ECS_CONTAINER_METADATA_URI_V4/nothing")[0] == 404

    bridge = "br-" + next(iter(address.values()))["NetworkID"][:12]
    localnet = f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"
    assert open(localnet).read().strip() == "1"  # the DNAT to loopback needs it
    control_plane.stop()  # the endpoint's DNAT goes with the firewall's rules, and the bridge's routing to loopback
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True).stdout
    assert host_firewall.nat_chain_name(lab_id) not in nat
    assert open(localnet).read().strip() == "0"


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


SCRIPT = """
import json, os, urllib.request
import boto3
with urllib.request.urlopen(os.environ["ECS_CONTAINER_METADATA_URI_V4"] + "/task") as answer:
    task = json.load(answer)
ecs, ssm = boto3.client("ecs"), boto3.client("ssm")
ssm.put_parameter(Name="/from/the/task", Value="hello", Type="String")
print(json.dumps({
    "metadata": task["TaskARN"],
    "listed": ecs.list_tasks(cluster=task["Cluster"].rsplit("/", 1)[1])["taskArns"],
    "parameter": ssm.get_parameter(Name="/from/the/task")["Parameter"]["ARN"],
    "caller_keys": [name for name in os.environ if name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")],
}))
"""


def test_boto3_in_a_task_with_a_role_lists_its_own_clusters_tasks_with_no_keys(
        control_plane, lab_rows, wait_until, python_image):
    """The task's own container runs real boto3 (an image of the test's Python, tests/support/python_image.py):
    nothing but the lab's variables tells it where the metadata, the credentials and the APIs are."""
    lab_rows.image = python_image
    definition = lab_rows.task_definition(command=["python3", "-c", SCRIPT], portMappings=[])
    definition.body["taskRoleArn"] = ROLE
    definition.save(update_fields=["body"])
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 60, message="the script to finish")
    (container,) = TaskContainer.objects.filter(task=task)
    assert container.exit_code == 0, container.log_tail
    said = json.loads(container.log_tail.strip().splitlines()[-1])
    assert said == {"metadata": task.arn, "listed": [task.arn], "caller_keys": [],
                    "parameter": "arn:aws:ssm:us-east-1:000000000000:parameter/from/the/task"}


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


def http_put(container, path_expression, body):
    """PUT a JSON body to http://169.254.170.2<path> from inside the container: (status, JSON body)."""
    data = json.dumps(body)
    script = (f'p="{path_expression}"; p="${{p#http://169.254.170.2}}"; '
              f'printf "PUT $p HTTP/1.0\\r\\nHost: 169.254.170.2\\r\\nContent-Type: application/json\\r\\n'
              f'Content-Length: {len(data)}\\r\\n\\r\\n%s" \'{data}\' | nc -w 5 169.254.170.2 80')
    output = container.exec_run(["sh", "-c", script]).output.decode()
    head, _, answer = output.partition("\r\n\r\n")
    assert head.startswith("HTTP/"), output
    return int(head.split()[1]), json.loads(answer)


def test_a_service_task_protects_itself_at_its_agent_uri(control_plane, lab_rows, wait_until, docker_client):
    service = lab_rows.create_service(1)
    wait_until(lambda: Task.objects.filter(service=service, last_status="RUNNING").exists(), 90,
               message="the service's task RUNNING")
    task = Task.objects.get(service=service)
    (container,) = docker_client.containers.list(filters={"label": f"fargatelab.task-id={task.task_id}"})
    state = "$ECS_AGENT_URI/task-protection/v1/state"
    assert container_env(container)["ECS_AGENT_URI"].startswith("http://169.254.170.2/api/")
    assert http_get(container, state) == (200, {"protection": {"ProtectionEnabled": False, "TaskArn": task.arn}})
    status, answer = http_put(container, state, {"ProtectionEnabled": True, "ExpiresInMinutes": 60})
    assert status == 200 and answer["protection"]["ProtectionEnabled"] is True, answer
    assert answer["protection"]["TaskArn"] == task.arn and answer["protection"]["ExpirationDate"].endswith("Z")
    task.refresh_from_db()
    assert task.protected_until is not None  # what UpdateTaskProtection keeps: scale-in now spares it
    assert http_get(container, state)[1]["protection"]["ProtectionEnabled"] is True
    assert http_put(container, state, {"ExpiresInMinutes": 5})[0] == 400  # no ProtectionEnabled
    assert http_put(container, state, {"ProtectionEnabled": False})[1]["protection"]["ProtectionEnabled"] is False
    # A standalone task gets ECS's failure; and one task's agent path is nobody else's.
    other, other_container = running(lab_rows, wait_until, docker_client)
    status, answer = http_get(other_container, state)
    assert status == 200 and answer["failure"]["Reason"] == "TASK_NOT_VALID", answer
    mine = container_env(container)["ECS_AGENT_URI"]
    assert http_get(other_container, f"{mine}/task-protection/v1/state")[0] == 404
