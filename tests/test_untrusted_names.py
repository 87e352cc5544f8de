"""Finding 4 of issue 10: a name with a trailing newline (or any malformed row) must not take
the map down. The APIs refuse such names (full matches, never ``$``), and a row that reaches
the database anyway (written before validation was strict, or by hand) degrades that row only:
the map, the list pages and their WebSocket keep working for everyone, and the owner can still
delete it through the API."""
import asyncio
from concurrent.futures import ThreadPoolExecutor

import botocore.exceptions
import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application
from dashboard import fragments
from orchestrator.models import Account, Cluster, ContainerInstance, Repository, Task, TaskDefinition
from tests.support.browser import wait_live


def code_of(call, **kwargs):
    """The AWS error code ``call(**kwargs)`` raises."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"]


def bad_rows():
    """Rows no API accepts, written straight to the database as an attacker's leftovers would be."""
    account = Account.default()
    Repository.objects.create(account=account, name="x\n")
    Repository.objects.create(account=account, name="good-repo")
    Cluster.objects.create(account=account, name="")
    Cluster.objects.create(account=account, name="good-cluster")
    bad = TaskDefinition.objects.create(account=account, family="a/b", revision=1, cpu=256, memory=512, body={})
    good = TaskDefinition.objects.create(account=account, family="good-family", revision=1, cpu=256, memory=512, body={})
    cluster = Cluster.objects.get(name="good-cluster")
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192)
    for task_id, td in (("", bad), ("goodtask0001", good)):
        Task.objects.create(account=account, cluster=cluster, task_definition=td, container_instance=instance,
                            task_id=task_id, cpu=256, memory=512, last_status=Task.RUNNING)


@pytest.mark.parametrize("name", ["x\n", "web\n", "a\r\n"])
def test_it_refuses_names_with_a_trailing_newline(ecr, elbv2, ecs, name):
    assert code_of(ecr.create_repository, repositoryName=name) == "InvalidParameterException"
    assert code_of(ecs.create_cluster, clusterName=name) == "InvalidParameterException"
    assert code_of(ecs.register_task_definition, family=name, containerDefinitions=[
        {"name": "web", "image": "busybox", "memory": 64}]) in ("ClientException", "InvalidParameterException")
    assert code_of(elbv2.create_target_group, Name=name, Protocol="HTTP", Port=80, VpcId="vpc-fargatelab",
                   TargetType="ip") == "ValidationError"
    assert not Repository.objects.exists() and not Cluster.objects.exists() and not TaskDefinition.objects.exists()


def test_it_refuses_arns_with_a_trailing_newline(ecs):
    ecs.create_cluster(clusterName="demo")
    arn = "arn:aws:ecs:us-east-1:000000000000:cluster/demo"
    assert ecs.describe_clusters(clusters=[arn])["clusters"][0]["clusterName"] == "demo"
    assert ecs.describe_clusters(clusters=[arn + "\n"])["clusters"] == []


def test_the_owner_deletes_a_repository_named_with_a_newline(ecr, lab_registry):
    Repository.objects.create(account=Account.default(), name="x\n")

    assert ecr.delete_repository(repositoryName="x\n")["repository"]["repositoryName"] == "x\n"
    assert not Repository.objects.exists()


def test_the_pages_show_everyone_else_despite_bad_rows(alice_client):
    bad_rows()

    pages = (("/", "goodtask"), ("/clusters/", "good-cluster"), ("/task-definitions/", "good-family"),
             ("/instances/", "goodtask"), ("/clusters/good-cluster/", "goodtask"))
    for url, good in pages:
        response = alice_client.get(url)
        assert response.status_code == 200, url
        assert good in response.content.decode(), url
        assert "could not be shown" in response.content.decode(), url


def test_a_fragment_that_fails_degrades_to_a_placeholder(db, monkeypatch):
    def broken(key):
        raise RuntimeError("a bad row")

    monkeypatch.setitem(fragments._registry, "card-ecr", fragments.Fragment("card-ecr", "x.html", broken))
    html = fragments.render("card-ecr", oob=True)
    assert 'id="card-ecr"' in html and 'hx-swap-oob="true"' in html and "could not be shown" in html


@pytest.mark.django_db(transaction=True)
def test_the_map_websocket_lives_on_with_bad_rows(alice):
    bad_rows()
    client = Client()
    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)]
        communicator = WebsocketCommunicator(application, "/ws/map/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        seen = ""
        while 'id="card-agents"' not in seen:
            seen += await communicator.receive_from(timeout=5)
        assert "goodtask" in seen and "could not be shown" in seen and "good-repo" in seen
        await communicator.disconnect()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, asyncio.wait_for(scenario(), timeout=20)).result()


@pytest.mark.browser
def test_the_map_stays_up_and_live_in_a_browser(page, live_lab_server):
    bad_rows()

    page.goto(live_lab_server.url + "/")
    wait_live(page)
    assert page.locator("tr[data-repository=good-repo]").count() == 1
    assert page.locator("#card-agents a.chip").count() == 1
    assert page.locator("#card-agents .unshowable").count() == 1
    page.goto(live_lab_server.url + "/clusters/")
    wait_live(page)
    assert page.get_by_role("link", name="good-cluster").count() == 1
    assert page.locator("[id^=cluster-list] .unshowable").count() == 1


def test_a_bad_row_is_logged_once_not_on_every_render(alice_client, caplog, monkeypatch):
    monkeypatch.setattr(fragments, "_logged", set())
    bad_rows()

    alice_client.get("/clusters/")
    first = [r for r in caplog.records if r.levelname == "ERROR" and "guarded" in r.getMessage()]
    alice_client.get("/clusters/")
    second = [r for r in caplog.records if r.levelname == "ERROR" and "guarded" in r.getMessage()]
    assert len(first) == 1 and first[0].exc_info is not None
    assert second == first
