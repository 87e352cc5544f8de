"""Container health checks in a running lab on real Docker, through boto3: a container's
healthCheck runs as its Docker health check, its result is the container's and the task's
healthStatus in DescribeTasks, a service replaces a task whose check starts failing, and a
standalone task goes on regardless of its health (as on ECS)."""
import botocore.session
import pytest

from tests.support.lab import poll
from tests.support.api import NETWORK

pytestmark = pytest.mark.docker

# Healthy while /tmp/fail is absent: the test breaks the check by creating it (docker exec).
CHECK = {"command": ["CMD-SHELL", "test ! -f /tmp/fail"], "interval": 5, "timeout": 2, "retries": 1}


def definition(family, health_check):
    return {
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": "256", "memory": "512",
        "containerDefinitions": [{
            "name": "web", "image": "fargate-lab/demo:latest", "essential": True,
            "portMappings": [{"containerPort": 80, "protocol": "tcp"}], "healthCheck": health_check,
        }],
    }


def describe(ecs, arn):
    return ecs.describe_tasks(cluster="health", tasks=[arn])["tasks"][0]


def container_of(docker_client, lab_id, task_arn):
    """The task's Docker container, found by the lab's labels with the Docker SDK itself."""
    [container] = docker_client.containers.list(filters={"label": [
        f"fargatelab.lab={lab_id}", f"fargatelab.task-id={task_arn.rsplit('/', 1)[1]}"]})
    return container


def test_a_failing_health_check_gets_a_service_task_replaced_and_leaves_a_standalone_one(lab, docker_client):
    ecs = lab.client()
    ecs.create_cluster(clusterName="health")
    ecs.register_task_definition(**definition("web", CHECK))
    registered = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert registered["containerDefinitions"][0]["healthCheck"] == CHECK
    ecs.create_service(cluster="health", serviceName="web", taskDefinition="web", desiredCount=1,
                       launchType="FARGATE", **NETWORK)
    standalone = ecs.run_task(cluster="health", taskDefinition="web", launchType="FARGATE", **NETWORK)["tasks"][0]["taskArn"]

    def service_task():
        arns = ecs.list_tasks(cluster="health", serviceName="web", desiredStatus="RUNNING")["taskArns"]
        return arns[0] if arns else None

    first = poll(service_task, message="the service's task")
    poll(lambda: describe(ecs, first)["healthStatus"] == "HEALTHY", timeout=40, message="the task to turn HEALTHY")
    task = describe(ecs, first)
    assert task["lastStatus"] == "RUNNING"
    assert [(c["name"], c["healthStatus"]) for c in task["containers"]] == [("web", "HEALTHY")]
    health_enum = botocore.session.get_session().get_service_model("ecs").shape_for("HealthStatus").enum
    assert task["healthStatus"] in health_enum and task["containers"][0]["healthStatus"] in health_enum
    assert container_of(docker_client, lab.lab_id, first).attrs["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test ! -f /tmp/fail"], "Interval": 5_000_000_000, "Timeout": 2_000_000_000,
        "Retries": 1}

    for arn in (first, standalone):
        container_of(docker_client, lab.lab_id, arn).exec_run(["touch", "/tmp/fail"])
    poll(lambda: describe(ecs, first)["lastStatus"] == "STOPPED", timeout=40, message="the unhealthy task to stop")
    stopped = describe(ecs, first)
    assert stopped["stoppedReason"] == "Task failed container health checks"
    assert stopped["stopCode"] == "ServiceSchedulerInitiated"
    assert stopped["healthStatus"] == "UNHEALTHY"
    replacement = poll(lambda: (service_task() not in (None, first)) and service_task(),
                       message="a replacement task")
    poll(lambda: describe(ecs, replacement)["healthStatus"] == "HEALTHY", timeout=40,
         message="the replacement to turn HEALTHY")
    events = [e["message"] for e in ecs.describe_services(cluster="health", services=["web"])["services"][0]["events"]]
    assert f"(service web) (task {first.rsplit('/', 1)[1]}) failed container health checks." in events

    # A task RunTask started goes on whatever its health (ECS stops only a service's tasks).
    alone = describe(ecs, standalone)
    assert (alone["healthStatus"], alone["containers"][0]["healthStatus"]) == ("UNHEALTHY", "UNHEALTHY")
    assert (alone["lastStatus"], alone["desiredStatus"]) == ("RUNNING", "RUNNING")

