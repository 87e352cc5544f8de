"""The broadcaster: orchestrator.bus changes → Channels group messages, coalesced.

The bus may call us from any thread (a view's, a control-plane worker's); we only hand the
change over to the server's event loop with ``call_soon_threadsafe``. There a single task
flushes at most once per ``INTERVAL``: it routes the batch to groups ("lab", "cluster-<pk>",
"service-<pk>", "task-<pk>", "instance-<pk>") and sends each group ONE message

    {"type": "lab.changed", "seq": n, "changes": {"task": [pk…], "activity": ["frontend"…], …}}

so a burst of 100 writes costs each open page one render, not 100. Consumers render.
One broadcaster per event loop, started by the first consumer that connects.
"""
import asyncio
import logging
import threading
import time
from collections import defaultdict, deque

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from orchestrator import bus
from orchestrator.models import Service, Task

log = logging.getLogger(__name__)

INTERVAL = 0.1
MESSAGE_TYPE = "lab.changed"
# Object kinds whose writes the state database card lists (activity rows are the cards' own log).
WRITE_KINDS = {"task", "service", "cluster", "task_definition", "instance", "deployment"}

_writes = deque(maxlen=5000)
_writes_lock = threading.Lock()
_broadcasters = {}
_broadcasters_lock = threading.Lock()


def note_write(kind, pk, **info):
    """Remember one write the bus carried, for the state database card (cheap, any thread)."""
    if kind in WRITE_KINDS:
        with _writes_lock:
            _writes.append((time.time(), kind, pk))


def recent_writes(limit):
    """The last ``limit`` writes, newest first, as dicts with kind, pk and age in seconds."""
    now = time.time()
    with _writes_lock:
        rows = list(_writes)[-limit:]
    return [{"kind": kind, "pk": pk, "age": max(now - at, 0.0)} for at, kind, pk in reversed(rows)]


def writes_since(seconds):
    """How many writes the bus carried in the last ``seconds``."""
    cutoff = time.time() - seconds
    with _writes_lock:
        return sum(1 for at, _, _ in _writes if at >= cutoff)


def route(batch):
    """Map a batch of (kind, pk, component) changes to {group: {kind: [pks]}} (reads the database).

    Every change goes to "lab" (the map and the lists); objects also go to their own group and
    to the groups of the pages that show them (a task to its cluster, service and instance).
    """
    groups = defaultdict(lambda: defaultdict(set))

    def add(group, kind, value):
        groups[group][kind].add(value)

    task_pks = {pk for kind, pk, _ in batch if kind == "task"}
    service_pks = {pk for kind, pk, _ in batch if kind == "service"}
    tasks = {
        row["pk"]: row
        for row in Task.objects.filter(pk__in=task_pks).values("pk", "cluster_id", "service_id", "container_instance_id")
    }
    services = dict(Service.objects.filter(pk__in=service_pks).values_list("pk", "cluster_id"))
    for kind, pk, component in batch:
        if kind == "activity":
            add("lab", "activity", component or "")
            continue
        add("lab", kind, pk)
        if kind == "task":
            add(f"task-{pk}", kind, pk)
            row = tasks.get(pk)
            if row:
                add(f"cluster-{row['cluster_id']}", kind, pk)
                if row["service_id"]:
                    add(f"service-{row['service_id']}", kind, pk)
                if row["container_instance_id"]:
                    add(f"instance-{row['container_instance_id']}", kind, pk)
        elif kind == "service":
            add(f"service-{pk}", kind, pk)
            if pk in services:
                add(f"cluster-{services[pk]}", kind, pk)
        elif kind == "cluster":
            add(f"cluster-{pk}", kind, pk)
        elif kind == "instance":
            add(f"instance-{pk}", kind, pk)
    return {group: {kind: sorted(values, key=str) for kind, values in kinds.items()} for group, kinds in groups.items()}


class Broadcaster:
    """Hears the bus (any thread) and flushes coalesced group messages on one event loop."""

    def __init__(self, loop, channel_layer, interval=INTERVAL):
        self.loop = loop
        self.channel_layer = channel_layer
        self.interval = interval
        self.pending = []
        self.wake = asyncio.Event()
        self.seq = 0
        self.unsubscribe = None
        self.task = None

    def start(self):
        """Subscribe to the bus and start the flushing task (call on ``self.loop``)."""
        self.unsubscribe = bus.subscribe(self.on_bus)
        self.task = self.loop.create_task(self.run(), name="dashboard-broadcaster")

    def stop(self):
        """Stop hearing the bus; the flushing task ends with its loop."""
        if self.unsubscribe:
            self.unsubscribe()
            self.unsubscribe = None
        if self.task and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.task.cancel)

    def on_bus(self, kind, pk, **info):
        """Bus subscriber: hand the change to the loop; never blocks the writer."""
        try:
            self.loop.call_soon_threadsafe(self.note, kind, pk, info.get("component"))
        except RuntimeError:  # the loop is closed: this broadcaster is finished
            self.stop()

    def note(self, kind, pk, component):
        self.pending.append((kind, pk, component))
        self.wake.set()

    async def run(self):
        """Flush whatever arrived, then rest ``interval``: a burst becomes one message per group."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            try:
                await self.flush(batch)
            except Exception:  # a failed flush must not end live updates; the next change retries
                log.exception("dashboard broadcast failed")
            await asyncio.sleep(self.interval)

    async def flush(self, batch):
        """Route one batch and send one message to each group it touches."""
        self.seq += 1
        groups = await database_sync_to_async(route)(batch)
        for group, changes in groups.items():
            await self.channel_layer.group_send(group, {"type": MESSAGE_TYPE, "seq": self.seq, "changes": changes})


async def ensure_started():
    """Start this event loop's broadcaster once (consumers call it on connect)."""
    loop = asyncio.get_running_loop()
    with _broadcasters_lock:
        if loop in _broadcasters:
            return _broadcasters[loop]
        for old_loop in [old for old in _broadcasters if old.is_closed()]:
            _broadcasters.pop(old_loop).stop()
        broadcaster = Broadcaster(loop, get_channel_layer())
        _broadcasters[loop] = broadcaster
    broadcaster.start()
    return broadcaster


def install():
    """Subscribe the write recorder to the bus once per process (DashboardConfig.ready)."""
    if not getattr(install, "done", False):
        install.done = True
        bus.subscribe(note_write)
