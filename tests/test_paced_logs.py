"""The paced log reader on plain Unix sockets (orchestrator/paced_logs.py): each connection is
read at its pace and its writer waits for the rest; one reader per socket; it outlives the
process that started it while a connection is open, and ends once idle with that process gone."""
import socket
import subprocess
import sys
import threading
import time

from orchestrator import paced_logs
from orchestrator.paced_logs import PacedReader, answers
from tests.support.common import ROOT, wait_until

RATE = 16384


def serve(path, rate=RATE, starter_pid=None, idle_seconds=30.0):
    reader = PacedReader(path, rate, starter_pid, idle_seconds)
    reader.bind()
    thread = threading.Thread(target=reader.run, daemon=True)
    thread.start()
    return reader, thread


def writer(path, total):
    """A client writing ``total`` bytes as fast as the reader takes them; how many it sent so far."""
    sent = [0]
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.connect(str(path))

    def write():
        chunk = b"x" * 1024
        try:
            while sent[0] < total:
                sent[0] += client.send(chunk)
        except OSError:  # the reader stopped at the end of the test
            pass
        client.close()

    threading.Thread(target=write, daemon=True).start()
    return sent


def test_it_reads_each_connection_at_its_pace_and_the_writer_waits(tmp_path):
    path = tmp_path / "r.sock"
    reader, thread = serve(path)
    try:
        started = time.monotonic()
        sent = writer(path, 10 * 1024 * 1024)
        wait_until(lambda: reader.read_bytes > 2 * RATE, 10, message="two seconds' worth read")
        elapsed = time.monotonic() - started
        # A second's worth ahead at most (the bucket), plus what the socket buffers hold.
        assert reader.read_bytes <= RATE * (elapsed + 1)
        assert sent[0] < 1024 * 1024  # pushed back: without the pace 10 MB go in well under a second
    finally:
        reader.stopping = True
        thread.join(timeout=5)


def test_two_connections_each_get_their_own_pace(tmp_path):
    path = tmp_path / "r.sock"
    reader, thread = serve(path)
    try:
        first, second = writer(path, 10 * 1024 * 1024), writer(path, 10 * 1024 * 1024)
        wait_until(lambda: first[0] > 2 * RATE and second[0] > 2 * RATE, 10,
                   message="both writers served, neither starved by the other")
    finally:
        reader.stopping = True
        thread.join(timeout=5)


def test_it_ends_once_idle_with_the_process_that_started_it_gone(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    path = tmp_path / "r.sock"
    reader, thread = serve(path, starter_pid=gone.pid, idle_seconds=0.3)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(path))
    wait_until(lambda: reader.buckets, 5, message="the connection accepted")
    time.sleep(0.6)  # longer than the idle time: an open connection keeps it serving (time itself is the test)
    assert thread.is_alive() and answers(path)
    client.close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_one_reader_per_socket(tmp_path):
    path = tmp_path / "r.sock"
    command = [sys.executable, "-m", "orchestrator.paced_logs", str(path), str(RATE)]
    first = subprocess.Popen(command, cwd=ROOT)
    try:
        wait_until(lambda: answers(path), 10, message="the first reader up")
        second = subprocess.run(command, cwd=ROOT, timeout=10)
        assert second.returncode == 0 and answers(path) and first.poll() is None
    finally:
        first.terminate()
        first.wait(timeout=10)
    assert not path.exists()


def test_ensure_running_starts_one_reader_and_says_where(settings, tmp_path):
    lab = f"test-paced-{tmp_path.name[-20:]}"
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "TASK_LOG_PACE": RATE}
    try:
        address = paced_logs.ensure_running(lab)
        assert address == f"unix://{paced_logs.socket_path(lab)}"
        pid = paced_logs.reader_pid(lab)
        assert paced_logs.ensure_running(lab) == address and paced_logs.reader_pid(lab) == pid
    finally:
        paced_logs.stop(lab)
    wait_until(lambda: not answers(paced_logs.socket_path(lab)), 10, message="the reader stopped")


def test_without_a_pace_there_is_no_reader(settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "TASK_LOG_PACE": 0}
    assert paced_logs.ensure_running("test-no-pace") is None


def test_the_socket_is_in_this_users_own_directory_or_nowhere(settings, tmp_path, monkeypatch):
    import os

    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "TASK_LOG_PACE": RATE}
    path = paced_logs.socket_path("test-private")
    assert path.parent == tmp_path / f"fargate-lab-{os.getuid()}" and (path.parent.stat().st_mode & 0o777) == 0o700
    path.parent.chmod(0o755)  # another user could bind a name in it: no reader, json-file instead
    assert paced_logs.ensure_running("test-private") is None
