"""Finding 11 of issue 10 (first two bullets): the signature is held to AWS's rules on every API.

The credential scope must name a region the lab serves and the service called; a junk
X-Amz-Security-Token is refused unless the lab issued it; a signature more than 15 minutes
off the clock is refused. Each API answers in its own words (JSON ``__type`` or query XML).
"""
import datetime
from unittest import mock

import boto3
import botocore.exceptions
import pytest
from django.test import Client

from orchestrator.frontend import sigv4
from orchestrator.models import Cluster, LoadBalancer, LogGroup, Parameter, Repository, Secret
from tests.support import fuzz

ECS, ELBV2, ECR, LOGS, SSM, SECRETSMANAGER = (
    fuzz.ServedApi(name, lambda: ()) for name in ("ecs", "elbv2", "ecr", "logs", "ssm", "secretsmanager"))
# (api, a call that writes, its parameters, the rows it would write)
WRITES = {
    "ecs": (ECS, "CreateCluster", {"clusterName": "demo"}, Cluster),
    "ecr": (ECR, "CreateRepository", {"repositoryName": "demo"}, Repository),
    "elbv2": (ELBV2, "CreateLoadBalancer", {"Name": "demo", "Subnets": ["subnet-a"]}, LoadBalancer),
    "logs": (LOGS, "CreateLogGroup", {"logGroupName": "/ecs/demo"}, LogGroup),
    "ssm": (SSM, "PutParameter", {"Name": "/demo", "Value": "v", "Type": "String"}, Parameter),
    "secretsmanager": (SECRETSMANAGER, "CreateSecret", {"Name": "demo", "SecretString": "v"}, Secret),
}
# What each protocol calls a bad scope and a bad token.
SCOPE_ERROR = {"json": "InvalidSignatureException", "query": "SignatureDoesNotMatch"}
TOKEN_ERROR = {"json": "UnrecognizedClientException", "query": "InvalidClientTokenId"}


def attempt(api_name, **signing):
    """Send the API's write signed with ``signing``; (status, error code or None, rows written)."""
    api, operation, params, model = WRITES[api_name]
    fuzzer = fuzz.Fuzzer(0, [api])
    request = fuzzer.build(api, operation, params, "signed", **signing)
    response = fuzz.send(Client(), request)
    assert fuzz.check_answer(request, response) is None, response.content[:300]
    parsed = fuzz.parse(api, api.model.operation_model(operation), response)
    return response.status_code, parsed.get("Error", {}).get("Code"), model.objects.count()


@pytest.mark.parametrize("api_name", WRITES)
def test_a_signature_for_the_lab_region_and_service_works(default_account, api_name):
    status, code, rows = attempt(api_name)
    assert (status, code, rows) == (200, None, 1)


@pytest.mark.parametrize("region", ["mars-north-1", "ca-central-1", "us-east-1\n", ""])
@pytest.mark.parametrize("api_name", WRITES)
def test_it_refuses_a_region_the_lab_does_not_serve(default_account, api_name, region):
    status, code, rows = attempt(api_name, region=region)
    protocol = WRITES[api_name][0].protocol
    assert code in (SCOPE_ERROR[protocol], "IncompleteSignatureException", "IncompleteSignature")
    assert 400 <= status < 500 and rows == 0


@pytest.mark.parametrize("api_name", WRITES)
def test_the_region_check_follows_the_lab_setting(default_account, api_name, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGION": "eu-west-1", "REGIONS": ["ap-southeast-1"]}
    assert attempt(api_name)[1] == SCOPE_ERROR[WRITES[api_name][0].protocol]  # us-east-1: not served now
    assert attempt(api_name, region="eu-west-1")[0] == 200  # the default region is always served
    assert attempt(api_name, region="ap-southeast-1")[0] == 200


@pytest.mark.parametrize("api_name, service", [("ecr", "ecs"), ("ecr", "elasticloadbalancing"), ("ecs", "ecr"),
                                               ("elbv2", "ecs")])
def test_it_refuses_a_scope_of_another_service(default_account, api_name, service):
    status, code, rows = attempt(api_name, service=service)
    assert rows == 0 and 400 <= status < 500
    if api_name != "elbv2":
        assert code == SCOPE_ERROR["json"]
    else:
        # Signed for ECS, without X-Amz-Target: it reaches ELBv2 by its Action, which refuses the scope.
        assert code == SCOPE_ERROR["query"]


@pytest.mark.parametrize("token", ["junk", "x" * 2000, "IQoJb3JpZ2luX2VjEJr"])
@pytest.mark.parametrize("api_name", WRITES)
def test_it_refuses_a_junk_security_token(default_account, api_name, token):
    status, code, rows = attempt(api_name, token=token)
    assert code == TOKEN_ERROR[WRITES[api_name][0].protocol]
    assert 400 <= status < 500 and rows == 0


@pytest.mark.parametrize("api_name", WRITES)
def test_it_accepts_a_token_the_lab_issued(default_account, api_name, monkeypatch):
    monkeypatch.setattr(sigv4, "_token_checks", [])
    sigv4.accept_tokens(lambda token, key: token == "issued-for-test" and key.access_key_id == "test")

    assert attempt(api_name, token="issued-for-another")[1] == TOKEN_ERROR[WRITES[api_name][0].protocol]
    assert attempt(api_name, token="issued-for-test")[:2] == (200, None)


@pytest.mark.parametrize("minutes, accepted", [(14, True), (-14, True), (16, False), (-16, False)])
@pytest.mark.parametrize("api_name", WRITES)
def test_it_allows_15_minutes_of_clock_skew(default_account, api_name, minutes, accepted):
    signed_at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at.replace(tzinfo=None)):
        status, code, rows = attempt(api_name)
    assert (status == 200) == accepted
    assert rows == (1 if accepted else 0)
    if not accepted:
        assert code == SCOPE_ERROR[WRITES[api_name][0].protocol]


def test_boto3_with_a_junk_session_token_is_refused(live_server, default_account):
    client = boto3.client("ecs", endpoint_url=live_server.url, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test", aws_session_token="junk")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.list_clusters()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert info.value.response["Error"]["Message"] == "The security token included in the request is invalid."
