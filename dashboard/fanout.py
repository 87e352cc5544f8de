"""The map's events, fanned out once per server process.

Every open map animates each activity row. Fifty maps used to be fifty members of the "lab"
group: each event was copied into fifty channel queues, woke fifty consumers, and each awaited
the shared render before sending its copy; the last page got it ~50 ms after the first on a quiet
machine. Now each event loop (server process) has one ``Hub``, the only member of that
process's ``map-events`` group (``broadcast.scoped``: on a channel layer shared between processes
each broadcaster hears every change on the shared bus and feeds its own process's hub). The
broadcaster sends each batch of activity rows there with one ``group_send``, one message per
process and not per socket; the hub renders the batch once per audience (staff see every id, a
student their account's: ``viewer``) and writes the same HTML to every map socket of that
audience in one pass.

    {"type": "map.events", "seq": n, "events": [activity pk…]}
"""
import asyncio
import logging

from channels.db import database_sync_to_async

from dashboard import fragments

log = logging.getLogger(__name__)

GROUP = "map-events"
MESSAGE_TYPE = "map.events"
# A channel layer forgets a group's member after its group_expiry (a day by default, for both
# the in-memory and the Redis layer); the hub joins again well before.
REJOIN_SECONDS = 3600


def render_events(pks, viewers):
    """{viewer: the map's out-of-band HTML for activity rows ``pks``} ("" when a viewer sees none)."""
    return {viewer: fragments.render("map-events", (viewer, pks), oob=True) or "" for viewer in viewers}


class Hub:
    """One process's map sockets, by audience; fed by its one channel in ``group``."""

    def __init__(self, loop, channel_layer, group=GROUP):
        self.loop = loop
        self.channel_layer = channel_layer
        self.group = group
        self.sockets = {}  # viewer -> {consumer: None}, in the order they connected
        self.channel = None
        self.tasks = ()
        self.sending = set()  # the sends under way (kept until done)
        self.quiet = asyncio.Event()  # no fan-out under way
        self.quiet.set()

    async def start(self):
        """Take a channel, join the group, and start reading it (call on ``self.loop``)."""
        # The layer's own prefix, as the consumers' channels have: channels-redis serves every
        # channel of a process from one Redis list per prefix, one prefix at a time, so a hub
        # on a prefix of its own held the sockets' messages up to 5 s behind its waits.
        self.channel = await self.channel_layer.new_channel()
        await self.channel_layer.group_add(self.group, self.channel)
        self.tasks = (self.loop.create_task(self.run(), name="dashboard-map-events-hub"),
                      self.loop.create_task(self.rejoin(), name="dashboard-map-events-rejoin"))

    def stop(self):
        """Stop reading (the loop is ending, or the broadcaster is replaced)."""
        for task in self.tasks:
            if not self.loop.is_closed():
                self.loop.call_soon_threadsafe(task.cancel)

    def add(self, consumer, viewer):
        """A map socket that shows ``viewer``'s view, still connecting: what it would be sent is
        held until ``ready`` (it is added before it accepts, so an event meanwhile is not lost)."""
        self.sockets.setdefault(viewer, {})[consumer] = []

    async def ready(self, consumer):
        """The socket sent its first fragments: send it what was held, then each event as it comes."""
        for consumers in self.sockets.values():
            if consumer in consumers:
                held, consumers[consumer] = consumers[consumer], None
                for html in held:
                    await self.send(consumer, html)

    def discard(self, consumer):
        """A map socket that closed."""
        for viewer, consumers in list(self.sockets.items()):
            consumers.pop(consumer, None)
            if not consumers:
                del self.sockets[viewer]

    async def rejoin(self):
        """Stay in the group past the layer's group expiry."""
        while True:
            await asyncio.sleep(REJOIN_SECONDS)
            try:
                await self.channel_layer.group_add(self.group, self.channel)
            except Exception:  # the layer is unreachable now: try again next time
                log.exception("map events hub could not rejoin its group")

    async def idle(self):
        """Return once no fan-out is under way (the figures wait for the events to be out)."""
        await self.quiet.wait()

    async def run(self):
        """Fan out every message the group brings."""
        while True:
            message = await self.channel_layer.receive(self.channel)
            self.quiet.clear()
            try:
                await self.fan_out(tuple(message["events"]))
            except Exception:  # one failed batch must not end the animation; the next event retries
                log.exception("map events fan-out failed")
            finally:
                self.quiet.set()

    async def fan_out(self, pks):
        """Render ``pks`` once per audience present, then send each socket its audience's HTML."""
        viewers = list(self.sockets)
        if not viewers or not pks:
            return
        # Off the database thread: the animation must not wait behind the figures' renders.
        rendered = await database_sync_to_async(render_events, thread_sensitive=False)(pks, viewers)
        for viewer, html in rendered.items():
            if not html:
                continue
            for consumer, held in list(self.sockets.get(viewer, {}).items()):
                if held is None:
                    self.spawn(consumer, html)
                else:
                    held.append(html)

    def spawn(self, consumer, html):
        """Send in a task of its own: a socket whose client reads slowly (its buffer full) then
        waits alone, not every socket behind it. One socket's sends still go out in order (they
        wait for it to drain in the order they came)."""
        task = self.loop.create_task(self.send(consumer, html))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    @staticmethod
    async def send(consumer, html):
        """Send one socket its event; one that failed must not cost the others theirs."""
        from dashboard.consumers import send_html

        try:
            await send_html(consumer, html)
        except Exception as exc:  # the socket closed meanwhile
            log.debug("map socket gone before its event: %s", exc)
