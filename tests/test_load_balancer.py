"""The load balancer's data plane against real containers: round robin, retries, health checks,
draining, bind errors, and the hooks the control plane calls."""
import collections
import http.server
import json
import socket
import threading
import urllib.error
import urllib.request

import pytest

from orchestrator import load_balancer
from orchestrator.models import Account, Listener, LoadBalancer, Target, TargetGroup
from tests.support.common import free_port, wait_until
from tests.support.elb import docker



def get(port, path="/", timeout=5):
    """(status, body) of one GET to the listener."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def task_of(body):
    """The task name the demo image put on its first line ("task: <name>")."""
    return body.splitlines()[0].removeprefix("task: ")


def make_lb(port, interval=1.0, unhealthy=2, delay=2.0):
    """A load balancer, a target group checking every ``interval`` s, and a listener on ``port``."""
    account = Account.default()
    lb = LoadBalancer.objects.create(account=account, name="web-lb")
    tg = TargetGroup.objects.create(
        account=account, name="web-tg", port=80, target_type="ip", health_check_interval=interval,
        health_check_timeout=min(1.0, interval / 2), unhealthy_threshold=unhealthy, healthy_threshold=2,
        deregistration_delay=delay,
    )
    listener = Listener.objects.create(
        load_balancer=lb, port=port, default_actions=[{"Type": "forward", "TargetGroupArn": tg.arn, "Order": 1}]
    )
    listener.target_groups.set([tg])
    return lb, tg, listener


def add_target(tg, port):
    return Target.objects.create(target_group=tg, target_id="127.0.0.1", port=port, address="127.0.0.1", connect_port=port)


def healthy_ids(tg):
    return set(tg.targets.filter(state=Target.HEALTHY).values_list("pk", flat=True))


@pytest.mark.docker
def test_it_spreads_requests_round_robin_over_three_containers(data_plane, demo_containers):
    port = free_port()
    _, tg, _ = make_lb(port)
    targets = [add_target(tg, demo_containers.start(f"task-{i}")[1]) for i in range(3)]
    data_plane.sync()
    wait_until(lambda: healthy_ids(tg) == {t.pk for t in targets}, 15, message="three healthy targets")
    data_plane.sync()

    answers = collections.Counter()
    for _ in range(60):
        status, body = get(port)
        assert status == 200
        answers[task_of(body)] += 1

    assert answers == {"task-0": 20, "task-1": 20, "task-2": 20}


@pytest.mark.docker
def test_it_loses_no_request_when_a_target_dies_and_marks_it_unhealthy(data_plane, demo_containers):
    port = free_port()
    _, tg, _ = make_lb(port)
    started = [demo_containers.start(f"task-{i}") for i in range(3)]
    targets = [add_target(tg, host_port) for _, host_port in started]
    data_plane.sync()
    wait_until(lambda: healthy_ids(tg) == {t.pk for t in targets}, 15, message="three healthy targets")
    data_plane.sync()

    failures, answers, done = [], collections.Counter(), threading.Event()

    def client():
        while not done.is_set():
            try:
                status, body = get(port)
                answers[task_of(body)] += 1
                if status != 200:
                    failures.append(status)
            except OSError as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: sum(answers.values()) >= 30, 15, message="traffic before the kill")
        docker("kill", started[0][0])
        victim = targets[0]
        wait_until(lambda: Target.objects.get(pk=victim.pk).state == Target.UNHEALTHY, 15,
                   message="the killed target to be marked unhealthy")
        before = sum(answers.values())
        wait_until(lambda: sum(answers.values()) >= before + 30, 15, message="traffic after the kill")
    finally:
        done.set()
        for thread in threads:
            thread.join()

    assert failures == []
    victim = Target.objects.get(pk=targets[0].pk)
    assert victim.reason == "Target.FailedHealthChecks"
    assert load_balancer.task_health  # the hook exists for the control plane
    served_after = collections.Counter()
    for _ in range(20):
        served_after[task_of(get(port)[1])] += 1
    assert set(served_after) == {"task-1", "task-2"}


@pytest.mark.docker
def test_it_answers_503_without_targets_and_drains_deregistered_ones(data_plane, demo_containers):
    port = free_port()
    _, tg, _ = make_lb(port, delay=1.0)
    data_plane.sync()
    assert get(port)[0] == 503

    target = add_target(tg, demo_containers.start("task-0")[1])
    data_plane.sync()
    wait_until(lambda: healthy_ids(tg) == {target.pk}, 15, message="a healthy target")
    data_plane.sync()
    assert get(port) == (200, get(port)[1])

    from orchestrator.elbv2 import operations

    assert operations.drain(Target.objects.get(pk=target.pk)) == 1.0
    data_plane.sync()
    assert Target.objects.get(pk=target.pk).state == Target.DRAINING
    assert get(port)[0] == 503
    wait_until(lambda: not Target.objects.filter(pk=target.pk).exists(), 10, message="the drained target to go")


def test_it_reports_a_port_that_cannot_be_bound(data_plane):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        lb, _, listener = make_lb(port)
        data_plane.sync()

        listener.refresh_from_db()
        lb.refresh_from_db()
        assert f"port {port} on 127.0.0.1 cannot be bound" in listener.bind_error
        assert lb.state == LoadBalancer.ACTIVE_IMPAIRED
        assert str(port) in lb.state_reason


def test_it_serves_a_fixed_response(data_plane):
    port = free_port()
    lb = LoadBalancer.objects.create(account=Account.default(), name="fixed")
    Listener.objects.create(load_balancer=lb, port=port, default_actions=[{
        "Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "418", "MessageBody": "teapot", "ContentType": "text/plain"},
    }])
    data_plane.sync()

    assert get(port) == (418, "teapot")


def test_it_stops_listening_when_the_listener_is_deleted(data_plane):
    port = free_port()
    _, _, listener = make_lb(port)
    data_plane.sync()
    assert get(port)[0] == 503

    listener.delete()
    data_plane.sync()

    with pytest.raises(urllib.error.URLError):
        get(port)


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """An upstream that answers with what it received (or 2 MiB for /big, 404 for /missing)."""

    def do_GET(self):
        self._answer(b"")

    def do_POST(self):
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def _answer(self, body):
        if self.path == "/big":
            payload = b"x" * (2 * 1024 * 1024)
        else:
            payload = json.dumps({"method": self.command, "path": self.path, "body": body.decode(),
                                  "headers": dict(self.headers)}).encode()
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Upstream", "echo")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def serving_echo(data_plane, echo_upstream):
    """A listener port whose one healthy target is the echo upstream."""
    port = free_port()
    _, tg, _ = make_lb(port)
    target = add_target(tg, echo_upstream)
    data_plane.sync()
    wait_until(lambda: healthy_ids(tg) == {target.pk}, 10, message="the echo target healthy")
    data_plane.sync()
    return port


def test_it_forwards_method_path_body_and_headers(data_plane, echo_upstream):
    port = serving_echo(data_plane, echo_upstream)

    request = urllib.request.Request(f"http://127.0.0.1:{port}/orders?id=7", data=b"hello", method="POST",
                                     headers={"Host": "web-lb-1.us-east-1.elb.localhost", "X-Forwarded-For": "10.1.1.1"})
    with urllib.request.urlopen(request, timeout=5) as response:
        echoed, upstream_header = json.loads(response.read()), response.headers["X-Upstream"]

    assert (echoed["method"], echoed["path"], echoed["body"]) == ("POST", "/orders?id=7", "hello")
    assert echoed["headers"]["Host"] == "web-lb-1.us-east-1.elb.localhost"
    assert echoed["headers"]["X-Forwarded-For"] == "10.1.1.1, 127.0.0.1"
    assert echoed["headers"]["X-Forwarded-Port"] == str(port)
    assert echoed["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert upstream_header == "echo"
    assert get(port, "/missing")[0] == 404
    status, body = get(port, "/big")
    assert status == 200 and len(body) == 2 * 1024 * 1024


def test_it_keeps_the_dashboards_cookies_from_targets(data_plane, echo_upstream):
    port = serving_echo(data_plane, echo_upstream)

    def cookie_sent(cookie):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())["headers"].get("Cookie")

    # A logged-in student's browser sends the lab's cookies to every port of 127.0.0.1.
    assert cookie_sent("sessionid=s3cr3t; theme=dark; csrftoken=t0ken") == "theme=dark"
    assert cookie_sent("sessionid=s3cr3t;csrftoken=t0ken") is None
    assert cookie_sent("app=1; sessionidx=keep") == "app=1; sessionidx=keep"


def test_it_marks_a_target_answering_the_wrong_code_unhealthy(data_plane, echo_upstream):
    port = free_port()
    _, tg, _ = make_lb(port)
    TargetGroup.objects.filter(pk=tg.pk).update(health_check_path="/missing")
    target = add_target(tg, echo_upstream)
    data_plane.sync()

    wait_until(lambda: Target.objects.get(pk=target.pk).state == Target.UNHEALTHY, 10, message="an unhealthy target")
    target.refresh_from_db()
    assert target.reason == "Target.ResponseCodeMismatch"
    assert target.description == "Health checks failed with these codes: [404]"
