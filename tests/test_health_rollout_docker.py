"""A rollout on real Docker counts a new task healthy only once its container health check
passes, not when the grace period after RUNNING is over (driven through the ECS frontend in
process, with a 1 s grace period that a task without a check would pass long before)."""
import pytest

from orchestrator.frontend.operations import dispatch
from orchestrator.models import Deployment, Service, Task
from tests.support.api import NETWORK

pytestmark = pytest.mark.docker

# Passes once /tmp/ok exists: the test creates it (docker exec) when it has seen the check fail.
CHECK = {"command": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 5, "timeout": 2, "retries": 3}


@pytest.fixture
def ecs(lab_rows, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "HEALTH_GRACE_SECONDS": 1.0, "STOP_TIMEOUT_SECONDS": 2}

    def call(operation, **params):
        return dispatch(lab_rows.account, operation, params)

    return call


def register(ecs, image, **container):
    definition = {"name": "web", "image": image, "essential": True, **container}
    return ecs("RegisterTaskDefinition", family="web", cpu="256", memory="512", networkMode="awsvpc",
               requiresCompatibilities=["FARGATE"], containerDefinitions=[definition])["taskDefinition"]


def test_a_rollout_waits_for_the_new_task_to_turn_healthy(control_plane, ecs, lab_rows, docker_client, lab_id,
                                                          wait_until):
    rev1 = register(ecs, lab_rows.image)["taskDefinitionArn"]
    rev2 = register(ecs, lab_rows.image, healthCheck=CHECK)["taskDefinitionArn"]
    cluster = lab_rows.cluster.name
    ecs("CreateService", cluster=cluster, serviceName="web", taskDefinition=rev1, desiredCount=1,
        launchType="FARGATE", **NETWORK)
    service = Service.objects.get(name="web", cluster=lab_rows.cluster)
    wait_until(lambda: Deployment.objects.filter(service=service, rollout_state="COMPLETED").exists(), 60,
               message="revision 1 to run")
    old = Task.objects.get(service=service, last_status="RUNNING")

    ecs("UpdateService", cluster=cluster, service="web", taskDefinition=rev2)
    wait_until(lambda: Task.objects.filter(service=service, last_status="RUNNING").exclude(pk=old.pk).exists(), 60,
               message="the revision 2 task to run")
    new = Task.objects.filter(service=service).exclude(pk=old.pk).get()
    [container] = docker_client.containers.list(filters={"label": [
        f"fargatelab.lab={lab_id}", f"fargatelab.task-id={new.task_id}"]})

    def checked_once():
        container.reload()
        return bool(((container.attrs["State"].get("Health") or {}).get("Log")))

    # The first check (5 s after the start, long past the 1 s grace) has failed: still not healthy.
    wait_until(checked_once, 30, message="the first health check")
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.last_status, old.desired_status) == ("RUNNING", "RUNNING")
    assert new.health_status == "UNKNOWN"
    assert Deployment.objects.get(service=service, status="PRIMARY").rollout_state == "IN_PROGRESS"

    container.exec_run(["touch", "/tmp/ok"])
    wait_until(lambda: Deployment.objects.filter(service=service, status="PRIMARY", rollout_state="COMPLETED")
               .exists(), 30, message="the rollout to complete once the check passes")
    new.refresh_from_db()
    assert new.health_status == "HEALTHY" and new.containers.get().health_status == "HEALTHY"
    assert Task.objects.get(pk=old.pk).desired_status == "STOPPED"
