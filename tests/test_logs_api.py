"""The CloudWatch Logs API with boto3 against the live lab: groups, streams, events, retention,
time ranges, tokens, filter patterns, errors in Logs' own types, accounts kept apart."""
import time

import boto3
import pytest

from orchestrator.models import AccessKey, Account, LogEvent, LogGroup
from tests.support.api import error_of
from tests.support.cloudwatch import TailFollow

pytestmark = pytest.mark.django_db(transaction=True)


def client(url, key="test", secret="test"):
    return boto3.client("logs", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


@pytest.fixture
def logs(live_server, default_account):
    return client(live_server.url)


@pytest.fixture
def bob_logs(live_server, default_account):
    account = Account.objects.create(account_id="222222222222", name="bob")
    AccessKey.objects.create(account=account, access_key_id="BOBKEY", secret_access_key="bobsecret")
    return client(live_server.url, "BOBKEY", "bobsecret")


def now_ms():
    return int(time.time() * 1000)


def put(logs, group, stream, messages, start=None):
    """Write ``messages`` one millisecond apart from ``start`` (default: a second ago)."""
    start = start or now_ms() - 1000
    return logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": start + i, "message": m} for i, m in enumerate(messages)])


def make_stream(logs, group="/ecs/web", stream="web/web/abc"):
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.create_log_stream(logGroupName=group, logStreamName=stream)


def test_it_creates_describes_and_deletes_log_groups(logs):
    logs.create_log_group(logGroupName="/ecs/web")
    logs.create_log_group(logGroupName="/ecs/worker", tags={"team": "blue"})
    logs.create_log_group(logGroupName="other")
    groups = logs.describe_log_groups(logGroupNamePrefix="/ecs/")["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/ecs/web", "/ecs/worker"]
    assert groups[0]["arn"] == "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/web:*"
    assert groups[0]["logGroupArn"] == "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/web"
    assert groups[0]["storedBytes"] == 0 and "retentionInDays" not in groups[0]
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePattern="WORK")["logGroups"]] == [
        "/ecs/worker"]
    code, message, status = error_of(logs.create_log_group, logGroupName="/ecs/web")
    assert (code, status) == ("ResourceAlreadyExistsException", 400)
    logs.delete_log_group(logGroupName="/ecs/web")
    code, message, _ = error_of(logs.delete_log_group, logGroupName="/ecs/web")
    assert (code, message) == ("ResourceNotFoundException", "The specified log group does not exist.")
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["/ecs/worker", "other"]


def test_describe_log_groups_pages_with_tokens(logs):
    for i in range(5):
        logs.create_log_group(logGroupName=f"g{i}")
    first = logs.describe_log_groups(limit=2)
    assert [g["logGroupName"] for g in first["logGroups"]] == ["g0", "g1"]
    names = [g["logGroupName"] for page in logs.get_paginator("describe_log_groups").paginate(
        PaginationConfig={"PageSize": 2}) for g in page["logGroups"]]
    assert names == [f"g{i}" for i in range(5)]
    code, message, _ = error_of(logs.describe_log_groups, nextToken="forged")
    assert (code, message) == ("InvalidParameterException", "The specified nextToken is invalid.")


def test_it_creates_and_describes_log_streams(logs):
    logs.create_log_group(logGroupName="/ecs/web")
    for name in ("web/web/b", "web/web/a", "other/x"):
        logs.create_log_stream(logGroupName="/ecs/web", logStreamName=name)
    put(logs, "/ecs/web", "web/web/b", ["hello"], start=now_ms() - 5000)
    put(logs, "/ecs/web", "web/web/a", ["later"])
    streams = logs.describe_log_streams(logGroupName="/ecs/web", logStreamNamePrefix="web/")["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["web/web/a", "web/web/b"]
    assert streams[0]["arn"] == "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/web:log-stream:web/web/a"
    assert streams[1]["firstEventTimestamp"] == streams[1]["lastEventTimestamp"]
    by_time = logs.describe_log_streams(logGroupIdentifier="arn:aws:logs:us-east-1:000000000000:log-group:/ecs/web",
                                        orderBy="LastEventTime", descending=True)["logStreams"]
    assert [s["logStreamName"] for s in by_time][:2] == ["web/web/a", "web/web/b"]
    code, _, _ = error_of(logs.create_log_stream, logGroupName="/ecs/web", logStreamName="web/web/a")
    assert code == "ResourceAlreadyExistsException"
    code, message, _ = error_of(logs.create_log_stream, logGroupName="/ecs/none", logStreamName="x")
    assert (code, message) == ("ResourceNotFoundException", "The specified log group does not exist.")
    code, message, _ = error_of(logs.describe_log_streams, logGroupName="/ecs/web", orderBy="LastEventTime",
                                logStreamNamePrefix="web/")
    assert code == "InvalidParameterException"
    logs.delete_log_stream(logGroupName="/ecs/web", logStreamName="web/web/b")
    assert LogEvent.objects.filter(stream__name="web/web/b").count() == 0
    assert LogGroup.objects.get(name="/ecs/web").stored_bytes == len("later") + 26


def test_get_log_events_reads_a_stream_forward_and_backward_with_tokens(logs):
    make_stream(logs)
    start = now_ms() - 10_000
    put(logs, "/ecs/web", "web/web/abc", [f"line {i}" for i in range(10)], start=start)
    tail = logs.get_log_events(logGroupName="/ecs/web", logStreamName="web/web/abc", limit=3)
    assert [e["message"] for e in tail["events"]] == ["line 7", "line 8", "line 9"]
    assert all(e["ingestionTime"] >= e["timestamp"] for e in tail["events"])
    older = logs.get_log_events(logGroupName="/ecs/web", logStreamName="web/web/abc", limit=3,
                                nextToken=tail["nextBackwardToken"])
    assert [e["message"] for e in older["events"]] == ["line 4", "line 5", "line 6"]
    head = logs.get_log_events(logGroupName="/ecs/web", logStreamName="web/web/abc", limit=4, startFromHead=True)
    assert [e["message"] for e in head["events"]] == ["line 0", "line 1", "line 2", "line 3"]
    seen, token = [], None
    while True:  # read forward to the end, as clients do: the same token back means no more
        page = logs.get_log_events(logGroupName="/ecs/web", logStreamName="web/web/abc", limit=4, startFromHead=True,
                                   **({"nextToken": token} if token else {}))
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert seen == [f"line {i}" for i in range(10)]
    put(logs, "/ecs/web", "web/web/abc", ["new one"])
    after = logs.get_log_events(logGroupName="/ecs/web", logStreamName="web/web/abc", nextToken=token)
    assert [e["message"] for e in after["events"]] == ["new one"]
    ranged = logs.get_log_events(logGroupName="/ecs/web", logStreamName="web/web/abc", startTime=start + 2,
                                 endTime=start + 5, startFromHead=True)
    assert [e["message"] for e in ranged["events"]] == ["line 2", "line 3", "line 4"]
    code, _, _ = error_of(logs.get_log_events, logGroupName="/ecs/web", logStreamName="nope")
    assert code == "ResourceNotFoundException"
    code, message, _ = error_of(logs.get_log_events, logGroupName="/ecs/web", logStreamName="web/web/abc",
                                nextToken="f/x/1")
    assert (code, message) == ("InvalidParameterException", "The specified nextToken is invalid.")


def test_filter_log_events_matches_terms_phrases_any_and_none_across_streams(logs):
    make_stream(logs, stream="a")
    logs.create_log_stream(logGroupName="/ecs/web", logStreamName="b")
    start = now_ms() - 10_000
    put(logs, "/ecs/web", "a", ["ERROR disk full", "INFO all good", "WARN Internal Server Error"], start=start)
    put(logs, "/ecs/web", "b", ["ERROR retrying soon", "error lower case"], start=start + 10)

    def messages(**kwargs):
        return [e["message"] for e in logs.filter_log_events(logGroupName="/ecs/web", **kwargs)["events"]]

    assert messages() == ["ERROR disk full", "INFO all good", "WARN Internal Server Error", "ERROR retrying soon",
                          "error lower case"]
    assert messages(filterPattern="ERROR") == ["ERROR disk full", "ERROR retrying soon"]  # case-sensitive
    assert messages(filterPattern="ERROR disk") == ["ERROR disk full"]
    assert messages(filterPattern='"Internal Server Error"') == ["WARN Internal Server Error"]
    assert messages(filterPattern="?WARN ?INFO") == ["INFO all good", "WARN Internal Server Error"]
    assert messages(filterPattern="ERROR -retrying") == ["ERROR disk full"]
    assert messages(logStreamNames=["b"]) == ["ERROR retrying soon", "error lower case"]
    assert messages(startTime=start + 1, endTime=start + 10) == ["INFO all good", "WARN Internal Server Error",
                                                                  "ERROR retrying soon"]
    events = logs.filter_log_events(logGroupName="/ecs/web", filterPattern="ERROR")["events"]
    assert [e["logStreamName"] for e in events] == ["a", "b"]
    assert len({e["eventId"] for e in events}) == 2
    code, message, _ = error_of(logs.filter_log_events, logGroupName="/ecs/web", filterPattern='{ $.level = "x" }')
    assert code == "InvalidParameterException" and "not supported by Fargate Lab" in message
    code, _, _ = error_of(logs.filter_log_events, logGroupName="/ecs/web", filterPattern='"open')
    assert code == "InvalidParameterException"
    code, _, _ = error_of(logs.filter_log_events, logGroupName="/ecs/web", logStreamNames=["a"],
                          logStreamNamePrefix="a")
    assert code == "InvalidParameterException"


def test_filter_log_events_pages_with_next_tokens(logs):
    make_stream(logs)
    put(logs, "/ecs/web", "web/web/abc", [f"line {i}" for i in range(25)])
    pages = list(logs.get_paginator("filter_log_events").paginate(logGroupName="/ecs/web",
                                                                  PaginationConfig={"PageSize": 10}))
    assert [len(p["events"]) for p in pages if p["events"]] == [10, 10, 5]
    assert [e["message"] for p in pages for e in p["events"]] == [f"line {i}" for i in range(25)]


def test_tail_follow_calls_see_new_events_once(logs):
    """The calls `aws logs tail /ecs/web --follow` makes (tests/support/cloudwatch.py)."""
    make_stream(logs)
    put(logs, "/ecs/web", "web/web/abc", ["first", "second"])
    tail = TailFollow(logs, "/ecs/web")
    tail.poll()
    tail.poll()
    put(logs, "/ecs/web", "web/web/abc", ["third"], start=now_ms())
    tail.poll()
    assert tail.messages() == ["first", "second", "third"]


def test_put_retention_policy_is_honoured(logs):
    make_stream(logs)
    old = now_ms() - 3 * 86_400_000
    put(logs, "/ecs/web", "web/web/abc", ["old one"], start=old)
    put(logs, "/ecs/web", "web/web/abc", ["recent one"])
    logs.put_retention_policy(logGroupName="/ecs/web", retentionInDays=1)
    assert logs.describe_log_groups()["logGroups"][0]["retentionInDays"] == 1
    assert [e["message"] for e in logs.filter_log_events(logGroupName="/ecs/web")["events"]] == ["recent one"]
    assert list(LogEvent.objects.values_list("message", flat=True)) == ["recent one"]  # pruned, not hidden
    assert LogGroup.objects.get().stored_bytes == len("recent one") + 26
    answer = put(logs, "/ecs/web", "web/web/abc", ["too old now"], start=old)
    assert answer["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 0}
    code, message, _ = error_of(logs.put_retention_policy, logGroupName="/ecs/web", retentionInDays=2)
    assert code == "InvalidParameterException" and "enum value set" in message
    logs.delete_retention_policy(logGroupName="/ecs/web")
    assert "retentionInDays" not in logs.describe_log_groups()["logGroups"][0]
    code, _, _ = error_of(logs.put_retention_policy, logGroupName="/ecs/none", retentionInDays=1)
    assert code == "ResourceNotFoundException"


def test_events_that_age_past_the_retention_are_deleted(logs, monkeypatch):
    monkeypatch.setattr("orchestrator.models.EXPIRE_EVERY_SECONDS", 0.0)
    make_stream(logs)
    logs.put_retention_policy(logGroupName="/ecs/web", retentionInDays=1)
    put(logs, "/ecs/web", "web/web/abc", ["about to expire"], start=now_ms() - 86_400_000 + 1500)
    put(logs, "/ecs/web", "web/web/abc", ["fresh"])
    time.sleep(1.6)  # the first event's age passes one day (no condition to wait on: time itself)
    assert [e["message"] for e in logs.filter_log_events(logGroupName="/ecs/web")["events"]] == ["fresh"]
    assert list(LogEvent.objects.values_list("message", flat=True)) == ["fresh"]


def test_put_log_events_refuses_and_rejects_as_cloudwatch_does(logs):
    make_stream(logs)
    now = now_ms()
    answer = logs.put_log_events(logGroupName="/ecs/web", logStreamName="web/web/abc", logEvents=[
        {"timestamp": now - 15 * 86_400_000, "message": "too old"},
        {"timestamp": now - 15 * 86_400_000 + 3_600_000, "message": "too old too"}])
    assert answer["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1}
    answer = logs.put_log_events(logGroupName="/ecs/web", logStreamName="web/web/abc", logEvents=[
        {"timestamp": now, "message": "fine"}, {"timestamp": now + 3 * 3_600_000, "message": "too new"}])
    assert answer["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    assert answer["nextSequenceToken"]
    code, message, _ = error_of(logs.put_log_events, logGroupName="/ecs/web", logStreamName="web/web/abc",
                                logEvents=[{"timestamp": now, "message": "b"}, {"timestamp": now - 1, "message": "a"}])
    assert code == "InvalidParameterException" and "chronological" in message
    code, message, _ = error_of(logs.put_log_events, logGroupName="/ecs/web", logStreamName="web/web/abc",
                                logEvents=[{"timestamp": now - 25 * 3_600_000, "message": "a"},
                                           {"timestamp": now, "message": "b"}])
    assert code == "InvalidParameterException" and "24 hours" in message
    code, message, _ = error_of(logs.put_log_events, logGroupName="/ecs/web", logStreamName="nope",
                                logEvents=[{"timestamp": now, "message": "a"}])
    assert (code, message) == ("ResourceNotFoundException", "The specified log stream does not exist.")
    code, message, _ = error_of(logs.put_log_events, logGroupName="/ecs/web", logStreamName="web/web/abc",
                                logEvents=[{"timestamp": now, "message": "x" * 600_000}] * 2)
    assert code == "InvalidParameterException" and "larger than" in message  # the lab's 1 MiB body limit
    assert [e["message"] for e in logs.get_log_events(logGroupName="/ecs/web", logStreamName="web/web/abc")[
        "events"]] == ["fine"]


def test_bad_input_gets_logs_own_errors(logs, raw_logs):
    code, message, status = error_of(logs.create_log_group, logGroupName="bad name")
    assert (code, status) == ("InvalidParameterException", 400) and "regular expression" in message
    code, _, _ = error_of(logs.create_log_group, logGroupName="x" * 513)
    assert code == "InvalidParameterException"
    code, message, _ = error_of(logs.create_log_group, logGroupName="k", kmsKeyId="alias/x")
    assert code == "InvalidParameterException" and "kmsKeyId is not supported" in message
    code, _, _ = error_of(logs.describe_log_groups, limit=51)
    assert code == "InvalidParameterException"
    code, _, _ = error_of(logs.get_log_events, logStreamName="s")
    assert code == "InvalidParameterException"
    response = raw_logs("CreateLogGroup", b"{not json")
    assert (response.status_code, response.json()["__type"]) == (400, "SerializationException")
    response = raw_logs("CreateLogGroup", {"logGroupName": 5})
    assert (response.status_code, response.json()["__type"]) == (400, "InvalidParameterException")
    response = raw_logs("CreateLogGroup", {"logGroupName": "k", "logGroupClass": "X" * 70000})
    assert (response.status_code, response.json()["__type"]) == (400, "InvalidParameterException")
    assert "enum value set: [STANDARD" in response.json()["message"]
    response = raw_logs("StartQuery", {})
    assert (response.status_code, response.json()["__type"]) == (400, "UnknownOperationException")
    assert not LogGroup.objects.exists()


def test_an_accounts_logs_are_its_own(logs, bob_logs):
    make_stream(logs)
    put(logs, "/ecs/web", "web/web/abc", ["alice's secret line"])
    assert bob_logs.describe_log_groups()["logGroups"] == []
    code, _, _ = error_of(bob_logs.filter_log_events, logGroupName="/ecs/web")
    assert code == "ResourceNotFoundException"
    code, _, _ = error_of(bob_logs.get_log_events,
                          logGroupIdentifier="arn:aws:logs:us-east-1:000000000000:log-group:/ecs/web",
                          logStreamName="web/web/abc")
    assert code == "ResourceNotFoundException"
    bob_logs.create_log_group(logGroupName="/ecs/web")  # the same name is bob's own group
    assert bob_logs.filter_log_events(logGroupName="/ecs/web")["events"] == []
    assert [e["message"] for e in logs.filter_log_events(logGroupName="/ecs/web")["events"]] == ["alice's secret line"]


def test_storage_is_capped_per_stream_and_group(logs, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "LOGS_STREAM_MAX_BYTES": 2000, "LOGS_GROUP_MAX_BYTES": 3000}
    make_stream(logs, stream="a")
    logs.create_log_stream(logGroupName="/ecs/web", logStreamName="b")
    start = now_ms() - 10_000
    put(logs, "/ecs/web", "a", [f"a{i:03d}" + "." * 70 for i in range(40)], start=start)  # 100 bytes each
    stream_a = logs.describe_log_streams(logGroupName="/ecs/web")["logStreams"][0]
    assert stream_a["storedBytes"] <= 2000
    kept = [e["message"][:4] for e in logs.get_log_events(logGroupName="/ecs/web", logStreamName="a",
                                                          startFromHead=True)["events"]]
    assert kept[-1] == "a039" and kept[0] > "a000"  # the oldest went first
    put(logs, "/ecs/web", "b", [f"b{i:03d}" + "." * 70 for i in range(20)], start=start + 100)
    group = logs.describe_log_groups()["logGroups"][0]
    assert group["storedBytes"] <= 3000
    assert group["storedBytes"] == sum(LogEvent.objects.values_list("size", flat=True))
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "LOGS_MAX_GROUPS": 1}
    code, message, _ = error_of(logs.create_log_group, logGroupName="/ecs/another")
    assert code == "LimitExceededException"


@pytest.fixture
def raw_logs(live_server, default_account):
    """Send a signed raw Logs request: ``raw_logs(operation, body)`` -> requests.Response."""
    import json

    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import requests

    def send(operation, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = botocore.awsrequest.AWSRequest(method="POST", url=live_server.url + "/", data=data, headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"Logs_20140328.{operation}"})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials("test", "test"), "logs", "us-east-1").add_auth(request)
        return requests.post(live_server.url + "/", data=data, headers=dict(request.headers.items()), timeout=30)

    return send
