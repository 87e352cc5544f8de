"""A task's page in a real lab (``manage.py lab``, control plane and Docker) in a real Chromium:
its logs, and how a task that stopped shows."""
import uuid

import pytest
from playwright.sync_api import expect

from tests.support.browser import wait_live
from tests.support.lab import poll

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def task_definition(family, command, image="fargate-lab/demo:latest"):
    return {
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": image, "essential": True,
                                                   "command": command, "portMappings": [{"containerPort": 80}]}],
    }


@pytest.fixture
def tab(browser, lab):
    """A page of the lab's dashboard, logged in with the documented default admin / admin."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(lab.url + "/accounts/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "admin")
    page.click("button[type=submit]")
    page.wait_for_url(lab.url + "/")
    yield page
    context.close()


def test_a_line_printed_once_shows_once_on_the_task_page(lab, tab):
    ecs = lab.client()
    ecs.create_cluster(clusterName="logs")
    marker = f"printed-once-{uuid.uuid4().hex[:8]}"
    ecs.register_task_definition(**task_definition("talker", ["sh", "-c", f"echo {marker}; exec /demo/serve.sh"]))
    arn = ecs.run_task(cluster="logs", taskDefinition="talker")["tasks"][0]["taskArn"]
    poll(lambda: ecs.describe_tasks(cluster="logs", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
         message="the task to run")

    log_sockets, delivered = [], set()

    def opened(ws):
        if "/logs/" in ws.url:
            log_sockets.append(ws)
            ws.on("framereceived", lambda frame: delivered.add(ws) if marker in str(frame) else None)

    tab.on("websocket", opened)
    tab.goto(f"{lab.url}/tasks/{arn.rsplit('/', 1)[1]}/")
    wait_live(tab)
    lines = tab.locator(".log-line", has_text=marker)
    expect(lines.first).to_be_visible()
    # Every socket the page opened to the logs has delivered the line by now: the page shows it once.
    poll(lambda: delivered == set(log_sockets), message="each logs socket to deliver the line")
    assert len(log_sockets) == 1
    expect(lines).to_have_count(1)
