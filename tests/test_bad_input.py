"""Finding 10 of issue 10: bad input that gave a 500 now gets each interface's own error.

Unicode digits ("²", "①" pass ``str.isdigit()`` but not ``int()``; "١٢" passes both), JSON
nested thousands deep, control characters that XML cannot carry, and bodies over 1 MiB: sent
as the probe sent them, through boto3 or as raw signed requests, and to the dashboard's forms.
"""
import base64

import botocore.exceptions
import pytest
from django.db import connection
from django.test import Client
from xml.etree import ElementTree

from orchestrator.frontend import wire
from orchestrator.kubernetes import pods
from orchestrator.models import Account, Cluster, TargetGroup, TaskDefinition
from tests.support import fuzz
from tests.support.api import fargate_task_definition

ECS, ELBV2, ECR = (fuzz.ServedApi(name, lambda: ()) for name in ("ecs", "elbv2", "ecr"))
UNICODE_DIGITS = ["²", "①", "١٢", "²56"]


def code_of(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"]


def raw(api, operation, body, content_type=None):
    """A signed raw request through Django's test client; (status, parsed error or result)."""
    fuzzer = fuzz.Fuzzer(0, [api])
    request = fuzzer.build(api, operation, {}, "raw", body=body,
                           headers={"Content-Type": content_type} if content_type else None)
    response = fuzz.send(Client(), request)
    assert fuzz.check_answer(request, response) is None, response.content[:300]
    parsed = fuzz.parse(api, api.model.operation_model(operation), response)
    return response.status_code, parsed.get("Error", {}).get("Code")


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
def test_ecs_refuses_unicode_digits(ecs, digits):
    ecs.register_task_definition(**fargate_task_definition())
    assert code_of(ecs.describe_task_definition, taskDefinition=f"web:{digits}") == "ClientException"
    assert code_of(ecs.register_task_definition, **fargate_task_definition(cpu=digits)) == "ClientException"
    assert code_of(ecs.register_task_definition, **fargate_task_definition(memory=digits)) == "ClientException"
    assert code_of(ecs.run_task, cluster="default", taskDefinition=f"web:{digits}") in (
        "ClientException", "ClusterNotFoundException", "InvalidParameterException")
    assert TaskDefinition.objects.count() == 1


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
def test_elbv2_refuses_unicode_digits(elbv2, digits):
    group = elbv2.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId="vpc-fargatelab",
                                      TargetType="ip")["TargetGroups"][0]
    assert code_of(elbv2.create_target_group, Name="web2", Protocol="HTTP", Port=80, VpcId="vpc-fargatelab",
                   HealthCheckPort=digits) == "ValidationError"
    assert code_of(elbv2.modify_target_group_attributes, TargetGroupArn=group["TargetGroupArn"], Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": digits}]) == "ValidationError"
    assert code_of(elbv2.describe_load_balancers, Marker=digits) == "ValidationError"
    body = f"Action=CreateTargetGroup&Version=2015-12-01&Name=web3&Protocol=HTTP&Port={digits}".encode()
    assert raw(ELBV2, "CreateTargetGroup", body) == (400, "ValidationError")
    assert TargetGroup.objects.count() == 1


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
def test_ecr_refuses_unicode_digits(ecr, digits):
    assert code_of(ecr.describe_repositories, nextToken=digits) == "InvalidParameterException"


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
def test_the_dashboard_refuses_unicode_digits(alice_client, digits):
    Account.default()
    response = alice_client.post("/task-definitions/", {"family": "web", "image": "x", "cpu": digits, "memory": "512"})
    assert response.status_code == 400 and b"ClientException" in response.content
    Cluster.objects.create(account=Account.default(), name="demo")
    response = alice_client.post("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": f"web:{digits}", "count": "1"})
    assert response.status_code == 400
    assert not TaskDefinition.objects.exists()


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
def test_deeply_nested_json_is_refused_in_the_api_shape(default_account, depth):
    body = fuzz.nested_json(depth)
    assert raw(ECR, "DescribeRepositories", body) == (400, "SerializationException")
    assert raw(ECS, "ListClusters", body) == (400, "SerializationException")


def test_deeply_nested_json_is_a_form_error_on_the_dashboard(alice_client):
    Account.default()
    response = alice_client.post("/task-definitions/", {"json": fuzz.nested_json(20_000).decode()})
    assert response.status_code == 400
    assert b"nests deeper than" in response.content
    assert not TaskDefinition.objects.exists()


def test_a_nesting_the_models_use_still_parses():
    assert wire.json_object(fuzz.nested_json(wire.MAX_JSON_DEPTH)) is not None
    with pytest.raises(wire.Malformed):
        wire.json_object(fuzz.nested_json(wire.MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize("text", ["a\x01b", "\x1f", "x\x7f", "\x0c"])
def test_elbv2_refuses_control_characters_and_answers_xml_boto3_parses(elbv2, text):
    assert code_of(elbv2.create_target_group, Name="web", Protocol="HTTP", Port=80, VpcId="vpc-fargatelab",
                   HealthCheckPath="/" + text) == "ValidationError"
    # The action itself is echoed in the error: it must still be well-formed XML.
    body = f"Action=Describe{text}&Version=2015-12-01".encode()
    assert raw(ELBV2, "DescribeLoadBalancers", body) == (400, "InvalidAction")
    assert not TargetGroup.objects.exists()


def test_a_stored_control_character_leaves_describe_target_groups_readable(elbv2):
    elbv2.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId="vpc-fargatelab", TargetType="ip")
    # Written around the API, as a row stored before the check existed would be (PostgreSQL
    # stores no NUL at all: another control character stands in for it there).
    TargetGroup.objects.update(health_check_path="/\x01\x00ok" if connection.vendor == "sqlite" else "/\x01\x02ok")

    (group,) = elbv2.describe_target_groups()["TargetGroups"]
    assert group["HealthCheckPath"] == "/\ufffd\ufffdok"


def test_xml_text_keeps_what_xml_carries():
    kept = "tab\tnewline\nemoji🙂 é"
    assert wire.xml_text(kept) == kept
    assert ElementTree.fromstring(f"<a>{wire.xml_text(chr(1) + chr(0xFFFE))}</a>").text == "\ufffd\ufffd"


@pytest.mark.parametrize("api, operation, expected", [
    (ECS, "ListClusters", "InvalidParameterException"),
    (ECR, "DescribeRepositories", "InvalidParameterException"),
    (ELBV2, "DescribeLoadBalancers", "ValidationError"),
])
def test_a_body_over_1_mib_gets_the_api_error(default_account, api, operation, expected):
    if api.protocol == "json":
        body = b'{"pad": "' + b"a" * (fuzz.MIB + 10) + b'"}'
    else:
        body = b"Action=DescribeLoadBalancers&Version=2015-12-01&Pad=" + b"a" * (fuzz.MIB + 10)
    assert raw(api, operation, body) == (400, expected)


def test_a_next_token_holding_deeply_nested_json_is_refused(ecs):
    token = base64.urlsafe_b64encode(b"[" * 2500 + b"]" * 2500).decode()
    assert len(token) < 8192
    assert code_of(ecs.list_clusters, nextToken=token) == "InvalidParameterException"


def test_a_pod_twin_ignores_a_user_in_unicode_digits():
    context = pods.security_context_for({"user": "²:①"})
    assert "runAsUser" not in context and "runAsGroup" not in context
    assert pods.security_context_for({"user": "1000:50"}) == {"runAsUser": 1000, "runAsGroup": 50}
