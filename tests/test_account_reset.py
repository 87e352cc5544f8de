"""Resetting a student's account (issue 14, the teacher's view): every object and container and
network of theirs goes, their labs start over, and nothing of another student's changes. On the
real Docker engine, with the control plane running; the engine is read with the Docker SDK."""
import docker
import pytest
from django.contrib.auth import get_user_model

from classroom.models import LabProgress, StepTick
from orchestrator import frontend
from orchestrator.account_reset import owned_models, reset_account
from orchestrator.docker_engine import LABEL_ACCOUNT, LABEL_TASK_ARN
from orchestrator.elbv2 import operations as elbv2
from orchestrator.models import AccessKey, Account, Repository, Task
from tests.support.common import free_port, wait_until
from tests.support.api import NETWORK

pytestmark = pytest.mark.docker


def student(name, number):
    """A student user with an account and a key of their own."""
    user = get_user_model().objects.create_user(name, password="pw")
    account = Account.objects.create(account_id=f"{number:012d}", name=name)
    account.members.add(user)
    AccessKey.objects.create(account=account, access_key_id=f"AKIA{name.upper():0>16}", secret_access_key="s")
    return user, account


def build(account, image):
    """What a student of lab 1 has: a cluster, a task definition, a service behind a load
    balancer (target group, listener), a task of RunTask, a repository; returns the listener port."""
    frontend.call(account, "CreateCluster", {"clusterName": "demo"})
    frontend.call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": image, "essential": True,
                                                   "portMappings": [{"containerPort": 80}]}]})
    lb = elbv2.create_load_balancer(account, {"Name": "demo-lb", "Subnets": ["subnet-a"]})["LoadBalancers"][0]
    tg = elbv2.create_target_group(account, {"Name": "demo-tg", "Protocol": "HTTP", "Port": 80, "TargetType": "ip",
                                             "VpcId": "vpc-lab"})["TargetGroups"][0]
    port = free_port()
    elbv2.create_listener(account, {"LoadBalancerArn": lb["LoadBalancerArn"], "Protocol": "HTTP", "Port": port,
                                    "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]})
    frontend.call(account, "CreateService", {
        "cluster": "demo", "serviceName": "web", "taskDefinition": "web", "desiredCount": 2,
        "launchType": "FARGATE", "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-a"]}},
        "loadBalancers": [{"targetGroupArn": tg["TargetGroupArn"], "containerName": "web", "containerPort": 80}]})
    frontend.call(account, "RunTask", {"cluster": "demo", "taskDefinition": "web", "count": 1,
                                       "launchType": "FARGATE", **NETWORK})
    Repository.objects.create(account=account, name=f"{account.name}/web")
    return port


def containers_of(client, lab_id, account):
    """The account's task containers on the engine (read with the SDK, not the lab's adapter)."""
    return [c for c in client.containers.list(all=True, filters={"label": f"fargatelab.lab={lab_id}"},
                                              ignore_removed=True)
            if f":{account.account_id}:task/" in c.labels.get(LABEL_TASK_ARN, "")]


def networks_of(client, lab_id, account):
    return client.networks.list(filters={"label": [f"fargatelab.lab={lab_id}", f"{LABEL_ACCOUNT}={account.account_id}"]})


def test_resetting_a_student_removes_all_of_theirs_and_nothing_of_anyone_elses(control_plane, demo_image, lab_id):
    client = docker.from_env()
    carol, carols = student("carol", 101)
    dave, daves = student("dave", 102)
    build(carols, demo_image)
    build(daves, demo_image)
    for account in (carols, daves):
        wait_until(lambda a=account: len([c for c in containers_of(client, lab_id, a) if c.status == "running"]) == 3,
                   90, message=f"{account.name}'s 3 containers to run")
    run = LabProgress.objects.create(user=carol, account=carols, lab="image-to-url", answers={"quiz": 1})
    StepTick.objects.create(progress=run, step="cluster")
    daves_containers = {c.id for c in containers_of(client, lab_id, daves)}
    daves_rows = {model._meta.label: model.objects.filter(account=daves).count() for model in owned_models()}

    done = reset_account(carols, caller="test")

    assert done["tasks"] == 3 and done["labs"] == 1
    wait_until(lambda: not containers_of(client, lab_id, carols), 30, message="carol's containers to be gone")
    assert not networks_of(client, lab_id, carols)
    for model in owned_models():
        assert not model.objects.filter(account=carols).exists(), model._meta.label
    run.refresh_from_db()
    assert not run.ticks.exists() and run.answers == {}
    # What stays of carol: her login, her key, her account (and its quotas).
    assert Account.of_user(carol) == carols and carols.access_keys.filter(active=True).exists()
    # Nothing of dave's moved: his containers run on, his rows are all there, his network too.
    assert {c.id for c in containers_of(client, lab_id, daves) if c.status == "running"} == daves_containers
    assert {model._meta.label: model.objects.filter(account=daves).count() for model in owned_models()} == daves_rows
    assert networks_of(client, lab_id, daves)
    assert Task.objects.filter(account=daves, last_status=Task.RUNNING).count() == 3
    # carol starts afresh with the same names, as a new student would.
    build(carols, demo_image)
    wait_until(lambda: len([c for c in containers_of(client, lab_id, carols) if c.status == "running"]) == 3,
               90, message="carol's new containers to run")
