"""A Fargate Spot interruption from the task page, in a real lab (``manage.py lab`` on real
Docker) and a real Chromium: the warning, SIGKILL when it ends, the service's replacement on
FARGATE_SPOT, and the trace told as Kubernetes' node preemption."""
import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import wait_live
from tests.support.lab import lab_containers, poll, running_lab

pytestmark = [pytest.mark.docker, pytest.mark.browser]

WARNING_SECONDS = 3
STUBBORN = "trap '' TERM; while true; do sleep 1; done"


@pytest.fixture
def spot_lab(tmp_path, docker_client, lab_demo_image):
    """A lab whose Spot warnings last three seconds (two minutes on AWS)."""
    with running_lab(tmp_path, docker_client, FARGATE_LAB_SPOT_WARNING_SECONDS=WARNING_SECONDS) as lab:
        yield lab


@pytest.fixture
def spot_tab(browser, spot_lab):
    from tests.support.browser import admin_page

    page = admin_page(browser, spot_lab.url, {"width": 1400, "height": 1000})
    yield page
    page.context.close()


def test_interrupting_a_spot_task_from_its_page_stops_it_and_its_service_replaces_it(spot_lab, spot_tab,
                                                                                       docker_client):
    ecs = spot_lab.client()
    ecs.create_cluster(clusterName="spot", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(
        family="stubborn", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                               "entryPoint": ["sh", "-c"], "command": [STUBBORN], "stopTimeout": 60}])
    network = {"awsvpcConfiguration": {"subnets": ["subnet-lab"]}}
    ecs.create_service(cluster="spot", serviceName="web", taskDefinition="stubborn", desiredCount=1,
                       networkConfiguration=network,
                       capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])

    def running():
        arns = ecs.list_tasks(cluster="spot", serviceName="web")["taskArns"]
        tasks = ecs.describe_tasks(cluster="spot", tasks=arns)["tasks"] if arns else []
        return [t for t in tasks if t["lastStatus"] == "RUNNING"]

    [first] = poll(running, message="the service's Spot task to run")
    assert first["capacityProviderName"] == "FARGATE_SPOT"
    first_id = first["taskArn"].rsplit("/", 1)[1]

    # An on-demand task's page offers no interruption.
    plain = ecs.run_task(cluster="spot", taskDefinition="stubborn", launchType="FARGATE",
                         networkConfiguration=network)["tasks"][0]
    spot_tab.goto(f"{spot_lab.url}/tasks/{plain['taskArn'].rsplit('/', 1)[1]}/")
    expect(spot_tab.get_by_role("button", name="Kill container")).to_be_visible()
    expect(spot_tab.get_by_role("button", name="Interrupt Spot task")).to_have_count(0)

    spot_tab.goto(f"{spot_lab.url}/tasks/{first_id}/")
    wait_live(spot_tab)
    expect(spot_tab.locator(".task-detail [data-field=capacity_provider]")).to_have_text("FARGATE_SPOT")
    expect(spot_tab.locator(".spot-interrupt")).to_contain_text("preempted spot node")
    spot_tab.get_by_role("button", name="Interrupt Spot task").click()
    expect(spot_tab.locator(".messages")).to_contain_text("Spot interruption sent")
    detail = spot_tab.locator(".task-detail")
    expect(detail).to_have_attribute("data-status", "STOPPED", timeout=30_000)
    expect(spot_tab.get_by_role("button", name="Interrupt Spot task")).to_be_hidden()

    stopped = ecs.describe_tasks(cluster="spot", tasks=[first["taskArn"]])["tasks"][0]
    assert (stopped["stopCode"], stopped["stoppedReason"]) == ("SpotInterruption", "Your Spot Task was interrupted.")
    assert stopped["containers"][0]["exitCode"] == 137  # it ignored SIGTERM: killed when the warning ended
    assert (stopped["stoppedAt"] - stopped["stoppingAt"]).total_seconds() < 30  # not after its stopTimeout of 60 s
    assert not [c for c in lab_containers(docker_client, spot_lab.lab_id, all=True)
                if c.labels.get("fargatelab.task-id") == first_id]

    [replacement] = poll(running, message="the service's replacement to run")
    assert replacement["taskArn"] != first["taskArn"] and replacement["capacityProviderName"] == "FARGATE_SPOT"
    events = [e["message"] for e in ecs.describe_services(cluster="spot", services=["web"])["services"][0]["events"]]
    assert any(f"task {first_id} will be interrupted: Your Spot Task was interrupted." in m for m in events)

    # The interruption's trace, linked from the task page, tells the Kubernetes lesson.
    spot_tab.goto(f"{spot_lab.url}/tasks/{first_id}/")
    links = spot_tab.locator(".task-traces a[data-trace]")
    expect(links.first).to_be_visible()
    trace_ids = [links.nth(i).get_attribute("data-trace") for i in range(links.count())]
    for trace_id in trace_ids:
        spot_tab.goto(f"{spot_lab.url}/traces/{trace_id}/")
        if spot_tab.locator("tr.trace-step[data-action=spot-interruption]").count():
            break
    step = spot_tab.locator("tr.trace-step[data-component=capacity_manager][data-action=spot-interruption]")
    expect(step.locator("td.k8s")).to_contain_text("node preemption")
    expect(spot_tab.locator("tr.trace-step[data-component=agent][data-action=stop]")).to_contain_text(
        re.compile(r"Your Spot Task was interrupted\..*SIGTERM"))
