"""Classroom networking (issue 14, item 6): a lab started with HOST=0.0.0.0 publishes task ports
and load balancer listeners where remote students reach them, and the URLs it hands out
(DescribeLoadBalancers' DNSName, networkBindings, the dashboard's links) name an address that
opens from another machine, not a ``localhost`` name that would point at the student's own."""
import re
import uuid

import boto3
import pytest
import requests
from botocore.config import Config
from django.test import override_settings

from orchestrator import network
from tests.support.common import free_port
from tests.support.lab import LabProcess, poll, remove_lab_objects

TASK_DEFINITION = {
    "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                              "portMappings": [{"containerPort": 80, "protocol": "tcp"}]}],
}


@override_settings(LAB_HOST="127.0.0.1")
def test_a_loopback_lab_publishes_on_loopback_and_names_elb_localhost(settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "PUBLISH_ADDRESS": "", "ELB_LISTEN_ADDRESS": "",
                            "ADVERTISE_ADDRESS": ""}
    assert network.publish_address() == network.listen_address() == "127.0.0.1"
    assert network.load_balancer_dns_name("Demo-LB", "123", "us-east-1") == "demo-lb-123.us-east-1.elb.localhost"


@override_settings(LAB_HOST="0.0.0.0")
def test_a_classroom_lab_follows_host_and_advertises_a_reachable_address(settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "PUBLISH_ADDRESS": "", "ELB_LISTEN_ADDRESS": "",
                            "ADVERTISE_ADDRESS": ""}
    assert network.publish_address() == network.listen_address() == "0.0.0.0"
    advertised = network.advertised_host()
    assert advertised not in ("0.0.0.0", "127.0.0.1", "") and not network.is_loopback(advertised)
    assert network.load_balancer_dns_name("demo-lb", "123", "us-east-1") == advertised
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "ADVERTISE_ADDRESS": "lab.school.example"}
    assert network.load_balancer_dns_name("demo-lb", "123", "us-east-1") == "lab.school.example"


@override_settings(LAB_HOST="0.0.0.0")
def test_settings_given_win_over_host(settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "PUBLISH_ADDRESS": "127.0.0.1", "ELB_LISTEN_ADDRESS": "localhost"}
    assert network.publish_address() == network.listen_address() == "127.0.0.1"
    assert network.load_balancer_dns_name("demo-lb", "123", "us-east-1").endswith(".elb.localhost")


@pytest.fixture
def classroom_lab(tmp_path, docker_client, lab_demo_image):
    """A lab on 0.0.0.0, made safe to start as a classroom lab is: admin has another password,
    the key test / test is off; the student carol has a key of her own."""
    lab = LabProcess(tmp_path, f"test-{uuid.uuid4().hex[:8]}", extra_env={"HOST": "0.0.0.0"})
    for args in (("migrate", "--verbosity", "0"),
                 ("shell", "-c", "from django.contrib.auth.models import User; "
                                 "User.objects.create_superuser('admin', '', 'not-the-default-pw'); "
                                 "from orchestrator.models import Account; Account.default()"),
                 ("disablekey", "test")):
        done = lab.manage(*args)
        assert done.returncode == 0, done.stderr
    sheet = lab.manage("addstudent", "carol", "--password", "carol-pw")
    assert sheet.returncode == 0, sheet.stderr
    lab.carol = dict(line.strip().removeprefix("export ").split("=", 1) for line in sheet.stdout.splitlines()
                     if "AWS_" in line)
    lab.start()
    yield lab
    lab.stop()
    remove_lab_objects(docker_client, lab.lab_id)


@pytest.mark.docker
def test_a_classroom_lab_hands_out_urls_that_open_from_another_machine(classroom_lab, docker_client):
    lab = classroom_lab
    # A student's machine reaches the lab at this machine's address, never at 127.0.0.1.
    address = network.default_route_address()
    assert not network.is_loopback(address)
    url = f"http://{address}:{lab.port}"
    assert requests.get(url + "/accounts/login/", timeout=10).status_code == 200

    def client(service):
        return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                            aws_access_key_id=lab.carol["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=lab.carol["AWS_SECRET_ACCESS_KEY"],
                            config=Config(retries={"max_attempts": 1}))

    ecs, elbv2 = client("ecs"), client("elbv2")
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**TASK_DEFINITION)
    lb = elbv2.create_load_balancer(Name="demo-lb", Subnets=["subnet-a"])["LoadBalancers"][0]
    assert lb["DNSName"] == address  # resolves on any machine, in every tool (no *.elb.localhost)
    tg = elbv2.create_target_group(Name="demo-tg", Protocol="HTTP", Port=80, TargetType="ip", VpcId="vpc-lab",
                                   HealthCheckIntervalSeconds=5, HealthyThresholdCount=2)["TargetGroups"][0]
    elbv2.modify_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"], Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "2"}])
    port = free_port()
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=1,
                       launchType="FARGATE", loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"],
                                                             "containerName": "web", "containerPort": 80}],
                       networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-a"]}})

    def running_task():
        arns = ecs.list_tasks(cluster="demo", serviceName="web")["taskArns"]
        tasks = ecs.describe_tasks(cluster="demo", tasks=arns)["tasks"] if arns else []
        return next((t for t in tasks if t["lastStatus"] == "RUNNING"), None)

    try:
        task = poll(running_task, timeout=90, message="the service's task to run")
    except BaseException:
        arns = ecs.list_tasks(cluster="demo", serviceName="web", desiredStatus="STOPPED")["taskArns"]
        print(ecs.describe_tasks(cluster="demo", tasks=arns)["tasks"] if arns else "no stopped", lab.log())
        raise
    # The task's port is published on every address (HOST), so the student reaches it directly.
    binding = task["containers"][0]["networkBindings"][0]
    assert binding["bindIP"] == "0.0.0.0"
    published = requests.get(f"http://{address}:{binding['hostPort']}/", timeout=10)
    assert published.status_code == 200 and task["taskArn"] in published.text
    # The URL the lab gives for the load balancer opens at that same address.
    listener_url = f"http://{lb['DNSName']}:{port}/"

    def answers():
        try:
            response = requests.get(listener_url, timeout=5)
        except requests.RequestException:
            return False
        return response.status_code == 200 and task["taskArn"] in response.text

    poll(answers, timeout=90, message=f"{listener_url} to answer with the task")
    # The dashboard links the same URL for the student.
    session = requests.Session()
    login = session.get(url + "/accounts/login/", timeout=10)
    token = login.cookies["csrftoken"]
    session.post(url + "/accounts/login/", data={"username": "carol", "password": "carol-pw",
                                                 "csrfmiddlewaretoken": token},
                 headers={"Referer": url + "/accounts/login/"}, timeout=10)
    task_page = session.get(f"{url}/tasks/{task['taskArn'].rsplit('/', 1)[1]}/", timeout=10).text
    assert f"http://{address}:{binding['hostPort']}" in task_page
    service_pk = re.search(r'href="/services/([0-9]+)/"', session.get(url + "/clusters/demo/", timeout=10).text)[1]
    assert listener_url in session.get(f"{url}/services/{service_pk}/", timeout=10).text
    containers = docker_client.containers.list(filters={"label": f"fargatelab.lab={lab.lab_id}"})
    assert containers[0].attrs["HostConfig"]["PortBindings"]["80/tcp"][0]["HostIp"] == "0.0.0.0"
