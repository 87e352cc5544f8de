"""The vCPU quota on real Docker: a student's service runs only the tasks its account's quota
holds, says why in ECS's words, and starts the rest once the teacher raises the quota."""
import re

import pytest

from tests.support.lab import lab_containers, poll
from tests.support.api import FARGATE

pytestmark = pytest.mark.docker


def student(lab, name):
    """``manage.py addstudent``; the student's ECS client."""
    out = lab.manage("addstudent", name).stdout
    return lab.client(aws_access_key_id=re.search(r"AWS_ACCESS_KEY_ID=(\S+)", out).group(1),
                      aws_secret_access_key=re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", out).group(1))


def test_a_service_runs_what_the_vcpu_quota_holds_then_the_rest_when_raised(lab, docker_client):
    bob = student(lab, "bob")
    assert "Fargate On-Demand vCPU resource count: 0.5 vCPU (set" in \
        lab.manage("setquota", "bob", "--fargate-on-demand-vcpu", "0.5").stdout
    bob.create_cluster(clusterName="demo")
    bob.register_task_definition(
        family="web", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "web", "image": "fargate-lab/demo:latest", "essential": True}])
    bob.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=3, **FARGATE)

    def service():
        return bob.describe_services(cluster="demo", services=["web"])["services"][0]

    poll(lambda: service()["runningCount"] == 2 and any(
        "was unable to place a task. Reason: You've reached the limit on the number of vCPUs you can run "
        "concurrently" in e["message"] for e in service()["events"]), message="2 of 3 RUNNING and the quota's event")
    assert len(bob.list_tasks(cluster="demo")["taskArns"]) == 2
    assert len([c for c in lab_containers(docker_client, lab.lab_id) if c.labels.get("fargatelab.cluster") == "demo"]) == 2

    lab.manage("setquota", "bob", "--fargate-on-demand-vcpu", "1")
    poll(lambda: service()["runningCount"] == 3, timeout=45, message="the third task once the quota is raised")
