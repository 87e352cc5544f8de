"""The lab as a student uses it: boto3 and the aws CLI against ``manage.py lab``, with tasks
running as real containers on the local Docker engine (issue: the control plane on real Docker,
behind the ECS API)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from tests.support.lab import lab_containers, poll
from tests.support.api import FARGATE, NETWORK

pytestmark = pytest.mark.docker

SMALL_WEB = {
    "family": "web",
    "requiresCompatibilities": ["FARGATE"],
    "networkMode": "awsvpc",
    "cpu": "256",
    "memory": "512",
    "containerDefinitions": [
        {
            "name": "web",
            "image": "fargate-lab/demo:latest",
            "essential": True,
            "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
            "environment": [{"name": "GREETING", "value": "hello from the lab"}],
        }
    ],
}


def running_tasks(ecs, cluster, **filters):
    """The ARNs of the cluster's tasks whose last status is RUNNING."""
    arns = ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING", **filters)["taskArns"]
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    return [t["taskArn"] for t in tasks if t["lastStatus"] == "RUNNING"]


def service_state(ecs, cluster, name):
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def running_containers(docker_client, lab_id):
    return lab_containers(docker_client, lab_id)


def test_it_runs_tasks_with_their_limits_env_command_and_labels(lab, docker_client):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**SMALL_WEB)
    response = ecs.run_task(
        cluster="demo",
        taskDefinition="web",
        count=2,
        launchType="FARGATE",
        overrides={"containerOverrides": [{"name": "web", "command": ["/demo/serve.sh"]}]}, **NETWORK
    )
    assert response["failures"] == []
    arns = [t["taskArn"] for t in response["tasks"]]
    assert len(arns) == 2

    poll(lambda: len(set(running_tasks(ecs, "demo")) & set(arns)) == 2, message="2 RUNNING tasks")
    tasks = ecs.describe_tasks(cluster="demo", tasks=arns)["tasks"]
    for task in tasks:
        assert task["lastStatus"] == "RUNNING" and task["startedAt"]
        assert task["containers"][0]["networkBindings"][0]["containerPort"] == 80

    containers = {c.labels["fargatelab.task-arn"]: c for c in running_containers(docker_client, lab.lab_id)}
    assert set(containers) == set(arns)
    for arn, container in containers.items():
        container.reload()
        host_config = container.attrs["HostConfig"]
        assert host_config["NanoCpus"] == 250_000_000
        assert host_config["Memory"] == 512 * 1024 * 1024
        assert not host_config["Privileged"] and not host_config["CapAdd"]
        assert "GREETING=hello from the lab" in container.attrs["Config"]["Env"]
        assert container.attrs["Config"]["Cmd"] == ["/demo/serve.sh"]
        assert container.labels["fargatelab.cluster"] == "demo"
        assert container.labels["fargatelab.instance"]

    # The published port answers with the task's own ARN (the demo image says who it is).
    task = tasks[0]
    port = task["containers"][0]["networkBindings"][0]["hostPort"]
    assert task["taskArn"] in requests.get(f"http://127.0.0.1:{port}/", timeout=5).text

    ecs.stop_task(cluster="demo", task=arns[0], reason="lesson over")
    stopped = poll(
        lambda: [t for t in ecs.describe_tasks(cluster="demo", tasks=[arns[0]])["tasks"] if t["lastStatus"] == "STOPPED"],
        message="the stopped task to be STOPPED",
    )[0]
    assert stopped["stoppedReason"] == "lesson over"
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["containers"][0]["exitCode"] == 0
    poll(lambda: len(running_containers(docker_client, lab.lab_id)) == 1, message="one container left")


def test_a_service_heals_scales_and_deletes_without_leaving_containers(lab, docker_client):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**SMALL_WEB)
    ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=3, launchType="FARGATE", **NETWORK)
    poll(lambda: service_state(ecs, "demo", "web")["runningCount"] == 3, message="3 running")
    assert len(running_containers(docker_client, lab.lab_id)) == 3

    # Kill one container behind the lab's back: no API call follows.
    victim = running_containers(docker_client, lab.lab_id)[0]
    victim_arn = victim.labels["fargatelab.task-arn"]
    victim.kill()
    dead = poll(
        lambda: [t for t in ecs.describe_tasks(cluster="demo", tasks=[victim_arn])["tasks"] if t["lastStatus"] == "STOPPED"],
        message="the killed task to be STOPPED",
    )[0]
    assert dead["containers"][0]["exitCode"] == 137
    assert dead["stopCode"] == "EssentialContainerExited"
    assert "Essential container in task exited" in dead["stoppedReason"]

    def replaced():
        arns = running_tasks(ecs, "demo", serviceName="web")
        return len(arns) == 3 and victim_arn not in arns

    poll(replaced, message="a replacement task RUNNING")
    events = [e["message"] for e in service_state(ecs, "demo", "web")["events"]]
    assert any("has started 1 tasks" in m for m in events), events

    ecs.update_service(cluster="demo", service="web", desiredCount=1)
    poll(lambda: len(running_containers(docker_client, lab.lab_id)) == 1, message="scale in to 1 container")
    poll(lambda: service_state(ecs, "demo", "web")["runningCount"] == 1, message="runningCount 1")

    ecs.delete_service(cluster="demo", service="web", force=True)
    poll(lambda: lab_containers(docker_client, lab.lab_id, all=True) == [], message="no container left")
    poll(lambda: service_state(ecs, "demo", "web")["status"] == "INACTIVE", message="service INACTIVE")


def test_the_aws_waiters_that_scripts_use_see_tasks_and_services_settle(lab, docker_client):
    """``aws ecs wait tasks-running | tasks-stopped | services-stable | services-inactive`` are
    botocore's waiters over DescribeTasks and DescribeServices: their acceptors must be met."""
    ecs = lab.client()
    ecs.create_cluster(clusterName="waiters")
    ecs.register_task_definition(**SMALL_WEB)
    every_second = {"Delay": 1, "MaxAttempts": 60}
    arn = ecs.run_task(cluster="waiters", taskDefinition="web", launchType="FARGATE", **NETWORK)["tasks"][0]["taskArn"]
    ecs.get_waiter("tasks_running").wait(cluster="waiters", tasks=[arn], WaiterConfig=every_second)
    assert ecs.describe_tasks(cluster="waiters", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING"
    ecs.stop_task(cluster="waiters", task=arn)
    ecs.get_waiter("tasks_stopped").wait(cluster="waiters", tasks=[arn], WaiterConfig=every_second)
    assert ecs.describe_tasks(cluster="waiters", tasks=[arn])["tasks"][0]["lastStatus"] == "STOPPED"

    ecs.create_service(cluster="waiters", serviceName="web", taskDefinition="web", desiredCount=2, launchType="FARGATE", **NETWORK)
    ecs.get_waiter("services_stable").wait(cluster="waiters", services=["web"], WaiterConfig=every_second)
    stable = service_state(ecs, "waiters", "web")
    assert (stable["runningCount"], len(stable["deployments"])) == (2, 1)
    assert len(running_containers(docker_client, lab.lab_id)) == 2
    ecs.delete_service(cluster="waiters", service="web", force=True)
    ecs.get_waiter("services_inactive").wait(cluster="waiters", services=["web"], WaiterConfig=every_second)
    assert lab_containers(docker_client, lab.lab_id, all=True) == []


def test_a_lab_restart_adopts_running_tasks_without_duplicates(lab, docker_client):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**SMALL_WEB)
    ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=2, **FARGATE)
    poll(lambda: service_state(ecs, "demo", "web")["runningCount"] == 2, message="2 running")
    before = sorted(c.id for c in running_containers(docker_client, lab.lab_id))

    lab.restart()
    ecs = lab.client()
    # After a full resync the same two containers run, adopted: none replaced, none added.
    poll(lambda: service_state(ecs, "demo", "web")["runningCount"] == 2, message="2 running after restart")
    lab.stop()  # a stopped lab cannot start anything more: the count below is final
    after = sorted(c.id for c in running_containers(docker_client, lab.lab_id))
    assert after == before
    lab.start()


def test_an_engine_restart_converges_to_the_desired_count(lab, docker_client, restart_docker):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**SMALL_WEB)
    ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=2, **FARGATE)
    poll(lambda: service_state(ecs, "demo", "web")["runningCount"] == 2, message="2 running")
    before = {c.labels["fargatelab.task-arn"] for c in running_containers(docker_client, lab.lab_id)}

    restart_docker()

    def converged():
        running = {c.labels["fargatelab.task-arn"] for c in running_containers(docker_client, lab.lab_id)}
        state = service_state(ecs, "demo", "web")
        return len(running) == 2 and running.isdisjoint(before) and state["runningCount"] == 2

    poll(converged, timeout=60, message="2 new running containers after the engine restart")
    # The old tasks end STOPPED (each passes DEPROVISIONING first, its ENI detached).
    poll(lambda: {t["lastStatus"] for t in ecs.describe_tasks(cluster="demo", tasks=sorted(before))["tasks"]}
         == {"STOPPED"}, timeout=60, message="the old tasks STOPPED")
    assert len(running_tasks(ecs, "demo", serviceName="web")) == 2


def test_errors_have_the_right_status_and_type(lab):
    ecs = lab.client()
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ecs.run_task(cluster="nowhere", taskDefinition="web", **FARGATE)
    assert err.value.response["Error"]["Code"] == "ClusterNotFoundException"

    bad = dict(SMALL_WEB, cpu="256", memory="4096")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ecs.register_task_definition(**bad)
    assert err.value.response["Error"]["Code"] == "ClientException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    wrong = lab.client(aws_secret_access_key="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        wrong.list_clusters()
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"

    headers = {"Content-Type": "application/x-amz-json-1.1"}
    malformed = requests.post(
        lab.url + "/", data="{not json", headers={**headers, "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters"},
    )
    assert malformed.status_code == 400
    unknown = signed_post(lab, "AmazonEC2ContainerServiceV20141113.LaunchRockets", "{}")
    assert unknown.status_code == 400 and "LaunchRockets" in unknown.json()["message"]
    garbled = signed_post(lab, "AmazonEC2ContainerServiceV20141113.ListClusters", "{not json")
    assert garbled.status_code == 400 and garbled.json()["__type"] == "SerializationException"


def signed_post(lab, target, body):
    """A POST signed with the default key, as the SDK would sign it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST", url=lab.url + "/", data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
    )
    SigV4Auth(Credentials("test", "test"), "ecs", "us-east-1").add_auth(request)
    return requests.post(lab.url + "/", data=body, headers=dict(request.headers))


def test_the_aws_cli_lists_clusters_and_runs_a_task(lab, tmp_path):
    env = {
        **os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    aws = [str(Path(sys.executable).with_name("aws")), "--endpoint-url", lab.url, "--output", "json", "ecs"]

    def run(*args):
        result = subprocess.run(aws + list(args), env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else {}

    run("create-cluster", "--cluster-name", "cli")
    assert "arn:aws:ecs:us-east-1:000000000000:cluster/cli" in run("list-clusters")["clusterArns"]
    (tmp_path / "td.json").write_text(json.dumps(SMALL_WEB))
    run("register-task-definition", "--cli-input-json", f"file://{tmp_path / 'td.json'}")
    out = run("run-task", "--cluster", "cli", "--task-definition", "web", "--launch-type", "FARGATE", "--count", "1",
              "--network-configuration", "awsvpcConfiguration={subnets=[subnet-a],assignPublicIp=ENABLED}")
    arn = out["tasks"][0]["taskArn"]
    assert arn.startswith("arn:aws:ecs:us-east-1:000000000000:task/cli/")
    ecs = lab.client()
    poll(lambda: ecs.describe_tasks(cluster="cli", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING", message="RUNNING")
