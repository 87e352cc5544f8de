"""The task page in a real lab and a real Chromium shows dependsOn live: the app waiting for its
init container, then the order the containers started in, the sidecar beside the app, and the
order they stopped in."""
import pytest
from playwright.sync_api import expect

from tests.support.browser import wait_live
from tests.support.lab import poll
from tests.support.api import FARGATE

pytestmark = [pytest.mark.docker, pytest.mark.browser]

SERVE = "trap 'exit 0' TERM; while true; do sleep 0.2; done"


def container(name, script=SERVE, essential=True, **fields):
    return {"name": name, "image": "fargate-lab/demo:latest", "essential": essential,
            "entryPoint": ["sh", "-c"], "command": [script], **fields}


def test_the_task_page_shows_the_dependency_lifecycle(lab, lab_tab):
    ecs = lab.client()
    ecs.create_cluster(clusterName="order")
    ecs.register_task_definition(
        family="ordered", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[
            container("init", "sleep 4; exit 0", essential=False),
            container("app", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}]),
            container("sidecar", essential=False, dependsOn=[{"containerName": "app", "condition": "START"}]),
        ])
    arn = ecs.run_task(cluster="order", taskDefinition="ordered", **FARGATE)["tasks"][0]["taskArn"]
    task_id = arn.rsplit("/", 1)[1]
    lab_tab.goto(f"{lab.url}/tasks/{task_id}/")
    wait_live(lab_tab)
    app = lab_tab.locator("tr[data-container=app]")
    expect(app.locator("[data-field=container_reason]")).to_have_text(
        "Waiting for init to be exited with code 0", timeout=20_000)
    expect(lab_tab.locator("[data-field=last_status]")).to_have_text("PENDING")
    expect(lab_tab.locator("[data-field=last_status]")).to_have_text("RUNNING", timeout=30_000)
    expect(app.locator("[data-field=depends_on]")).to_have_text("init SUCCESS")
    expect(app.locator("[data-field=container_reason]")).to_have_text("")
    init = lab_tab.locator("tr[data-container=init]")
    expect(init.locator("[data-field=container_status]")).to_have_text("STOPPED")
    sidecar = lab_tab.locator("tr[data-container=sidecar]")
    expect(sidecar.locator("[data-field=container_status]")).to_have_text("RUNNING")
    assert app.locator("[data-field=started_at]").inner_text() <= sidecar.locator("[data-field=started_at]").inner_text()

    ecs.stop_task(cluster="order", task=arn)
    expect(lab_tab.locator("[data-field=last_status]")).to_have_text("STOPPED", timeout=30_000)
    expect(sidecar.locator("[data-field=stopped_at]")).not_to_have_text("—")
    assert sidecar.locator("[data-field=stopped_at]").inner_text() <= app.locator("[data-field=stopped_at]").inner_text()
    poll(lambda: ecs.describe_tasks(cluster="order", tasks=[arn])["tasks"][0]["lastStatus"] == "STOPPED",
         message="the API to agree")
