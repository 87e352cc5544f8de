"""WebSockets open only from the lab's own pages: a page on another port of the same host,
with the student's cookie in the browser, cannot read their task's logs (issue 10, finding 6)."""
import asyncio
import http.server
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client, override_settings

from config.asgi import application
from dashboard.origin import origin_allowed
from orchestrator.models import Account, Cluster, Task, TaskContainer, TaskDefinition
from tests.support.common import free_port, wait_until

SECRET = "alice-secret-log-line"

# Opens the task's log socket and records what happened on window.probe.
PROBE = """
(url) => new Promise((resolve) => {
  const seen = [];
  const ws = new WebSocket(url);
  ws.onmessage = (e) => seen.push(e.data);
  ws.onclose = (e) => resolve({opened: seen.length > 0, code: e.code, text: seen.join("")});
  setTimeout(() => { ws.close(); }, 3000);
})
"""


def scope(origin=None, host="127.0.0.1:8000"):
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "headers": headers}


@override_settings(LAB_HOST="127.0.0.1", LAB_PORT=8000, CSRF_TRUSTED_ORIGINS=["https://*.lab.example", "https://lab.test"])
def test_it_allows_only_the_labs_own_origins():
    assert origin_allowed(scope("http://127.0.0.1:8000"))
    assert origin_allowed(scope("http://localhost:8000", host="localhost:8000"))
    assert origin_allowed(scope("http://localhost:8000", host="127.0.0.1:8000"))  # the configured HOST:PORT
    assert origin_allowed(scope("https://lab.test", host="10.0.0.1:8000"))  # CSRF_TRUSTED_ORIGINS
    assert origin_allowed(scope("https://room1.lab.example", host="10.0.0.1:8000"))
    assert origin_allowed(scope(None))  # not a browser: no ambient cookie to abuse
    for foreign in ("http://127.0.0.1:8081", "http://localhost:32768", "http://evil.example", "null",
                    "http://127.0.0.1:8000.evil.example", "https://lab.test.evil", "file://"):
        assert not origin_allowed(scope(foreign)), foreign


@override_settings(LAB_HOST="0.0.0.0", LAB_PORT=8000, CSRF_TRUSTED_ORIGINS=[])
def test_a_classroom_lab_allows_the_name_it_is_reached_by_and_nothing_else():
    assert origin_allowed(scope("http://10.1.2.3:8000", host="10.1.2.3:8000"))
    assert origin_allowed(scope("http://lab-pc.local:8000", host="lab-pc.local:8000"))
    assert not origin_allowed(scope("http://10.1.2.3:8080", host="10.1.2.3:8000"))
    assert not origin_allowed(scope("http://127.0.0.1:8000", host="10.1.2.3:8000"))


@pytest.mark.django_db(transaction=True)
def test_the_socket_handshake_from_another_port_is_refused(alice):
    client = Client()
    client.force_login(alice)
    session = client.cookies["sessionid"].value

    async def handshake(origin):
        headers = [(b"origin", origin.encode()), (b"host", b"127.0.0.1:8000"), (b"cookie", f"sessionid={session}".encode())]
        communicator = WebsocketCommunicator(application, "/ws/map/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(asyncio.run, handshake("http://127.0.0.1:8000")).result()
        assert not pool.submit(asyncio.run, handshake("http://127.0.0.1:8081")).result()


@pytest.fixture
def alices_stopped_task(dashboard_user):
    """A task of alice's account whose kept output holds a secret line."""
    account = Account.of_user(dashboard_user)
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    task = Task.objects.create(account=account, cluster=cluster, task_definition=td, cpu=256, memory=512,
                               last_status=Task.STOPPED, desired_status=Task.STOPPED)
    TaskContainer.objects.create(task=task, name="web", image="busybox", log_tail=f"boot\n{SECRET}\n")
    return task


@pytest.fixture
def foreign_page():
    """A page served from another port of 127.0.0.1, as a task or a listener could serve one."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>not the lab</title><p>hello</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.browser
def test_a_page_on_another_port_cannot_read_a_logged_in_students_logs(page, live_lab_server, alices_stopped_task, foreign_page):
    socket_url = f"ws://127.0.0.1:{live_lab_server.port}/ws/tasks/{alices_stopped_task.pk}/logs/"
    # The lab's own page, with alice's session, reads her logs: the socket works.
    own = page.evaluate(PROBE, socket_url)
    assert own["opened"] and SECRET in own["text"]
    # The same browser (alice's cookie goes to every port of 127.0.0.1) on a foreign page.
    page.goto(foreign_page)
    wait_until(lambda: page.title() == "not the lab", message="the foreign page")
    foreign = page.evaluate(PROBE, socket_url)
    assert not foreign["opened"] and SECRET not in foreign["text"]
    assert foreign["code"] == 1006  # the handshake was refused (HTTP 403), no socket opened
