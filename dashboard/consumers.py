"""WebSocket consumers: thin. Check the user, join the page's groups, send its fragments.

Every live page connects to ``/ws/<page>/`` or ``/ws/<page>/<pk>/``. On connect the consumer
sends the page's fragments as they are now, so a page that lost its socket catches up when
the ws extension reconnects. On each ``lab.changed`` message it re-renders the fragments
whose triggers the change touches and sends them as raw HTML (``hx-swap-oob``), never JSON.
"""
import asyncio
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from dashboard import broadcast, fragments, region, state
from orchestrator.models import (
    Account, Cluster, ContainerInstance, Repository, Service, Task, TaskContainer, acting_in, default_region,
)

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404

# The broadcaster's messages: handled without Channels' stop in the database thread first.
BROADCASTS = {broadcast.MESSAGE_TYPE}

# The kinds that change the numbers of the object pages.
OBJECTS = {"task", "service", "cluster", "instance"}


@dataclass(frozen=True)
class Page:
    """A live page: the model its key names, its groups, and per fragment what re-renders it."""

    fragments: dict
    model: type = None
    group: str = "lab"
    triggers: dict = field(default_factory=dict)
    per_account: bool = False  # a list of the user's account's objects: its fragments are keyed by the account
    events: bool = False  # the page animates each activity row (the map)
    staff: bool = False  # a page for staff only (the teacher's class page)

    def groups(self, key):
        return [self.group if key is None else f"{self.group}-{key}"]


PAGES = {
    "map": Page(fragments={
        "box-frontend": {"activity:frontend"},
        "box-statedb": {"task", "service", "cluster", "task_definition", "instance", "deployment"},
        "box-cluster-manager": {"activity:cluster_manager", "service"},
        "box-capacity-manager": {"activity:capacity_manager", "task", "instance"},
        "box-fleet": {"activity:agent", "task", "instance"},
        "box-docker": {"activity:docker", "activity:agent", "task"},
        "box-alb": {"load_balancer", "listener", "target_group", "target"},
        "box-ecr": {"repository", "activity:registry"},
        "card-frontend": {"activity:frontend"},
        "card-statedb": {"task", "service", "cluster", "task_definition", "instance"},
        "card-cluster-manager": {"activity:cluster_manager", "service"},
        "card-capacity-manager": {"activity:capacity_manager", "task", "instance"},
        "card-agents": {"activity:agent", "task", "instance"},
        "card-docker": {"activity:docker", "task"},
        "card-alb": {"load_balancer", "listener", "target_group", "target", "activity:load_balancer"},
        "card-ecr": {"repository", "activity:registry"},
    }, events=True),
    "clusters": Page(fragments={"cluster-list": {"cluster", "service", "task"}}, per_account=True),
    "task-definitions": Page(fragments={"taskdef-list": {"task_definition"}}, per_account=True),
    "repositories": Page(fragments={"repository-list": {"repository"}}, per_account=True),
    "repository": Page(model=Repository, group="repository", fragments={"repository-images": {"repository"}}),
    "load-balancers": Page(fragments={"elb-list": {"load_balancer", "listener", "target_group", "target", "cluster"}},
                           per_account=True),
    "instances": Page(fragments={"instance-list": {"task", "instance"},
                                 "fleet-history": {"instance", "activity:capacity_manager"}}),
    "cluster": Page(model=Cluster, group="cluster", fragments={
        "cluster-summary": OBJECTS,
        "cluster-services": {"service", "task"},
        "cluster-tasks": {"task"},
        "cluster-twin": {"cluster"},
    }),
    "service": Page(model=Service, group="service", fragments={
        "service-summary": {"service", "task"},
        "service-rollout": {"service", "task"},
        "service-task-sets": {"service", "task", "listener", "target_group"},
        "service-events": {"service", "task"},
        "service-tasks": {"task"},
        "service-load-balancing": {"service", "task"},
        "service-discovery": {"service", "task"},
        "service-autoscaling": {"service", "scalable-target"},
        "service-twin": {"service", "task"},
        "service-passes": {"service"},
    }),
    "task": Page(model=Task, group="task", fragments={"task": {"task"}, "task-pull-targets": {"task"},
                                                      "task-twin": {"task"}, "task-traces": {"task"}}),
    "instance": Page(model=ContainerInstance, group="instance", fragments={"instance": {"task", "instance"},
                                                                           "instance-twin": {"task", "instance"}}),
}


# Task tables: when every changed task already has a row on the page, only those rows are
# sent, not the whole table (a status change is the common case; 50 pages stay cheap).
TASK_TABLES = {
    "cluster-tasks": lambda key: state.table_task_pks(cluster_id=key),
    "service-tasks": lambda key: state.table_task_pks(service_id=key),
}


def triggers_of(changes):
    """The trigger names a change message carries: its kinds, and "activity:<component>"."""
    names = {kind for kind in changes if kind != "activity"}
    names.update(f"activity:{component}" for component in changes.get("activity", ()))
    return names


@database_sync_to_async
def _account_pk(user):
    return Account.of_user(user).pk


@database_sync_to_async
def _session_region(session):
    """The region the page's session chose (``dashboard.region``): its fragments show that region's."""
    return region.session_region(session)


@database_sync_to_async
def _viewer(user):
    return state.viewer_of(user)


@database_sync_to_async
def _visible(model, key, account_pk):
    """Whether object ``key`` exists and the user's account may see it (instances are the lab's)."""
    rows = model.objects.filter(pk=key)
    if any(f.name == "account" for f in model._meta.fields):
        rows = rows.filter(account_id=account_pk)
    return rows.exists()


def _render_all(items, seq, region_name=None):
    """``render_all`` in the database thread, acting in ``region_name`` (the page's region)."""
    def in_region():
        with acting_in(region_name or default_region()):
            return render_all(items, seq)

    return database_sync_to_async(in_region)()


def render_all(items, seq):
    """Render (fragment, key) pairs into WebSocket messages; also the rows each task table shows.

    Table rows travel in a message of their own: an HTML parser drops a ``<tr>`` that follows
    a ``<div>`` at the top level, so rows and other fragments must not share one message.
    """
    rows, others = [], []
    for name, key in items:
        html = fragments.cache.render(name, key, seq)
        if html:
            (rows if name == "task-row" else others).append(html)
    shown = {name: TASK_TABLES[name](key) for name, key in items if name in TASK_TABLES}
    return [message for message in ("".join(rows), "".join(others)) if message], shown


# Renders of one broadcast shared by the consumers of one event loop: fifty pages hearing one
# change wait for one render instead of queueing fifty trips to the database thread.
SHARED_RENDERS = 256
_shared = {}


async def _render_shared(items, seq, region_name=None):
    """``_render_all(items, seq, region_name)``, once per (items, seq, region) on this event loop."""
    if seq is None:  # a page that just connected: its own current state
        return await _render_all(items, seq, region_name)
    loop = asyncio.get_running_loop()
    renders = _shared.get(loop)
    if renders is None:
        for old in [old for old in _shared if old.is_closed()]:
            del _shared[old]
        renders = _shared[loop] = OrderedDict()
    key = (tuple(items), seq, region_name)
    render = renders.get(key)
    if render is None:
        render = renders[key] = loop.create_task(_render_all(items, seq, region_name))
        while len(renders) > SHARED_RENDERS:
            renders.popitem(last=False)
    return await asyncio.shield(render)


class LiveConsumer(AsyncWebsocketConsumer):
    """Pushes one page's fragments: all of them on connect, the touched ones on each change."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        kwargs = self.scope["url_route"]["kwargs"]
        self.page = PAGES.get(kwargs.get("page"))
        self.key = int(kwargs["key"]) if kwargs.get("key") else None
        if self.page is None or (self.page.model is None) != (self.key is None):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if self.page.staff and not (user.is_staff or user.is_superuser):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        account_pk = await _account_pk(user)
        if self.page.model is not None and not await _visible(self.page.model, self.key, account_pk):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.fragment_key = account_pk if self.page.per_account else self.key
        self.region = await _session_region(self.scope.get("session"))
        viewed = any(fragments.is_viewed(name) for name in self.page.fragments)
        self.viewer = await _viewer(user) if self.page.events or viewed else None
        self.rows = {}
        self.joined = [broadcast.scoped(group) for group in self.page.groups(self.key)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        broadcaster = await broadcast.ensure_started()
        if self.page.events:  # the events come through this process's hub (dashboard.fanout)
            self.hub = broadcaster.hub
            self.hub.add(self, self.viewer)
        await self.accept()
        await self.send_fragments([(name, self.key_of(name)) for name in self.page.fragments], seq=None)
        if self.page.events:
            # The figures render in a task of their own, in order, so that they never hold up
            # an event.
            self.figures = asyncio.Queue()
            self.figures_worker = asyncio.create_task(self.send_figures())
            await self.hub.ready(self)

    def key_of(self, name):
        """The key fragment ``name`` renders with on this page (with the viewer for viewed ones)."""
        if fragments.is_viewed(name):
            return fragments.Viewed(self.fragment_key, self.viewer)
        return self.fragment_key

    async def disconnect(self, code):
        if getattr(self, "hub", None):
            self.hub.discard(self)
        for group in getattr(self, "joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)
        worker = getattr(self, "figures_worker", None)
        if worker:
            worker.cancel()

    async def send_figures(self):
        """The events page's figure updates, one after another as they were broadcast."""
        while True:
            items, seq = await self.figures.get()
            try:
                await self.send_fragments(items, seq)
            except Exception:  # one failed render must not end the page's updates
                log.exception("map figures push failed")

    async def dispatch(self, message):
        """Channels' dispatch, except for the broadcaster's messages: Channels first closes stale
        database connections in the one database thread, so each of fifty pages hearing a die
        event queued there behind the figures' renders (~170 ms at the median under load). Every
        database use of these handlers is a ``database_sync_to_async`` call, which closes stale
        connections itself."""
        if message.get("type") in BROADCASTS:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)

    async def receive(self, text_data=None, bytes_data=None):
        """Pages only listen; anything a browser sends is ignored."""

    async def lab_changed(self, event):
        """A broadcast: re-render the fragments the change touches."""
        touched = triggers_of(event["changes"])
        changed_tasks = set(event["changes"].get("task", ()))
        items = []
        for name, triggers in self.page.fragments.items():
            if not triggers & touched:
                continue
            if name in self.rows and changed_tasks and changed_tasks <= self.rows[name]:
                items.extend(("task-row", pk) for pk in sorted(changed_tasks))
            else:
                items.append((name, self.key_of(name)))
        if items and self.page.events:
            self.figures.put_nowait((items, event["seq"]))
        elif items:
            await self.send_fragments(items, seq=event["seq"])

    async def send_fragments(self, items, seq):
        messages, shown = await _render_shared(items, seq, getattr(self, "region", None))
        self.rows.update(shown)
        for html in messages:
            await send_html(self, html)


async def send_html(consumer, html):
    """Send HTML; a page that closed meanwhile (its disconnect not yet handled) is not an error."""
    try:
        await consumer.send(text_data=html)
    except RuntimeError as exc:  # the server refuses sends after the socket closed
        log.debug("page gone before its update: %s", exc)


# --- Task logs (CloudWatch Logs / kubectl logs) ------------------------------------------

@database_sync_to_async
def _task_with_log_tail(key):
    task = Task.objects.select_related("account", "cluster").filter(pk=key).first()
    tail = "\n".join(c.log_tail for c in TaskContainer.objects.filter(task_id=key) if c.log_tail)
    return task, tail


def _stream_source():
    """The agent's ``stream_logs(task, follow, tail)``, or None while the agent is not there."""
    try:
        from orchestrator.agent import stream_logs
    except ImportError:
        return None
    return stream_logs


def _close(stream):
    """Close a log stream that can be closed (a followed one); a plain iterator needs nothing."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


class TaskLogsConsumer(AsyncWebsocketConsumer):
    """Streams a task's container output live: the blocking iterator runs in a thread."""

    BATCH_SECONDS = 0.1

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.stopping = threading.Event()
        self.key = int(self.scope["url_route"]["kwargs"]["key"])
        task, tail = await _task_with_log_tail(self.key)
        if task is None or task.account_id != await _account_pk(user):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.accept()
        self.lines = asyncio.Queue()
        await self.push(["(connected: streaming the task's output)"], reset=True)
        stream_logs = _stream_source()
        if stream_logs is None:
            await self.push((tail or "(no output kept for this task)").splitlines())
            return
        loop = asyncio.get_running_loop()
        threading.Thread(target=self.read, args=(stream_logs, task, loop), daemon=True, name="task-logs").start()
        self.pusher = asyncio.create_task(self.forward())

    def read(self, stream_logs, task, loop):
        """Thread: iterate the blocking log stream and hand each line to the loop."""
        from django.db import close_old_connections

        try:
            self.stream = stream_logs(task, follow=True, tail=200)
            if self.stopping.is_set():  # the page closed while the stream was being opened
                _close(self.stream)
            for line in self.stream:
                if self.stopping.is_set():
                    break
                loop.call_soon_threadsafe(self.lines.put_nowait, str(line).rstrip("\n"))
        except Exception as exc:  # the stream ends with the container; say why on the page
            if not self.stopping.is_set():
                loop.call_soon_threadsafe(self.lines.put_nowait, f"(log stream ended: {exc})")
        finally:
            close_old_connections()
            if not self.stopping.is_set() and not loop.is_closed():
                loop.call_soon_threadsafe(self.lines.put_nowait, None)

    async def forward(self):
        """Send lines in small batches (one WebSocket message per ``BATCH_SECONDS``)."""
        while True:
            line = await self.lines.get()
            batch, ended = [], line is None
            if not ended:
                batch.append(line)
            await asyncio.sleep(self.BATCH_SECONDS)
            while not self.lines.empty():
                line = self.lines.get_nowait()
                if line is None:
                    ended = True
                else:
                    batch.append(line)
            if batch:
                await self.push(batch)
            if ended:
                await self.push(["(end of output)"])
                return

    async def push(self, lines, reset=False):
        html = render_to_string(
            "dashboard/fragments/log_lines.html", {"lines": lines, "reset": reset, "key": self.key}
        )
        await send_html(self, html)

    async def disconnect(self, code):
        """Stop the reader: closing its stream frees the thread and the engine connection now,
        not when the container exits."""
        if hasattr(self, "stopping"):
            self.stopping.set()
            _close(getattr(self, "stream", None))
        pusher = getattr(self, "pusher", None)
        if pusher:
            pusher.cancel()

    async def receive(self, text_data=None, bytes_data=None):
        """The log view only listens."""
