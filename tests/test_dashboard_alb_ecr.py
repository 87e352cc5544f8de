"""The dashboard's ALB and ECR: the map's cards (live), a service's URL, a task's pull and targets."""
import pytest
from django.utils import timezone

from orchestrator import activity, bus
from orchestrator.models import (
    Account, Cluster, Listener, LoadBalancer, Repository, Service, Target, TargetGroup, Task, TaskContainer,
    TaskDefinition,
)
from tests.support.common import free_port
from tests.test_consumers import connect, receive_until, run, write


@pytest.fixture
def web(db):
    """A service "web" behind listener :8080 of "web-lb", with one RUNNING task as a healthy target."""
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    tg = TargetGroup.objects.create(account=account, name="web-tg", port=80, target_type="ip")
    lb = LoadBalancer.objects.create(account=account, name="web-lb")
    listener = Listener.objects.create(load_balancer=lb, port=8080, default_actions=[
        {"Type": "forward", "TargetGroupArn": tg.arn}])
    listener.target_groups.add(tg)
    service = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=td, desired_count=1,
                                     load_balancers=[{"targetGroupArn": tg.arn, "containerName": "web", "containerPort": 80}])
    now = timezone.now()
    task = Task.objects.create(account=account, cluster=cluster, task_definition=td, service=service, cpu=256,
                               memory=512, last_status=Task.RUNNING, started_at=now, pull_started_at=now,
                               pull_stopped_at=now, private_ip="172.18.0.5")
    TaskContainer.objects.create(task=task, name="web", image="127.0.0.1:5000/web:v1", last_status="RUNNING")
    target = Target.objects.create(target_group=tg, target_id="172.18.0.5", port=80, address="127.0.0.1",
                                   connect_port=32801, task=task, state=Target.HEALTHY, reason="")
    return {"lb": lb, "listener": listener, "tg": tg, "service": service, "task": task, "target": target}


def test_it_shows_listener_urls_and_target_health_on_the_map(alice_client, web):
    page = alice_client.get("/").content.decode()

    url = f"http://web-lb-{web['lb'].dns_number}.us-east-1.elb.localhost:8080/"
    assert web["listener"].url == url
    assert f'href="{url}"' in page
    assert 'data-component="load_balancer"' in page and 'data-component="registry"' in page
    assert 'data-target="172.18.0.5:80"' in page
    assert f'href="/tasks/{web["task"].task_id}/"' in page
    assert "healthy" in page


def test_it_lists_repositories_with_their_tags_and_the_registry_address(alice_client, lab_registry):
    Repository.objects.create(account=Account.default(), name="team/web")

    page = alice_client.get("/").content.decode()

    assert f"docker login -u AWS --password-stdin 127.0.0.1:{lab_registry.port}<" in page
    assert f"docker push 127.0.0.1:{lab_registry.port}/&lt;account id&gt;/" in page
    assert f"127.0.0.1:{lab_registry.port}/000000000000/team/web" in page
    assert 'data-repository="team/web"' in page


def test_it_says_when_the_registry_does_not_answer(alice_client, db, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGISTRY_PORT": free_port()}
    Repository.objects.create(account=Account.default(), name="web")

    response = alice_client.get("/")

    assert response.status_code == 200
    assert "the registry does not answer" in response.content.decode()


def test_it_shows_a_service_target_group_and_url(alice_client, web):
    page = alice_client.get(f"/services/{web['service'].pk}/").content.decode()

    assert f'class="service-url" href="{web["listener"].url}"' in page
    assert "web-tg" in page and "<strong>1</strong> of 1 targets healthy" in page


def test_it_shows_a_task_pull_progress_and_its_target(alice_client, web):
    task = web["task"]
    activity.record("agent", "pull", task.arn, "pulling 127.0.0.1:5000/web:v1 for task x")
    activity.record("agent", "pull-progress", task.arn, "layer 0123abcd: pull complete (1/1 layers, 1.2 of 1.2 MB)")
    activity.record("agent", "pulled", task.arn, "pulled 127.0.0.1:5000/web:v1: 1/1 layers")

    page = alice_client.get(f"/tasks/{task.task_id}/").content.decode()

    assert "layer 0123abcd: pull complete" in page
    assert page.index("pulling 127.0.0.1:5000/web:v1") < page.index("pulled 127.0.0.1:5000/web:v1")
    assert 'data-field="target_health">healthy<' in page


@pytest.mark.django_db(transaction=True)
def test_it_pushes_the_alb_card_when_a_target_turns_unhealthy(web, alice):
    from django.test import Client

    client = Client()
    client.force_login(alice)
    session = client.cookies["sessionid"].value

    def turn_unhealthy():
        Target.objects.filter(pk=web["target"].pk).update(state=Target.UNHEALTHY)
        bus.publish("target", web["target"].pk)

    async def scenario():
        communicator, connected, _ = await connect("/ws/map/", session)
        assert connected
        first = await communicator.receive_from(timeout=5)
        assert 'id="card-alb"' in first and 'id="card-ecr"' in first
        await write(turn_unhealthy)
        html = await receive_until(communicator, 'id="card-alb"')
        assert 'hx-swap-oob="true"' in html and ">unhealthy<" in html
        assert 'id="card-frontend"' not in html
        await communicator.disconnect()

    run(scenario())
