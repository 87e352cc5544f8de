"""The change bus: "look at this key now".

The frontend publishes the kind and primary key of what it wrote (after the transaction
commits); the control plane's work queue and the dashboard's broadcaster subscribe. Events
carry no state: subscribers re-read the database (level-triggered).

On the embedded SQLite the bus is process-local: a control plane or a dashboard in another
process watches the database instead (see controlplane and dashboard.broadcast). With
REDIS_URL, or on PostgreSQL, the bus is shared: every change is also sent to the other
processes on the same state database (Redis pub/sub, else LISTEN/NOTIFY: bus_transports),
and their subscribers hear it with ``remote=True`` (and the trace it was published in).
"""
import atexit
import logging
import os
import threading
import uuid

from django.conf import settings
from django.db import connections, transaction

log = logging.getLogger(__name__)
_subscribers = []
_lock = threading.Lock()
_shared = {}  # pid -> (sender id, transport): a forked process makes its own
_shared_lock = threading.Lock()


def shared():
    """Whether changes travel between processes (REDIS_URL, or a PostgreSQL state database)."""
    return bool(settings.REDIS_URL) or connections["default"].vendor == "postgresql"


def _transport():
    """This process's (sender id, transport), started on first use; (None, None) when not shared."""
    pid = os.getpid()
    found = _shared.get(pid)
    if found is not None:
        return found
    if not shared():
        return None, None
    from orchestrator import bus_transports

    with _shared_lock:
        if pid not in _shared:
            database = connections["default"].settings_dict
            channel = bus_transports.channel_name(database)
            if settings.REDIS_URL:
                transport = bus_transports.RedisTransport(settings.REDIS_URL, channel, _heard)
            else:
                transport = bus_transports.PostgresTransport(database, channel, _heard)
            sender = uuid.uuid4().hex
            _shared[pid] = (sender, transport)
            transport.start()
            atexit.register(transport.flush)
    return _shared[pid]


def share():
    """Start hearing the other processes now (a server, a control plane); idempotent. The
    transport whose listener is subscribed, or None when the bus is not shared."""
    return _transport()[1]


def unshare():
    """Stop this process's transport (at the end of a test session, before its database goes)."""
    with _shared_lock:
        found = _shared.pop(os.getpid(), None)
    if found is not None:
        found[1].flush()
        found[1].stop()


def _heard(sender, changes):
    """The listener thread heard a batch: tell this process's subscribers of another's changes."""
    from orchestrator import traces

    if sender == _transport()[0]:
        return
    for kind, pk, info in changes:
        trace = info.pop("trace", "")
        with traces.continuing(trace):
            _deliver(kind, pk, {**info, "remote": True})


def subscribe(callback):
    """Call ``callback(kind, pk, **info)`` for every published change; returns an unsubscribe function."""
    with _lock:
        _subscribers.append(callback)

    def unsubscribe():
        with _lock:
            if callback in _subscribers:
                _subscribers.remove(callback)

    return unsubscribe


def publish_now(kind, pk, **info):
    """Tell every subscriber (and, when shared, every other process) that object ``kind``/``pk``
    changed. Subscriber errors are logged, not raised."""
    _deliver(kind, pk, info)
    sender, transport = _transport()
    if transport is not None:
        from orchestrator import traces

        trace = traces.current()
        transport.send(sender, [kind, pk, {**info, "trace": trace} if trace else info])


def _deliver(kind, pk, info):
    with _lock:
        subscribers = list(_subscribers)
    for callback in subscribers:
        try:
            callback(kind, pk, **info)
        except Exception:  # a broken subscriber must not break the writer
            log.exception("bus subscriber failed for %s %s", kind, pk)


def publish(kind, pk, **info):
    """Publish once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: publish_now(kind, pk, **info))


def publish_many(kind, pks, **info):
    """Publish each of ``pks`` once the current transaction commits, in one callback (a batched
    pass's hundreds of tasks)."""
    pks = list(pks)
    if pks:
        transaction.on_commit(lambda: [publish_now(kind, pk, **info) for pk in pks])
