"""The dashboard's WebSocket consumers: authenticated by the session, push HTML fragments."""
import asyncio
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from config.asgi import application
from dashboard import broadcast, consumers
from orchestrator import activity, bus
from dashboard.broadcast import DatabaseWatch
from orchestrator.models import Account, Cluster, ContainerInstance, Task, TaskDefinition
from tests.support.common import run_scenario
from tests.support.servers import elsewhere

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session(alice):
    """Alice's session cookie, as a browser would send it on the WebSocket handshake."""
    client = Client()
    client.force_login(alice)
    return client.cookies["sessionid"].value


@pytest.fixture
def lab():
    """A cluster with a task definition and one RUNNING task."""
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    task = Task.objects.create(
        account=account, cluster=cluster, task_definition=td, cpu=256, memory=512, last_status=Task.RUNNING
    )
    return {"account": account, "cluster": cluster, "td": td, "task": task}


def run(coroutine, timeout=20):
    """Run one async scenario on a fresh event loop in its own thread (each test gets its own
    broadcaster; a browser test's Playwright loop may already run in this thread)."""
    return run_scenario(coroutine, timeout=timeout)


async def connect(path, session=None):
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def receive_until(communicator, needle, timeout=5.0):
    """Receive messages until one contains ``needle``; returns it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"no message containing {needle!r} within {timeout} s"
        message = await communicator.receive_from(timeout=remaining)
        if needle in message:
            return message


@sync_to_async
def write(func):
    """Run a database write (and its bus publish) off the event loop, as a view or worker would."""
    return func()


def test_it_refuses_an_unauthenticated_socket(lab):
    async def scenario():
        communicator, connected, code = await connect(f"/ws/task/{lab['task'].pk}/")
        assert not connected
        assert code == consumers.CLOSE_UNAUTHENTICATED
        await communicator.disconnect()

    run(scenario())


def test_it_refuses_a_socket_for_an_unknown_object(session):
    async def scenario():
        communicator, connected, code = await connect("/ws/task/999999/", session)
        assert not connected
        assert code == consumers.CLOSE_NOT_FOUND
        await communicator.disconnect()

    run(scenario())


def test_it_keeps_another_accounts_objects_off_a_users_sockets(lab, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="pw")
    account = Account.objects.create(account_id="111111111111")
    account.members.add(bob)
    Cluster.objects.create(account=account, name="bobs-cluster")
    client = Client()
    client.force_login(bob)
    bobs_session = client.cookies["sessionid"].value

    async def scenario():
        for path in (f"/ws/task/{lab['task'].pk}/", f"/ws/cluster/{lab['cluster'].pk}/",
                     f"/ws/tasks/{lab['task'].pk}/logs/"):
            communicator, connected, code = await connect(path, bobs_session)
            assert not connected and code == consumers.CLOSE_NOT_FOUND, path
            await communicator.disconnect()
        communicator, connected, _ = await connect("/ws/clusters/", bobs_session)
        assert connected
        html = await communicator.receive_from(timeout=5)
        assert "bobs-cluster" in html and "/clusters/demo/" not in html
        await communicator.disconnect()

    run(scenario())


def test_it_sends_the_current_fragment_on_connect(session, lab):
    async def scenario():
        communicator, connected, _ = await connect(f"/ws/task/{lab['task'].pk}/", session)
        assert connected
        html = await communicator.receive_from(timeout=5)
        assert f'id="task-{lab["task"].pk}"' in html
        assert 'hx-swap-oob="true"' in html
        assert "RUNNING" in html
        assert not html.lstrip().startswith("{")  # raw HTML, never JSON
        await communicator.disconnect()

    run(scenario())


def test_it_pushes_a_task_fragment_when_the_task_changes(session, lab):
    task = lab["task"]

    def stop():
        Task.objects.filter(pk=task.pk).update(
            last_status=Task.STOPPED, desired_status=Task.STOPPED, stopped_reason="Essential container in task exited",
            stopped_at=timezone.now(),
        )
        bus.publish("task", task.pk)

    async def scenario():
        communicator, connected, _ = await connect(f"/ws/task/{task.pk}/", session)
        assert connected
        await communicator.receive_from(timeout=5)
        await write(stop)
        html = await receive_until(communicator, "Essential container in task exited")
        assert f'id="task-{task.pk}"' in html
        assert 'hx-swap-oob="true"' in html
        assert 'data-status="STOPPED"' in html
        await communicator.disconnect()

    run(scenario())


def test_it_pushes_a_new_task_to_its_cluster_page(session, lab):
    def run_task():
        new = Task.objects.create(
            account=lab["account"], cluster=lab["cluster"], task_definition=lab["td"], cpu=256, memory=512
        )
        bus.publish("task", new.pk)
        return new

    async def scenario():
        communicator, connected, _ = await connect(f"/ws/cluster/{lab['cluster'].pk}/", session)
        assert connected
        first = await communicator.receive_from(timeout=5)
        assert f'id="cluster-tasks-{lab["cluster"].pk}"' in first
        new = await write(run_task)
        html = await receive_until(communicator, f'id="task-row-{new.pk}"')
        assert f'id="cluster-tasks-{lab["cluster"].pk}" hx-swap-oob="true"' in html
        assert "PROVISIONING" in html
        await communicator.disconnect()

    run(scenario())


def test_it_pushes_a_change_another_process_wrote(session, lab):
    """A control plane run apart (or another server worker) writes the database: on SQLite this
    process's bus never hears of it and the page follows the database; on a shared bus
    (PostgreSQL, Redis) the other process's change arrives on the bus."""
    task = lab["task"]

    async def scenario():
        communicator, connected, _ = await connect(f"/ws/task/{task.pk}/", session)
        assert connected
        await communicator.receive_from(timeout=5)
        await sync_to_async(elsewhere)(f"""
            from django.utils import timezone
            from orchestrator import bus
            from orchestrator.models import Task
            Task.objects.filter(pk={task.pk}).update(
                last_status=Task.STOPPED, desired_status=Task.STOPPED, stopped_reason="stopped by another process",
                stopped_at=timezone.now(), updated_at=timezone.now())
            bus.publish("task", {task.pk}, origin="controlplane")
        """)
        html = await receive_until(communicator, "stopped by another process")
        assert 'data-status="STOPPED"' in html
        await communicator.disconnect()

    run(scenario(), timeout=90)


def test_the_page_looks_at_the_database_only_when_the_bus_is_this_processs_alone(session, lab):
    async def scenario():
        communicator, connected, _ = await connect(f"/ws/task/{lab['task'].pk}/", session)
        assert connected
        broadcaster = await broadcast.ensure_started()
        await communicator.disconnect()
        return broadcaster.watch_task is not None

    assert run(scenario()) == (not bus.shared())


def test_the_database_watch_reports_only_what_the_bus_did_not_carry(lab):
    task = lab["task"]
    watch = DatabaseWatch()
    assert watch.poll() == []  # the first look sets the starting points
    Task.objects.filter(pk=task.pk).update(last_status=Task.STOPPED, updated_at=timezone.now())
    assert ("task", task.pk, None) in watch.poll()
    assert watch.poll() == []  # reported once, though the overlap reads the row again
    Task.objects.filter(pk=task.pk).update(stopped_reason="said on our bus", updated_at=timezone.now())
    watch.heard("task", task.pk)  # this process published it: already rendered
    assert watch.poll() == []
    instance = ContainerInstance.objects.create(name="elsewhere", cpu_registered=4096, memory_registered=8192)
    row = activity.record("capacity_manager", "launch-instance", message="launched by another process")
    changes = watch.poll()
    assert ("instance", instance.pk, None) in changes
    assert ("activity", row.pk, "capacity_manager") in changes


def test_it_coalesces_a_burst_into_few_messages(session, lab):
    def burst():
        for _ in range(30):
            new = Task.objects.create(
                account=lab["account"], cluster=lab["cluster"], task_definition=lab["td"], cpu=256, memory=512
            )
            bus.publish("task", new.pk)

    async def scenario():
        communicator, connected, _ = await connect(f"/ws/cluster/{lab['cluster'].pk}/", session)
        assert connected
        await communicator.receive_from(timeout=5)
        await write(burst)
        messages = []
        while not await communicator.receive_nothing(timeout=0.5):
            messages.append(await communicator.receive_from())
        assert 1 <= len(messages) <= 4, f"{len(messages)} messages for a burst of 30 writes"
        rows = set(re.findall(r'id="task-row-(\d+)"', "".join(messages)))
        assert len(rows) == 31  # the first task and the burst's 30, each pushed at least once
        await communicator.disconnect()

    run(scenario())


def test_it_pushes_the_frontend_card_when_an_api_call_is_recorded(session):
    def api_call():
        activity.record("frontend", "RunTask", message="RunTask → 200", caller="test", status_code=200, latency_ms=4.2)

    async def scenario():
        communicator, connected, _ = await connect("/ws/map/", session)
        assert connected
        first = await communicator.receive_from(timeout=5)
        for card in ("card-frontend", "card-statedb", "card-cluster-manager", "card-capacity-manager", "card-agents", "card-docker"):
            assert f'id="{card}"' in first
        await write(api_call)
        html = await receive_until(communicator, 'id="card-frontend"')  # after the map's events, sent first
        assert "RunTask" in html
        assert 'id="card-frontend" class="card" data-component="frontend" hx-swap-oob="true"' in html
        assert 'id="card-docker"' not in html  # only the touched card is re-rendered
        await communicator.disconnect()

    run(scenario())


def test_it_animates_an_event_without_a_trip_to_the_database_thread_first(session, monkeypatch):
    """Channels closes stale connections in the one database thread before each message; the
    broadcaster's messages skip that trip, which queued fifty pages behind the figures' renders."""
    import channels.consumer

    stops = []
    close_old = channels.consumer.aclose_old_connections

    async def counted():
        stops.append(1)
        await close_old()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)

    async def scenario():
        communicator, connected, _ = await connect("/ws/map/", session)
        assert connected
        await communicator.receive_from(timeout=5)
        before = len(stops)
        assert before >= 1  # the connect itself went through Channels' own dispatch
        row = await write(lambda: activity.record("docker", "die", message="container web died (exit code 137)"))
        html = await receive_until(communicator, f'data-seq="{row.pk}"')
        assert 'data-action="die"' in html
        await receive_until(communicator, 'id="card-docker"')  # the figures follow, also without the trip
        assert len(stops) == before
        await communicator.disconnect()

    run(scenario())


def test_a_heartbeat_updates_its_instances_page_and_not_the_map(session):
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=2048, memory_registered=4096,
                                                agent_connected=True)

    def beat():
        ContainerInstance.objects.filter(pk=instance.pk).update(last_heartbeat=timezone.now())
        bus.publish("instance", instance.pk, origin="controlplane", heartbeat=True)

    async def scenario():
        page, connected, _ = await connect(f"/ws/instance/{instance.pk}/", session)
        assert connected
        await page.receive_from(timeout=5)
        board, connected, _ = await connect("/ws/map/", session)
        assert connected
        await board.receive_from(timeout=5)
        await write(beat)
        assert 'data-field="last_heartbeat"' in await receive_until(page, 'data-field="last_heartbeat"')
        # A change after the heartbeat: the map hears it, and heard nothing of the heartbeat before it.
        await write(lambda: activity.record("docker", "die", message="container web died"))
        seen = []
        while not any('id="card-docker"' in m for m in seen):
            seen.append(await board.receive_from(timeout=5))
        assert not [m for m in seen if 'id="box-fleet"' in m or 'id="card-agents"' in m]
        await page.disconnect()
        await board.disconnect()

    run(scenario())


def test_it_streams_a_tasks_logs(session, lab, monkeypatch):
    def fake_stream_logs(task, follow=True, tail=200):
        assert follow and tail == 200
        yield "hello from the container"
        yield "<script>alert(1)</script>"

    monkeypatch.setattr(consumers, "_stream_source", lambda: fake_stream_logs)

    async def scenario():
        communicator, connected, _ = await connect(f"/ws/tasks/{lab['task'].pk}/logs/", session)
        assert connected
        html = await receive_until(communicator, "hello from the container")
        assert f'id="task-logs-{lab["task"].pk}" hx-swap-oob="beforeend"' in html
        assert "&lt;script&gt;" in html and "<script>" not in html
        await receive_until(communicator, "(end of output)")
        await communicator.disconnect()

    run(scenario())


def test_it_pushes_only_the_row_of_a_task_already_shown(session, lab):
    task = lab["task"]

    def stop():
        Task.objects.filter(pk=task.pk).update(last_status=Task.STOPPED, desired_status=Task.STOPPED)
        bus.publish("task", task.pk)

    async def scenario():
        communicator, connected, _ = await connect(f"/ws/cluster/{lab['cluster'].pk}/", session)
        assert connected
        await communicator.receive_from(timeout=5)
        await write(stop)
        html = await receive_until(communicator, f'id="task-row-{task.pk}"')
        assert f'<tr id="task-row-{task.pk}" data-status="STOPPED" hx-swap-oob="true">' in html
        assert f'id="cluster-tasks-{lab["cluster"].pk}"' not in html
        await communicator.disconnect()

    run(scenario())


def test_it_refuses_an_unauthenticated_log_stream(lab):
    async def scenario():
        communicator, connected, code = await connect(f"/ws/tasks/{lab['task'].pk}/logs/")
        assert not connected and code == consumers.CLOSE_UNAUTHENTICATED
        await communicator.disconnect()

    run(scenario())
