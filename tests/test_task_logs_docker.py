"""A task's log socket on a real engine: closing it frees its reader thread and its Docker
connection at once, not when the container exits (issue 10, finding 9)."""
import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application
from orchestrator.models import Task

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]

SOCKETS = 40


def reader_threads():
    return [t for t in threading.enumerate() if t.name == "task-logs"]


def open_sockets():
    """The sockets this process holds open (Docker connections among them)."""
    return sum(os.readlink(f"/proc/self/fd/{fd}").startswith("socket:") for fd in os.listdir("/proc/self/fd")
               if os.path.exists(f"/proc/self/fd/{fd}"))


def test_closing_log_sockets_of_a_running_task_frees_their_threads_and_connections(
        control_plane, lab_rows, alice, wait_until):
    task = lab_rows.run_task()
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 30, message="task RUNNING")
    client = Client()
    client.force_login(alice)
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"),
               (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]

    async def open_and_close():
        communicator = WebsocketCommunicator(application, f"/ws/tasks/{task.pk}/logs/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        # The demo's first line arrives through the engine's followed stream: the reader is live.
        while "demo: serving task" not in await communicator.receive_from(timeout=10):
            pass
        await communicator.disconnect()

    def run_sockets(count):
        async def scenario():
            for _ in range(count):
                await open_and_close()
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, scenario()).result()

    run_sockets(1)  # warm up the engine clients' connection pools
    wait_until(lambda: not reader_threads(), 10, message="the warm-up reader to end")
    baseline = open_sockets()

    run_sockets(SOCKETS)
    wait_until(lambda: not reader_threads(), 10, message=f"the readers of {SOCKETS} closed sockets to end")
    # 40 sockets' readers leaked would hold 40 or more; the control plane's own components
    # (the metrics sampler's reads, the paced log reader's connections) may hold a few at any moment.
    wait_until(lambda: open_sockets() <= baseline + 10, 10,
               message=f"open sockets back to the baseline of {baseline} (the control plane may hold a few more)")
    assert Task.objects.get(pk=task.pk).last_status == "RUNNING"  # the container still runs
