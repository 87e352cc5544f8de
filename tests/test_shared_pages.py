"""Shared pages name a student's own objects only, and count the rest (issue 10, finding 11).

The probe, logged in as one student, read other students' access key ids, load balancer
names and task ids on the map's cards, the instance pages and the activity they show. Here
alice looks at every shared page, in a real browser and through the WebSocket pushes, while
bob's account has a service, a task, a load balancer and API calls; the teacher (staff) still
sees everything.
"""

import pytest

from tests.support.common import run_scenario
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from config.asgi import application
from dashboard import broadcast
from orchestrator import activity
from orchestrator.models import (
    AccessKey, Account, Cluster, ContainerInstance, LoadBalancer, Service, Target, TargetGroup, Task, TaskDefinition,
)
from tests.support.browser import PASSWORD

BOB_KEY = "AKIABOBBOBBOBBOBBOB1"
ALICE_KEY = "AKIAALICEALICEALICE1"
BOB_TASK = "b0b0b0b0" + "0" * 24
ALICE_TASK = "a11ce000" + "0" * 24


def objects_of(name, account_id, key_id, task_id, instance):
    """An account with a key, a cluster, a service, a running task, a load balancer and a target."""
    account = Account.objects.create(account_id=account_id, name=name)
    AccessKey.objects.create(account=account, access_key_id=key_id, secret_access_key="s")
    cluster = Cluster.objects.create(account=account, name=f"{name}s-cluster")
    td = TaskDefinition.objects.create(account=account, family=f"{name}s-family", revision=1, cpu=256, memory=512, body={})
    service = Service.objects.create(account=account, cluster=cluster, name=f"{name}s-web", task_definition=td,
                                     desired_count=1)
    task = Task.objects.create(account=account, cluster=cluster, task_definition=td, service=service, task_id=task_id,
                               container_instance=instance, cpu=256, memory=512, last_status=Task.RUNNING,
                               started_at=timezone.now(), private_ip="10.9.0.2")
    LoadBalancer.objects.create(account=account, name=f"{name}s-lb")
    tg = TargetGroup.objects.create(account=account, name=f"{name}s-tg", port=80, target_type="ip")
    Target.objects.create(target_group=tg, target_id="10.9.0.2", port=80, address="127.0.0.1", connect_port=1, task=task)
    activity.record("frontend", "RunTask", task.arn, f"RunTask → 200 {task_id}", caller=key_id, status_code=200)
    for component in ("agent", "capacity_manager", "cluster_manager", "docker", "load_balancer"):
        activity.record(component, "step", task.arn, f"{component} did something to task {task_id} of {name}s-web")
    broadcast.note_write("task", task.pk)
    broadcast.note_write("service", service.pk)
    return account


@pytest.fixture
def classroom(transactional_db, django_user_model):
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192)
    alice_account = objects_of("alice", "111111111111", ALICE_KEY, ALICE_TASK, instance)
    objects_of("bob", "222222222222", BOB_KEY, BOB_TASK, instance)
    return {"instance": instance, "alice_account": alice_account}


BOBS = (BOB_KEY, BOB_TASK[:8], "bobs-lb", "bobs-tg", "bobs-web", "bobs-cluster", "bobs-family")
ALICES = (ALICE_KEY, ALICE_TASK[:8], "alices-lb", "alices-tg", "alices-web")


def assert_only_alices(html):
    for secret in BOBS:
        assert secret not in html, secret
    for own in ALICES:
        assert own in html, own


@pytest.mark.browser
def test_a_student_sees_only_her_own_ids_on_the_shared_pages(page, live_lab_server, dashboard_user, classroom, browser,
                                                             django_user_model):
    classroom["alice_account"].members.add(dashboard_user)
    url = live_lab_server.url
    page.goto(url + "/")
    cards = page.locator(".cards, .card").first
    cards.wait_for()
    map_html = page.content()
    assert_only_alices(map_html)
    assert "1 load balancer of other accounts" in page.inner_text("#card-alb")
    assert "1 service of other accounts" in page.inner_text("#card-cluster-manager")
    assert "another account" in page.inner_text("#card-frontend")

    page.goto(url + "/instances/")
    instances = page.content()
    assert ALICE_TASK[:8] in instances and BOB_TASK[:8] not in instances
    assert "2 tasks in all" in page.inner_text("#instance-list")
    page.goto(url + "/instances/fleet-1/")
    detail = page.inner_text(f"#instance-{classroom['instance'].pk}")
    assert ALICE_TASK[:8] in detail and BOB_TASK[:8] not in detail
    assert "1 task of other accounts" in detail

    django_user_model.objects.create_user("teacher", password=PASSWORD, is_staff=True)
    context = browser.new_context()
    teacher = context.new_page()
    teacher.goto(url + "/accounts/login/")
    teacher.fill("input[name=username]", "teacher")
    teacher.fill("input[name=password]", PASSWORD)
    teacher.click("button[type=submit]")
    teacher.wait_for_url(url + "/")
    seen = teacher.content()
    for everything in BOBS[:5] + ALICES:
        assert everything in seen, everything
    teacher.goto(url + "/instances/fleet-1/")
    assert BOB_TASK[:8] in teacher.content()
    context.close()


def run(coroutine):
    return run_scenario(coroutine, timeout=30)


def test_the_websocket_pushes_name_only_her_own_objects(classroom, django_user_model):
    alice = django_user_model.objects.create_user("alice", password="pw")
    classroom["alice_account"].members.add(alice)
    client = Client()
    client.force_login(alice)
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"),
               (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]
    bob = Account.objects.get(name="bob")
    bobs_task = Task.objects.get(task_id=BOB_TASK)

    def bob_acts():
        activity.record("frontend", "StopTask", bobs_task.arn, f"StopTask → 200 {BOB_TASK}", caller=BOB_KEY, status_code=200)
        activity.record("agent", "stop", bobs_task.arn, f"stopping task {BOB_TASK}")
        LoadBalancer.objects.create(account=bob, name="bobs-second-lb")
        from orchestrator import bus
        bus.publish("load_balancer", 0)
        bus.publish("task", bobs_task.pk)

    async def scenario():
        from asgiref.sync import sync_to_async

        seen = []
        for path in ("/ws/map/", "/ws/instances/", f"/ws/instance/{classroom['instance'].pk}/"):
            communicator = WebsocketCommunicator(application, path, headers=headers)
            connected, _ = await communicator.connect(timeout=5)
            assert connected, path
            seen.append(await communicator.receive_from(timeout=5))
            if path == "/ws/map/":
                await sync_to_async(bob_acts)()
                while True:  # the pushes bob's changes cause, until the ALB card counts his second one
                    html = await communicator.receive_from(timeout=10)
                    seen.append(html)
                    if "2 load balancers of other accounts" in html:
                        break
            await communicator.disconnect()
        return "".join(seen)

    html = run(scenario())
    for secret in BOBS + ("bobs-second-lb",):
        assert secret not in html, secret
    assert ALICE_TASK[:8] in html and "alices-lb" in html
