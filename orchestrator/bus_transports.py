"""The change bus between server processes: Redis pub/sub, or PostgreSQL's LISTEN/NOTIFY.

A transport carries batches of changes, each ``[kind, pk, info]``, as one JSON message
``{"from": <sender>, "changes": [...]}`` on one channel named after the state database, so
that processes sharing a database hear each other and no one else. Every process hears its
own messages too; ``orchestrator.bus`` drops those by their sender.

Each transport has a sender thread (writers only put changes on a queue: a commit never waits
on the network, and a burst of writes is one message) and a listener thread that reconnects
with a growing pause when the server goes away. What is published while the server is away is
lost: the control plane's resync and the next change repair what it would have said.
"""
import hashlib
import json
import logging
import queue
import threading
import time

log = logging.getLogger(__name__)

# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
NOTIFY_LIMIT = 7900
RECONNECT_PAUSES = (0.1, 0.5, 1.0, 2.0, 5.0)


def channel_name(database):
    """The bus channel of the processes on state database ``database`` (Django's settings of it):
    they are one lab, whatever else shares the Redis server."""
    where = f"{database.get('HOST') or ''}:{database.get('PORT') or ''}/{database['NAME']}"
    return f"fargatelab_bus_{hashlib.sha1(where.encode()).hexdigest()[:16]}"


def encode(sender, changes, limit=None):
    """``changes`` as JSON messages from ``sender``, each under ``limit`` bytes when one is given."""
    empty = len(json.dumps({"from": sender, "changes": []}))
    batches, batch, size = [], [], empty
    for change in changes:
        length = len(json.dumps(change, default=str).encode()) + 2
        if limit is not None and batch and size + length > limit:
            batches.append(batch)
            batch, size = [], empty
        batch.append(change)
        size += length
    if batch:
        batches.append(batch)
    return [json.dumps({"from": sender, "changes": batch}, default=str) for batch in batches]


def decode(text):
    """(sender, changes) of one message; (None, []) for one that is not the bus's."""
    try:
        message = json.loads(text)
        return message["from"], [(kind, pk, dict(info)) for kind, pk, info in message["changes"]]
    except (ValueError, KeyError, TypeError):
        log.warning("bus: ignored a message that is not a change batch: %.200r", text)
        return None, []


class Transport:
    """A sender and a listener thread on one channel; ``deliver(sender, changes)`` is called in
    the listener thread for every message heard."""

    limit = None

    def __init__(self, channel, deliver):
        self.channel = channel
        self.deliver = deliver
        self.outbox = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.connected = threading.Event()  # the listener is subscribed (tests wait on it)
        self.threads = []
        self.unsent = 0  # changes put on the outbox and not yet published (or given up)
        self.unsent_lock = threading.Lock()

    def start(self):
        for target, name in ((self._send_forever, "bus-sender"), (self._listen_forever, "bus-listener")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self):
        self.stopping.set()
        self.outbox.put(None)
        for thread in self.threads:
            thread.join(timeout=5)
        self.reset_sender()

    def send(self, sender, change):
        with self.unsent_lock:
            self.unsent += 1
        self.outbox.put((sender, change))

    def flush(self, timeout=2.0):
        """Wait until what was sent so far has left (at process exit)."""
        deadline = time.monotonic() + timeout
        while self.unsent and time.monotonic() < deadline:
            time.sleep(0.01)

    def _send_forever(self):
        while not self.stopping.is_set():
            item = self.outbox.get()
            if item is None:
                return
            sender, batch = item[0], [item[1]]
            while not self.outbox.empty() and len(batch) < 1000:
                item = self.outbox.get_nowait()
                if item is None:
                    return
                batch.append(item[1])
            for message in encode(sender, batch, self.limit):
                try:
                    self.publish(message)
                except Exception as exc:  # the server is away: the change is lost (see the module doc)
                    log.warning("bus: could not publish %d change(s): %s", len(batch), exc)
                    self.reset_sender()
            with self.unsent_lock:
                self.unsent -= len(batch)

    def _listen_forever(self):
        failures = 0
        while not self.stopping.is_set():
            try:
                for text in self.listen():
                    failures = 0
                    sender, changes = decode(text)
                    if changes:
                        self.deliver(sender, changes)
            except Exception as exc:  # the server went away: listen again after a pause
                self.connected.clear()
                pause = RECONNECT_PAUSES[min(failures, len(RECONNECT_PAUSES) - 1)]
                failures += 1
                log.warning("bus: listening on %s failed (%s); again in %.1f s", self.channel, exc, pause)
                self.stopping.wait(pause)

    def publish(self, message):
        raise NotImplementedError

    def reset_sender(self):
        """Drop the sender's connection, so that the next message opens a new one."""

    def listen(self):
        """Yield the messages heard on the channel (sets ``connected`` once subscribed)."""
        raise NotImplementedError


class RedisTransport(Transport):
    """Redis pub/sub (PUBLISH / SUBSCRIBE) on the server of REDIS_URL."""

    def __init__(self, url, channel, deliver):
        super().__init__(channel, deliver)
        self.url = url
        self.client = None

    def publish(self, message):
        if self.client is None:
            import redis

            self.client = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        self.client.publish(self.channel, message)

    def reset_sender(self):
        self.client = None

    def listen(self):
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=5, health_check_interval=10)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            while not self.stopping.is_set():
                message = pubsub.get_message(timeout=1.0)
                if not self.connected.is_set() and pubsub.subscribed:
                    self.connected.set()
                if message and message["type"] == "message":
                    yield message["data"].decode()
        finally:
            pubsub.close()
            client.close()


class PostgresTransport(Transport):
    """PostgreSQL's NOTIFY / LISTEN on the state database itself (connections of its own, in
    autocommit, beside Django's)."""

    limit = NOTIFY_LIMIT

    def __init__(self, database, channel, deliver):
        super().__init__(channel, deliver)
        self.params = {"dbname": database["NAME"], "user": database.get("USER") or None,
                       "password": database.get("PASSWORD") or None, "host": database.get("HOST") or None,
                       "port": database.get("PORT") or None, **database.get("OPTIONS", {})}
        self.params = {key: value for key, value in self.params.items() if value is not None}
        self.sender = None

    def _connect(self):
        import psycopg

        return psycopg.connect(autocommit=True, connect_timeout=5, **self.params)

    def publish(self, message):
        if self.sender is None:
            self.sender = self._connect()
        self.sender.execute("SELECT pg_notify(%s, %s)", (self.channel, message))

    def reset_sender(self):
        if self.sender is not None:
            try:
                self.sender.close()
            except Exception:  # already broken: nothing to close
                pass
        self.sender = None

    def listen(self):
        with self._connect() as connection:
            connection.execute(f'LISTEN "{self.channel}"')
            self.connected.set()
            while not self.stopping.is_set():
                for notify in connection.notifies(timeout=1.0):
                    yield notify.payload
