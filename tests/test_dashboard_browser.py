"""The dashboard in a real headless Chromium against the ASGI app under uvicorn: live by push."""
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from orchestrator import bus
from orchestrator.frontend import call
from orchestrator.models import Account, Cluster, Service, Task
from tests.support.browser import wait_live
from tests.support.api import FARGATE

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(live_lab_server):
    """Cluster demo and task definition web:1, made through the ECS frontend."""
    account = Account.default()
    call(account, "CreateCluster", {"clusterName": "demo"})
    call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True}],
    })
    return Cluster.objects.get(name="demo")


def test_it_draws_the_map_with_each_component_beside_its_counterpart(page, live_lab_server):
    wait_live(page)
    for component, counterpart in [
        ("frontend", "kube-apiserver"), ("statedb", "etcd"), ("cluster_manager", "kube-controller-manager"),
        ("capacity_manager", "kube-scheduler"), ("agent", "kubelet on each node"), ("docker", "container runtime"),
    ]:
        card = page.locator(f'.card[data-component="{component}"]')
        expect(card).to_be_visible()
        expect(card.locator(".k8s")).to_contain_text(counterpart)


def test_it_shows_a_new_task_and_its_stop_without_reload(page, live_lab_server, demo):
    page.goto(f"{live_lab_server.url}/clusters/demo/")
    wait_live(page)
    page.evaluate("window.notReloaded = true")
    response = call(Account.default(), "RunTask", {"cluster": "demo", "taskDefinition": "web:1", **FARGATE})
    task = Task.objects.get(task_id=response["tasks"][0]["taskArn"].rsplit("/", 1)[1])
    row = page.locator(f"#task-row-{task.pk}")
    expect(row).to_have_attribute("data-status", "PROVISIONING")

    task.containers.update(last_status="STOPPED", exit_code=0)
    Task.objects.filter(pk=task.pk).update(
        last_status=Task.STOPPED, desired_status=Task.STOPPED, stopped_at=timezone.now(), updated_at=timezone.now()
    )
    bus.publish("task", task.pk)
    expect(row).to_have_attribute("data-status", "STOPPED")
    expect(row.locator("[data-field=pod_phase]")).to_have_text("Succeeded Completed")
    assert page.evaluate("window.notReloaded") is True


def test_it_scales_a_service_from_the_form_and_follows_its_counts(page, live_lab_server, demo):
    call(Account.default(), "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 1, **FARGATE})
    service = Service.objects.get(name="web")
    page.goto(f"{live_lab_server.url}/services/{service.pk}/")
    page.fill("input[name=desired_count]", "3")
    page.click("button:has-text('Scale')")
    expect(page.locator("[data-count=desired]")).to_have_text("3")
    service.refresh_from_db()
    assert service.desired_count == 3

    wait_live(page)
    page.evaluate("window.notReloaded = true")
    Service.objects.filter(pk=service.pk).update(running_count=2, pending_count=1, updated_at=timezone.now())
    bus.publish("service", service.pk)  # what the cluster manager does after a pass
    expect(page.locator("[data-count=running]")).to_have_text("2")
    expect(page.locator("[data-count=pending]")).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True


def test_it_shows_the_error_of_an_invalid_form_and_changes_nothing(page, live_lab_server, demo):
    page.goto(f"{live_lab_server.url}/clusters/demo/")
    run_form = page.locator("form", has=page.locator("button", has_text="Run task"))
    run_form.locator("input[name=count]").fill("11")
    run_form.locator("button").click()
    expect(page.locator(".form-errors")).to_contain_text("count must be between 1 and 10")
    assert Task.objects.count() == 0


def test_it_runs_a_task_in_the_subnet_chosen_the_default_preselected(page, live_lab_server, demo):
    page.goto(f"{live_lab_server.url}/clusters/demo/")
    subnets = page.locator("#run-task-subnets")
    expect(subnets).to_have_value("subnet-a")
    offered = page.locator("datalist#subnets option").evaluate_all("options => options.map(o => o.value)")
    assert offered[:2] == ["subnet-a", "subnet-b"]
    subnets.fill("subnet-b")
    expect(page.locator("#run-task-form + details.form-commands .aws-command")).to_contain_text(
        "--network-configuration")
    expect(page.locator("#run-task-form + details.form-commands .aws-command")).to_contain_text("subnet-b")
    page.locator("#run-task-form button").click()
    expect(page.locator(".messages")).to_contain_text("RunTask started 1 task(s).")
    assert Task.objects.get().network_configuration["awsvpcConfiguration"]["subnets"] == ["subnet-b"]


def test_it_catches_up_after_losing_its_socket(page, live_lab_server, demo):
    page.goto(f"{live_lab_server.url}/clusters/demo/")
    wait_live(page)
    page.evaluate("window.notReloaded = true")
    live_lab_server.stop()  # the lab goes away: the page's socket closes with 1012
    expect(page.locator("#live-status")).to_have_attribute("data-state", "closed")
    response = call(Account.default(), "RunTask", {"cluster": "demo", "taskDefinition": "web:1", **FARGATE})
    task_id = response["tasks"][0]["taskArn"].rsplit("/", 1)[1]
    live_lab_server.start()  # the ws extension reconnects by itself; the consumer sends the current state
    expect(page.locator("#live-status")).to_have_attribute("data-state", "open", timeout=15_000)
    expect(page.locator(f"text={task_id[:8]}")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
