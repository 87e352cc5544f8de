"""The data plane honours listener rules, weighted forwards and the attributes it claims: requests
to real demo containers and to an echo upstream through a real listener."""
import collections
import http.server
import json
import threading
import urllib.error
import urllib.request

import boto3
import pytest

from orchestrator.elbv2 import rules
from orchestrator.models import Account, Listener, LoadBalancer, Target, TargetGroup
from tests.support.common import free_port, wait_until
from tests.support.elb import data_plane, demo_containers  # noqa: F401  (fixtures)


def get(port, path="/", headers=None, method="GET"):
    """(status, body, headers) of one request to the listener."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def task_of(body):
    return body.splitlines()[0].removeprefix("task: ")


@pytest.fixture
def elbv2(live_server):
    Account.default()
    return boto3.client("elbv2", endpoint_url=live_server.url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


class Web:
    """A load balancer whose listener forwards to target group ``web``; more groups on demand."""

    def __init__(self, plane):
        self.plane = plane
        self.account = Account.default()
        self.lb = LoadBalancer.objects.create(account=self.account, name="web-lb")
        self.groups = {}
        self.port = free_port()
        self.listener = Listener.objects.create(load_balancer=self.lb, port=self.port, default_actions=[])

    def group(self, name, upstream_port):
        tg = TargetGroup.objects.create(account=self.account, name=name, port=80, target_type="ip",
                                        health_check_interval=1.0, health_check_timeout=0.5, healthy_threshold=2)
        Target.objects.create(target_group=tg, target_id="127.0.0.1", port=upstream_port, address="127.0.0.1",
                              connect_port=upstream_port)
        self.groups[name] = tg
        return tg

    def forward_to(self, name):
        self.listener.default_actions = [{"Type": "forward", "TargetGroupArn": self.groups[name].arn, "Order": 1}]
        self.listener.save()
        rules.associate(self.listener)

    def ready(self):
        """Sync, wait for the targets of every group the listener uses to be healthy, and sync
        again (the proxy's view of their health)."""
        self.plane.sync()
        used = Target.objects.filter(target_group__listeners=self.listener)
        wait_until(lambda: used.exclude(state=Target.HEALTHY).count() == 0, 20, message="healthy targets")
        self.plane.sync()


@pytest.fixture
def web(data_plane):  # noqa: F811
    return Web(data_plane)


@pytest.mark.docker
def test_a_path_rule_routes_api_requests_to_a_second_target_group(web, demo_containers, elbv2):  # noqa: F811
    # The demo image answers "task: <name>" at "/" and at /cgi-bin/index.cgi: the "api" group's
    # rule takes the second path, every other request goes to the "site" group.
    web.group("site", demo_containers.start("site")[1])
    web.group("api", demo_containers.start("api")[1])
    web.forward_to("site")
    api = "/cgi-bin/index.cgi"
    rule = elbv2.create_rule(ListenerArn=web.listener.arn, Priority=10, Conditions=[
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/cgi-bin/*"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": web.groups["api"].arn}])["Rules"][0]
    web.ready()

    assert task_of(get(web.port, api)[1]) == "api"
    assert task_of(get(web.port, api + "?q=1")[1]) == "api"
    assert task_of(get(web.port, "/")[1]) == "site"
    assert task_of(get(web.port, "/?next=/cgi-bin/x")[1]) == "site"  # the query string is not the path
    assert get(web.port, "/CGI-BIN/index.cgi")[0] == 404  # paths match case-sensitively: the site has no such file

    # A host rule at a higher priority (a lower number) wins over the path rule.
    elbv2.create_rule(ListenerArn=web.listener.arn, Priority=5, Conditions=[
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["admin.*"]}}],
        Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "403", "MessageBody": "admins only"}}])
    web.plane.sync()
    status, body, headers = get(web.port, api, headers={"Host": "ADMIN.example.com:8080"})
    assert (status, body) == (403, "admins only") and headers["Server"] == "awselb/2.0"
    assert task_of(get(web.port, api, headers={"Host": "shop.example.com"})[1]) == "api"

    elbv2.delete_rule(RuleArn=rule["RuleArn"])
    web.plane.sync()
    assert task_of(get(web.port, api)[1]) == "site"


@pytest.mark.docker
def test_a_weighted_forward_shifts_traffic_between_blue_and_green(web, demo_containers, elbv2):  # noqa: F811
    web.group("blue", demo_containers.start("blue")[1])
    web.group("green", demo_containers.start("green")[1])
    web.forward_to("blue")
    web.ready()

    def weights(blue, green):
        """Set the weights, and count where 200 requests go once the groups in use are healthy."""
        elbv2.modify_listener(ListenerArn=web.listener.arn, DefaultActions=[{"Type": "forward", "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": web.groups["blue"].arn, "Weight": blue},
                             {"TargetGroupArn": web.groups["green"].arn, "Weight": green}]}}])
        web.ready()
        return collections.Counter(task_of(get(web.port)[1]) for _ in range(200))

    assert weights(100, 0) == {"blue": 200}
    canary = weights(50, 50)
    assert canary["blue"] >= 50 and canary["green"] >= 50  # each ~100; below 50 has odds under 1e-12
    assert weights(0, 100) == {"green": 200}


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers with the headers it received; /slow answers after 2 s."""

    def do_GET(self):
        if self.path == "/slow":
            threading.Event().wait(2)
        payload = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except BrokenPipeError:  # /slow past the idle timeout: the load balancer has hung up
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_attributes_the_lab_claims_to_honour_change_what_the_data_plane_does(web, echo_upstream, elbv2):
    web.group("echo", echo_upstream)
    web.forward_to("echo")
    web.ready()
    lb_arn = web.lb.arn

    def echoed(headers=None):
        status, body, response_headers = get(web.port, "/", headers=headers)
        assert status == 200
        return json.loads(body)["headers"], response_headers

    sent = {"X-Forwarded-For": "10.1.1.1"}
    assert echoed(sent)[0]["X-Forwarded-For"] == "10.1.1.1, 127.0.0.1"  # append, the default
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb_arn, Attributes=[
        {"Key": "routing.http.xff_header_processing.mode", "Value": "preserve"}])
    web.plane.sync()
    assert echoed(sent)[0]["X-Forwarded-For"] == "10.1.1.1"
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb_arn, Attributes=[
        {"Key": "routing.http.xff_header_processing.mode", "Value": "remove"}])
    web.plane.sync()
    assert "X-Forwarded-For" not in echoed(sent)[0]
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb_arn, Attributes=[
        {"Key": "routing.http.xff_header_processing.mode", "Value": "append"},
        {"Key": "routing.http.xff_client_port.enabled", "Value": "true"}])
    web.plane.sync()
    forwarded = echoed()[0]["X-Forwarded-For"]
    assert forwarded.startswith("127.0.0.1:") and int(forwarded.rsplit(":", 1)[1]) > 0

    elbv2.modify_listener_attributes(ListenerArn=web.listener.arn, Attributes=[
        {"Key": "routing.http.response.x_frame_options.header_value", "Value": "DENY"},
        {"Key": "routing.http.response.access_control_allow_origin.header_value", "Value": "*"}])
    web.plane.sync()
    headers = echoed()[1]
    assert headers["X-Frame-Options"] == "DENY" and headers["Access-Control-Allow-Origin"] == "*"

    # The idle timeout: a target silent for longer than it gets a 504 from the load balancer.
    assert get(web.port, "/slow")[0] == 200
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb_arn, Attributes=[
        {"Key": "idle_timeout.timeout_seconds", "Value": "1"}])
    web.plane.sync()
    status, _, headers = get(web.port, "/slow")
    assert status == 504 and headers["Server"] == "awselb/2.0"


@pytest.mark.parametrize("conditions, request_facts, matched", [
    ([{"Field": "path-pattern", "Values": ["/img/*.png"]}], {"path": "/img/a/b.png"}, True),
    ([{"Field": "path-pattern", "Values": ["/img/?.png"]}], {"path": "/img/ab.png"}, False),
    ([{"Field": "host-header", "Values": ["*.example.com"]}], {"host": "API.Example.com"}, True),
    ([{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST", "PUT"]}}], {"method": "GET"}, False),
    ([{"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "version", "Value": "v2*"}]}}],
     {"query": [("version", "V2.1")]}, True),
    ([{"Field": "query-string", "QueryStringConfig": {"Values": [{"Value": "beta"}]}}], {"query": [("x", "alpha")]}, False),
    ([{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "User-Agent", "Values": ["*Mobile*"]}}],
     {"headers": {"user-agent": "Safari Mobile"}}, True),
    ([{"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}}], {"source": "10.2.3.4"}, True),
    ([{"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}}], {"source": "192.168.1.1"}, False),
    # All of a rule's conditions must match.
    ([{"Field": "path-pattern", "Values": ["/api/*"]}, {"Field": "http-request-method", "HttpRequestMethodConfig": {
        "Values": ["POST"]}}], {"path": "/api/x", "method": "GET"}, False),
])
def test_conditions_match_as_elbv2_documents(conditions, request_facts, matched):
    from multidict import CIMultiDict

    facts = {"method": "GET", "path": "/", "host": "", "query": [], "source": "", **request_facts}
    facts["headers"] = CIMultiDict(request_facts.get("headers", {}))
    assert rules.compile_conditions(rules.check_conditions(conditions))(facts) is matched
