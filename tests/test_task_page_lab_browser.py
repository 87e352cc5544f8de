"""A task's page in a real lab (``manage.py lab``, control plane and Docker) in a real Chromium:
its logs, and how a task that stopped shows."""
import uuid

import pytest
from playwright.sync_api import expect

from tests.support.browser import wait_live
from tests.support.lab import poll
from tests.support.api import FARGATE

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def task_definition(family, command, image="fargate-lab/demo:latest"):
    return {
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": image, "essential": True,
                                                   "command": command, "portMappings": [{"containerPort": 80}]}],
    }


def test_a_line_printed_once_shows_once_on_the_task_page(lab, lab_tab):
    ecs = lab.client()
    ecs.create_cluster(clusterName="logs")
    marker = f"printed-once-{uuid.uuid4().hex[:8]}"
    ecs.register_task_definition(**task_definition("talker", ["sh", "-c", f"echo {marker}; exec /demo/serve.sh"]))
    arn = ecs.run_task(cluster="logs", taskDefinition="talker", **FARGATE)["tasks"][0]["taskArn"]
    poll(lambda: ecs.describe_tasks(cluster="logs", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
         message="the task to run")

    log_sockets, delivered = [], set()

    def opened(ws):
        if "/logs/" in ws.url:
            log_sockets.append(ws)
            ws.on("framereceived", lambda frame: delivered.add(ws) if marker in str(frame) else None)

    lab_tab.on("websocket", opened)
    lab_tab.goto(f"{lab.url}/tasks/{arn.rsplit('/', 1)[1]}/")
    wait_live(lab_tab)
    lines = lab_tab.locator(".log-line", has_text=marker)
    expect(lines.first).to_be_visible()
    # Every socket the page opened to the logs has delivered the line by now: the page shows it once.
    poll(lambda: delivered == set(log_sockets), message="each logs socket to deliver the line")
    assert len(log_sockets) == 1
    expect(lines).to_have_count(1)


def test_a_task_whose_pull_failed_shows_stopped_without_running_stop_kill_or_ports(lab, lab_tab):
    ecs = lab.client()
    ecs.create_cluster(clusterName="pulls")
    ecs.register_task_definition(**task_definition("unpullable", ["/demo/serve.sh"],
                                                   image="127.0.0.1:1/nowhere/nothing:latest"))
    arn = ecs.run_task(cluster="pulls", taskDefinition="unpullable", **FARGATE)["tasks"][0]["taskArn"]
    task = poll(lambda: next((t for t in ecs.describe_tasks(cluster="pulls", tasks=[arn])["tasks"]
                              if t["lastStatus"] == "STOPPED"), None), message="the task to stop")
    assert "startedAt" not in task
    [container] = task["containers"]
    assert container["lastStatus"] == "STOPPED" and container["reason"].startswith("CannotPullContainerError")

    lab_tab.goto(f"{lab.url}/tasks/{arn.rsplit('/', 1)[1]}/")
    detail = lab_tab.locator(".task-detail")
    expect(detail).to_have_attribute("data-status", "STOPPED")
    row = detail.locator("tbody tr")
    expect(row.locator("[data-field=container_status]")).to_have_text("STOPPED")
    expect(row).to_contain_text("CannotPullContainerError")
    expect(detail.locator('.timeline li[data-step="RUNNING"]')).not_to_have_class("reached")
    expect(detail.locator('.timeline li[data-step="RUNNING"]')).to_have_class("skipped")
    expect(detail.locator('.timeline li[data-step="STOPPED"]')).to_have_class("current reached")
    expect(lab_tab.get_by_role("button", name="Stop task")).to_have_count(0)
    expect(lab_tab.get_by_role("button", name="Kill container")).to_have_count(0)
    expect(detail.locator("a[href^='http://127.0.0.1:']")).to_have_count(0)


def test_a_task_that_stops_while_its_page_is_open_loses_stop_kill_and_port_links(lab, lab_tab):
    ecs = lab.client()
    ecs.create_cluster(clusterName="stops")
    ecs.register_task_definition(**task_definition("web", ["/demo/serve.sh"]))
    arn = ecs.run_task(cluster="stops", taskDefinition="web", **FARGATE)["tasks"][0]["taskArn"]
    lab_tab.goto(f"{lab.url}/tasks/{arn.rsplit('/', 1)[1]}/")
    wait_live(lab_tab)
    detail = lab_tab.locator(".task-detail")
    expect(detail).to_have_attribute("data-status", "RUNNING")
    expect(detail.locator("a[href^='http://127.0.0.1:']")).to_have_count(1)
    expect(lab_tab.get_by_role("button", name="Kill container")).to_be_visible()

    ecs.stop_task(cluster="stops", task=arn, reason="lesson over")
    expect(detail).to_have_attribute("data-status", "STOPPED")
    expect(detail.locator("a[href^='http://127.0.0.1:']")).to_have_count(0)
    expect(lab_tab.get_by_role("button", name="Stop task")).to_be_hidden()
    expect(lab_tab.get_by_role("button", name="Kill container")).to_be_hidden()
    expect(detail.locator('.timeline li[data-step="RUNNING"]')).to_have_class("reached")


def test_every_task_pulls_its_registry_image_and_the_page_shows_it(lab, lab_tab, tmp_path):
    import base64
    import subprocess

    ecr, ecs = lab.client("ecr"), lab.client()
    uri = ecr.create_repository(repositoryName="web")["repository"]["repositoryUri"]
    password = base64.b64decode(ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"])
    docker_cli = ["docker", "--config", str(tmp_path / "docker")]
    subprocess.run(docker_cli + ["login", "-u", "AWS", "--password-stdin", uri.split("/")[0]],
                   input=password.decode().partition(":")[2], check=True, capture_output=True, text=True, timeout=60)
    image = f"{uri}:v1"
    subprocess.run(docker_cli + ["tag", "fargate-lab/demo:latest", image], check=True, timeout=60)
    try:
        subprocess.run(docker_cli + ["push", image], check=True, capture_output=True, timeout=300)
        ecs.create_cluster(clusterName="pulls")
        ecs.register_task_definition(**task_definition("pulled", ["/demo/serve.sh"], image=image))
        ecs.register_task_definition(**task_definition("local", ["/demo/serve.sh"]))
        arns = []
        for family in ("pulled", "pulled", "local"):  # the second finds the image on the instance
            arn = ecs.run_task(cluster="pulls", taskDefinition=family, **FARGATE)["tasks"][0]["taskArn"]
            poll(lambda: ecs.describe_tasks(cluster="pulls", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
                 message=f"the {family} task to run")
            arns.append(arn)

        lab_tab.goto(f"{lab.url}/tasks/{arns[1].rsplit('/', 1)[1]}/")
        pull = lab_tab.locator(".pull-progress")
        expect(pull).to_contain_text(f"pulling {image}")
        # A real pull: the registry answered with the image's digest; its layers were on the instance.
        expect(pull).to_contain_text(f"pulled {image} (sha256:")
        expect(pull).to_contain_text("every layer was already on the instance")
        lab_tab.goto(f"{lab.url}/tasks/{arns[2].rsplit('/', 1)[1]}/")
        expect(lab_tab.locator(".pull-progress")).to_contain_text(
            "fargate-lab/demo:latest is not from a registry: the instance's local copy is used")
    finally:
        subprocess.run(docker_cli + ["rmi", image], capture_output=True, timeout=60)
