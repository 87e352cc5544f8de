"""The Kubernetes twins in a real Chromium: kubectl beside each ECS call on the map, and each
object's manifest as YAML with a copy button on its page."""
import pytest
import requests
from playwright.sync_api import expect

from orchestrator import bus
from orchestrator.frontend import call
from orchestrator.models import Account, Activity, ContainerInstance, Service, Task
from tests.support.api import FARGATE, signed_request
from tests.support.browser import wait_live
from tests.support.kubernetes import parse_and_validate

pytestmark = pytest.mark.browser


def test_the_frontend_card_shows_each_call_beside_its_kubectl_command(page, live_lab_server):
    Account.default()
    wait_live(page)
    headers, data = signed_request(live_lab_server.url, "CreateCluster", {"clusterName": "demo"})
    assert requests.post(live_lab_server.url + "/", data=data, headers=headers, timeout=30).status_code == 200

    row = page.locator('.card[data-component="frontend"] tr[data-operation="CreateCluster"]')
    expect(row.locator(".aws-command")).to_have_text("aws ecs create-cluster --cluster-name demo")
    expect(row.locator(".kubectl-command")).to_have_text("kubectl create namespace demo")


@pytest.fixture
def demo(live_lab_server):
    """Cluster demo, web:1, a task and a service of 1 (through the frontend), an instance."""
    account = Account.default()
    call(account, "CreateCluster", {"clusterName": "demo"})
    call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
        "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "command": ["/demo/serve.sh"],
                                  "environment": [{"name": "GREETING", "value": "hi"}]}],
    })
    arn = call(account, "RunTask", {"cluster": "demo", "taskDefinition": "web:1", **FARGATE})["tasks"][0]["taskArn"]
    call(account, "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 1, **FARGATE})
    ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192)
    return {"task": Task.objects.get(task_id=arn.rsplit("/", 1)[1]), "service": Service.objects.get(name="web")}


def test_each_object_page_shows_its_manifest_as_yaml(page, live_lab_server, demo):
    for path, kind in [
        (f"/tasks/{demo['task'].task_id}/", "Pod"), (f"/services/{demo['service'].pk}/", "Deployment"),
        ("/clusters/demo/", "Namespace"), ("/instances/fleet-1/", "Node"), ("/task-definitions/web/1/", "PodTemplate"),
    ]:
        page.goto(live_lab_server.url + path)
        manifest = page.locator("section.twin pre.yaml")
        expect(manifest).to_be_visible()
        kinds = parse_and_validate(manifest.text_content())
        assert kind in kinds, path
        expect(page.locator("section.twin button.copy-yaml")).to_be_visible()


def test_the_copy_button_puts_the_manifest_on_the_clipboard(page, live_lab_server, demo):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_lab_server.url)
    page.goto(f"{live_lab_server.url}/tasks/{demo['task'].task_id}/")
    wait_live(page)
    page.click("section.twin button.copy-yaml")
    expect(page.locator("section.twin .copy-status")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    pod, = parse_and_validate(copied)["Pod"]
    container = pod["spec"]["containers"][0]
    assert container["args"] == ["/demo/serve.sh"] and {"name": "GREETING", "value": "hi"} in container["env"]
    assert container["resources"]["limits"] == {"cpu": "250m", "memory": "512Mi"}


def test_the_copy_button_falls_back_where_the_clipboard_api_is_missing(page, live_lab_server, demo):
    # As on a page served over plain http from another host: no navigator.clipboard. The
    # fallback copies from a selected textarea with execCommand("copy"); record what it held.
    page.add_init_script("""
        Object.defineProperty(navigator, "clipboard", {value: undefined});
        document.execCommand = function (command) {
            window.copiedText = command === "copy" ? document.activeElement.value : null;
            return command === "copy";
        };
    """)
    page.goto(f"{live_lab_server.url}/clusters/demo/")
    wait_live(page)  # the page's socket re-sends its fragments on connect, the manifest's too
    page.click("section.twin button.copy-yaml")
    expect(page.locator("section.twin .copy-status")).to_have_text("Copied")
    namespace, = parse_and_validate(page.evaluate("window.copiedText"))["Namespace"]
    assert namespace["metadata"]["name"] == "demo"


def test_the_pod_manifest_follows_the_task_live(page, live_lab_server, demo):
    task = demo["task"]
    page.goto(f"{live_lab_server.url}/tasks/{task.task_id}/")
    wait_live(page)
    page.evaluate("window.notReloaded = true")
    manifest = page.locator("section.twin pre.yaml")
    expect(manifest).to_contain_text("phase: Pending")

    task.containers.update(last_status="STOPPED", exit_code=1)
    Task.objects.filter(pk=task.pk).update(last_status=Task.STOPPED, desired_status=Task.STOPPED,
                                           stop_code="EssentialContainerExited",
                                           stopped_reason="Essential container in task exited")
    bus.publish("task", task.pk)
    expect(manifest).to_contain_text("phase: Failed")
    pod, = parse_and_validate(manifest.text_content())["Pod"]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    expect(page.locator("[data-field=pod_status]")).to_have_text("Error")
    assert page.evaluate("window.notReloaded") is True


def test_a_trace_page_shows_the_call_beside_its_kubectl_command(page, live_lab_server):
    Account.default()
    headers, data = signed_request(live_lab_server.url, "CreateCluster", {"clusterName": "class-c"})
    assert requests.post(live_lab_server.url + "/", data=data, headers=headers, timeout=30).status_code == 200
    trace_id = Activity.objects.get(component="frontend", action="CreateCluster").trace_id

    page.goto(f"{live_lab_server.url}/traces/{trace_id}/")
    expect(page.locator(".trace-call .aws-command")).to_have_text("aws ecs create-cluster --cluster-name class-c")
    expect(page.locator(".trace-call .kubectl-command")).to_have_text("kubectl create namespace class-c")
    first = page.locator("tr.trace-step").first
    expect(first.locator(".kubectl-command")).to_have_text("kubectl create namespace class-c")
