"""How the dashboard looks and reads in a real Chromium: task tables that hide stopped tasks,
instances in natural order, the lab's own 404 page, the dark theme, and phone widths."""
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from orchestrator.models import (
    Account, Cluster, ContainerInstance, Deployment, Service, Task, TaskContainer, TaskDefinition,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def rows(live_lab_server):
    """Cluster demo with a service, a running task with a published port, two stopped tasks,
    and instances fleet-1, fleet-2 and fleet-10."""
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(
        account=account, family="web", revision=1, cpu=256, memory=512,
        body={"family": "web", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest"}]},
    )
    fleet = [ContainerInstance.objects.create(name=name, cpu_registered=4096, memory_registered=8192)
             for name in ("fleet-10", "fleet-2", "fleet-1")]
    service = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=td, desired_count=1)
    Deployment.objects.create(service=service, deployment_id=Deployment.new_id(), task_definition=td, desired_count=1)
    now = timezone.now()
    running = Task.objects.create(account=account, cluster=cluster, task_definition=td, service=service,
                                  container_instance=fleet[2], cpu=256, memory=512, last_status=Task.RUNNING,
                                  started_at=now, connectivity_at=now)
    TaskContainer.objects.create(task=running, name="web", image="fargate-lab/demo:latest", last_status="RUNNING",
                                 network_bindings=[{"bindIP": "127.0.0.1", "containerPort": 80, "hostPort": 32777}])
    stopped = []
    for code, reason, exit_code in (("EssentialContainerExited", "Essential container in task exited", 137),
                                    ("UserInitiated", "lesson over", 0)):
        task = Task.objects.create(account=account, cluster=cluster, task_definition=td, service=service,
                                   cpu=256, memory=512, last_status=Task.STOPPED, desired_status=Task.STOPPED,
                                   stop_code=code, stopped_reason=reason, started_at=now, stopped_at=now)
        TaskContainer.objects.create(task=task, name="web", image="fargate-lab/demo:latest", last_status="STOPPED",
                                     exit_code=exit_code)
        stopped.append(task)
    return {"cluster": cluster, "service": service, "task": running, "stopped": stopped}


def test_task_tables_hide_stopped_tasks_count_them_and_show_them_on_demand(page, live_lab_server, rows):
    page.goto(f"{live_lab_server.url}/clusters/demo/")
    table = page.locator("[data-task-filter]")
    stopped_rows = table.locator('tr[data-status="STOPPED"]')
    expect(table.locator('tr[data-status="RUNNING"]')).to_be_visible()
    expect(stopped_rows).to_have_count(2)
    expect(stopped_rows.first).to_be_hidden()
    expect(table.locator("[data-stopped-note]")).to_have_text("2 stopped tasks hidden.")
    # The actions come before the tables, where a user looks for them.
    assert page.locator("h2", has_text="Run a task").bounding_box()["y"] < table.bounding_box()["y"]

    table.get_by_role("button", name="Show stopped tasks").click()
    expect(stopped_rows.first).to_be_visible()
    killed = table.locator(f"#task-row-{rows['stopped'][0].pk}")
    expect(killed.locator("td.reason")).to_have_text("EssentialContainerExited Essential container in task exited")
    expect(killed.locator("td").last).to_have_text("137")
    for header in ("Stopped reason", "Exit code"):
        expect(table.locator("th", has_text=header)).to_be_visible()
    page.reload()  # the choice is remembered
    expect(stopped_rows.first).to_be_visible()
    table.get_by_role("button", name="Hide stopped tasks").click()
    expect(stopped_rows.first).to_be_hidden()


def test_instances_sort_as_numbers(page, live_lab_server, rows):
    page.goto(f"{live_lab_server.url}/instances/")
    names = page.locator("#instance-list a[href^='/instances/']").all_inner_texts()
    assert [n for n in names if n.startswith("fleet-")] == ["fleet-1", "fleet-2", "fleet-10"]


def test_a_missing_page_is_the_labs_own_not_found(page, live_lab_server, rows):
    response = page.goto(f"{live_lab_server.url}/clusters/no-such-cluster/")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.get_by_role("link", name="Back to the map")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('.top')).display") == "flex"  # styled


def test_the_theme_follows_the_system_and_the_toggle_is_remembered(browser, live_lab_server, rows, dashboard_user):
    from tests.support.browser import PASSWORD

    context = browser.new_context(color_scheme="dark")
    tab = context.new_page()
    tab.goto(live_lab_server.url + "/accounts/login/")
    background = "getComputedStyle(document.body).backgroundColor"
    assert tab.evaluate(background) == "rgb(12, 15, 19)"  # the dark theme's paper
    tab.fill("input[name=username]", dashboard_user.username)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(live_lab_server.url + "/")
    toggle = tab.locator("[data-theme-toggle]")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.click()
    assert tab.evaluate(background) == "rgb(255, 255, 255)"
    tab.goto(f"{live_lab_server.url}/clusters/demo/")
    assert tab.evaluate(background) == "rgb(255, 255, 255)"  # remembered across pages
    expect(tab.locator("[data-theme-toggle]")).to_have_attribute("aria-pressed", "false")
    context.close()


def test_live_regions_are_announced(page, live_lab_server, rows):
    page.goto(f"{live_lab_server.url}/tasks/{rows['task'].task_id}/")
    expect(page.locator("#live-status")).to_have_attribute("aria-live", "polite")
    expect(page.locator("[aria-live=polite]:has(.task-detail)")).to_have_count(1)
    expect(page.locator(".log-view")).to_have_attribute("aria-live", "polite")


def test_no_page_scrolls_sideways_at_390_px(page, live_lab_server, rows):
    page.set_viewport_size({"width": 390, "height": 844})
    urls = ["/", "/clusters/", "/clusters/demo/", f"/services/{rows['service'].pk}/",
            f"/tasks/{rows['task'].task_id}/", f"/tasks/{rows['stopped'][0].task_id}/", "/task-definitions/",
            "/task-definitions/web/1/", "/instances/", "/instances/fleet-1/", "/clusters/no-such-cluster/",
            "/accounts/login/", "/repositories/", "/load-balancers/"]
    too_wide = {}
    for url in urls:
        page.goto(live_lab_server.url + url)
        page.wait_for_load_state("load")
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        if widths[0] > widths[1]:
            too_wide[url] = widths
    assert too_wide == {}
