"""The paced log reader: where task containers on this host send their output, so that a
container writing faster than TASK_LOG_PACE bytes a second is held back on its own pipe instead
of dockerd burning CPU to drain it (issue 10's log floods).

A task container on a local engine gets Docker's ``syslog`` log driver pointed at this reader's
Unix socket. Each container is one connection, and the reader takes at most TASK_LOG_PACE bytes
a second from each (a token bucket of one second): past that, the socket's buffer fills,
dockerd's write to it blocks, the container's stdout pipe fills and the container's own write
blocks, as on ECS with the awslogs driver in its default blocking mode. The reader keeps
nothing: what the container wrote is kept by Docker's dual-logging cache (Docker 20.10+), which
``docker logs``, the task page and the awslogs shipper read, bounded by Docker (5 files of 20 MB;
Docker 20.10 accepts its cache-max-size and cache-max-file options and does not apply them, so
TASK_LOG_MAX_SIZE and TASK_LOG_MAX_FILE bound the json-file containers only).

The reader is a small process of its own (``python -m orchestrator.paced_logs``), one per lab and
host, in a session of its own (a Ctrl-C of the lab's terminal does not reach it), not a thread
of the server: running containers hold their connections while the server restarts.
Docker does not keep a line the syslog driver failed to send (its cache takes a line only after
the driver did), and logs one error of its own per line while the address refuses, so the reader
must answer whenever a paced container runs: the agent starts it before creating a container and
again at each relist (``ensure_running``), and it exits only once it has had no connection for
IDLE_SECONDS and the process that started it is gone. When it cannot be started, new containers
get json-file, rotated the same (unpaced, as before); so do containers of a remote engine, whose
dockerd cannot reach a socket on this host.

Kubernetes' counterpart: none in the kubelet (the container runtime drains the pipe into files);
the reader is the lab's answer to a noisy neighbour on a shared node.
"""
import fcntl
import hashlib
import logging
import os
import selectors
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

IDLE_SECONDS = 30.0
START_TIMEOUT = 5.0
# The most one connection may carry ahead of its pace (one second's worth, and at least this).
MIN_CHUNK = 4096

_ensure_lock = threading.Lock()
_spawned = []  # the readers this process started (reaped once they exit)


def socket_path(lab):
    """The reader's socket for ``lab`` on this host, in this user's private directory (short
    enough for a Unix socket's name)."""
    digest = hashlib.sha256(lab.encode()).hexdigest()[:16]
    return private_dir() / f"logs-{digest}.sock"


def private_dir():
    """``$TMPDIR/fargate-lab-<uid>``, this user's own (0700): no other user of the machine may
    bind the reader's name first and so receive the tasks' output. PermissionError when the
    name is taken by anything else."""
    path = Path(tempfile.gettempdir()) / f"fargate-lab-{os.getuid()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    status = os.lstat(path)
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PermissionError(f"{path} is not this user's own private directory")
    return path


def answers(path):
    """Whether a reader is listening at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def pace():
    """Bytes a second the reader takes from each container (0: no pacing, json-file for all)."""
    from django.conf import settings

    return int(settings.FARGATE_LAB.get("TASK_LOG_PACE") or 0)


def ensure_running(lab=None):
    """The ``syslog-address`` of this lab's reader, started if it is not running; None when
    pacing is off or the reader cannot be started (the caller uses json-file)."""
    from orchestrator.docker_engine import lab_id

    rate = pace()
    if rate <= 0:
        return None
    try:
        path = socket_path(lab or lab_id())
    except OSError as exc:
        log.warning("no paced log reader: %s", exc)
        return None
    if answers(path):
        return f"unix://{path}"
    with _ensure_lock:
        _spawned[:] = [process for process in _spawned if process.poll() is None]
        if not answers(path):
            command = [sys.executable, "-m", "orchestrator.paced_logs", str(path), str(rate), str(os.getpid())]
            _spawned.append(subprocess.Popen(command, cwd=Path(__file__).resolve().parents[1], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                             start_new_session=True))
            deadline = time.monotonic() + START_TIMEOUT
            while not answers(path):
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.02)  # the new process needs a moment to bind; polled against a deadline
    return f"unix://{path}"


def reader_pid(lab):
    """The pid of ``lab``'s reader on this host, or None."""
    try:
        text = Path(f"{socket_path(lab)}.lock").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def stop(lab):
    """End ``lab``'s reader (a test's lab is done with; a real lab's reader ends by itself), and
    no other process: the pid must still be a reader of this lab's socket."""
    pid = reader_pid(lab)
    if pid is None:
        return
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if str(socket_path(lab)).encode() not in command:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


class PacedReader:
    """The reader's loop: accept connections, read each at ``rate`` bytes a second, discard."""

    def __init__(self, path, rate, starter_pid=None, idle_seconds=IDLE_SECONDS):
        self.path, self.rate, self.starter_pid, self.idle_seconds = Path(path), rate, starter_pid, idle_seconds
        self.chunk = max(rate, MIN_CHUNK)
        self.selector = selectors.DefaultSelector()
        self.buckets = {}  # connection -> [tokens, monotonic time of the last refill]
        self.paused = {}  # connection -> monotonic time its bucket holds a chunk again
        self.read_bytes = 0
        self.stopping = False

    def bind(self):
        """Listen at the path (a stale socket file of a reader that died is replaced)."""
        if self.path.exists():
            self.path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(128)
        server.setblocking(False)
        self.selector.register(server, selectors.EVENT_READ)
        self.server = server

    def run(self):
        """Serve until stopped, or idle with the starting process gone."""
        idle_since = time.monotonic()
        while not self.stopping:
            now = time.monotonic()
            waits = [at - now for at in self.paused.values()]
            for key, _ in self.selector.select(timeout=max(min(waits + [1.0]), 0.0)):
                if key.fileobj is self.server:
                    self._accept()
                else:
                    self._read(key.fileobj)
            self._resume(time.monotonic())
            if self.buckets:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.idle_seconds and not self._starter_alive():
                break
        for connection in list(self.buckets):
            self._close(connection)
        self.server.close()

    def _accept(self):
        try:
            connection, _ = self.server.accept()
        except BlockingIOError:
            return
        connection.setblocking(False)
        self.buckets[connection] = [float(self.chunk), time.monotonic()]
        self.selector.register(connection, selectors.EVENT_READ)

    def _read(self, connection):
        """Take what the bucket allows; pause the connection (not read: the writer waits) when empty."""
        bucket = self.buckets[connection]
        try:
            data = connection.recv(int(min(bucket[0], 65536)))
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(connection)
            return
        self.read_bytes += len(data)
        bucket[0] -= len(data)
        if bucket[0] < 1:
            self.selector.unregister(connection)
            self.paused[connection] = time.monotonic() + min(self.chunk, MIN_CHUNK) / self.rate

    def _resume(self, now):
        """Refill each bucket by the time passed; read again from the paused ones that have a chunk."""
        for connection, bucket in self.buckets.items():
            bucket[0] = min(float(self.chunk), bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        for connection, at in list(self.paused.items()):
            if at <= now:
                del self.paused[connection]
                self.selector.register(connection, selectors.EVENT_READ)

    def _close(self, connection):
        self.buckets.pop(connection, None)
        if self.paused.pop(connection, None) is None:
            self.selector.unregister(connection)
        connection.close()

    def _starter_alive(self):
        if self.starter_pid is None:
            return False
        try:
            os.kill(self.starter_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def main(argv):
    """``paced_logs.py <socket path> <bytes a second> [<starter pid>]``: one reader per path."""
    path, rate = Path(argv[1]), int(argv[2])
    starter = int(argv[3]) if len(argv) > 3 else None
    lock = open(f"{path}.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another reader serves this path
        return 0
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    reader = PacedReader(path, rate, starter)

    def stop(*_):
        reader.stopping = True

    signal.signal(signal.SIGTERM, stop)
    reader.bind()
    reader.run()
    if path.exists():
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
