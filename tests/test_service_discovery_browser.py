"""The service page's discovery section in a real browser: the name tasks resolve, and its
instances coming and going live (the Kubernetes Service + EndpointSlice twin beside them)."""
import pytest
from playwright.sync_api import expect

from orchestrator import bus, service_discovery
from orchestrator.frontend import call
from orchestrator.frontend.servicediscovery import SERVICE as CLOUD_MAP
from orchestrator.models import Account, Namespace, Service, Task
from tests.support.browser import wait_live
from tests.support.api import FARGATE

pytestmark = pytest.mark.browser


@pytest.fixture
def registered_service(live_lab_server):
    """Service web of cluster demo registered in Cloud Map service web of lab.local."""
    account = Account.default()
    CLOUD_MAP.call(account, "CreatePrivateDnsNamespace", {"Name": "lab.local", "Vpc": "vpc-fargatelab"})
    registry = CLOUD_MAP.call(account, "CreateService", {
        "Name": "web", "NamespaceId": Namespace.objects.get().namespace_id,
        "DnsConfig": {"DnsRecords": [{"Type": "A", "TTL": 10}]}})["Service"]
    call(account, "CreateCluster", {"clusterName": "demo"})
    call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest",
                                                   "portMappings": [{"containerPort": 80}]}]})
    call(account, "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web:1",
                                    "desiredCount": 0, "serviceRegistries": [{"registryArn": registry["Arn"]}], **FARGATE})
    return Service.objects.get(name="web")


def test_the_service_page_shows_its_name_and_instances_coming_and_going(page, live_lab_server, registered_service):
    service = registered_service
    page.goto(f"{live_lab_server.url}/services/{service.pk}/")
    wait_live(page)
    section = page.locator(".service-discovery")
    expect(section.locator(".discovery-name")).to_have_text("web.lab.local")
    expect(section.locator("tbody")).to_contain_text("No instance")

    task = Task.objects.create(service=service, account=service.account, cluster=service.cluster,
                               task_definition=service.task_definition, cpu=256, memory=512,
                               last_status=Task.RUNNING, private_ip="10.9.8.7")
    service_discovery.register_task(task)
    bus.publish("task", task.pk)
    row = section.locator(f'tr[data-instance="{task.task_id}"]')
    expect(row).to_contain_text("10.9.8.7:80")
    expect(row).to_contain_text("HEALTHY")
    expect(page.locator(".twin .yaml")).to_contain_text("kind: EndpointSlice")
    expect(page.locator(".twin .yaml")).to_contain_text("10.9.8.7")

    service_discovery.deregister_task(task)
    bus.publish("task", task.pk)
    expect(row).to_have_count(0)
    expect(section.locator("tbody")).to_contain_text("No instance")
