"""Fixtures: api. A real boto3 ECS client against the live test server, and raw signed requests."""
import json
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import requests

from orchestrator.models import Account

TARGET = "AmazonEC2ContainerServiceV20141113."


@pytest.fixture
def default_account(db):
    """The lab's default account 000000000000 with access key test / secret test."""
    return Account.default()


@pytest.fixture
def ecs(live_server, default_account):
    """A boto3 ECS client signed with test/test, pointed at the live server."""
    return boto3.client(
        "ecs",
        endpoint_url=live_server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def lab_client(live_server, service, key="test", secret="test", region="us-east-1"):
    """A boto3 client of another of the lab's AWS APIs (ssm, secretsmanager…) on the live server."""
    return boto3.client(service, endpoint_url=live_server.url, region_name=region,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def signed_request(url, operation, body, *, key="test", secret="test", target=None, headers=None, signed_at=None):
    """Sign a raw ECS request with botocore's SigV4Auth (at ``signed_at``, default now); return
    (headers, data) for requests."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=url + "/",
        data=data,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": target if target is not None else TARGET + operation,
            **(headers or {}),
        },
    )
    signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "ecs", "us-east-1")
    if signed_at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
            signer.add_auth(request)
    return dict(request.headers.items()), data


@pytest.fixture
def raw_api(live_server, default_account):
    """Send a signed raw request: ``raw_api(operation, body, **signing)`` -> requests.Response."""

    def send(operation, body, **signing):
        headers, data = signed_request(live_server.url, operation, body, **signing)
        return requests.post(live_server.url + "/", data=data, headers=headers, timeout=30)

    return send


def awsvpc(subnets=None, security_groups=None, assign_public_ip=None):
    """A networkConfiguration for RunTask/CreateService of an awsvpc task definition: the
    account's default subnet unless told otherwise (ECS refuses such a call without one)."""
    from orchestrator.frontend.network_configuration import DEFAULT_SUBNET

    config = {"subnets": list(subnets or [DEFAULT_SUBNET])}
    if security_groups is not None:
        config["securityGroups"] = list(security_groups)
    if assign_public_ip is not None:
        config["assignPublicIp"] = assign_public_ip
    return {"awsvpcConfiguration": config}


# The default networkConfiguration, to splat into a call: ecs.run_task(..., **NETWORK).
NETWORK = {"networkConfiguration": awsvpc()}
# The FARGATE launch type and the default networkConfiguration: ecs.run_task(..., **FARGATE). As on
# ECS, a RunTask or CreateService with neither a launch type nor a capacity provider strategy takes
# the cluster's default strategy, and with none the EC2 launch type (no container instances here).
FARGATE = {"launchType": "FARGATE", **NETWORK}


def fargate_task_definition(family="web", **overrides):
    """RegisterTaskDefinition arguments for a small Fargate task running the demo image."""
    params = {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [
            {"name": "web", "image": "fargate-lab/demo:latest", "portMappings": [{"containerPort": 80}]}
        ],
    }
    params.update(overrides)
    return params


# Container fields a student might harden a container with, all honoured on real Docker.
HARDENED_CONTAINER = {
    "readonlyRootFilesystem": True,
    "user": "1000:1000",
    "workingDirectory": "/tmp",
    "stopTimeout": 20,
    "interactive": True,
    "pseudoTerminal": True,
    "dockerLabels": {"team": "blue"},
    "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
    "systemControls": [{"namespace": "net.ipv4.tcp_keepalive_time", "value": "123"}],
    "linuxParameters": {"capabilities": {"add": ["SYS_PTRACE"], "drop": ["NET_RAW", "MKNOD"]},
                        "initProcessEnabled": True},
}


def error_of(call, *args, **kwargs):
    """Call a boto3 method that must fail; return (error code, message, HTTP status)."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    error = info.value.response
    return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]


def assert_model_shape(operation, response, service="ecs"):
    """Assert that a parsed boto3 response carries every member botocore's model of ``service``
    (ECS unless named) requires."""
    import botocore.session

    def service_model():
        return botocore.session.get_session().get_service_model(service)

    def walk(shape, value, path):
        if shape.type_name == "structure":
            assert isinstance(value, dict), path
            for name in shape.required_members:
                assert name in value, f"{path}.{name} is required by the model"
            for name, item in value.items():
                if name in shape.members:
                    walk(shape.members[name], item, f"{path}.{name}")
        elif shape.type_name == "list":
            assert isinstance(value, list), path
            for i, item in enumerate(value):
                walk(shape.member, item, f"{path}[{i}]")
        elif shape.type_name == "string" and shape.enum:
            assert value in shape.enum, f"{path}: {value!r} is not one of {shape.enum}"

    output = service_model().operation_model(operation).output_shape
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    assert set(body) <= set(output.members), f"{operation} answered members the model lacks: {set(body) - set(output.members)}"
    walk(output, body, operation)
