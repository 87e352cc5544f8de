"""The map's events fanned out by one hub per process: one group message per event, one render
per audience, the same bytes to every socket of that audience, another account's ids never."""
import asyncio

import pytest
from django.test import Client

from dashboard import broadcast, fanout
from orchestrator import activity
from orchestrator.models import Account
from tests.test_consumers import connect, receive_until, run, write
from tests.test_map_diagram import two_accounts  # noqa: F401 (a fixture)


def _session(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.mark.django_db(transaction=True)
def test_it_renders_an_event_once_per_audience_and_sends_each_socket_its_audience_s_bytes(
        two_accounts, admin_user, monkeypatch):  # noqa: F811
    from channels.layers import get_channel_layer

    renders, group_sends = [], []
    render_events, group_send = fanout.render_events, get_channel_layer().group_send

    def counted_render(pks, viewers):
        renders.append(sorted(map(str, viewers)))
        return render_events(pks, viewers)

    async def counted_group_send(group, message):
        group_sends.append(group)
        await group_send(group, message)

    monkeypatch.setattr(fanout, "render_events", counted_render)
    monkeypatch.setattr(get_channel_layer(), "group_send", counted_group_send)
    bob_task = two_accounts["tasks"]["bob"]
    alice_pk = Account.objects.get(name="alice").pk
    staff_session, alice_session = _session(admin_user), _session(two_accounts["alice"])

    async def scenario():
        staff = [(await connect("/ws/map/", staff_session))[0] for _ in range(2)]
        alice = (await connect("/ws/map/", alice_session))[0]
        await write(lambda: activity.record("docker", "die", bob_task.arn, "container web died (exit code 137)"))
        staff_html = [await receive_until(socket, 'id="map-events"') for socket in staff]
        alice_html = await receive_until(alice, 'id="map-events"')
        for socket in (*staff, alice):
            await socket.disconnect()
        return staff_html, alice_html

    staff_html, alice_html = run(scenario())
    assert staff_html[0] == staff_html[1]
    assert bob_task.task_id[:8] in staff_html[0]
    assert 'data-action="die"' in alice_html and bob_task.task_id[:8] not in alice_html
    assert renders == [sorted(["all", str(alice_pk)])]  # once, for both audiences
    assert group_sends.count(broadcast.scoped(fanout.GROUP)) == 1  # one message for the process, not one per socket


@pytest.mark.django_db(transaction=True)
def test_an_event_recorded_while_a_map_connects_reaches_it_after_its_first_fragments(admin_user, monkeypatch):
    ready = fanout.Hub.ready
    held = []

    async def ready_after_an_event(hub, consumer):
        await write(lambda: activity.record("frontend", "RunTask", "", "RunTask → 200", caller="t", status_code=200))
        deadline = asyncio.get_running_loop().time() + 5
        while not any(waiting for sockets in hub.sockets.values() for waiting in sockets.values()):
            assert asyncio.get_running_loop().time() < deadline, "the hub never held the event"
            await asyncio.sleep(0.01)
        held.append(True)
        await ready(hub, consumer)

    monkeypatch.setattr(fanout.Hub, "ready", ready_after_an_event)
    session = _session(admin_user)

    async def scenario():
        communicator, connected, _ = await connect("/ws/map/", session)
        assert connected
        first = await communicator.receive_from(timeout=5)
        assert 'id="box-frontend"' in first and 'id="map-events"' not in first
        html = await receive_until(communicator, 'id="map-events"')
        await communicator.disconnect()
        return html

    assert 'data-action="RunTask"' in run(scenario())
    assert held


@pytest.mark.django_db(transaction=True)
def test_a_closed_map_no_longer_counts_as_an_audience(admin_user):
    session = _session(admin_user)

    async def scenario():

        communicator, connected, _ = await connect("/ws/map/", session)
        assert connected
        hub = (await broadcast.ensure_started()).hub
        assert list(hub.sockets) == ["all"]
        await communicator.disconnect()
        return dict(hub.sockets)

    assert run(scenario()) == {}


class Socket:
    """Stands in for a map consumer: keeps what the hub sends it."""

    def __init__(self):
        self.sent = asyncio.Queue()

    async def send(self, text_data=None):
        self.sent.put_nowait(text_data)


@pytest.mark.django_db(transaction=True)
def test_the_hub_fans_out_over_a_redis_channel_layer(redis_url):
    from channels_redis.core import RedisChannelLayer

    row = activity.record("frontend", "RunTask", "", "RunTask → 200", caller="t", status_code=200)

    async def scenario():
        layer = RedisChannelLayer(hosts=[redis_url])
        hub = fanout.Hub(asyncio.get_running_loop(), layer, "map-events.test")
        await hub.start()
        sockets = [Socket() for _ in range(3)]
        for socket in sockets:
            hub.add(socket, "all")
            await hub.ready(socket)
        await layer.group_send("map-events.test", {"type": fanout.MESSAGE_TYPE, "seq": 1, "events": [row.pk]})
        received = [await asyncio.wait_for(socket.sent.get(), 10) for socket in sockets]
        hub.stop()
        await layer.flush()
        return received

    received = run(scenario())
    assert received[0] == received[1] == received[2]
    assert f'<li data-seq="{row.pk}"' in received[0]


class StalledSocket(Socket):
    """A client that stopped reading: its sends wait for a drain that never comes."""

    async def send(self, text_data=None):
        await asyncio.Event().wait()


@pytest.mark.django_db(transaction=True)
def test_a_socket_that_stopped_reading_does_not_hold_up_the_others(monkeypatch):
    monkeypatch.setattr(fanout, "render_events", lambda pks, viewers: {viewer: f"event {pks}" for viewer in viewers})

    async def scenario():
        from channels.layers import InMemoryChannelLayer

        hub = fanout.Hub(asyncio.get_running_loop(), InMemoryChannelLayer())
        stalled, sockets = StalledSocket(), [Socket(), Socket()]
        for socket in (stalled, *sockets):
            hub.add(socket, "all")
            await hub.ready(socket)
        await hub.fan_out((1,))
        await hub.fan_out((2,))
        received = [[await asyncio.wait_for(socket.sent.get(), 5) for _ in range(2)] for socket in sockets]
        for task in hub.sending:
            task.cancel()
        return received

    assert run(scenario()) == [["event (1,)", "event (2,)"]] * 2
