"""Load balancer targets stay inside the account's VPC, on a real lab (issue 10, finding 5).

The probe registered 127.0.0.1 (the lab itself, the registry) and another student's task IP
as targets: DescribeTargetHealth became a port scanner and the listener a proxy into them.
Here bob tries the same with his own key and is refused with InvalidTarget; his own task is
accepted, answers through his listener, and its target goes when the task stops.
"""
import re

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.common import free_port
from tests.support.lab import poll
from tests.support.api import NETWORK

pytestmark = pytest.mark.docker

TASK_DEFINITION = {
    "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                              "portMappings": [{"containerPort": 80, "protocol": "tcp"}]}],
}


def add_student(lab, name):
    """``manage.py addstudent NAME`` on the lab's database; returns the student's boto3 credentials."""
    result = lab.manage("addstudent", name)
    assert result.returncode == 0, result.stderr
    key = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", result.stdout).group(1)
    secret = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", result.stdout).group(1)
    return {"aws_access_key_id": key, "aws_secret_access_key": secret, "region_name": "us-east-1"}


def client(lab, service, credentials):
    return boto3.client(service, endpoint_url=lab.url, config=Config(retries={"max_attempts": 1}), **credentials)


def running_task_ip(ecs):
    """Run one demo task in cluster demo; (its ARN, its private IP) once it is RUNNING."""
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**TASK_DEFINITION)
    arn = ecs.run_task(cluster="demo", taskDefinition="web", launchType="FARGATE", **NETWORK)["tasks"][0]["taskArn"]

    def ip():
        task = ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]
        details = {d["name"]: d["value"] for a in task["attachments"] for d in a["details"]}
        return task["lastStatus"] == "RUNNING" and details.get("privateIPv4Address")

    return arn, poll(ip, message="the task RUNNING with a private IP")


def refusal(call, **kwargs):
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


def test_a_student_can_target_only_their_own_tasks(lab):
    alice_arn, alice_ip = running_task_ip(lab.client("ecs"))
    bob = add_student(lab, "bob")
    bob_ecs, bob_elbv2 = client(lab, "ecs", bob), client(lab, "elbv2", bob)
    bob_arn, bob_ip = running_task_ip(bob_ecs)
    assert bob_ip != alice_ip

    lb = bob_elbv2.create_load_balancer(Name="probe-lb", Subnets=["subnet-a"])["LoadBalancers"][0]
    tg = bob_elbv2.create_target_group(Name="probe-ip", Protocol="HTTP", Port=80, TargetType="ip", VpcId="vpc-lab",
                                       HealthCheckIntervalSeconds=5, HealthyThresholdCount=2)["TargetGroups"][0]
    listener_port = free_port()
    bob_elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=listener_port,
                              DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    registry_port = int(lab.env["FARGATE_LAB_REGISTRY_PORT"])
    # The lab's API and dashboard, its registry, the host's other ports, alice's task.
    for target in [("127.0.0.1", lab.port), ("127.0.0.1", registry_port), ("127.0.0.1", 22), (alice_ip, 80),
                   ("172.17.0.1", lab.port), ("169.254.170.2", 80)]:
        code, message = refusal(bob_elbv2.register_targets, TargetGroupArn=tg["TargetGroupArn"],
                                Targets=[{"Id": target[0], "Port": target[1]}])
        assert code == "InvalidTarget" and f"The IP address '{target[0]}' is not within the VPC" in message, target
    # The same through an instance target group: only a port one of bob's tasks publishes.
    instance_tg = bob_elbv2.create_target_group(Name="probe-inst", Protocol="HTTP", Port=80,
                                                TargetType="instance")["TargetGroups"][0]
    # Instance ids are on the shared instances page.
    ((instance_id,),) = lab.query("SELECT instance_id FROM orchestrator_containerinstance LIMIT 1")
    for port in (lab.port, registry_port):
        code, message = refusal(bob_elbv2.register_targets, TargetGroupArn=instance_tg["TargetGroupArn"],
                                Targets=[{"Id": instance_id, "Port": port}])
        assert code == "InvalidTarget" and "not in the target group VPC" in message, port
    described = bob_elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    assert described == []  # nothing got in, so nothing is health-checked (no port scan)

    bob_elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": bob_ip, "Port": 80}])

    def states():
        return [h["TargetHealth"]["State"] for h in
                bob_elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]]

    poll(lambda: states() == ["healthy"], timeout=45, message="bob's own task healthy")
    answer = requests.get(f"http://127.0.0.1:{listener_port}/", timeout=5)
    assert bob_arn in answer.text and alice_arn not in answer.text

    bob_ecs.stop_task(cluster="demo", task=bob_arn)
    poll(lambda: states() in ([], ["draining"]), timeout=45, message="bob's target gone with his task")
    poll(lambda: states() == [], timeout=60, message="bob's target forgotten once the task stopped")
