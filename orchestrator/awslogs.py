"""The agent's awslogs log driver: a container whose definition has ``logConfiguration``
``awslogs`` has its output shipped, with Docker's timestamps, to the lab's CloudWatch Logs, in
the stream ECS names ``<awslogs-stream-prefix>/<container name>/<task id>``.

As on ECS, the group and the stream are settled before the container is created (``prepare``):
``awslogs-create-group: true`` creates a missing group, otherwise a missing group fails the task
with ECS's ResourceInitializationError. The container keeps the driver every task container has
(its output paced by ``paced_logs`` and kept by Docker's dual-logging cache, or json-file): the
``Shipper`` follows each shipping container's Docker log stream, which both serve (one reader
thread per container, blocked on the engine's socket), and one writer thread stores
what the readers buffered every FLUSH_SECONDS, so a line reaches GetLogEvents well within a
second and a flood costs one batched write per stream per flush. A stream ships at most
LOGS_SHIP_LINES_PER_SECOND lines a second (the rest are dropped and the stream says how many),
and each stream and group keeps a bounded size (models.LogGroup). A follow resumed after a
restart starts from the last line stored (``LogStream.shipped_until_ns``), so no line is stored
twice; when the container stops, ``finish`` reads what the follow may have missed.

It follows Docker's stream rather than reading the paced reader's connection: Docker's stream
carries each line's own timestamp (the resume point after a restart and ``finish``'s catch-up
read), works on remote engines and with json-file alike, and the reader stays a process that
keeps nothing and needs no database.

Kubernetes' counterpart is the kubelet keeping the container's log files for ``kubectl logs``;
the difference shown to students: these events outlive the container.
"""
import logging
import threading
import time
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import close_old_connections

from orchestrator.docker_engine import EngineError
from orchestrator.models import LogGroup, LogStream

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2
# What ECS's agent answers when the log group is missing (Fargate platform 1.4).
MISSING_GROUP = ("ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: "
                 "failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not "
                 "exist. : exit status 1")
MAX_MESSAGE_CHARS = 256 * 1024 - 26


class LoggerArgsInvalid(Exception):
    """The container's awslogs arguments cannot be used (its group is missing): the task fails."""


def options_of(definition):
    """The awslogs options of a container definition, or None when it does not ship to awslogs."""
    config = definition.get("logConfiguration") or {}
    return config.get("options") or {} if config.get("logDriver") == "awslogs" else None


def stream_name(options, container_name, task_id):
    """The stream ECS names for a container of a task: prefix/container-name/task-id."""
    return f"{options['awslogs-stream-prefix']}/{container_name}/{task_id}"


def stream_for(task, container_name, definition):
    """The LogStream a container of ``task`` ships to, or None (no awslogs, or not prepared)."""
    options = options_of(definition)
    if options is None:
        return None
    return LogStream.objects.filter(
        group__account_id=task.account_id, group__region=options["awslogs-region"], group__name=options["awslogs-group"],
        name=stream_name(options, container_name, task.task_id)).select_related("group").first()


def task_stream(task):
    """The stream of the container the task page shows (its first essential one), or None."""
    container = task.containers.order_by("-essential", "id").first()
    if container is None:
        return None
    definition = next((c for c in task.task_definition.container_definitions if c.get("name") == container.name), {})
    return stream_for(task, container.name, definition)


def prepare(task, container_name, definition):
    """Settle the group and stream a container ships to before it is created (creating the group
    with awslogs-create-group); returns the LogStream, or None without awslogs. Raises
    LoggerArgsInvalid with ECS's reason when the group is missing or a limit is reached."""
    from orchestrator.frontend.logs.operations import LogsError, create_group, create_stream

    options = options_of(definition)
    if options is None:
        return None
    region, name = options["awslogs-region"], options["awslogs-group"]
    group = LogGroup.objects.filter(account_id=task.account_id, region=region, name=name).first()
    if group is None and options.get("awslogs-create-group", "false").lower() == "true":
        try:
            group = create_group(task.account, region, name)
        except LogsError as error:
            if error.error_type != "ResourceAlreadyExistsException":
                raise LoggerArgsInvalid("ResourceInitializationError: failed to validate logger args: failed to "
                                        f"create Cloudwatch log group: {error.error_type}: {error.message}") from None
            group = LogGroup.objects.get(account_id=task.account_id, region=region, name=name)
    if group is None:
        raise LoggerArgsInvalid(MISSING_GROUP)
    wanted = stream_name(options, container_name, task.task_id)
    stream = LogStream.objects.filter(group=group, name=wanted).first()
    if stream is None:
        try:
            stream = create_stream(group, wanted)
        except LogsError as error:
            if error.error_type != "ResourceAlreadyExistsException":
                raise LoggerArgsInvalid("ResourceInitializationError: failed to validate logger args: create stream "
                                        "has been retried 1 times: failed to create Cloudwatch log stream: "
                                        f"{error.error_type}: {error.message}") from None
            stream = LogStream.objects.get(group=group, name=wanted)
    stream.group = group
    return stream


def parse_line(line):
    """(Docker's timestamp in ns, the message) of a line read with timestamps, or None."""
    stamp, _, message = line.partition(" ")
    if len(stamp) < 20 or stamp[10] != "T" or not stamp.endswith("Z"):
        return None
    whole, _, fraction = stamp[:-1].partition(".")
    try:
        seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt_timezone.utc).timestamp()
    except ValueError:
        return None
    digits = (fraction + "000000000")[:9]
    if not digits.isdigit():
        return None
    return int(seconds) * 1_000_000_000 + int(digits), message.rstrip("\r")[:MAX_MESSAGE_CHARS]


class Shipper:
    """Follows shipping containers' output and stores it in their streams (one per process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._readers = {}  # container id -> (reader thread, its log stream or None)
        self._pending = {}  # stream pk -> [(ns, message)]
        self._dropped = {}  # stream pk -> lines dropped since the last flush
        self._write_lock = threading.Lock()  # one writer of a stream's events at a time
        self._writer = None
        self._stop = threading.Event()

    # -- what the agent calls
    def following(self):
        """The ids of the containers being followed now."""
        with self._lock:
            return {cid for cid, (thread, _) in self._readers.items() if thread.is_alive()}

    def follow(self, engine, container_id, stream):
        """Start following a container's output into ``stream`` (no-op if already followed)."""
        with self._lock:
            current = self._readers.get(container_id)
            if current is not None and current[0].is_alive():
                return
            thread = threading.Thread(target=self._read, args=(engine, container_id, stream.pk),
                                      name=f"awslogs-{container_id[:12]}", daemon=True)
            self._readers[container_id] = (thread, None)
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="awslogs-writer", daemon=True)
                self._writer.start()
        thread.start()

    def finish(self, engine, container_id, stream, wait=2.0):
        """The container stopped: let its follow end, store what it buffered, then read once
        more what the follow may have missed (a container that exited before it was followed)."""
        with self._lock:
            current = self._readers.get(container_id)
        if current is not None:
            current[0].join(timeout=wait)
        self.flush()
        stream.refresh_from_db(fields=["shipped_until_ns"])
        try:
            lines = engine.logs(container_id, follow=False, tail=None, timestamps=True, since=self._since(stream))
        except EngineError as exc:
            log.info("could not read the last output of %s: %s", container_id[:12], exc)
            return
        self._buffer(stream.pk, lines)
        self.flush()
        with self._lock:
            self._readers.pop(container_id, None)

    def stop(self):
        """Close every follow and store what is buffered (the control plane stops)."""
        self._stop.set()
        with self._lock:
            readers = list(self._readers.values())
        for _, log_stream in readers:
            if log_stream is not None:
                log_stream.close()
        self.flush()

    # -- reading
    @staticmethod
    def _since(stream):
        """Where a follow resumes: a millisecond before the last line stored (duplicates are dropped)."""
        if stream.shipped_until_ns is None:
            return None
        return max(stream.shipped_until_ns / 1e9 - 0.001, 0.000001)

    def _read(self, engine, container_id, stream_pk):
        """Thread: follow one container's output until it ends."""
        try:
            stream = LogStream.objects.get(pk=stream_pk)
            log_stream = engine.logs(container_id, follow=True, tail=None, timestamps=True, since=self._since(stream))
            with self._lock:
                self._readers[container_id] = (threading.current_thread(), log_stream)
            if self._stop.is_set():
                log_stream.close()
            self._buffer(stream_pk, log_stream)
        except (EngineError, LogStream.DoesNotExist) as exc:
            log.info("awslogs follow of %s ended: %s", container_id[:12], exc)
        except Exception:  # a bug must not kill the agent; the relist starts a new follow
            log.exception("awslogs follow of %s failed", container_id[:12])
        finally:
            close_old_connections()

    def _buffer(self, stream_pk, lines):
        """Hand the lines to the writer, within the stream's rate of lines per second of the
        container's output (the excess is counted and dropped)."""
        rate = settings.FARGATE_LAB["LOGS_SHIP_LINES_PER_SECOND"]
        allowance, last = float(rate), None
        for line in lines:
            parsed = parse_line(line)
            if parsed is None:
                continue
            # The rate of the container's own output (Docker's times), not of this reading: a
            # backlog read in one go after a busy moment is not a flood.
            now = parsed[0] / 1e9
            if last is not None:
                allowance = min(float(rate), allowance + max(now - last, 0.0) * rate)
            last = now
            with self._lock:
                if allowance < 1.0:
                    self._dropped[stream_pk] = self._dropped.get(stream_pk, 0) + 1
                    continue
                allowance -= 1.0
                self._pending.setdefault(stream_pk, []).append(parsed)

    # -- writing
    def _write_loop(self):
        try:
            while not self._stop.wait(FLUSH_SECONDS):
                self.flush()
        finally:
            close_old_connections()

    def flush(self):
        """Store every buffered line in its stream (once: lines at or before the last stored go)."""
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                dropped, self._dropped = self._dropped, {}
            for stream_pk in set(pending) | set(dropped):
                try:
                    self._store(stream_pk, pending.get(stream_pk, []), dropped.get(stream_pk, 0))
                except Exception:  # the database is busy (locked): the lines wait for the next flush
                    log.exception("awslogs: could not store the lines of stream %s yet", stream_pk)
                    with self._lock:
                        self._pending[stream_pk] = pending.get(stream_pk, []) + self._pending.get(stream_pk, [])
                        self._dropped[stream_pk] = dropped.get(stream_pk, 0) + self._dropped.get(stream_pk, 0)

    @staticmethod
    def _store(stream_pk, lines, dropped):
        stream = LogStream.objects.filter(pk=stream_pk).select_related("group").first()
        if stream is None:  # deleted meanwhile (DeleteLogGroup): its lines go with it
            return
        after = stream.shipped_until_ns or 0
        # In Docker's order, each line once (a catch-up read may repeat what a follow buffered).
        fresh = sorted({ns: message for ns, message in lines if ns > after}.items())
        events = [(ns // 1_000_000, message) for ns, message in fresh]
        if dropped:
            at = events[-1][0] if events else int(time.time() * 1000)
            events.append((at, f"[fargate-lab] {dropped} line(s) dropped: this container wrote more than "
                               f"{settings.FARGATE_LAB['LOGS_SHIP_LINES_PER_SECOND']} lines a second"))
        if not events:
            return
        cutoff = stream.group.retention_cutoff()
        if cutoff is not None:
            events = [e for e in events if e[0] >= cutoff]
        stream.append(events, shipped_until_ns=fresh[-1][0] if fresh else None)
        stream.group.expire_now_and_then()


class StreamReader:
    """A stream's events as text lines for the task page: the last ``tail``, then, when
    following, each new one as it is stored, until the task is STOPPED and nothing more comes.
    Reads the state database (a look every POLL_SECONDS), so it works in any server process;
    ``close()`` from another thread ends it."""

    POLL_SECONDS = 0.25

    def __init__(self, stream_pk, task_pk, follow=True, tail=200):
        self.stream_pk, self.task_pk, self.follow, self.tail = stream_pk, task_pk, follow, tail
        self._closed = threading.Event()

    def close(self):
        self._closed.set()

    def __iter__(self):
        from orchestrator.models import LogEvent, Task

        events = LogEvent.objects.filter(stream_id=self.stream_pk)
        last = events.order_by("-id")[:self.tail] if self.tail else events.order_by("-id")
        rows = list(reversed(list(last.values_list("id", "message"))))
        yield from (message for _, message in rows)
        position = rows[-1][0] if rows else 0
        while self.follow and not self._closed.is_set():
            rows = list(events.filter(id__gt=position).order_by("id").values_list("id", "message")[:500])
            yield from (message for _, message in rows)
            if rows:
                position = rows[-1][0]
                continue
            stopped = Task.objects.filter(pk=self.task_pk, last_status=Task.STOPPED).exists()
            if stopped and not events.filter(id__gt=position).exists():
                return
            self._closed.wait(self.POLL_SECONDS)


_shipper = None
_shipper_lock = threading.Lock()


def shipper():
    """This process's Shipper (the agents' threads share it)."""
    global _shipper
    with _shipper_lock:
        if _shipper is None or _shipper._stop.is_set():
            _shipper = Shipper()
        return _shipper
