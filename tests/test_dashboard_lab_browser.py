"""The dashboard of a real lab (``manage.py lab``, control plane and Docker) in a real Chromium:
what the API and Docker do shows on an open page without a reload — the classroom demo of
self-healing."""
import pytest
from playwright.sync_api import expect

from tests.support.browser import wait_live
from tests.support.lab import lab_containers, poll
from tests.support.api import FARGATE

pytestmark = [pytest.mark.docker, pytest.mark.browser]

WEB = {
    "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                              "portMappings": [{"containerPort": 80}]}],
}


def row_of(page, task_arn):
    """The task's row in a task table, found by the link to its page."""
    return page.locator(f"tr[id^=task-row-]:has(a[href*='{task_arn.rsplit('/', 1)[1]}'])")


def test_a_task_run_through_the_api_then_killed_shows_live_and_its_service_heals(lab, lab_tab, docker_client):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**WEB)
    lab_tab.goto(lab.url + "/clusters/demo/")
    wait_live(lab_tab)
    lab_tab.evaluate("window.notReloaded = true")

    # A task run with boto3 appears on the open page and turns RUNNING there.
    arn = ecs.run_task(cluster="demo", taskDefinition="web", count=1, **FARGATE)["tasks"][0]["taskArn"]
    expect(row_of(lab_tab, arn)).to_have_attribute("data-status", "RUNNING")

    # A service of 2: kill one of its containers behind the lab's back.
    ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=2, **FARGATE)

    def service_containers():
        return [c for c in lab_containers(docker_client, lab.lab_id)
                if c.labels["fargatelab.task-arn"] != arn]

    poll(lambda: len(service_containers()) == 2, message="the service's 2 containers")
    for task_arn in {c.labels["fargatelab.task-arn"] for c in service_containers()}:
        expect(row_of(lab_tab, task_arn)).to_have_attribute("data-status", "RUNNING")
    victim = service_containers()[0]
    victim_arn = victim.labels["fargatelab.task-arn"]
    victim.kill()

    expect(row_of(lab_tab, victim_arn)).to_have_attribute("data-status", "STOPPED")
    replacements = poll(
        lambda: [c.labels["fargatelab.task-arn"] for c in service_containers()
                 if c.labels["fargatelab.task-arn"] != victim_arn] if len(service_containers()) == 2 else None,
        message="a replacement container",
    )
    for task_arn in replacements:
        expect(row_of(lab_tab, task_arn)).to_have_attribute("data-status", "RUNNING")
    assert lab_tab.evaluate("window.notReloaded") is True


def test_the_maps_cards_tell_the_docker_operations_and_the_writes_of_a_task(lab, lab_tab):
    ecs = lab.client()
    ecs.create_cluster(clusterName="cards")
    ecs.register_task_definition(**WEB)
    wait_live(lab_tab)
    arn = ecs.run_task(cluster="cards", taskDefinition="web", count=1, **FARGATE)["tasks"][0]["taskArn"]
    short = arn.rsplit("/", 1)[1][:8]
    docker = lab_tab.locator('.card[data-component="docker"]')
    expect(docker.locator("li", has_text=f"of task {short}").filter(has_text="start").first).to_be_visible()
    expect(docker).not_to_contain_text("No Docker operation yet.")
    writes = lab_tab.locator('.card[data-component="statedb"] ul.writes')
    expect(writes.locator("li[data-kind=task]", has_text=short).filter(has_text="→ RUNNING").first).to_be_visible()


def test_an_instances_heartbeat_moves_on_while_its_agent_reports(lab, lab_tab):
    lab_tab.goto(lab.url + "/instances/")
    lab_tab.locator("#instance-list a[href^='/instances/']").first.click()
    wait_live(lab_tab)
    heartbeat = lab_tab.locator("[data-field=last_heartbeat]")
    first = heartbeat.inner_text()
    # The agent relists every resync (2 s here) and writes a heartbeat at most every 5 s.
    expect(heartbeat).not_to_have_text(first, timeout=20_000)
