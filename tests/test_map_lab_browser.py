"""The map as a diagram, on a real lab (``manage.py lab``, control plane and Docker) in a real
Chromium at a projector's 1280×720: every component fits on the first screen beside its
Kubernetes name, and a RunTask lights the components it passes through, in order."""
import pytest
from playwright.sync_api import expect

from dashboard import diagram
from tests.support.browser import admin_page, wait_live
from tests.test_dashboard_lab_browser import WEB
from tests.support.api import FARGATE

pytestmark = [pytest.mark.docker, pytest.mark.browser]

PROJECTOR = {"width": 1280, "height": 720}

# The order in which one event's components first lit up, for the events naming one task.
LIT_ORDER = """(taskId) => {
  const objects = new Map([...document.querySelectorAll('#map-events li')].map(li => [li.dataset.seq, li.dataset.object]));
  const order = [];
  for (const entry of document.querySelectorAll('#map-lit-log li')) {
    if (objects.get(entry.dataset.event) === taskId.slice(0, 8) && !order.includes(entry.dataset.component)) {
      order.push(entry.dataset.component);
    }
  }
  return order;
}"""


@pytest.fixture
def projector(browser, lab):
    """The lab's map at 1280×720, logged in with the documented default admin / admin."""
    page = admin_page(browser, lab.url, PROJECTOR)
    wait_live(page)
    yield page
    page.context.close()


def test_every_component_fits_the_first_screen_beside_its_kubernetes_name(lab, projector):
    assert projector.evaluate("window.scrollY") == 0
    for node in diagram.NODES.values():
        box = projector.locator(f'#map-diagram .node[data-component="{node.id}"]')
        expect(box).to_be_visible()
        name = box.locator(".node-head .k8s")
        expect(name).to_have_text(node.kubernetes)
        # Wholly inside the first screen (retried: a live update may be swapping the box's inside).
        expect(box).to_be_in_viewport(ratio=1)
        expect(name).to_be_in_viewport(ratio=1)
        assert box.evaluate("n => n.scrollHeight <= n.clientHeight + 1"), f"{node.id}'s figures overflow its box"
    # The warm pool's instances show with their CPU and memory bars.
    instance = projector.locator("#map-diagram .fleet-node").first
    expect(instance.locator(".mini-bar")).to_have_count(2)
    expect(instance).to_be_in_viewport(ratio=1)


def test_a_run_task_lights_frontend_state_database_capacity_manager_agent_and_docker_in_order(lab, projector):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**WEB)
    projector.evaluate("window.notReloaded = true")

    task_arn = ecs.run_task(cluster="demo", taskDefinition="web", count=1, **FARGATE)["tasks"][0]["taskArn"]
    task_id = task_arn.rsplit("/", 1)[1]

    projector.wait_for_function(f"(id) => ({LIT_ORDER})(id).includes('docker')", arg=task_id)
    order = projector.evaluate(LIT_ORDER, task_id)
    expected = ["frontend", "statedb", "capacity_manager", "agent", "docker"]
    assert [component for component in order if component in expected] == expected, order
    # The task's chip turns up on its instance, and the database's figures moved, without a reload.
    expect(projector.locator(f'#map-diagram .mini-chip[data-task="{task_id}"]')).to_be_visible()
    expect(projector.locator('#box-statedb [data-figure="tasks"]')).to_have_text("1")
    assert projector.evaluate("window.notReloaded") is True


def test_a_run_tasks_trace_replays_on_the_map_from_its_trace_page(lab, projector):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**WEB)
    task_arn = ecs.run_task(cluster="demo", taskDefinition="web", count=1, **FARGATE)["tasks"][0]["taskArn"]
    task_id = task_arn.rsplit("/", 1)[1]
    projector.wait_for_function(f"(id) => ({LIT_ORDER})(id).includes('docker')", arg=task_id)

    # The task's page → the trace that started it → Replay on the map.
    projector.goto(f"{lab.url}/tasks/{task_id}/")
    projector.locator("p.explain a[href^=\"/traces/\"]").click()
    projector.click("#replay")
    projector.wait_for_url(f"{lab.url}/?replay=*")
    expect(projector.locator("#map-mode")).to_contain_text("Replaying trace")
    # The RunTask's own steps first, then the placement and the agent's work, as they happened.
    projector.wait_for_function(
        "() => [...document.querySelectorAll('#map-lit-log li[data-replay=trace]')].some(li => li.dataset.component === 'docker')")
    replayed = []
    for entry in projector.evaluate(
            "() => [...document.querySelectorAll('#map-lit-log li[data-replay=trace]')].map(li => li.dataset.component)"):
        if entry not in replayed:
            replayed.append(entry)
    expected = ["frontend", "statedb", "capacity_manager", "agent", "docker"]
    assert [component for component in replayed if component in expected] == expected, replayed
    expect(projector.locator("#map-replay")).to_be_visible()
