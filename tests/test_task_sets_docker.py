"""Blue/green with task sets through the real lab: an EXTERNAL service's blue and green task sets
run as real containers, each registered in its own target group, and a listener's weighted
forward action switches which version answers over HTTP."""
import collections

import pytest
import requests

from tests.support.common import free_port
from tests.support.lab import lab_containers, poll

pytestmark = pytest.mark.docker

NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-a"], "assignPublicIp": "ENABLED"}}


def task_definition():
    return {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{
            "name": "web", "image": "fargate-lab/demo:latest", "essential": True,
            "portMappings": [{"containerPort": 80, "protocol": "tcp"}]}],
    }


class BlueGreen:
    """A load balancer with a blue and a green target group behind one listener."""

    def __init__(self, lab):
        self.elbv2 = lab.client("elbv2")
        lb = self.elbv2.create_load_balancer(Name="bg-lb", Subnets=["subnet-a", "subnet-b"])["LoadBalancers"][0]
        self.groups = {}
        for colour in ("blue", "green"):
            arn = self.elbv2.create_target_group(
                Name=f"{colour}-tg", Protocol="HTTP", Port=80, TargetType="ip", VpcId="vpc-lab",
                HealthCheckIntervalSeconds=5, HealthyThresholdCount=2,
            )["TargetGroups"][0]["TargetGroupArn"]
            self.elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
                {"Key": "deregistration_delay.timeout_seconds", "Value": "2"}])
            self.groups[colour] = arn
        self.port = free_port()
        self.listener = self.elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=self.port,
            DefaultActions=self.weights(100, 0))["Listeners"][0]["ListenerArn"]
        self.url = f"http://127.0.0.1:{self.port}/"

    def weights(self, blue, green):
        return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": self.groups["blue"], "Weight": blue},
            {"TargetGroupArn": self.groups["green"], "Weight": green}]}}]

    def shift(self, blue, green):
        self.elbv2.modify_listener(ListenerArn=self.listener, DefaultActions=self.weights(blue, green))

    def healthy(self, colour):
        described = self.elbv2.describe_target_health(TargetGroupArn=self.groups[colour])["TargetHealthDescriptions"]
        return sorted(d["Target"]["Id"] for d in described if d["TargetHealth"]["State"] == "healthy")

    def entry(self, colour):
        return [{"targetGroupArn": self.groups[colour], "containerName": "web", "containerPort": 80}]


def answering_versions(ecs, url, count=20):
    """The task definitions of the tasks that answer ``count`` requests through the listener."""
    arns = []
    for _ in range(count):
        response = requests.get(url, timeout=10)
        assert response.status_code == 200, response.text
        arns.append(response.text.splitlines()[0].removeprefix("task: "))
    described = ecs.describe_tasks(cluster="demo", tasks=sorted(set(arns)))["tasks"]
    version = {t["taskArn"]: t["taskDefinitionArn"].rsplit("/", 1)[-1] for t in described}
    return collections.Counter(version[arn] for arn in arns)


def task_sets(ecs):
    return {s["id"]: s for s in ecs.describe_task_sets(cluster="demo", service="bg")["taskSets"]}


def steady(ecs, ident, count):
    shown = task_sets(ecs).get(ident)
    return shown if shown and shown["stabilityStatus"] == "STEADY_STATE" and shown["runningCount"] == count else None


def containers_of(docker_client, lab, ecs, ident):
    """The lab's containers running tasks of the task set ``ident`` (by the task ARN label)."""
    arns = set(ecs.list_tasks(cluster="demo", serviceName="bg", desiredStatus="RUNNING")["taskArns"]) | set(
        ecs.list_tasks(cluster="demo", serviceName="bg", desiredStatus="STOPPED")["taskArns"])
    started_by = {t["taskArn"]: t.get("startedBy") for t in ecs.describe_tasks(cluster="demo", tasks=sorted(arns))[
        "tasks"]} if arns else {}
    return [c for c in lab_containers(docker_client, lab.lab_id)
            if started_by.get(c.labels.get("fargatelab.task-arn")) == ident]


def test_blue_green_task_sets_switch_traffic_and_survive_a_restart(lab, docker_client):
    alb = BlueGreen(lab)
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**task_definition())
    ecs.register_task_definition(**task_definition())
    ecs.create_service(cluster="demo", serviceName="bg", taskDefinition="web:1", desiredCount=2,
                       launchType="FARGATE", deploymentController={"type": "EXTERNAL"})

    blue = ecs.create_task_set(cluster="demo", service="bg", taskDefinition="web:1", launchType="FARGATE",
                               networkConfiguration=NETWORK,
                               loadBalancers=alb.entry("blue"), scale={"value": 100, "unit": "PERCENT"})["taskSet"]
    ecs.update_service_primary_task_set(cluster="demo", service="bg", primaryTaskSet=blue["taskSetArn"])
    green = ecs.create_task_set(cluster="demo", service="bg", taskDefinition="web:2", launchType="FARGATE",
                                networkConfiguration=NETWORK,
                                loadBalancers=alb.entry("green"), scale={"value": 100, "unit": "PERCENT"})["taskSet"]
    poll(lambda: steady(ecs, blue["id"], 2) and steady(ecs, green["id"], 2), timeout=120,
         message="blue and green each running 2 tasks")
    poll(lambda: len(alb.healthy("blue")) == 2 and len(alb.healthy("green")) == 2, timeout=60,
         message="each target group with its 2 healthy tasks")
    assert len(containers_of(docker_client, lab, ecs, blue["id"])) == 2
    assert len(containers_of(docker_client, lab, ecs, green["id"])) == 2

    assert answering_versions(ecs, alb.url) == {"web:1": 20}  # weights 100 / 0: blue answers
    alb.shift(0, 100)
    poll(lambda: answering_versions(ecs, alb.url, 5) == {"web:2": 5}, timeout=20, message="green answering")
    assert answering_versions(ecs, alb.url) == {"web:2": 20}

    ecs.update_service_primary_task_set(cluster="demo", service="bg", primaryTaskSet=green["id"])
    assert {i: s["status"] for i, s in task_sets(ecs).items()} == {blue["id"]: "ACTIVE", green["id"]: "PRIMARY"}
    service = ecs.describe_services(cluster="demo", services=["bg"])["services"][0]
    assert service["taskDefinition"].endswith("task-definition/web:2")

    ecs.delete_task_set(cluster="demo", service="bg", taskSet=blue["id"], force=True)
    poll(lambda: not containers_of(docker_client, lab, ecs, blue["id"]), timeout=60, message="blue's containers gone")
    poll(lambda: blue["id"] not in task_sets(ecs), timeout=30, message="blue's task set INACTIVE")
    assert answering_versions(ecs, alb.url) == {"web:2": 20}

    # A restarted control plane adopts green's tasks: no duplicate starts.
    lab.restart()
    ecs = lab.client()
    poll(lambda: steady(ecs, green["id"], 2), timeout=60, message="green steady after the restart")
    assert answering_versions(ecs, alb.url) == {"web:2": 20}
    assert len(ecs.list_tasks(cluster="demo", serviceName="bg")["taskArns"]) == 2
    assert len(containers_of(docker_client, lab, ecs, green["id"])) == 2
    assert len(lab_containers(docker_client, lab.lab_id)) == 2
