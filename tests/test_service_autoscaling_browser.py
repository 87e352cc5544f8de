"""The service page's auto scaling section in a real browser: the HorizontalPodAutoscaler beside
the scalable target, its current against target utilisation and its decisions, live as the
autoscaler measures and decides."""
import time

import pytest
from playwright.sync_api import expect

from orchestrator import service_autoscaler, task_metrics
from orchestrator.frontend import call
from orchestrator.frontend.application_autoscaling import SERVICE as AUTOSCALING
from orchestrator.models import Account, ScalableTarget, Service, Task
from tests.support.browser import wait_live
from tests.support.api import FARGATE

pytestmark = pytest.mark.browser
TARGET = {"ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount", "ResourceId": "service/demo/web"}


@pytest.fixture
def web(live_lab_server, settings):
    """Service web of cluster demo with two RUNNING tasks (rows only: no control plane runs)."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "SCALING_METRIC_WINDOW_SECONDS": 1.0}
    account = Account.default()
    call(account, "CreateCluster", {"clusterName": "demo"})
    call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest"}]})
    call(account, "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web:1",
                                    "desiredCount": 2, **FARGATE})
    service = Service.objects.get(name="web")
    for _ in range(2):
        Task.objects.create(service=service, account=account, cluster=service.cluster, cpu=256, memory=512,
                            task_definition=service.task_definition, last_status=Task.RUNNING)
    return service


def busy(service, cpu):
    """Feed the sampler two samples a second apart of every RUNNING task at ``cpu`` (a fraction)."""
    now = time.time()
    tasks = set(Task.objects.filter(service=service, last_status=Task.RUNNING).values_list("pk", flat=True))
    for at in (now - 1.5, now):
        task_metrics.sampler()._keep({pk: task_metrics.Usage(cpu, 0.1, cpu * 256, 51, at) for pk in tasks}, tasks,
                                     set(), at)


def test_the_service_page_shows_its_autoscaler_measuring_and_deciding(page, live_lab_server, web):
    page.goto(f"{live_lab_server.url}/services/{web.pk}/")
    wait_live(page)
    section = page.locator(".service-autoscaling")
    expect(section).to_contain_text("Not auto scaled")
    expect(section).to_contain_text("register-scalable-target")

    account = web.account
    AUTOSCALING.call(account, "RegisterScalableTarget", {**TARGET, "MinCapacity": 1, "MaxCapacity": 5})
    expect(section.locator(".hpa-max")).to_have_text("5")
    AUTOSCALING.call(account, "PutScalingPolicy", {
        **TARGET, "PolicyName": "cpu50", "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 50.0, "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}})
    row = section.locator('tr[data-policy="cpu50"]')
    expect(row.locator(".hpa-target")).to_have_text("50 %")
    expect(row.locator(".hpa-current")).to_contain_text("measuring")

    busy(web, 0.9)
    service_autoscaler.sync_target(ScalableTarget.objects.get().pk, lambda *args, **kwargs: None)
    expect(row.locator(".hpa-current")).to_have_text("90.0 %")
    expect(section.locator(".hpa-desired")).to_have_text("4")
    decision = section.locator(".hpa-decisions li").first
    expect(decision).to_contain_text("Successful")
    expect(decision).to_contain_text("Setting desired count to 4.")
    expect(decision).to_contain_text("AlarmHigh")
    expect(decision.locator(".trace-link")).to_have_count(1)
    section.locator(".hpa-twin summary").click()
    expect(section.locator(".hpa-yaml")).to_contain_text("kind: HorizontalPodAutoscaler")
    expect(section.locator(".hpa-yaml")).to_contain_text("averageUtilization: 50")

    AUTOSCALING.call(account, "DeregisterScalableTarget", TARGET)
    expect(section).to_contain_text("Not auto scaled")
