"""The task page in a real lab and a real Chromium shows its containers' health checks live:
UNKNOWN while the first check runs, HEALTHY when it passes, UNHEALTHY when it starts failing."""
import pytest
from playwright.sync_api import expect

from tests.support.browser import wait_live
from tests.support.lab import poll
from tests.support.api import FARGATE

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def test_the_task_page_follows_its_container_health(lab, lab_tab, docker_client):
    ecs = lab.client()
    ecs.create_cluster(clusterName="health")
    ecs.register_task_definition(
        family="checked", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                               "healthCheck": {"command": ["CMD-SHELL", "test ! -f /tmp/fail"], "interval": 5,
                                               "retries": 1}}])
    arn = ecs.run_task(cluster="health", taskDefinition="checked", **FARGATE)["tasks"][0]["taskArn"]
    task_id = arn.rsplit("/", 1)[1]
    poll(lambda: ecs.describe_tasks(cluster="health", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
         message="the task to run")

    lab_tab.goto(f"{lab.url}/tasks/{task_id}/")
    wait_live(lab_tab)
    expect(lab_tab.locator("[data-field=container_health]")).to_have_text("HEALTHY", timeout=20_000)
    expect(lab_tab.locator("[data-field=health_status]")).to_have_text("HEALTHY")

    [container] = docker_client.containers.list(filters={"label": [
        f"fargatelab.lab={lab.lab_id}", f"fargatelab.task-id={task_id}"]})
    container.exec_run(["touch", "/tmp/fail"])
    expect(lab_tab.locator("[data-field=container_health]")).to_have_text("UNHEALTHY", timeout=20_000)
    expect(lab_tab.locator("[data-field=health_status]")).to_have_text("UNHEALTHY")
    expect(lab_tab.locator("[data-field=last_status]")).to_have_text("RUNNING")  # a standalone task goes on
