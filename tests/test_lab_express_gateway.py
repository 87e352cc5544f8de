"""ECS Express Mode on a real lab and real Docker: CreateExpressGatewayService with the demo image
gives an endpoint that answers 200 through the lab's listener from the task's container; Delete
stops the task and removes the load balancer parts it built."""
import pytest
import requests

from tests.support.lab import lab_containers, poll

pytestmark = pytest.mark.docker

ROLES = {"executionRoleArn": "arn:aws:iam::000000000000:role/ecsTaskExecutionRole",
         "infrastructureRoleArn": "arn:aws:iam::000000000000:role/ecsInfrastructureRole"}


def answer(url):
    try:
        response = requests.get(url, timeout=5)
    except requests.RequestException:
        return None
    return response if response.status_code == 200 else None


def test_its_endpoint_answers_from_the_task_and_delete_removes_what_it_built(lab, docker_client):
    ecs, elbv2 = lab.client(), lab.client("elbv2")
    service = ecs.create_express_gateway_service(
        **ROLES, serviceName="web", cpu="256", memory="512",
        primaryContainer={"image": "fargate-lab/demo:latest", "containerPort": 80})["service"]
    url = service["activeConfigurations"][0]["ingressPaths"][0]["endpoint"]

    response = poll(lambda: answer(url), timeout=120, message="the Express endpoint answers 200")
    [task_arn] = ecs.list_tasks(cluster="default", serviceName="web")["taskArns"]
    assert response.text.splitlines()[0] == f"task: {task_arn}"
    assert [c.labels["fargatelab.task-arn"] for c in lab_containers(docker_client, lab.lab_id)] == [task_arn]

    ecs.delete_express_gateway_service(serviceArn=service["serviceArn"])
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert elbv2.describe_target_groups()["TargetGroups"] == []
    poll(lambda: answer(url) is None, timeout=30, message="the endpoint no longer answers")
    poll(lambda: ecs.describe_express_gateway_service(serviceArn=service["serviceArn"])["service"]["status"]
         ["statusCode"] == "INACTIVE", timeout=120, message="the service INACTIVE")
    poll(lambda: lab_containers(docker_client, lab.lab_id) == [], timeout=60, message="its container removed")
