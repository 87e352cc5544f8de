"""The map as a diagram: the mapping from activities to arrows, the boxes' figures, what the
diagram may name for whom, and the events the map page is pushed."""
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import diagram, state
from orchestrator import activity
from orchestrator.models import Account, Activity, Cluster, ContainerInstance, Task, TaskDefinition
from tests.test_consumers import connect, receive_until, run, write


@pytest.mark.parametrize("component, action, status, source, target", [
    ("frontend", "RunTask", 200, "frontend", "statedb"),
    ("frontend", "CreateService", 200, "frontend", "statedb"),
    ("frontend", "DescribeTasks", 200, "clients", "frontend"),
    ("frontend", "RunTask", 400, "clients", "frontend"),
    ("cluster_manager", "start-task", None, "cluster_manager", "capacity_manager"),
    ("capacity_manager", "place", None, "capacity_manager", "agent"),
    ("agent", "create", None, "agent", "docker"),
    ("agent", "start", None, "agent", "docker"),
    ("agent", "died", None, "docker", "agent"),
    ("agent", "pull-progress", None, "registry", "agent"),
    ("agent", "running", None, "agent", "statedb"),
    ("docker", "die", None, "docker", "agent"),
    ("load_balancer", "api.CreateLoadBalancer", 200, "clients", "load_balancer"),
    # The steps a trace records besides the activities.
    ("state_database", "write", None, "frontend", "statedb"),
    ("cluster_manager", "reconcile", None, "statedb", "cluster_manager"),
    ("agent", "relist", None, "docker", "agent"),
])
def test_it_maps_each_activity_to_the_arrow_it_travels(component, action, status, source, target):
    travel = diagram.travel(component, action, status)
    assert (travel.source, travel.target) == (source, target)
    assert travel.lit == [source, target]


def test_it_lights_a_component_without_an_arrow_and_ignores_an_unknown_one():
    assert diagram.travel("capacity_manager", "no-capacity").lit == ["capacity_manager"]
    assert diagram.travel("somewhere", "else").lit == []


def test_every_pulse_of_the_table_has_an_arrow_to_run_along():
    for component, action, source, target, _ in diagram.FLOW:
        assert source in diagram.NODES, (component, action)
        if target:
            assert diagram.arrow_id(source, target) in diagram.ARROW_IDS, (component, action, source, target)


def test_the_browser_gets_the_same_table_with_patterns_it_can_compile():
    table = diagram.flow_table()
    assert len(table["rows"]) == len(diagram.FLOW)
    for row in table["rows"]:
        assert row[1].startswith("^") and row[1].endswith("$")
        assert "(?" not in row[1]  # no Python-only syntax
    assert table["nodes"]["statedb"]["kubernetes"] == "etcd"


def test_every_box_lies_inside_the_drawing():
    for node in diagram.NODES.values():
        assert 0 <= node.x and node.x + node.w <= diagram.WIDTH, node.id
        assert 0 <= node.y and node.y + node.h <= diagram.HEIGHT, node.id


@pytest.fixture
def two_accounts(db, django_user_model):
    """Alice (a student with her own account) and bob's account, each with a task on fleet-1."""
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192)
    alice = django_user_model.objects.create_user("alice-student", password="pw")
    tasks = {}
    for name, account_id in (("alice", "111111111111"), ("bob", "222222222222")):
        account = Account.objects.create(account_id=account_id, name=name)
        cluster = Cluster.objects.create(account=account, name="demo")
        td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
        tasks[name] = Task.objects.create(
            account=account, cluster=cluster, task_definition=td, container_instance=instance,
            cpu=256, memory=512, last_status=Task.RUNNING, started_at=timezone.now(),
        )
    Account.objects.get(name="alice").members.add(alice)
    return {"alice": alice, "tasks": tasks, "instance": instance}


def test_a_student_sees_her_own_task_chips_and_only_anonymous_ones_of_others(two_accounts):
    client = Client()
    client.force_login(two_accounts["alice"])
    html = client.get("/").content.decode()
    fleet = html[html.index('id="box-fleet"'):]
    fleet = fleet[:fleet.index("</ul>\n</div>")]
    assert two_accounts["tasks"]["alice"].task_id in fleet
    assert two_accounts["tasks"]["bob"].task_id not in fleet
    assert "a task of another account" in fleet


def test_staff_see_every_task_chip(two_accounts, admin_client):
    html = admin_client.get("/").content.decode()
    for task in two_accounts["tasks"].values():
        assert f'data-task="{task.task_id}"' in html


def test_an_event_names_only_the_viewers_own_objects(two_accounts):
    alice_pk = Account.objects.get(name="alice").pk
    rows = [activity.record("capacity_manager", "place", task.arn, f"placed task {task.task_id}")
            for task in two_accounts["tasks"].values()]
    own, other = state.events_of([row.pk for row in rows], alice_pk)
    assert own["object"] == two_accounts["tasks"]["alice"].task_id[:8]
    assert other["object"] == "" and other["others"]
    assert [e["object"] for e in state.events_of([row.pk for row in rows], state.ALL)] == [
        t.task_id[:8] for t in two_accounts["tasks"].values()]


def test_the_map_shows_every_component_with_its_kubernetes_name(admin_client, db):
    html = admin_client.get("/").content.decode()
    for node in diagram.NODES.values():
        assert f'data-component="{node.id}"' in html
        assert node.kubernetes in html
    for arrow in diagram.ARROWS:
        assert f'id="{arrow.id}"' in html


def _tasks(count, instance):
    account = Account.default()
    cluster, _ = Cluster.objects.get_or_create(account=account, name="big")
    td, _ = TaskDefinition.objects.get_or_create(account=account, family="big", revision=1,
                                                 defaults={"cpu": 256, "memory": 512, "body": {}})
    Task.objects.bulk_create([
        Task(account=account, cluster=cluster, task_definition=td, container_instance=instance, cpu=256, memory=512,
             last_status=Task.RUNNING) for _ in range(count)])
    Activity.objects.bulk_create([Activity(component="agent", action="start", object_arn="") for _ in range(count)])


def test_the_map_page_makes_as_many_queries_for_many_tasks_as_for_few(admin_client, db):
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192)
    _tasks(3, instance)
    admin_client.get("/")
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get("/").status_code == 200
    _tasks(200, instance)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get("/").status_code == 200
    assert len(many) == len(few)


@pytest.mark.django_db(transaction=True)
def test_it_pushes_each_recorded_activity_as_an_event_of_the_map(admin_user):
    client = Client()
    client.force_login(admin_user)
    session = client.cookies["sessionid"].value

    def run_task():
        activity.record("frontend", "RunTask", "", "RunTask → 200", caller="test", status_code=200, latency_ms=3.0)

    async def scenario():
        communicator, connected, _ = await connect("/ws/map/", session)
        assert connected
        first = await communicator.receive_from(timeout=5)
        assert 'id="box-frontend"' in first and 'id="map-events"' not in first
        await write(run_task)
        html = await receive_until(communicator, 'id="map-events"')
        item = re.search(r'<li data-seq="\d+"[^>]*>', html).group(0)
        assert 'data-source="frontend"' in item and 'data-target="statedb"' in item
        assert 'data-lit="frontend statedb"' in item
        assert html.startswith('<ol id="map-events" hx-swap-oob="beforeend">')  # alone: the animation starts first
        html = await receive_until(communicator, 'id="box-frontend"')
        assert 'id="box-frontend" class="node" data-component="frontend"' in html
        assert 'hx-swap-oob="innerHTML"' in html  # the box keeps its place (and its lit state)
        await communicator.disconnect()

    run(scenario())


@pytest.mark.django_db(transaction=True)
def test_the_state_database_box_does_not_name_another_accounts_last_write(two_accounts):
    from orchestrator import bus

    from dashboard import broadcast, fragments

    bob_task = two_accounts["tasks"]["bob"]
    broadcast.describe_writes()
    bus.publish_now("task", bob_task.pk)
    alice = fragments.Viewed(None, Account.objects.get(name="alice").pk)
    assert "last write: a task" in fragments.render("box-statedb", alice)
    assert bob_task.task_id[:8] not in fragments.render("box-statedb", alice)
