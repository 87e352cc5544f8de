"""The change bus between processes (orchestrator/bus_transports.py): Redis pub/sub and
PostgreSQL's LISTEN/NOTIFY carry one process's changes to the others on the same database."""
import json
import os
import threading

import pytest

from orchestrator import bus, bus_transports, traces
from orchestrator.models import Account, Cluster
from tests.support.common import wait_until
from tests.support.servers import elsewhere


class Heard:
    """What a transport's listener delivered: (sender, changes) batches."""

    def __init__(self):
        self.batches = []
        self.lock = threading.Lock()

    def __call__(self, sender, changes):
        with self.lock:
            self.batches.append((sender, changes))

    def changes_from(self, sender):
        with self.lock:
            return [change for who, changes in self.batches if who == sender for change in changes]


def roundtrip(make):
    """Two processes' transports on one channel and a third on another: what each one hears."""
    heard_a, heard_b, heard_other = Heard(), Heard(), Heard()
    a, b, other = make("fargatelab_bus_test", heard_a), make("fargatelab_bus_test", heard_b), \
        make("fargatelab_bus_elsewhere", heard_other)
    for transport in (a, b, other):
        transport.start()
    try:
        for transport in (a, b, other):
            wait_until(transport.connected.is_set, timeout=20, message="the transport to listen")
        a.send("process-a", ["task", 7, {"stop": True}])
        a.send("process-a", ["activity", 12, {"component": "frontend"}])
        wait_until(lambda: len(heard_b.changes_from("process-a")) == 2, message="b to hear a's changes")
        assert heard_b.changes_from("process-a") == [("task", 7, {"stop": True}),
                                                     ("activity", 12, {"component": "frontend"})]
        wait_until(lambda: len(heard_a.changes_from("process-a")) == 2, message="a to hear itself too")
        b.send("process-b", ["service", 3, {}])
        wait_until(lambda: heard_a.changes_from("process-b") == [("service", 3, {})], message="a to hear b")
        a.flush()
        assert heard_other.batches == []  # another lab's channel hears none of it
    finally:
        for transport in (a, b, other):
            transport.stop()


def test_redis_carries_changes_between_processes(redis_url):
    roundtrip(lambda channel, deliver: bus_transports.RedisTransport(redis_url, channel, deliver))


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_notify_carries_changes_between_processes():
    from django.db import connection

    roundtrip(lambda channel, deliver: bus_transports.PostgresTransport(connection.settings_dict, channel, deliver))


def test_a_burst_is_split_into_messages_postgresql_accepts():
    changes = [["task", pk, {"origin": "controlplane"}] for pk in range(2000)]
    messages = bus_transports.encode("sender", changes, bus_transports.NOTIFY_LIMIT)
    assert len(messages) > 1
    assert all(len(message.encode()) < bus_transports.NOTIFY_LIMIT for message in messages)
    assert [change for message in messages for change in json.loads(message)["changes"]] == changes


def test_a_message_that_is_not_the_buss_is_ignored():
    assert bus_transports.decode("hello") == (None, [])
    assert bus_transports.decode('{"from": "x", "changes": [["task", 1, {}]]}') == ("x", [("task", 1, {})])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_another_process_s_change_reaches_this_process_s_subscribers_with_its_trace():
    """A second process on the same PostgreSQL database publishes; this one hears it as remote."""
    assert bus.shared()
    wait_until(bus.share().connected.is_set, timeout=20, message="this process to listen")
    heard = []
    unsubscribe = bus.subscribe(lambda kind, pk, **info: heard.append((kind, pk, info, traces.current())))
    cluster = Cluster.objects.create(account=Account.default(), name="elsewhere")
    try:
        elsewhere(f"""
            from orchestrator import bus, traces
            with traces.continuing("0123456789abcdef"):
                bus.publish_now("cluster", {cluster.pk}, stop=True)
        """)
        wait_until(lambda: heard, message="the other process's change")
        assert heard == [("cluster", cluster.pk, {"stop": True, "remote": True}, "0123456789abcdef")]
    finally:
        unsubscribe()


@pytest.mark.django_db(transaction=True)
def test_this_process_does_not_hear_its_own_changes_twice():
    heard = []
    unsubscribe = bus.subscribe(lambda kind, pk, **info: heard.append((kind, pk, info)))
    try:
        bus.publish_now("cluster", 99)
        transport = bus.share()
        if transport is not None:  # let the message go round the server and back
            transport.flush()
            elsewhere("from orchestrator import bus\nbus.publish_now('service', 5)")
            wait_until(lambda: len(heard) == 2, message="the other process's change")
        assert heard[0] == ("cluster", 99, {})
        assert heard[1:] in ([], [("service", 5, {"remote": True})])
    finally:
        unsubscribe()


def test_the_bus_is_shared_on_postgresql_or_with_redis():
    from django.db import connection

    assert bus.shared() == (bool(os.environ.get("REDIS_URL")) or connection.vendor == "postgresql")
