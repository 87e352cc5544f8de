"""ECS Exec's terminal on a task page, in a real lab (``manage.py lab``, control plane, Docker) in a
real Chromium: it runs a command in the task's container, and another account gets neither the
page nor the WebSocket."""
import pytest
from playwright.sync_api import expect

from tests.support.classroom import STUDENT_PASSWORD, login
from tests.support.lab import poll

pytestmark = [pytest.mark.docker, pytest.mark.browser]

TASK_DEFINITION = {
    "family": "shell", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
    "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                                               "command": ["/demo/serve.sh"], "portMappings": [{"containerPort": 80}]}],
}


def socket_opens(page, url):
    """Whether a WebSocket from ``page`` to ``url`` (a path) opens (a refused handshake closes it unopened)."""
    return page.evaluate("""url => new Promise(resolve => {
        const socket = new WebSocket("ws://" + location.host + url);
        socket.onopen = () => { socket.close(); resolve(true); };
        socket.onclose = () => resolve(false);
    })""", url)


def test_the_terminal_runs_a_command_in_the_tasks_container_for_its_account_only(lab, lab_tab, browser):
    ecs = lab.client()
    ecs.create_cluster(clusterName="exec")
    ecs.register_task_definition(**TASK_DEFINITION)
    arn = ecs.run_task(cluster="exec", taskDefinition="shell", enableExecuteCommand=True, launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"]}})["tasks"][0]["taskArn"]
    poll(lambda: ecs.describe_tasks(cluster="exec", tasks=[arn])["tasks"][0]["lastStatus"] in ("RUNNING", "STOPPED"),
         timeout=90, message="the task to run")
    shown = ecs.describe_tasks(cluster="exec", tasks=[arn])["tasks"][0]
    assert shown["lastStatus"] == "RUNNING", shown.get("stoppedReason")
    task_url = f"{lab.url}/tasks/{arn.rsplit('/', 1)[1]}/"

    lab_tab.goto(task_url)
    lab_tab.get_by_role("button", name="Open a terminal").click()
    expect(lab_tab.locator(".exec-status")).to_contain_text("connected")
    lab_tab.keyboard.type("echo exec-$((6*7)) > /tmp/exec-proof; cat /tmp/exec-proof\n")
    expect(lab_tab.locator(".exec-screen .xterm-rows")).to_contain_text("exec-42")
    exec_url = lab_tab.locator("[data-exec-url]").get_attribute("data-exec-url")

    made = lab.manage("addstudent", "mallory", "--password", STUDENT_PASSWORD)
    assert made.returncode == 0, made.stderr
    mallory = login(browser, lab.url, "mallory")
    try:
        assert mallory.goto(task_url).status == 404
        mallory.goto(lab.url + "/")
        assert socket_opens(mallory, exec_url) is False
        assert socket_opens(lab_tab, exec_url) is True  # the same socket opens for the task's account
    finally:
        mallory.context.close()
    # A task started without enableExecuteCommand has no terminal, as ECS refuses it.
    plain = ecs.run_task(cluster="exec", taskDefinition="shell", launchType="FARGATE",
                         networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"]}})["tasks"][0]
    lab_tab.goto(f"{lab.url}/tasks/{plain['taskArn'].rsplit('/', 1)[1]}/")
    expect(lab_tab.locator(".exec-disabled")).to_contain_text("enableExecuteCommand")
    expect(lab_tab.get_by_role("button", name="Open a terminal")).to_have_count(0)
