"""The article's five steps on the dashboard's pages, in a real Chromium (issue 14, item 1): the
repository page with its push commands and its images arriving live as a push lands on the real
registry; the load balancer page's three forms; the service form behind a target group, landing
on the service page with its URL; a rolling update from the service page."""
import gzip
import hashlib
import io
import json
import tarfile
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import expect

from orchestrator import registry
from orchestrator.frontend import call
from orchestrator.models import Account, Listener, Repository, Service, TargetGroup
from orchestrator.registry import RegistryProcess
from tests.support.browser import wait_live
from orchestrator.elbv2.views import call as elbv2
from tests.support.common import free_port
from tests.test_dashboard_journey_forms import make_alb, register_web
from tests.support.api import FARGATE

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def patient_expect():
    """Generous waits for a loaded machine (each still waits on its condition, never sleeps)."""
    expect.set_options(timeout=30_000)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture
def pushing_registry(settings, tmp_path, live_lab_server):
    """The lab's registry process, telling its pushes to the live lab server (as ``manage.py lab``
    sets it up)."""
    port = free_port()
    settings.LAB_PORT = live_lab_server.port
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGISTRY_PORT": port, "REGISTRY_ROOT": str(tmp_path / "registry")}
    process = RegistryProcess(port=port, root=tmp_path / "registry")
    process.start()
    yield process
    process.stop()


def _blob(base, repository, data, auth):
    """Upload one blob through the registry's API; its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(f"{base}/v2/{repository}/blobs/uploads/", headers=auth, timeout=10)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    location = location if location.startswith("http") else base + location
    joiner = "&" if "?" in location else "?"
    done = requests.put(f"{location}{joiner}digest={quote(digest)}", data=data,
                        headers={**auth, "Content-Type": "application/octet-stream"}, timeout=10)
    assert done.status_code == 201, done.text
    return digest


def push_image(base, repository, tag, account, content=b"hello"):
    """Push a one-layer image with the registry's HTTP API (what ``docker push`` does), with
    ``account``'s token from GetAuthorizationToken."""
    token = registry.call(account, "GetAuthorizationToken", {})["authorizationData"][0]["authorizationToken"]
    auth = {"Authorization": f"Basic {token}"}
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer_gz = gzip.compress(layer.getvalue())
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()]}
                         }).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": _blob(base, repository, config, auth)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer_gz),
                    "digest": _blob(base, repository, layer_gz, auth)}],
    }
    put = requests.put(f"{base}/v2/{repository}/manifests/{tag}", data=json.dumps(manifest),
                       headers={**auth, "Content-Type": manifest["mediaType"]}, timeout=10)
    assert put.status_code == 201, put.text
    return put.headers["Docker-Content-Digest"]


def test_a_repository_made_on_the_page_shows_a_push_as_it_lands(page, live_lab_server, pushing_registry):
    page.goto(live_lab_server.url + "/repositories/")
    page.fill("#create-repository-repository_name", "Bad Name")
    page.click("#create-repository-form button[type=submit]")
    expect(page.locator("#create-repository-form .form-errors")).to_contain_text("InvalidParameterException")
    assert not Repository.objects.exists()

    page.fill("#create-repository-repository_name", "web")
    page.click("#create-repository-form button[type=submit]")
    page.wait_for_url("**/repositories/web/")
    uri = registry.call(Account.default(), "DescribeRepositories", {})["repositories"][0]["repositoryUri"]
    expect(page.locator("#push-push")).to_have_text(f"docker push {uri}:v1")
    expect(page.locator("#push-login")).to_contain_text("| docker login --username AWS --password-stdin")
    page.click("button[data-copy=push-push]")
    expect(page.locator("button[data-copy=push-push] + .copy-status")).not_to_be_empty()
    expect(page.locator(".repository-images")).to_contain_text("No image yet")
    wait_live(page)
    page.evaluate("window.notReloaded = true")

    digest = push_image(pushing_registry.url, uri.split("/", 1)[1], "v1", Account.default())

    row = page.locator(f".repository-images tr[data-digest='{digest}']")
    expect(row).to_be_visible(timeout=20_000)
    expect(row.locator("[data-tag=v1]")).to_be_visible()
    expect(row.locator("a.next-step")).to_have_attribute("data-image-uri", f"{uri}:v1")
    assert page.evaluate("window.notReloaded") is True

    row.locator("a.next-step").click()
    expect(page.locator("#register-task-definition-image")).to_have_value(f"{uri}:v1")
    assert f"{uri}:v1" in page.locator("#image-suggestions option").evaluate_all("(options) => options.map(o => o.value)")


def test_the_load_balancer_page_makes_a_load_balancer_a_target_group_and_a_listener(page, live_lab_server):
    call(Account.default(), "CreateCluster", {"clusterName": "demo"})
    page.goto(live_lab_server.url + "/load-balancers/")
    expect(page.locator("#create-load-balancer-commands-aws")).to_contain_text("aws elbv2 create-load-balancer")
    expect(page.locator("#create-load-balancer-commands-kubectl")).to_contain_text("kubectl create ingress")
    page.fill("#create-load-balancer-lb_name", "web-lb")
    # The commands follow what is typed (a preview runs nothing).
    expect(page.locator("#create-load-balancer-commands-aws")).to_contain_text(
        "aws elbv2 create-load-balancer --name web-lb --subnets subnet-a subnet-b")
    expect(page.locator("#create-load-balancer-commands-kubectl")).to_contain_text("kubectl create ingress web-lb")
    page.click("#create-load-balancer-form button[type=submit]")
    expect(page.locator("tr[data-load-balancer=web-lb]")).to_contain_text("web-lb-")

    page.fill("#create-target-group-tg_name", "web-tg")
    page.fill("#create-target-group-health_check_path", "/health")
    page.fill("#create-target-group-health_check_interval", "5")
    page.fill("#create-target-group-deregistration_delay", "5000")
    page.click("#create-target-group-form button[type=submit]")
    expect(page.locator("#create-target-group-form .form-errors")).to_contain_text(
        "deregistration_delay.timeout_seconds must be between 0 and 3600")
    assert not TargetGroup.objects.exists()
    page.fill("#create-target-group-deregistration_delay", "5")
    page.click("#create-target-group-form button[type=submit]")
    expect(page.locator("tr[data-target-group=web-tg]")).to_contain_text("/health every 5 s")
    expect(page.locator("tr[data-target-group=web-tg]")).to_contain_text("5 s")

    port = free_port()
    page.fill("#create-listener-listener_port", str(port))
    page.click("#create-listener-form button[type=submit]")
    listener = Listener.objects.get(port=port)
    expect(page.locator(f"a.listener-url[data-listener='{port}']")).to_have_attribute("href", listener.url)
    # The lists are live: a load balancer made with the API shows without a reload.
    wait_live(page)
    page.evaluate("window.notReloaded = true")
    elbv2(Account.default(), "CreateLoadBalancer", {"Name": "api-lb", "Subnets": ["subnet-a", "subnet-b"]})
    expect(page.locator("tr[data-load-balancer=api-lb]")).to_contain_text("no listener yet")
    assert page.evaluate("window.notReloaded") is True

    page.locator("tr[data-target-group=web-tg] a.next-step", has_text="demo").click()
    expect(page.locator("#create-service-target_group")).to_have_value(TargetGroup.objects.get().arn)


def test_the_repository_list_shows_a_repository_made_with_the_api_live(page, live_lab_server, pushing_registry):
    page.goto(live_lab_server.url + "/repositories/")
    expect(page.locator("#create-repository-commands-aws")).to_contain_text("aws ecr create-repository")
    wait_live(page)
    page.evaluate("window.notReloaded = true")
    registry.call(Account.default(), "CreateRepository", {"repositoryName": "api/web"})
    row = page.locator("tr[data-repository='api/web']")
    expect(row).to_contain_text("nothing pushed yet")
    assert page.evaluate("window.notReloaded") is True
    row.get_by_role("link", name="api/web").click()
    page.wait_for_url("**/repositories/api/web/")


@pytest.fixture
def behind_a_listener(transactional_db):
    """Cluster demo, web:1 and web:2, and web-tg behind a listener of web-lb: its ARN."""
    return make_alb(register_web(Account.default()))["tg_arn"]


def test_the_service_form_puts_a_service_behind_the_target_group_and_ends_on_its_url(page, live_lab_server,
                                                                                      behind_a_listener):
    page.goto(live_lab_server.url + "/task-definitions/web/1/")
    page.locator("a.next-step[data-next=service]").click()
    form = page.locator("#create-service-form")
    expect(page.locator("#create-service-task_definition")).to_have_value("web:1")
    page.select_option("#create-service-target_group", behind_a_listener)
    page.fill("#create-service-desired_count", "2")
    page.fill("#create-service-maximum_percent", "500")
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-errors")).to_contain_text("InvalidParameterException: maximumPercent must be between")
    assert not Service.objects.exists()

    page.fill("#create-service-maximum_percent", "150")
    expect(page.locator("#create-service-container_name")).to_have_value("web")
    form.locator("button[type=submit]").click()
    service = Service.objects.get(name="web")
    page.wait_for_url(f"**/services/{service.pk}/")
    expect(page.locator("a.service-url")).to_have_attribute("href", Listener.objects.get().url)
    assert service.deployment_configuration["maximumPercent"] == 150
    assert service.deployment_configuration["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}


def test_a_rolling_update_starts_from_the_service_page(page, live_lab_server, behind_a_listener):
    call(Account.default(), "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web:1",
                                              "desiredCount": 1, **FARGATE})
    service = Service.objects.get(name="web")
    page.goto(f"{live_lab_server.url}/services/{service.pk}/")
    expect(page.locator("#rollout-commands-kubectl")).to_have_text(
        "kubectl set image deployment/web web=fargate-lab/demo:latest -n demo")
    expect(page.locator("#rollout-task_definition")).to_have_value("web:2")
    page.click("#rollout-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Rolling out web:2")
    service.refresh_from_db()
    assert service.task_definition.revision == 2

    page.check("#rollout-force_new_deployment")
    page.click("#rollout-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("forced new deployment")
    assert service.deployments.count() == 3


def test_a_listener_rule_made_with_the_api_shows_under_its_listener_live(page, live_lab_server):
    account = Account.default()
    make_alb(account)
    listener = Listener.objects.get()
    api_tg = elbv2(account, "CreateTargetGroup", {"Name": "api-tg", "Protocol": "HTTP", "Port": 80,
                                                  "TargetType": "ip"})["TargetGroups"][0]
    page.goto(live_lab_server.url + "/load-balancers/")
    wait_live(page)
    page.evaluate("window.notReloaded = true")
    elbv2(account, "CreateRule", {"ListenerArn": listener.arn, "Priority": 10, "Conditions": [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
        "Actions": [{"Type": "forward", "TargetGroupArn": api_tg["TargetGroupArn"]}]})
    rule = page.locator("tr[data-load-balancer=web-lb] ol.listener-rules li[data-priority='10']")
    expect(rule).to_have_text("10 when path-pattern is /api/* → api-tg")
    assert page.evaluate("window.notReloaded") is True
