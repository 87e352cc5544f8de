"""The ELBv2 API through a real boto3 client against the live server: every operation, and errors."""
import urllib.request

import botocore.exceptions
import pytest
import requests

from orchestrator.models import Account, Cluster, ContainerInstance, Target, Task, TaskContainer, TaskDefinition
from tests.support.common import free_port, wait_until


def code_of(call, *args, **kwargs):
    """The ELBv2 error code that ``call`` raises."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(*args, **kwargs)
    return info.value.response["Error"]["Code"]


def create_stack(elbv2, port, name="web"):
    """A load balancer, an ip target group and an HTTP listener forwarding to it."""
    lb = elbv2.create_load_balancer(Name=f"{name}-lb", Subnets=["subnet-a", "subnet-b"], SecurityGroups=["sg-1"])["LoadBalancers"][0]
    tg = elbv2.create_target_group(
        Name=f"{name}-tg", Protocol="HTTP", Port=80, VpcId="vpc-1", TargetType="ip",
        HealthCheckPath="/", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
        HealthyThresholdCount=2, UnhealthyThresholdCount=2,
    )["TargetGroups"][0]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )["Listeners"][0]
    return lb, tg, listener


def own_task(private_ip="", instance=None, bindings=(), account=None):
    """A RUNNING task of the default account (a target must be one of the account's own tasks)."""
    account = account or Account.default()
    cluster, _ = Cluster.objects.get_or_create(account=account, name="demo")
    td, _ = TaskDefinition.objects.get_or_create(account=account, family="web", revision=1,
                                                 defaults={"cpu": 256, "memory": 512, "body": {}})
    task = Task.objects.create(account=account, cluster=cluster, task_definition=td, cpu=256, memory=512,
                               last_status=Task.RUNNING, private_ip=private_ip, container_instance=instance)
    TaskContainer.objects.create(task=task, name="web", image="demo", network_bindings=list(bindings))
    return task


def test_it_creates_and_describes_load_balancers(elbv2):
    lb = elbv2.create_load_balancer(Name="web-lb", Subnets=["subnet-a", "subnet-b"])["LoadBalancers"][0]

    assert lb["LoadBalancerArn"].startswith("arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web-lb/")
    assert lb["DNSName"].startswith("web-lb-") and lb["DNSName"].endswith(".us-east-1.elb.localhost")
    assert lb["State"] == {"Code": "active"}
    assert lb["Type"] == "application" and lb["Scheme"] == "internet-facing"
    assert [z["SubnetId"] for z in lb["AvailabilityZones"]] == ["subnet-a", "subnet-b"]
    assert elbv2.create_load_balancer(Name="web-lb", Subnets=["subnet-a", "subnet-b"])["LoadBalancers"][0] == lb
    assert elbv2.describe_load_balancers()["LoadBalancers"] == [lb]
    assert elbv2.describe_load_balancers(Names=["web-lb"])["LoadBalancers"] == [lb]
    assert elbv2.describe_load_balancers(LoadBalancerArns=[lb["LoadBalancerArn"]])["LoadBalancers"] == [lb]


def test_it_rejects_bad_load_balancers(elbv2):
    elbv2.create_load_balancer(Name="web-lb")

    assert code_of(elbv2.create_load_balancer, Name="-bad-") == "ValidationError"
    assert code_of(elbv2.create_load_balancer, Name="web-lb", Scheme="internal") == "DuplicateLoadBalancerName"
    assert code_of(elbv2.create_load_balancer, Name="net", Type="network") == "ValidationError"
    assert code_of(elbv2.describe_load_balancers, Names=["nope"]) == "LoadBalancerNotFound"
    missing = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/nope/0123456789abcdef"
    assert code_of(elbv2.describe_load_balancers, LoadBalancerArns=[missing]) == "LoadBalancerNotFound"
    assert code_of(elbv2.describe_load_balancers, LoadBalancerArns=["not-an-arn"]) == "ValidationError"


def test_it_pages_load_balancers(elbv2):
    for i in range(3):
        elbv2.create_load_balancer(Name=f"lb-{i}")

    first = elbv2.describe_load_balancers(PageSize=2)
    second = elbv2.describe_load_balancers(PageSize=2, Marker=first["NextMarker"])

    assert [lb["LoadBalancerName"] for lb in first["LoadBalancers"]] == ["lb-0", "lb-1"]
    assert [lb["LoadBalancerName"] for lb in second["LoadBalancers"]] == ["lb-2"]
    assert "NextMarker" not in second
    assert [lb["LoadBalancerName"] for lb in elbv2.get_paginator("describe_load_balancers").paginate(
        PaginationConfig={"PageSize": 1}).build_full_result()["LoadBalancers"]] == ["lb-0", "lb-1", "lb-2"]


def test_it_creates_target_groups_with_health_checks(elbv2):
    tg = elbv2.create_target_group(
        Name="web-tg", Protocol="HTTP", Port=8080, VpcId="vpc-1", TargetType="ip", HealthCheckPath="/health",
        HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=3, HealthyThresholdCount=3,
        UnhealthyThresholdCount=4, Matcher={"HttpCode": "200-299"},
    )["TargetGroups"][0]

    assert tg["TargetGroupArn"].startswith("arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web-tg/")
    assert (tg["Port"], tg["TargetType"], tg["HealthCheckPath"], tg["HealthCheckIntervalSeconds"]) == (8080, "ip", "/health", 10)
    assert (tg["HealthyThresholdCount"], tg["UnhealthyThresholdCount"], tg["Matcher"]) == (3, 4, {"HttpCode": "200-299"})
    assert tg["LoadBalancerArns"] == []
    assert elbv2.describe_target_groups(Names=["web-tg"])["TargetGroups"] == [tg]
    assert elbv2.describe_target_groups(TargetGroupArns=[tg["TargetGroupArn"]])["TargetGroups"] == [tg]
    attributes = {a["Key"]: a["Value"] for a in elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
    assert attributes["deregistration_delay.timeout_seconds"] == "300"
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg["TargetGroupArn"], Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}]
    )
    attributes = {a["Key"]: a["Value"] for a in elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
    assert attributes["deregistration_delay.timeout_seconds"] == "5"
    changed = elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/ready")["TargetGroups"][0]
    assert changed["HealthCheckPath"] == "/ready"


def test_it_rejects_bad_target_groups(elbv2):
    elbv2.create_target_group(Name="web-tg", Protocol="HTTP", Port=80)

    assert code_of(elbv2.create_target_group, Name="web-tg", Protocol="HTTP", Port=81) == "DuplicateTargetGroupName"
    assert code_of(elbv2.create_target_group, Name="tls", Protocol="HTTPS", Port=443) == "UnsupportedProtocol"
    assert code_of(elbv2.create_target_group, Name="slow", Protocol="HTTP", Port=80,
                   HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=6) == "ValidationError"
    assert code_of(elbv2.create_target_group, Name="path", Protocol="HTTP", Port=80, HealthCheckPath="health") == "ValidationError"
    assert code_of(elbv2.describe_target_groups, Names=["nope"]) == "TargetGroupNotFound"


def test_it_creates_describes_and_deletes_listeners(elbv2):
    port = free_port()
    lb, tg, listener = create_stack(elbv2, port)

    assert listener["Port"] == port and listener["Protocol"] == "HTTP"
    assert listener["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"]
    assert elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == [listener]
    assert elbv2.describe_listeners(ListenerArns=[listener["ListenerArn"]])["Listeners"] == [listener]
    assert elbv2.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"][0]["LoadBalancerArns"] == [lb["LoadBalancerArn"]]
    assert code_of(elbv2.delete_target_group, TargetGroupArn=tg["TargetGroupArn"]) == "ResourceInUse"

    elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
    assert elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == []
    assert code_of(elbv2.delete_listener, ListenerArn=listener["ListenerArn"]) == "ListenerNotFound"
    elbv2.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
    elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])  # gone already: succeeds, as on AWS
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert elbv2.describe_target_groups()["TargetGroups"] == []


def test_it_rejects_bad_listeners(elbv2):
    port = free_port()
    lb, tg, _ = create_stack(elbv2, port)
    other = elbv2.create_load_balancer(Name="other-lb")["LoadBalancers"][0]
    forward = [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]
    missing_tg = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/nope/0123456789abcdef"

    assert code_of(elbv2.create_listener, LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                   DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}]) == "DuplicateListener"
    assert code_of(elbv2.create_listener, LoadBalancerArn=other["LoadBalancerArn"], Protocol="HTTP", Port=port,
                   DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}]) == "InvalidConfigurationRequest"
    assert code_of(elbv2.create_listener, LoadBalancerArn=other["LoadBalancerArn"], Protocol="HTTP", Port=free_port(),
                   DefaultActions=forward) == "TargetGroupAssociationLimit"
    assert code_of(elbv2.create_listener, LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=free_port(),
                   DefaultActions=[{"Type": "forward", "TargetGroupArn": missing_tg}]) == "TargetGroupNotFound"
    assert code_of(elbv2.create_listener, LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTPS", Port=free_port(),
                   DefaultActions=forward) == "UnsupportedProtocol"
    assert code_of(elbv2.describe_listeners) == "ValidationError"
    missing_lb = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/nope/0123456789abcdef"
    assert code_of(elbv2.create_listener, LoadBalancerArn=missing_lb, Protocol="HTTP", Port=free_port(),
                   DefaultActions=forward) == "LoadBalancerNotFound"


def test_it_refuses_a_listener_port_that_cannot_be_bound(elbv2):
    import socket

    lb = elbv2.create_load_balancer(Name="web-lb")["LoadBalancers"][0]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(botocore.exceptions.ClientError) as info:
            elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                                  DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}])

    assert info.value.response["Error"]["Code"] == "InvalidConfigurationRequest"
    assert f"Port {port} on 127.0.0.1 cannot be bound" in info.value.response["Error"]["Message"]


def test_it_registers_describes_and_deregisters_targets(elbv2):
    lb, tg, _ = create_stack(elbv2, free_port())
    arn = tg["TargetGroupArn"]
    own_task("10.0.0.5")
    own_task("10.0.0.6")

    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.0.0.5", "Port": 8080}, {"Id": "10.0.0.6"}])
    health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    assert [(h["Target"]["Id"], h["Target"]["Port"], h["HealthCheckPort"]) for h in health] == [
        ("10.0.0.5", 8080, "8080"), ("10.0.0.6", 80, "80")]
    assert health[0]["TargetHealth"] == {"State": "initial", "Reason": "Elb.RegistrationInProgress",
                                         "Description": "Target registration is in progress"}
    unknown = elbv2.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": "10.9.9.9", "Port": 80}])
    assert unknown["TargetHealthDescriptions"][0]["TargetHealth"]["Reason"] == "Target.NotRegistered"

    elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "10.0.0.5", "Port": 8080}])
    health = {h["Target"]["Id"]: h["TargetHealth"] for h in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}
    assert health["10.0.0.5"]["State"] == "draining"
    assert health["10.0.0.5"]["Reason"] == "Target.DeregistrationInProgress"
    assert code_of(elbv2.deregister_targets, TargetGroupArn=arn, Targets=[{"Id": "10.9.9.9"}]) == "InvalidTarget"
    assert code_of(elbv2.register_targets, TargetGroupArn=arn, Targets=[{"Id": "i-nope"}]) == "InvalidTarget"


def test_it_registers_instance_targets_and_reports_unused_groups(elbv2):
    instance = ContainerInstance.objects.create(name="instance-1", cpu_registered=4096, memory_registered=8192)
    tg = elbv2.create_target_group(Name="inst", Protocol="HTTP", Port=80, TargetType="instance")["TargetGroups"][0]
    own_task("172.30.0.2", instance, [{"containerPort": 80, "hostPort": 32768, "bindIP": "127.0.0.1"}])

    elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": instance.instance_id, "Port": 32768}])

    (health,) = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    assert health["Target"] == {"Id": instance.instance_id, "Port": 32768}
    assert health["TargetHealth"]["State"] == "unused" and health["TargetHealth"]["Reason"] == "Target.NotInUse"
    assert Target.objects.get().address == "127.0.0.1"
    assert code_of(elbv2.register_targets, TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "i-0123456789"}]) == "InvalidTarget"


def test_it_answers_errors_in_elbv2_xml(live_server, elbv2):
    response = requests.post(live_server.url + "/", data={"Action": "DescribeLoadBalancers", "Version": "2015-12-01"})

    assert response.status_code == 403
    assert "<ErrorResponse" in response.text and "<Code>MissingAuthenticationToken</Code>" in response.text


def test_it_rejects_unknown_actions_and_wrong_secrets(live_server):
    Account.default()
    import boto3

    wrong = boto3.client("elbv2", endpoint_url=live_server.url, region_name="us-east-1",
                         aws_access_key_id="test", aws_secret_access_key="wrong")
    assert code_of(wrong.describe_load_balancers) == "SignatureDoesNotMatch"


@pytest.mark.docker
def test_it_serves_a_url_that_answers_from_registered_containers(elbv2, data_plane, demo_containers):
    port = free_port()
    lb, tg, _ = create_stack(elbv2, port)
    started = [demo_containers.start(f"task-{i}") for i in range(2)]
    ips = []
    for i, (container, host_port) in enumerate(started):
        ips.append(f"10.0.0.{10 + i}")  # the task's address in its VPC; the proxy uses the published port
        own_task(ips[-1], bindings=[{"containerPort": 80, "hostPort": host_port, "bindIP": "127.0.0.1"}])
    elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": ip, "Port": 80} for ip in ips])

    def states():
        return {h["TargetHealth"]["State"] for h in elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]}

    wait_until(lambda: states() == {"healthy"}, 20, message="both targets healthy")
    bodies = set()
    for _ in range(4):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            bodies.add(response.read().decode().splitlines()[0])
    assert bodies == {"task: task-0", "task: task-1"}


def signed_post(url, form):
    """POST a raw form body signed for elasticloadbalancing with test/test."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    request = botocore.awsrequest.AWSRequest(method="POST", url=url + "/", data=form,
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials("test", "test"), "elasticloadbalancing", "us-east-1").add_auth(request)
    return requests.post(url + "/", data=form, headers=dict(request.headers))


@pytest.mark.parametrize("form,code", [
    ("Action=DescribeLoadBalancers&Version=2015-12-01&PageSize=0", "ValidationError"),
    ("Action=DescribeLoadBalancers&Version=2015-12-01&PageSize=abc", "ValidationError"),
    ("Action=DescribeLoadBalancers&Version=2015-12-01&Marker=zz", "ValidationError"),
    ("Action=Nope&Version=2015-12-01", "InvalidAction"),
    ("Action=DescribeLoadBalancers&Version=1999-01-01", "InvalidParameterValue"),
    ("Action=CreateListener&Version=2015-12-01", "ValidationError"),
    ("Action=RegisterTargets&Version=2015-12-01&TargetGroupArn=x&Targets.member.1.Port=80", "ValidationError"),
    ("Action=CreateLoadBalancer&Version=2015-12-01&Name=%FF%FE", "ValidationError"),
])
def test_it_answers_malformed_calls_with_client_errors(live_server, elbv2, form, code):
    response = signed_post(live_server.url, form)

    assert response.status_code == 400
    assert f"<Code>{code}</Code>" in response.text
