"""A cluster's and a service's tasks page by page, and pages whose queries do not grow with
their rows (issue 13's scale hygiene)."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from playwright.sync_api import expect

from orchestrator.models import Account, Cluster, ContainerInstance, Service, Task, TaskContainer, TaskDefinition


def _fill(account, cluster, td, n, *, service=None, stopped=0, instance=None):
    """``n`` RUNNING tasks (and ``stopped`` STOPPED ones), each with a container, oldest first."""
    now = timezone.now()
    tasks = Task.objects.bulk_create([
        Task(account=account, cluster=cluster, task_definition=td, service=service, cpu=256, memory=512,
             container_instance=instance, created_at=now - timedelta(seconds=n + stopped - i),
             last_status=Task.STOPPED if i < stopped else Task.RUNNING,
             desired_status=Task.STOPPED if i < stopped else Task.RUNNING)
        for i in range(n + stopped)
    ])
    TaskContainer.objects.bulk_create([TaskContainer(task=t, name="web", last_status=t.last_status) for t in tasks])
    return tasks


@pytest.fixture
def world(db, django_user_model):
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    service = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=td)
    client = Client()
    client.force_login(django_user_model.objects.create_user("alice", password="pw"))
    return {"account": account, "cluster": cluster, "td": td, "service": service, "client": client}


def _rows(html):
    return html.count('<tr id="task-row-')


def test_the_task_list_pages_through_every_task_the_live_ones_first(world):
    _fill(world["account"], world["cluster"], world["td"], 220, stopped=10)
    client = world["client"]
    first = client.get("/clusters/demo/tasks/").content.decode()
    assert _rows(first) == 100 and "230 tasks, page 1 of 3" in first
    last = client.get("/clusters/demo/tasks/?page=3").content.decode()
    assert _rows(last) == 30
    assert last.count('data-status="STOPPED"') == 10  # the stopped ones come last
    stopped = client.get("/clusters/demo/tasks/?status=stopped").content.decode()
    assert _rows(stopped) == 10 and 'data-status="RUNNING"' not in stopped
    assert "220 tasks" in client.get("/clusters/demo/tasks/?status=live").content.decode()
    # A malformed page or filter is the nearest page and every task, not an error.
    assert _rows(client.get("/clusters/demo/tasks/?page=x&status=%3Cb%3E").content.decode()) == 100
    assert _rows(client.get("/clusters/demo/tasks/?page=99").content.decode()) == 30


def test_a_services_task_list_holds_only_its_tasks(world):
    _fill(world["account"], world["cluster"], world["td"], 7, service=world["service"])
    _fill(world["account"], world["cluster"], world["td"], 5)
    html = world["client"].get(f"/services/{world['service'].pk}/tasks/").content.decode()
    assert _rows(html) == 7 and "7 tasks" in html


def test_another_accounts_task_list_is_not_found(world):
    bob = Account.objects.create(account_id="222222222222", name="bob")
    bobs = Cluster.objects.create(account=bob, name="bobs")
    td = TaskDefinition.objects.create(account=bob, family="web", revision=1, cpu=256, memory=512, body={})
    service = Service.objects.create(account=bob, cluster=bobs, name="web", task_definition=td)
    _fill(bob, bobs, td, 3, service=service)
    assert world["client"].get("/clusters/bobs/tasks/").status_code == 404
    assert world["client"].get(f"/services/{service.pk}/tasks/").status_code == 404


def _queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", [
    "/", "/clusters/", "/clusters/demo/", "/clusters/demo/tasks/", "/service/", "/service/tasks/",
    "/instances/", "/instances/fleet-1/", "/task-definitions/",
])
def test_no_page_makes_a_query_per_row(world, url):
    """The same page with 5 and with 120 tasks (on one instance, in one service) makes as many
    queries: every list is fetched in a fixed number of queries, whatever its length."""
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=65536, memory_registered=131072)
    url = url.replace("/service/", f"/services/{world['service'].pk}/")
    counts = []
    for n in (5, 115):
        _fill(world["account"], world["cluster"], world["td"], n, service=world["service"], instance=instance)
        counts.append(_queries(world["client"], url))
    assert counts[0] == counts[1], f"{url}: {counts[0]} queries with 5 tasks, {counts[1]} with 120"


@pytest.mark.browser
def test_a_student_follows_the_live_table_to_every_task_page_by_page(page, live_lab_server):
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    _fill(account, cluster, td, 130)
    page.goto(f"{live_lab_server.url}/clusters/demo/")
    page.get_by_role("link", name="all of them, page by page").click()
    expect(page.locator("[data-task-count]")).to_have_text("130 tasks, page 1 of 2.")
    expect(page.locator("table.tasks tbody tr")).to_have_count(100)
    page.get_by_role("link", name="Older →").click()
    expect(page.locator("table.tasks tbody tr")).to_have_count(30)
    page.get_by_role("link", name="← Newer").click()
    expect(page.locator("table.tasks tbody tr")).to_have_count(100)
