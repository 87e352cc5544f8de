"""Service discovery on a real lab (issue 12, item 7): a service with a Cloud Map registry and
one with Service Connect; a task of the same cluster reaches each by its name (busybox nc from
inside its container), instances come and go with the tasks, and another account's task
neither resolves nor reaches the names."""
import re
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config

from tests.support.common import ROOT
from tests.support.lab import lab_containers, poll

pytestmark = pytest.mark.docker

NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-a"], "assignPublicIp": "ENABLED"}}


def web(family, port_name=None):
    """A task definition of the demo image serving on port 80 (a named port for Service Connect)."""
    mapping = {"containerPort": 80, "protocol": "tcp", **({"name": port_name} if port_name else {})}
    return {"family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
            "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest",
                                                       "essential": True, "portMappings": [mapping]}]}


def student(lab, name):
    """An ECS and a Cloud Map client with a new student's key."""
    out = subprocess.run([sys.executable, "manage.py", "addstudent", name], cwd=ROOT, env=lab.env,
                         capture_output=True, text=True, check=True).stdout
    keys = {"aws_access_key_id": re.search(r"AWS_ACCESS_KEY_ID=(\S+)", out).group(1),
            "aws_secret_access_key": re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", out).group(1)}
    return lab.client(**keys), cloud_map(lab, **keys)


def cloud_map(lab, **keys):
    """A Cloud Map client that sends DiscoverInstances to the lab's own host (no data- prefix)."""
    keys = keys or {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    return boto3.client("servicediscovery", endpoint_url=lab.url, region_name="us-east-1",
                        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}), **keys)


def running_client(ecs, docker_client, lab):
    """Run a lone task in cluster demo; its Docker container once RUNNING."""
    ecs.register_task_definition(**web("client"))
    arn = ecs.run_task(cluster="demo", taskDefinition="client", launchType="FARGATE",
                       networkConfiguration=NETWORK)["tasks"][0]["taskArn"]
    poll(lambda: ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
         timeout=60, message="the client task RUNNING")
    [container] = [c for c in lab_containers(docker_client, lab.lab_id) if c.labels["fargatelab.task-arn"] == arn]
    return container


def fetch(container, host):
    """What GET http://<host>/ answers from inside ``container`` (busybox nc resolves the name)."""
    result = container.exec_run(["sh", "-c", f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {host} 80 2>&1'])
    return result.output.decode(errors="replace")


def running_tasks(ecs, service):
    arns = ecs.list_tasks(cluster="demo", serviceName=service, desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster="demo", tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["lastStatus"] == "RUNNING"]


def test_a_task_reaches_services_by_their_discovery_names_and_another_account_does_not(lab, docker_client):
    ecs, sd = lab.client(), cloud_map(lab)
    namespace = sd.get_operation(OperationId=sd.create_private_dns_namespace(
        Name="lab.local", Vpc="vpc-fargatelab")["OperationId"])["Operation"]["Targets"]["NAMESPACE"]
    registry = sd.create_service(Name="web", NamespaceId=namespace,
                                 DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]})["Service"]
    ecs.create_cluster(clusterName="demo", serviceConnectDefaults={"namespace": "shop"})
    ecs.register_task_definition(**web("web"))
    ecs.register_task_definition(**web("api", port_name="http"))
    ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=2,
                       launchType="FARGATE", networkConfiguration=NETWORK,
                       serviceRegistries=[{"registryArn": registry["Arn"]}])
    ecs.create_service(cluster="demo", serviceName="api", taskDefinition="api", desiredCount=1,
                       launchType="FARGATE", networkConfiguration=NETWORK,
                       serviceConnectConfiguration={"enabled": True, "services": [
                           {"portName": "http", "clientAliases": [{"port": 80, "dnsName": "api"}]}]})

    def registered():
        tasks = running_tasks(ecs, "web")
        ips = {i["Attributes"]["AWS_INSTANCE_IPV4"] for i in sd.list_instances(ServiceId=registry["Id"])["Instances"]}
        wanted = {t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] for t in tasks}
        return len(tasks) == 2 and ips == wanted and tasks

    tasks = poll(registered, timeout=60, message="both web tasks RUNNING and registered in Cloud Map")
    found = sd.discover_instances(NamespaceName="lab.local", ServiceName="web")["Instances"]
    assert {i["InstanceId"] for i in found} == {t["taskArn"].rsplit("/", 1)[1] for t in tasks}
    assert found[0]["Attributes"]["ECS_SERVICE_NAME"] == "web" and found[0]["HealthStatus"] == "HEALTHY"

    client = running_client(ecs, docker_client, lab)
    answer = fetch(client, "web.lab.local")
    assert "HTTP/1.1 200" in answer and any(t["taskArn"] in answer for t in tasks), answer
    poll(lambda: running_tasks(ecs, "api"), timeout=60, message="the api task RUNNING")
    [api] = running_tasks(ecs, "api")
    answer = fetch(client, "api")
    assert "HTTP/1.1 200" in answer and api["taskArn"] in answer, answer
    shop = sd.list_namespaces(Filters=[{"Name": "NAME", "Values": ["shop"]}])["Namespaces"][0]
    assert sorted(ecs.list_services_by_namespace(namespace="shop")["serviceArns"]) == [
        s for s in ecs.list_services(cluster="demo")["serviceArns"] if s.endswith("/api")]
    assert shop["Type"] == "HTTP" and ecs.list_services_by_namespace(namespace=namespace)["serviceArns"][0].endswith(
        "/web")

    bob_ecs, bob_sd = student(lab, "bob")
    bob_ecs.create_cluster(clusterName="demo")
    stranger = running_client(bob_ecs, docker_client, lab)
    assert "HTTP/" not in fetch(stranger, "web.lab.local") and "HTTP/" not in fetch(stranger, "api")
    assert bob_sd.list_namespaces()["Namespaces"] == []

    ecs.update_service(cluster="demo", service="web", desiredCount=0)
    poll(lambda: not sd.list_instances(ServiceId=registry["Id"])["Instances"], timeout=60,
         message="the web tasks deregistered as they stop")
    poll(lambda: not running_tasks(ecs, "web"), timeout=60, message="the web tasks stopped")
    assert "HTTP/" not in fetch(client, "web.lab.local")
