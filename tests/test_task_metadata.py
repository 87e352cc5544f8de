"""The task endpoint's pure parts: its firewall rules, the variables a container gets, and the
answers to requests it refuses before looking anything up."""
import json
import socket
import threading

import pytest

from orchestrator import host_firewall, task_metadata
from orchestrator.models import Account
from tests.support.common import wait_until
from tests.test_task_credentials import ROLE, make_task


def test_the_firewall_lets_only_the_dnat_to_the_endpoint_reach_loopback():
    lines = host_firewall.rules("C", ["br-1"], [8080], endpoint_port=51000)
    assert lines[:3] == [
        "-A C -i br-1 -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
        "-A C -i br-1 -d 127.0.0.1/32 -p tcp --dport 51000 -m conntrack --ctstate DNAT -j RETURN",
        "-A C -i br-1 -d 127.0.0.0/8 -j DROP",  # before the listener ports: those on loopback stay out of reach
    ]
    assert lines[3:] == host_firewall.rules("C", ["br-1"], [8080])[1:]
    assert host_firewall.nat_rules("N", ["br-2", "br-1"], 51000) == [
        f"-A N -i {bridge} -d 169.254.170.2/32 -p tcp --dport 80 -j DNAT --to-destination 127.0.0.1:51000"
        for bridge in ("br-1", "br-2")]
    assert host_firewall.nat_rules("N", ["br-1"], None) == []
    assert host_firewall.nat_chain_name("lab") != host_firewall.chain_name("lab")
    assert len(host_firewall.nat_chain_name("lab")) <= 28


def test_each_container_gets_its_own_metadata_uri(db):
    task = make_task(Account.default())
    one, two = task_metadata.environment(task, "app"), task_metadata.environment(task, "sidecar")
    assert one["ECS_CONTAINER_METADATA_URI_V4"] != two["ECS_CONTAINER_METADATA_URI_V4"]
    assert one["ECS_CONTAINER_METADATA_URI"] == one["ECS_CONTAINER_METADATA_URI_V4"].replace("/v4/", "/v3/")
    assert one["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] == two["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
    facts = task_metadata.page_facts(task)
    assert facts["role_arn"] == ROLE and facts["containers"] == [("app", one["ECS_CONTAINER_METADATA_URI_V4"])]


def call(path, method="GET", remote="172.18.0.2"):
    """Answer one request as the endpoint's server does: on a thread of its own (it closes its connections)."""
    answered = {}

    def start_response(status, headers):
        answered["status"] = status

    def serve():
        meta = {"PATH_INFO": path, "REQUEST_METHOD": method, "REMOTE_ADDR": remote}
        answered["body"] = json.loads(b"".join(task_metadata.Application()(meta, start_response)))

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(30)
    return answered["status"], answered["body"]


@pytest.mark.parametrize("path", ["/", "/v4", "/v4/", "/v1/metadata", "/v4/abc/task/other", "/latest/meta-data/",
                                  "/v4/" + "a" * 32 + "-" + "0" * 32 + "/task"])
def test_unknown_paths_get_404(transactional_db, path):
    assert call(path)[0] == "404 Not Found"


def test_unknown_credentials_get_ecs_error(transactional_db):
    assert call("/v2/credentials/" + "a" * 32 + "-" + "0" * 32) == (
        "400 Bad Request", {"code": "InvalidIdInRequest", "message": "CredentialsV2Request: Credentials not found"})


def test_a_path_from_an_address_outside_the_task_gets_404(transactional_db):
    task = make_task(Account.default())
    uri = task_metadata.environment(task, "app")["ECS_CONTAINER_METADATA_URI_V4"]
    # The task's container has no Docker container here, so no address of it can match.
    assert call(uri.removeprefix(task_metadata.ENDPOINT) + "/task")[0] == "404 Not Found"


def test_only_get_and_the_apis_post_are_served(transactional_db):
    assert call("/v4/x", method="PUT")[0] == "405 Method Not Allowed"
    assert call("/v4/x", method="POST")[0] == "405 Method Not Allowed"
    assert call("/", method="POST")[0] == "405 Method Not Allowed"  # not an API call: the dashboard stays out of reach


def test_one_address_holds_only_a_few_connections_at_once(transactional_db):
    """A task that opens connections and sends nothing holds PER_ADDRESS threads, not all of them."""
    endpoint = task_metadata.TaskEndpoint().start()
    held = []
    try:
        for _ in range(task_metadata._Server.PER_ADDRESS):
            held.append(socket.create_connection(("127.0.0.1", endpoint.port), timeout=10))
        wait_until(lambda: sum(endpoint.server._open.values()) == task_metadata._Server.PER_ADDRESS,
                   message="the idle connections accepted")
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as refused:
            assert refused.recv(100) == b""  # closed at once, unanswered
        held.pop().close()
        wait_until(lambda: sum(endpoint.server._open.values()) < task_metadata._Server.PER_ADDRESS,
                   message="a slot given back")
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as served:
            served.sendall(b"GET /nothing HTTP/1.0\r\n\r\n")
            assert served.recv(100).startswith(b"HTTP/1.0 404")
    finally:
        for sock in held:
            sock.close()
        endpoint.stop()
