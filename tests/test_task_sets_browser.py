"""The service page of an EXTERNAL service in a real browser: its blue and green task sets side by
side (two Deployments behind one Service), their traffic shares, and the primary and deleted
task sets changing live."""
import pytest
from playwright.sync_api import expect

from orchestrator import bus
from orchestrator.cluster_manager import ClusterManager
from orchestrator.elbv2 import rules
from orchestrator.frontend import call
from orchestrator.models import Account, Listener, LoadBalancer, Service, TargetGroup
from tests.support.browser import wait_live

pytestmark = pytest.mark.browser

NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}


@pytest.fixture
def blue_green(live_lab_server):
    """EXTERNAL service bg of cluster demo (desired 2) with task set blue (web:1, target group blue,
    100 %) and green (web:2, target group green, 50 %) behind one listener weighted 100 / 0."""
    account = Account.default()
    call(account, "CreateCluster", {"clusterName": "demo"})
    for _ in range(2):
        call(account, "RegisterTaskDefinition", {
            "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
            "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest",
                                                       "portMappings": [{"containerPort": 80}]}]})
    lb = LoadBalancer.objects.create(account=account, name="bg-lb")
    groups = {c: TargetGroup.objects.create(account=account, name=c, port=80, target_type="ip")
              for c in ("blue", "green")}
    listener = Listener.objects.create(load_balancer=lb, port=8080, default_actions=[])
    set_weights(listener, groups, 100, 0)
    call(account, "CreateService", {"cluster": "demo", "serviceName": "bg", "taskDefinition": "web:1",
                                    "desiredCount": 2, "launchType": "FARGATE",
                                    "deploymentController": {"type": "EXTERNAL"}})
    sets = {}
    for colour, td, scale in (("blue", "web:1", 100), ("green", "web:2", 50)):
        sets[colour] = call(account, "CreateTaskSet", {
            "cluster": "demo", "service": "bg", "taskDefinition": td,
            "launchType": "FARGATE", "networkConfiguration": NETWORK,
            "scale": {"value": scale, "unit": "PERCENT"}, "externalId": f"{colour}-deploy",
            "loadBalancers": [{"targetGroupArn": groups[colour].arn, "containerName": "web", "containerPort": 80}],
        })["taskSet"]
    service = Service.objects.get(name="bg")
    ClusterManager(lambda *a, **k: None).sync_service(service.pk)
    return account, service, sets, listener, groups


def set_weights(listener, groups, blue, green):
    listener.default_actions = [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": groups["blue"].arn, "Weight": blue},
        {"TargetGroupArn": groups["green"].arn, "Weight": green}]}}]
    listener.save()
    rules.associate(listener)


def test_the_service_page_shows_its_task_sets_and_follows_the_switch(page, live_lab_server, blue_green):
    account, service, sets, listener, groups = blue_green
    page.goto(f"{live_lab_server.url}/services/{service.pk}/")
    wait_live(page)
    section = page.locator(".task-sets")
    expect(section.locator("h2")).to_contain_text("two Deployments behind one Service")
    blue = section.locator(f'[data-task-set="{sets["blue"]["id"]}"]')
    green = section.locator(f'[data-task-set="{sets["green"]["id"]}"]')
    expect(blue.locator(".task-set-status")).to_have_text("ACTIVE")
    expect(blue).to_contain_text("web:1")
    expect(blue).to_contain_text("scale 100 %")
    expect(blue.locator(".task-set-counts")).to_contain_text("2 desired")
    expect(green.locator(".task-set-counts")).to_contain_text("1 desired")
    expect(green).to_contain_text("green-deploy")
    expect(blue.locator(".rollout-task")).to_have_count(2)
    expect(green.locator(".rollout-task")).to_have_count(1)
    expect(blue.locator(".traffic-share")).to_have_text("100 %")
    expect(green.locator(".traffic-share")).to_have_text("0 %")
    expect(page.locator("#rollout-form")).to_have_count(0)  # UpdateService cannot roll an EXTERNAL service
    expect(page.locator(".rollout h2")).to_have_count(0)
    twin = page.locator(".twin .yaml")  # a Deployment per task set, behind one Service
    expect(twin).to_contain_text("fargate-lab/ecs-task-set: ACTIVE scale 100%")
    expect(twin).to_contain_text("fargate-lab/ecs-task-set: ACTIVE scale 50%")

    # The switch: the listener's weights and the primary task set, pushed live.
    set_weights(listener, groups, 0, 100)
    call(account, "UpdateServicePrimaryTaskSet", {"cluster": "demo", "service": "bg",
                                                  "primaryTaskSet": sets["green"]["taskSetArn"]})
    bus.publish("service", service.pk)
    expect(green.locator(".task-set-status")).to_have_text("PRIMARY")
    expect(green.locator(".traffic-share")).to_have_text("100 %")
    expect(blue.locator(".traffic-share")).to_have_text("0 %")

    call(account, "DeleteTaskSet", {"cluster": "demo", "service": "bg", "taskSet": sets["blue"]["id"],
                                    "force": True})
    bus.publish("service", service.pk)
    expect(blue.locator(".task-set-status")).to_have_text("DRAINING")
    ClusterManager(lambda *a, **k: None).sync_service(service.pk)
    expect(blue.locator(".rollout-task")).to_have_count(2)  # stopping: still there until STOPPED
    service.tasks.filter(deployment__deployment_id=sets["blue"]["id"]).update(last_status="STOPPED")
    ClusterManager(lambda *a, **k: None).sync_service(service.pk)
    expect(blue).to_have_count(0)
    expect(green.locator(".task-set-status")).to_have_text("PRIMARY")


def test_a_service_of_the_ecs_controller_shows_no_task_sets(page, live_lab_server, blue_green):
    account = blue_green[0]
    call(account, "CreateService", {"cluster": "demo", "serviceName": "rolling", "taskDefinition": "web:1",
                                    "desiredCount": 0, "launchType": "FARGATE", "networkConfiguration": NETWORK})
    rolling = Service.objects.get(name="rolling")
    page.goto(f"{live_lab_server.url}/services/{rolling.pk}/")
    wait_live(page)
    expect(page.locator(".rollout h2")).to_contain_text("Deployment → ReplicaSets")
    expect(page.locator(".task-sets h2")).to_have_count(0)
    expect(page.locator("#rollout-form")).to_have_count(1)
