"""A process-local change bus: "look at this key now".

The frontend publishes the kind and primary key of what it wrote (after the transaction
commits); the control plane's work queue and the dashboard's broadcaster subscribe. Events
carry no state: subscribers re-read the database (level-triggered). A control plane in
another process does not hear this bus; it watches the database instead (see controlplane).
"""
import logging
import threading

from django.db import transaction

log = logging.getLogger(__name__)
_subscribers = []
_lock = threading.Lock()


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
    """Tell every subscriber that object ``kind``/``pk`` changed. Subscriber errors are logged, not raised."""
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
