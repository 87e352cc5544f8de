"""ECS serviceRegistries, Service Connect and ListServicesByNamespace through boto3: what is
stored and described, the DNS names tasks get, and ECS's errors for what ECS (or the lab,
without a Service Connect proxy) refuses."""
import pytest

from orchestrator import service_discovery
from orchestrator.models import DiscoveryInstance, Service, Task
from tests.support.api import FARGATE, error_of, fargate_task_definition, lab_client


@pytest.fixture
def sd(live_server, default_account):
    return lab_client(live_server, "servicediscovery")


@pytest.fixture
def demo(ecs, sd):
    """Cluster demo, web:1 with a named port "http", a DNS namespace lab.local with service web."""
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition(containerDefinitions=[
        {"name": "web", "image": "fargate-lab/demo:latest", "portMappings": [{"containerPort": 80, "name": "http"}]}]))
    namespace = sd.get_operation(OperationId=sd.create_private_dns_namespace(
        Name="lab.local", Vpc="vpc-fargatelab")["OperationId"])["Operation"]["Targets"]["NAMESPACE"]
    registry = sd.create_service(Name="web", NamespaceId=namespace,
                                 DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]})["Service"]
    return ecs, registry


def create(ecs, name="svc", **params):
    params = {**FARGATE, "desiredCount": 0, **params}
    return ecs.create_service(cluster="demo", serviceName=name, taskDefinition="web:1", **params)["service"]


def test_a_service_registry_is_stored_described_and_named_in_dns(demo):
    ecs, registry = demo
    service = create(ecs, serviceRegistries=[{"registryArn": registry["Arn"]}])
    assert service["serviceRegistries"] == [{"registryArn": registry["Arn"]}]
    row = Service.objects.get()
    task = Task(service=row, account=row.account, cluster=row.cluster, task_definition=row.task_definition,
                cpu=256, memory=512)
    assert service_discovery.aliases_for(task, "web") == ["web.lab.local"]
    assert service_discovery.aliases_for(task, "sidecar") == []


def test_service_connect_takes_the_clusters_default_namespace_and_creates_its_cloud_map_service(demo, sd):
    ecs, _ = demo
    ecs.update_cluster(cluster="demo", serviceConnectDefaults={"namespace": "shop"})
    service = create(ecs, serviceConnectConfiguration={"enabled": True, "services": [
        {"portName": "http", "clientAliases": [{"port": 80}]}]})
    [deployment] = service["deployments"]
    assert deployment["serviceConnectConfiguration"]["namespace"] == "shop"
    [resource] = deployment["serviceConnectResources"]
    assert resource["discoveryName"] == "http"
    assert sd.get_service(Id=resource["discoveryArn"])["Service"]["Name"] == "http"
    task = Task(service=Service.objects.get(), cpu=256, memory=512)
    assert service_discovery.aliases_for(task, "web") == ["http.shop"]
    assert ecs.list_services_by_namespace(namespace="shop")["serviceArns"] == [service["serviceArn"]]


def test_a_task_is_registered_when_running_and_deregistered_as_it_stops(demo):
    ecs, registry = demo
    create(ecs, serviceRegistries=[{"registryArn": registry["Arn"]}])
    row = Service.objects.get()
    task = Task.objects.create(service=row, account=row.account, cluster=row.cluster,
                               task_definition=row.task_definition, cpu=256, memory=512, private_ip="10.0.0.5")
    [done] = service_discovery.register_task(task)
    instance = DiscoveryInstance.objects.get()
    assert (done.name, instance.instance_id, instance.attributes["AWS_INSTANCE_IPV4"]) == ("web", task.task_id,
                                                                                           "10.0.0.5")
    assert instance.attributes["AWS_INSTANCE_PORT"] == "80" and instance.health_status == "HEALTHY"
    Task.objects.filter(pk=task.pk).update(container_health_status="UNKNOWN")
    assert DiscoveryInstance.objects.get().health_status == "UNKNOWN"
    Task.objects.filter(pk=task.pk).update(container_health_status="UNHEALTHY")
    assert DiscoveryInstance.objects.get().health_status == "UNHEALTHY"
    assert service_discovery.deregister_task(task) == 1 and not DiscoveryInstance.objects.exists()


@pytest.mark.parametrize("params, words", [
    ({"serviceRegistries": [{"registryArn": "arn:aws:servicediscovery:us-east-1:000000000000:service/srv-none"}]},
     "does not exist"),
    ({"serviceRegistries": [{"registryArn": "REGISTRY", "containerName": "nope"}]}, "does not exist"),
    ({"serviceRegistries": [{"registryArn": "REGISTRY", "containerName": "web", "containerPort": 81}]}, "port 81"),
    ({"serviceRegistries": [{"registryArn": "REGISTRY"}, {"registryArn": "REGISTRY"}]}, "one service registry"),
    ({"serviceConnectConfiguration": {"enabled": True}}, "needs a namespace"),
    ({"serviceConnectConfiguration": {"enabled": True, "namespace": "lab.local",
                                      "services": [{"portName": "nope"}]}}, "does not name a port"),
    ({"serviceConnectConfiguration": {"enabled": True, "namespace": "lab.local", "services": [
        {"portName": "http", "clientAliases": [{"port": 8080}]}]}}, "must be 80"),
    ({"serviceConnectConfiguration": {"enabled": True, "namespace": "lab.local", "services": [
        {"portName": "http", "ingressPortOverride": 90}]}}, "no Service Connect proxy"),
    ({"serviceConnectConfiguration": {"enabled": True, "namespace": "lab.local", "services": [
        {"portName": "http", "clientAliases": [{"port": 80, "dnsName": "-Bad"}]}]}}, "not valid"),
    ({"serviceConnectConfiguration": {"enabled": True, "namespace": "lab.local",
                                      "logConfiguration": {"logDriver": "awslogs"}}}, "proxy's logs"),
])
def test_it_refuses_what_ecs_or_the_lab_cannot_do(demo, params, words):
    ecs, registry = demo
    params = {k: ([{**e, "registryArn": registry["Arn"] if e["registryArn"] == "REGISTRY" else e["registryArn"]}
                   for e in v] if k == "serviceRegistries" else v) for k, v in params.items()}
    code, message, _ = error_of(create, ecs, **params)
    assert code == "InvalidParameterException" and words in message
    assert not Service.objects.exists()


def test_an_unknown_namespace_is_namespace_not_found(demo):
    ecs, _ = demo
    code, _, _ = error_of(create, ecs, serviceConnectConfiguration={"enabled": True, "namespace": "nothere"})
    assert code == "NamespaceNotFoundException"
    assert error_of(ecs.list_services_by_namespace, namespace="nothere")[0] == "NamespaceNotFoundException"


def test_update_service_rolls_out_new_names_and_checks_them(demo):
    ecs, registry = demo
    create(ecs)
    updated = ecs.update_service(cluster="demo", service="svc",
                                 serviceRegistries=[{"registryArn": registry["Arn"]}])["service"]
    assert updated["serviceRegistries"] == [{"registryArn": registry["Arn"]}] and len(updated["deployments"]) == 2
    code, _, _ = error_of(ecs.update_service, cluster="demo", service="svc",
                          serviceConnectConfiguration={"enabled": True, "namespace": "lab.local", "services": [
                              {"portName": "nope"}]})
    assert code == "InvalidParameterException"
    assert Service.objects.get().service_connect_configuration == {}
