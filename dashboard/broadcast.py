"""The broadcaster: orchestrator.bus changes → Channels group messages, coalesced.

The bus may call us from any thread (a view's, a control-plane worker's); we only hand the
change over to the server's event loop with ``call_soon_threadsafe``. There a single task
flushes at most once per ``INTERVAL``: it routes the batch to groups ("lab", "cluster-<pk>",
"service-<pk>", "task-<pk>", "instance-<pk>") and sends each group ONE message

    {"type": "lab.changed", "seq": n, "changes": {"task": [pk…], "activity": ["frontend"…], …}}

so a burst of 100 writes costs each open page one render, not 100. Consumers render. The map
animates each activity row: those go in a lane of their own, at once (at most one message per
``EVENTS_INTERVAL``), never waiting behind the coalescing of the figures, to the ``map-events``
group, whose members are one hub per server process (``dashboard.fanout``), not the sockets.

One broadcaster (and its hub) per event loop, started by the first consumer that connects.

On SQLite the bus is process-local. Writes made by another process — a control plane run
apart with ``manage.py controlplane``, or the leader among several server workers — reach the
pages through ``DatabaseWatch``, which looks at the state database every ``WATCH_INTERVAL`` for
rows changed since its last look that the bus did not already carry. With a shared bus (REDIS_URL,
or PostgreSQL: ``bus.shared()``) other processes' changes arrive on the bus itself and there is
no look at the database.

Each process's broadcaster serves the pages whose sockets that process holds. On a channel
layer shared between processes (channels-redis), its groups carry the process's name
(``scoped``): every broadcaster hears every change, and a page must hear one of them, not N.
"""
import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer

from django.utils import timezone

from dashboard import fanout
from orchestrator import bus
from orchestrator.models import (Activity, Cluster, ContainerInstance, Deployment, ScalableTarget, Service, Task,
                                 TaskDefinition)

log = logging.getLogger(__name__)

INTERVAL = 0.1
EVENTS_INTERVAL = 0.01
# The figures of a batch with activity rows trail the rows' animation by this much: their renders
# (tens of ms of CPU with 1,000 tasks) then do not share the machine with the event's fan-out and
# the pages' animation, and an event right behind (a kill's die comes ~25 ms after it) shares them.
FIGURES_DELAY = 0.05
WATCH_INTERVAL = 0.5
# Rows are re-read this long before the watch's cursor: a transaction that commits late (or a
# clock a little behind) must not be missed. What was already reported is not reported twice.
WATCH_OVERLAP = 2.0
MESSAGE_TYPE = "lab.changed"
# An instance's heartbeat (every few seconds per instance): it re-renders the instance's own page
# only. Sent to the map, it re-rendered six boxes and cards (~45 ms in the database thread with
# 1,000 tasks) and pushed ~30 KB to every open map for a figure none of them shows.
HEARTBEAT = "instance_heartbeat"
# Object kinds whose writes the state database card lists (activity rows are the cards' own log).
WRITE_KINDS = {"task", "service", "cluster", "task_definition", "instance", "deployment"}

# Per kind: the fields that name a written object on the card, and the fields whose change it tells.
WRITE_FIELDS = {
    "task": (("task_id",), ("last_status", "desired_status", "health_status", "container_instance__name")),
    "service": (("cluster__name", "name"), ("status", "desired_count", "running_count", "pending_count")),
    "cluster": (("name",), ("status",)),
    "task_definition": (("family", "revision"), ("status",)),
    "instance": (("name",), ("status", "agent_connected", "last_heartbeat")),
}
# Kinds whose objects belong to an account (the card names them to that account only).
OWNED_KINDS = {"task", "service", "cluster", "task_definition"}
_MODELS = {"task": Task, "service": Service, "cluster": Cluster, "task_definition": TaskDefinition,
           "instance": ContainerInstance}
# How many of the newest writes are described at a time (older ones are never shown).
DESCRIBE_BATCH = 500

_writes = deque(maxlen=5000)
_writes_lock = threading.Lock()
_describe_lock = threading.Lock()
_seen = {}  # (kind, pk) -> (label, {field: value}) as of the object's last described write
_owners = {}  # (kind, pk) -> the account pk of the object (None for the lab's own, instances)
_broadcasters = {}
_broadcasters_lock = threading.Lock()
# This process's name in the groups of a channel layer shared between processes.
PROCESS = uuid.uuid4().hex[:12]
# One sequence for every broadcaster of the process: renders are cached by it (RenderCache), so
# a broadcaster started on a new event loop (a restarted server) must not reuse the numbers.
_sequence = itertools.count(1)


def scoped(group):
    """The name of page group ``group`` on this process's channel layer (see the module doc)."""
    if isinstance(get_channel_layer(), InMemoryChannelLayer):
        return group
    return f"{group}.{PROCESS}"


def note_write(kind, pk, **info):
    """Remember one write the bus carried, for the state database card (cheap, any thread).

    Heartbeats are left out: every instance renews its own every few seconds (as a node renews
    its Lease), and listing them would push the writes a class watches off the card."""
    if kind in WRITE_KINDS and not info.get("heartbeat"):
        with _writes_lock:
            _writes.append({"at": time.time(), "kind": kind, "pk": pk, "label": None, "changes": ()})


def _label(kind, row):
    """A written object's short name: task 1a2b3c4d, service demo/web, task definition web:3."""
    if kind == "task":
        return row["task_id"][:8]
    if kind == "service":
        return f"{row['cluster__name']}/{row['name']}"
    if kind == "task_definition":
        return f"{row['family']}:{row['revision']}"
    return row["name"]


def _shown(value):
    """A field's value as the card shows it (times to the second)."""
    if hasattr(value, "strftime"):
        return timezone.localtime(value).strftime("%H:%M:%S")
    return "—" if value is None or value == "" else str(value)


def describe_writes():
    """Name the object of each write not yet described and say what changed since that object's
    previous write (reads the state database; call from a thread that may)."""
    with _describe_lock:
        with _writes_lock:  # the newest first, back to the last one described
            pending = list(itertools.takewhile(lambda write: write["label"] is None,
                                               itertools.islice(reversed(_writes), DESCRIBE_BATCH)))[::-1]
        if not pending:
            return
        rows = {}
        for kind, (names, fields) in WRITE_FIELDS.items():
            pks = {write["pk"] for write in pending if write["kind"] == kind}
            if pks:
                owner = ("account_id",) if kind in OWNED_KINDS else ()
                for row in _MODELS[kind].objects.filter(pk__in=pks).values("pk", *owner, *names, *fields):
                    rows[(kind, row["pk"])] = row
        for write in pending:
            key = (write["kind"], write["pk"])
            if write["kind"] not in WRITE_FIELDS:
                write["label"] = f"#{write['pk']}"
                continue
            row = rows.get(key)
            if row is None:
                write["label"], write["changes"] = _seen.pop(key, (f"#{write['pk']}", None))[0], (("deleted", "", ""),)
                write["account"] = _owners.pop(key, "unknown" if write["kind"] in OWNED_KINDS else None)
                continue
            label = _label(write["kind"], row)
            now = {field: _shown(row[field]) for field in WRITE_FIELDS[write["kind"]][1]}
            before_label, before = _seen.get(key, (None, None))
            if before is None or before_label != label:  # first seen (or a new object with a reused pk)
                changes = tuple((field.split("__")[0], "", value) for field, value in now.items() if value != "—")
            else:
                changes = tuple((field.split("__")[0], before[field], value)
                                for field, value in now.items() if before[field] != value)
            write["label"], write["changes"], write["account"] = label, changes, row.get("account_id")
            _seen[key] = (label, now)
            _owners[key] = row.get("account_id")
        if len(_seen) > 20_000:  # objects long unwritten are forgotten; their next write reads as new
            for stale in list(_seen)[:10_000]:
                _seen.pop(stale, None)
                _owners.pop(stale, None)


def recent_writes(limit):
    """The last ``limit`` writes, newest first, as dicts with kind, the object's label, its
    changes ((field, before, after); before "" when first seen) and the age in seconds."""
    describe_writes()
    now = time.time()
    with _writes_lock:
        rows = list(itertools.islice(reversed(_writes), limit))
    return [{**write, "age": max(now - write["at"], 0.0)} for write in rows]


def writes_since(seconds):
    """How many writes the bus carried in the last ``seconds``."""
    cutoff = time.time() - seconds
    with _writes_lock:
        return sum(1 for write in _writes if write["at"] >= cutoff)


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
    scaled = dict(ScalableTarget.objects.filter(pk__in={pk for kind, pk, _ in batch if kind == "scalable-target"})
                  .exclude(service=None).values_list("pk", "service_id"))
    for kind, pk, component in batch:
        if kind == "activity":
            add("lab", "activity", component or "")
            continue
        if kind == HEARTBEAT:  # only the instance's own page shows its last heartbeat
            add(f"instance-{pk}", "instance", pk)
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
        elif kind == "lab_progress":  # a student's lab page (the class page hears "lab")
            add(f"labrun-{pk}", kind, pk)
        elif kind == "repository":
            add(f"repository-{pk}", kind, pk)
        elif kind == "scalable-target" and pk in scaled:  # the service page's autoscaler
            add(f"service-{scaled[pk]}", kind, pk)
    return {group: {kind: sorted(values, key=str) for kind, values in kinds.items()} for group, kinds in groups.items()}


class DatabaseWatch:
    """Finds the changes other processes wrote to the state database (the bus carries only this
    process's). ``heard`` is told of every change the bus carried, so those are not repeated."""

    def __init__(self):
        self.cursor = None
        self.last_activity = 0
        self.lock = threading.Lock()  # ``heard`` runs on the event loop, ``poll`` in a worker thread
        self.reported = {}  # (kind, pk) -> the updated_at last reported or heard
        self.snapshots = {}  # small tables without a change time: kind -> {pk: state}

    def heard(self, kind, pk):
        """The bus carried this change now."""
        at = timezone.now()
        with self.lock:
            self.reported[(kind, pk)] = at

    def _known_since(self, kind, pk, moment):
        """Whether (kind, pk) was reported, or heard on the bus, at or after ``moment``."""
        with self.lock:
            seen = self.reported.get((kind, pk))
        return seen is not None and seen >= moment

    def _report(self, kind, pk, changed_at):
        """True, and remembered, unless the change at ``changed_at`` is already known."""
        if self._known_since(kind, pk, changed_at):
            return False
        with self.lock:
            self.reported[(kind, pk)] = changed_at
        return True

    def _snapshot(self, kind, rows):
        """Changes of a small table (created, changed or gone rows), by comparing with the last look;
        those the bus carried since then were rendered already."""
        now = dict(rows)
        before = self.snapshots.get(kind)
        self.snapshots[kind] = now
        if before is None:
            return []
        changed = [pk for pk in sorted(set(now) | set(before)) if now.get(pk) != before.get(pk)]
        return [(kind, pk, None) for pk in changed if not self._known_since(kind, pk, self.cursor)]

    def poll(self):
        """The changes since the last poll that the bus did not carry: [(kind, pk, component)]."""
        now = timezone.now()
        first = self.cursor is None  # the first look only sets the starting points
        changes = []
        since = (now if first else self.cursor) - timedelta(seconds=WATCH_OVERLAP)
        for kind, rows in (
            ("task", Task.objects.filter(updated_at__gte=since).values_list("pk", "updated_at")),
            ("service", Service.objects.filter(updated_at__gte=since).values_list("pk", "updated_at")),
            ("service", Deployment.objects.filter(updated_at__gte=since).values_list("service_id", "updated_at")),
        ):
            changes += [(kind, pk, None) for pk, updated in rows if self._report(kind, pk, updated)]
        if first:  # what the overlap window held is remembered, not reported
            changes = []
            self.last_activity = Activity.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        for pk, component in Activity.objects.filter(pk__gt=self.last_activity).values_list("pk", "component"):
            self.last_activity = max(self.last_activity, pk)
            with self.lock:
                heard = ("activity", pk) in self.reported
            if not heard:
                changes.append(("activity", pk, component))
        changes += self._snapshot("cluster", Cluster.objects.values_list("pk", "status"))
        changes += self._snapshot("task_definition", TaskDefinition.objects.values_list("pk", "status"))
        changes += self._snapshot("instance", (
            (pk, (status, connected)) for pk, status, connected in
            ContainerInstance.objects.values_list("pk", "status", "agent_connected")))
        self.cursor = now
        with self.lock:
            if len(self.reported) > 50_000:  # forget what is long past the overlap
                cutoff = now - timedelta(seconds=10 * WATCH_OVERLAP)
                self.reported = {key: at for key, at in self.reported.items() if at >= cutoff}
        for kind, pk, _ in changes:
            note_write(kind, pk)
        return changes


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
        self.watch = DatabaseWatch()
        self.watch_task = None
        self.pending_events = []
        self.events_wake = asyncio.Event()
        self.events_seq = 0
        self.events_task = None
        self.hub = fanout.Hub(loop, channel_layer, scoped(fanout.GROUP))

    def start(self):
        """Subscribe to the bus and start the flushing and watching tasks (call on ``self.loop``)."""
        self.unsubscribe = bus.subscribe(self.on_bus)
        self.task = self.loop.create_task(self.run(), name="dashboard-broadcaster")
        if bus.share() is None:  # the bus is this process's only: look at the database for the others'
            self.watch_task = self.loop.create_task(self.run_watch(), name="dashboard-database-watch")
        self.events_task = self.loop.create_task(self.run_events(), name="dashboard-map-events")

    def stop(self):
        """Stop hearing the bus; the flushing task ends with its loop."""
        if self.unsubscribe:
            self.unsubscribe()
            self.unsubscribe = None
        for task in (self.task, self.watch_task, self.events_task):
            if task and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(task.cancel)
        self.hub.stop()

    def on_bus(self, kind, pk, **info):
        """Bus subscriber: hand the change to the loop; never blocks the writer."""
        if kind == "instance" and info.get("heartbeat"):
            kind = HEARTBEAT
        try:
            self.loop.call_soon_threadsafe(self.note, kind, pk, info.get("component"))
        except RuntimeError:  # the loop is closed: this broadcaster is finished
            self.stop()

    def note(self, kind, pk, component):
        self.watch.heard(kind, pk)
        self.pending.append((kind, pk, component))
        self.wake.set()
        if kind == "activity":
            self.note_event(pk)

    def note_event(self, pk):
        self.pending_events.append(pk)
        self.events_wake.set()

    async def run_events(self):
        """Send the activity rows that arrived to the map's hubs at once, then rest ``EVENTS_INTERVAL``."""
        while True:
            await self.events_wake.wait()
            self.events_wake.clear()
            batch, self.pending_events = self.pending_events, []
            self.events_seq = next(_sequence)
            try:
                await self.channel_layer.group_send(
                    self.hub.group, {"type": fanout.MESSAGE_TYPE, "seq": self.events_seq, "events": batch})
            except Exception:  # a failed send must not end the animation; the next event retries
                log.exception("dashboard map events failed")
            await asyncio.sleep(EVENTS_INTERVAL)

    async def run_watch(self):
        """Every ``WATCH_INTERVAL``, pass on what other processes wrote."""
        while True:
            try:
                changes = await database_sync_to_async(self.watch.poll)()
            except Exception:  # the database is busy: look again next time
                log.exception("dashboard database watch failed")
                changes = []
            if changes:
                self.pending.extend(changes)
                self.wake.set()
                for kind, pk, _ in changes:
                    if kind == "activity":
                        self.note_event(pk)
            await asyncio.sleep(WATCH_INTERVAL)

    async def run(self):
        """Flush whatever arrived, then rest ``interval``: a burst becomes one message per group."""
        while True:
            await self.wake.wait()
            if any(kind == "activity" for kind, _, _ in self.pending):
                await asyncio.sleep(FIGURES_DELAY)
                await self.hub.idle()
            self.wake.clear()
            batch, self.pending = self.pending, []
            try:
                await self.flush(batch)
            except Exception:  # a failed flush must not end live updates; the next change retries
                log.exception("dashboard broadcast failed")
            await asyncio.sleep(self.interval)

    async def flush(self, batch):
        """Route one batch and send one message to each group it touches."""
        self.seq = next(_sequence)
        # Described as they pass, so the card tells each step (PENDING → RUNNING), not only the last.
        await database_sync_to_async(describe_writes)()
        groups = await database_sync_to_async(route)(batch)
        for group, changes in groups.items():
            await self.channel_layer.group_send(scoped(group), {"type": MESSAGE_TYPE, "seq": self.seq, "changes": changes})


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
    await broadcaster.hub.start()
    return broadcaster


def install():
    """Subscribe the write recorder to the bus once per process (DashboardConfig.ready)."""
    if not getattr(install, "done", False):
        install.done = True
        bus.subscribe(note_write)
