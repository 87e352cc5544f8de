"""The demo image on a real engine: its page names the task and is never cached, so a browser
reloading a load balancer's URL sees the round robin instead of 304s."""
import pytest
import requests

from orchestrator.docker_engine import summarize
from tests.support.common import answers_http, wait_until

pytestmark = pytest.mark.docker


@pytest.fixture
def demo_port(docker_engine, lab_id, demo_image):
    """The host port of a running demo container (labelled as this test's lab's)."""
    container = docker_engine.create_container({
        "name": f"fargatelab-{lab_id}-demo-web", "image": demo_image, "labels": {"fargatelab.task-id": "demo"},
        "env": {"FARGATE_LAB_TASK_ARN": "arn:aws:ecs:us-east-1:000000000000:task/c/demo"},
        "ports": [(80, "tcp")], "publish_address": "127.0.0.1",
    })
    docker_engine.start(container)
    [binding] = summarize(docker_engine.inspect(container))["network_bindings"]
    wait_until(lambda: answers_http(binding["hostPort"]), message="the demo page to answer")
    return binding["hostPort"]


def test_its_page_names_the_task_and_forbids_caching(demo_port):
    response = requests.get(f"http://127.0.0.1:{demo_port}/", timeout=5)
    assert response.status_code == 200
    assert "task: arn:aws:ecs:us-east-1:000000000000:task/c/demo" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert "Last-Modified" not in response.headers and "ETag" not in response.headers


def test_a_conditional_get_still_gets_the_whole_page(demo_port):
    response = requests.get(f"http://127.0.0.1:{demo_port}/", timeout=5, headers={
        "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT", "If-None-Match": '"anything"',
    })
    assert response.status_code == 200
    assert "task: arn:aws:ecs:us-east-1:000000000000:task/c/demo" in response.text
