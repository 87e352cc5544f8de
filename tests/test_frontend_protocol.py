"""The wire protocol: AWS JSON 1.1 routing, authentication and errors over real HTTP.

Every malformed request must be a 4xx with AWS's error type, never a 500, and must leave the
state database as it was.
"""
import datetime
import json

import pytest
import requests

from orchestrator.frontend import EcsError, call
from orchestrator.frontend.operations import OPERATIONS
from orchestrator.models import Activity, Cluster, Task, TaskDefinition
from tests.support.api import FARGATE, NETWORK, TARGET, fargate_task_definition

JSON = "application/x-amz-json-1.1"


def error(response):
    assert response.headers["Content-Type"] == JSON
    assert response.headers["x-amzn-RequestId"]
    body = response.json()
    return response.status_code, body["__type"], body["message"]


def test_it_answers_with_aws_json_and_a_request_id(raw_api):
    response = raw_api("ListClusters", {})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON
    assert len(response.headers["x-amzn-RequestId"]) == 36
    assert response.json() == {"clusterArns": []}


def test_it_accepts_an_empty_body(raw_api):
    assert raw_api("ListClusters", b"").status_code == 200


def test_it_rejects_an_unknown_operation(raw_api):
    status, kind, message = error(raw_api("LaunchRockets", {}))
    assert (status, kind) == (400, "UnknownOperationException")
    assert message == "Operation LaunchRockets is not supported by Fargate Lab"


def test_it_rejects_another_services_target(raw_api):
    status, kind, _ = error(raw_api("ListClusters", {}, target="DynamoDB_20120810.ListTables"))
    assert (status, kind) == (400, "UnknownOperationException")


@pytest.mark.parametrize("body", [b"{", b"not json", b"\xff\xfe{}", b"[1, 2]", b'"text"', b"null", b"[" * 100000])
def test_it_rejects_malformed_json(raw_api, body):
    status, kind, _ = error(raw_api("ListClusters", body))
    assert (status, kind) == (400, "SerializationException")


@pytest.mark.parametrize(
    "operation, body",
    [
        ("ListClusters", {"maxResults": "ten"}),
        ("ListClusters", {"maxResults": True}),
        ("ListClusters", {"maxResults": 1.5}),
        ("CreateCluster", {"clusterName": 42}),
        ("CreateCluster", {"clusterName": "ok", "tags": {"key": "a"}}),
        ("CreateCluster", {"clusterName": "ok", "tags": ["a"]}),
        ("RunTask", {"taskDefinition": ["web"], **NETWORK}),
        ("RegisterTaskDefinition", {"family": "web", "containerDefinitions": "web"}),
        ("DescribeClusters", {"clusters": "default"}),
    ],
)
def test_it_rejects_wrong_json_types(raw_api, operation, body):
    status, kind, _ = error(raw_api(operation, body))
    assert status == 400
    assert kind in ("SerializationException", "InvalidParameterException")
    assert not Cluster.objects.exists()


def test_it_names_the_wrong_field(raw_api):
    _, kind, message = error(raw_api("ListClusters", {"maxResults": "ten"}))
    assert kind == "SerializationException"
    assert "maxResults" in message


def test_it_rejects_a_missing_required_parameter(raw_api):
    status, kind, message = error(raw_api("RunTask", {"cluster": "default", **FARGATE}))
    assert (status, kind) == (400, "InvalidParameterException")
    assert "taskDefinition" in message


@pytest.mark.parametrize(
    "body",
    [
        {"clusterName": "x" * 256},
        {"clusterName": "has space"},
        {"clusterName": "ok", "tags": [{"key": "k", "value": "v" * 20000}]},
        {"clusterName": "ok", "tags": [{"key": "", "value": "v"}]},
        {"clusterName": "nul\u0000byte"},
    ],
)
def test_it_rejects_bad_strings(raw_api, body):
    status, kind, _ = error(raw_api("CreateCluster", body))
    assert (status, kind) == (400, "InvalidParameterException")
    assert not Cluster.objects.exists()


def test_it_rejects_a_lone_surrogate(raw_api):
    body = b'{"clusterName": "ok", "tags": [{"key": "k", "value": "\\ud800"}]}'
    status, kind, _ = error(raw_api("CreateCluster", body))
    assert (status, kind) == (400, "InvalidParameterException")
    assert not Cluster.objects.exists()


def test_it_rejects_an_over_long_string_anywhere(raw_api):
    params = fargate_task_definition()
    params["containerDefinitions"][0]["command"] = ["x" * 100000]
    status, kind, _ = error(raw_api("RegisterTaskDefinition", params))
    assert (status, kind) == (400, "InvalidParameterException")
    assert not TaskDefinition.objects.exists()


def test_it_rejects_a_body_over_the_limit(raw_api):
    body = {"clusterName": "ok", "junk": "x" * (2 * 1024 * 1024)}
    status, kind, _ = error(raw_api("CreateCluster", body))
    assert status == 400
    assert kind == "InvalidParameterException"


def test_it_ignores_unknown_fields(raw_api):
    response = raw_api("CreateCluster", {"clusterName": "ok", "someFutureField": {"a": [1]}})
    assert response.status_code == 200
    assert response.json()["cluster"]["clusterName"] == "ok"


def test_it_treats_null_as_absent(raw_api):
    response = raw_api("CreateCluster", {"clusterName": "ok", "tags": None})
    assert response.status_code == 200


def test_it_rejects_a_missing_signature(live_server, default_account):
    response = requests.post(
        live_server.url + "/", data=b"{}", timeout=30,
        headers={"Content-Type": JSON, "X-Amz-Target": TARGET + "ListClusters"},
    )
    assert error(response)[:2] == (400, "MissingAuthenticationTokenException")


def test_it_rejects_a_garbled_signature(live_server, default_account):
    response = requests.post(
        live_server.url + "/", data=b"{}", timeout=30,
        headers={"Content-Type": JSON, "X-Amz-Target": TARGET + "ListClusters", "Authorization": "AWS4-HMAC-SHA256 x"},
    )
    assert error(response)[:2] == (400, "IncompleteSignatureException")


def test_it_rejects_an_unknown_key(raw_api):
    status, kind, message = error(raw_api("ListClusters", {}, key="AKIDUNKNOWN"))
    assert (status, kind) == (400, "UnrecognizedClientException")
    assert message == "The security token included in the request is invalid."


def test_it_rejects_a_bad_signature(raw_api):
    status, kind, message = error(raw_api("CreateCluster", {"clusterName": "x"}, secret="not-the-secret"))
    assert (status, kind) == (400, "InvalidSignatureException")
    assert message == (
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method."
    )
    assert not Cluster.objects.exists()


def test_it_rejects_an_expired_date(raw_api):
    signed_at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=16)
    status, kind, message = error(raw_api("ListClusters", {}, signed_at=signed_at))
    assert (status, kind) == (400, "InvalidSignatureException")
    assert message.startswith("Signature expired")


def test_it_records_one_activity_per_call(raw_api):
    raw_api("CreateCluster", {"clusterName": "traced"})
    row = Activity.objects.get(component="frontend")
    assert row.action == "CreateCluster"
    assert row.object_arn == "arn:aws:ecs:us-east-1:000000000000:cluster/traced"
    assert row.caller == "test"
    assert row.status_code == 200
    assert row.latency_ms is not None and row.latency_ms >= 0
    assert row.trace_id


def test_it_records_failed_calls_too(raw_api):
    raw_api("DeleteCluster", {"cluster": "nope"})
    row = Activity.objects.get(component="frontend")
    assert (row.action, row.status_code) == ("DeleteCluster", 400)
    assert "ClusterNotFoundException" in row.message


def test_it_gives_runtask_the_trace_id_of_its_call(raw_api):
    raw_api("CreateCluster", {"clusterName": "default"})
    raw_api("RegisterTaskDefinition", fargate_task_definition())
    response = raw_api("RunTask", {"taskDefinition": "web", **FARGATE})
    task = Task.objects.get()
    call = Activity.objects.get(component="frontend", action="RunTask")
    assert response.status_code == 200
    assert task.trace_id == call.trace_id
    assert call.object_arn == task.arn


ODD_VALUES = [None, True, -1, 2**40, 1e308, "", "x" * 300, "arn:aws:ecs:us-east-1:000000000000:", [], {}, ["a"], {"a": 1}]
FIELDS = [
    "cluster", "clusterName", "taskDefinition", "task", "tasks", "service", "services", "serviceName", "family",
    "familyPrefix", "count", "desiredCount", "maxResults", "nextToken", "resourceArn", "tags", "tagKeys",
    "containerDefinitions", "containerInstances", "include", "overrides", "clientToken", "force", "reason",
    "status", "sort", "cpu", "memory",
]


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_it_never_fails_with_a_server_error_on_odd_input(default_account, operation):
    # In-process through call(), the same path the HTTP view takes after authentication.
    Cluster.objects.create(account=default_account, name="default")
    for field in FIELDS:
        for value in ODD_VALUES:
            try:
                response = call(default_account, operation, {field: value})
            except EcsError as error:
                assert error.status == 400, (operation, field, value, error.message)
            else:
                json.dumps(response)


def test_it_never_answers_500_over_http_to_odd_input(raw_api):
    for operation in ("RunTask", "CreateService", "RegisterTaskDefinition", "TagResource"):
        for value in ODD_VALUES:
            response = raw_api(operation, {"taskDefinition": value, "serviceName": value, "resourceArn": value})
            assert response.status_code == 400, (operation, value, response.text)
            assert error(response)[1]


def test_it_answers_a_bug_with_a_server_exception(raw_api, monkeypatch):
    def broken(context, params):
        raise RuntimeError("a bug")

    monkeypatch.setitem(OPERATIONS, "ListClusters", broken)
    status, kind, message = error(raw_api("ListClusters", {}))
    assert (status, kind) == (500, "ServerException")
    assert "a bug" not in message


def test_it_validates_calls_from_inside_the_lab_like_the_api(default_account):
    # The dashboard's forms call call(): the same admission rules and error types apply.
    params = fargate_task_definition()
    params["containerDefinitions"][0]["privileged"] = True
    with pytest.raises(EcsError) as info:
        call(default_account, "RegisterTaskDefinition", params)
    assert (info.value.error_type, info.value.status) == ("ClientException", 400)
    with pytest.raises(EcsError) as info:
        call(default_account, "ListClusters", {"maxResults": "many"})
    assert info.value.error_type == "SerializationException"
    with pytest.raises(EcsError) as info:
        call(default_account, "Explode", {})
    assert info.value.error_type == "UnknownOperationException"
    assert not TaskDefinition.objects.exists()
