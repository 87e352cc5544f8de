"""Chaos for the class (issue 14, the teacher's view) on the real Docker engine, with the control
plane running: each action does what ECS (and Kubernetes) would show, and is announced to the
students it affects only. The engine is read with the Docker SDK, not the lab's adapter."""
import docker
import pytest
from django.contrib.auth import get_user_model

from orchestrator import chaos, frontend
from orchestrator.models import Account, Announcement, ContainerInstance, Service, Task
from tests.support.common import wait_until
from tests.support.api import NETWORK

pytestmark = pytest.mark.docker


@pytest.fixture
def chaos_settings(settings, lab_id):
    """A small, quick fleet: two instances in the warm pool, room to launch one more."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "FLEET_INSTANCES": 2, "MAX_INSTANCES": 3,
                            "INSTANCE_BOOT_SECONDS": 0.5, "HEALTH_GRACE_SECONDS": 1.0, "STOP_TIMEOUT_SECONDS": 2}
    return settings


def student(name, number):
    user = get_user_model().objects.create_user(name, password="pw")
    account = Account.objects.create(account_id=f"{number:012d}", name=name)
    account.members.add(user)
    return account


def web(account, image, cluster="demo"):
    frontend.call(account, "CreateCluster", {"clusterName": cluster})
    frontend.call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": image, "essential": True}]})


def service(account, count, **extra):
    frontend.call(account, "CreateService", {
        "cluster": "demo", "serviceName": "web", "taskDefinition": "web", "desiredCount": count,
        "launchType": "FARGATE", "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}, **extra})
    return Service.objects.get(account=account, name="web")


def run_task(account, **extra):
    arn = frontend.call(account, "RunTask", {"cluster": "demo", "taskDefinition": "web", "count": 1,
                                             "launchType": "FARGATE", **NETWORK, **extra})["tasks"][0]["taskArn"]
    return Task.objects.get(task_id=arn.rsplit("/", 1)[1])


def on(instance_name):
    return [{"type": "memberOf", "expression": f"attribute:fargatelab.instance-name == {instance_name}"}]


def running(**filters):
    return list(Task.objects.filter(last_status=Task.RUNNING, desired_status=Task.RUNNING, **filters))


def wait_running(count, message, timeout=90, **filters):
    return wait_until(lambda: len(running(**filters)) == count and running(**filters), timeout, message=message)


def test_killing_one_task_of_every_service_is_healed_and_told_to_its_owners(chaos_settings, control_plane, demo_image):
    carol, dave, erin = student("carol", 201), student("dave", 202), student("erin", 203)
    for account in (carol, dave, erin):
        web(account, demo_image)
    service(carol, 2)
    service(dave, 1)
    alone = run_task(erin)
    wait_running(4, "every task to run")
    before = {t.pk for t in running()}

    killed = chaos.kill_one_task_per_service()

    assert sorted(t.account_id for t in killed) == [carol.pk, dave.pk]
    for task in killed:
        wait_until(lambda t=task: Task.objects.get(pk=t.pk).last_status == Task.STOPPED, 60,
                   message=f"killed task {task.task_id} to be reported STOPPED")
        assert Task.objects.get(pk=task.pk).containers.get().exit_code == 137
    wait_running(2, "carol's service to be whole again", account=carol)
    wait_running(1, "dave's service to be whole again", account=dave)
    assert {t.pk for t in running()} - before  # replacements, not the killed ones
    assert Task.objects.get(pk=alone.pk).last_status == Task.RUNNING  # a task of no service is left alone
    told = set(Announcement.objects.filter(kind="kill").values_list("account_id", flat=True))
    assert told == {carol.pk, dave.pk}
    assert "killed task" in Announcement.objects.filter(account=carol).get().message


def test_draining_an_instance_moves_service_tasks_within_their_limits(chaos_settings, control_plane, demo_image):
    carol = student("carol", 211)
    web(carol, demo_image)
    web_service = service(carol, 2, placementStrategy=[{"type": "spread", "field": "instanceId"}])
    standalone = run_task(carol, placementConstraints=on("fleet-1"))
    wait_running(3, "the service's and the standalone task to run")
    drained = ContainerInstance.objects.get(name="fleet-1")
    moving = [t for t in running(service=web_service) if t.container_instance_id == drained.pk]
    assert len(moving) == 1  # spread put one service task on each instance

    chaos.drain_instance(drained)

    assert ContainerInstance.objects.get(pk=drained.pk).status == ContainerInstance.DRAINING
    gone = wait_until(lambda: Task.objects.filter(pk=moving[0].pk, last_status=Task.STOPPED).first(), 90,
                      message="the service task on the draining instance to be replaced and stopped")
    assert gone.stop_code == "ServiceSchedulerInitiated"
    now = wait_running(2, "the service to run 2 tasks again", service=web_service)
    assert all(t.container_instance_id != drained.pk for t in now)
    # The replacement started before the drained task stopped (minimum healthy 100 %).
    replacement = min((t for t in now if t.pk != moving[0].pk), key=lambda t: t.started_at)
    assert replacement.started_at < gone.stopped_at
    assert Task.objects.get(pk=standalone.pk).last_status == Task.RUNNING  # standalone tasks run on
    with pytest.raises(chaos.ChaosError, match="not ACTIVE"):
        chaos.drain_instance(ContainerInstance.objects.get(pk=drained.pk))
    assert Announcement.objects.filter(account=carol, kind="drain").exists()


def test_a_disconnected_agent_leaves_tasks_running_and_reconciles_when_it_returns(
        chaos_settings, control_plane, demo_image, lab_id):
    client = docker.from_env()
    carol = student("carol", 221)
    web(carol, demo_image)
    web_service = service(carol, 1, placementConstraints=on("fleet-1"))
    task = wait_running(1, "the service's task to run on fleet-1", service=web_service)[0]
    instance = ContainerInstance.objects.get(name="fleet-1")
    container = client.containers.get(task.containers.get().docker_id)

    chaos.disconnect_agent(instance, 8)

    assert ContainerInstance.objects.get(pk=instance.pk).agent_connected is False
    container.kill()  # what happens meanwhile, nobody reports
    wait_until(lambda: client.containers.get(container.id).status == "exited", 30, message="the container to exit")
    elsewhere = run_task(carol)  # placement passes over the disconnected instance
    wait_until(lambda: Task.objects.get(pk=elsewhere.pk).last_status == Task.RUNNING, 60,
               message="a new task to run on another instance")
    assert Task.objects.get(pk=elsewhere.pk).container_instance_id != instance.pk
    assert Task.objects.get(pk=task.pk).last_status == Task.RUNNING  # still as last reported
    assert ContainerInstance.objects.get(pk=instance.pk).agent_connected is False

    wait_until(lambda: ContainerInstance.objects.get(pk=instance.pk).agent_connected, 60,
               message="the agent to reconnect")
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == Task.STOPPED, 60,
               message="the task that died meanwhile to be reported STOPPED")
    replacement = wait_running(1, "the service's replacement to run", service=web_service)[0]
    assert replacement.pk != task.pk and replacement.container_instance_id == instance.pk
    with pytest.raises(chaos.ChaosError, match="1 to 600 seconds"):
        chaos.disconnect_agent(instance, 0)


def test_filling_the_fleet_makes_new_tasks_wait_until_an_instance_is_launched(chaos_settings, control_plane,
                                                                              demo_image):
    carol = student("carol", 231)
    web(carol, demo_image)

    fillers = chaos.fill_capacity()

    assert len(fillers) == 2  # one per instance of the warm pool
    wait_running(2, "the fillers to run", account__account_id=chaos.CHAOS_ACCOUNT_ID)
    assert Announcement.objects.filter(account=carol, kind="fill").exists()
    waiting = run_task(carol)
    wait_until(lambda: Task.objects.get(pk=waiting.pk).pending_reason.startswith("No Fargate capacity")
               or Task.objects.get(pk=waiting.pk).container_instance_id, 60, message="the task to wait for room")
    placed = wait_until(lambda: Task.objects.filter(pk=waiting.pk, last_status=Task.RUNNING).first(), 90,
                        message="the capacity manager to launch an instance and the task to run there")
    assert placed.container_instance.name == "fleet-3"

    assert chaos.release_capacity() == 2
    wait_until(lambda: not running(account__account_id=chaos.CHAOS_ACCOUNT_ID), 60, message="the fillers to stop")
