"""Parameter Store through boto3 against the live lab: puts, versions, the three Types, paths,
pagination, describe filters, and its own error types (never a 500); per account."""
import pytest

from orchestrator.models import AccessKey, Account, Activity
from tests.support.api import error_of as api_error_of
from tests.support.api import lab_client


@pytest.fixture
def ssm(live_server, default_account):
    return lab_client(live_server, "ssm")


def error_of(call, **params):
    return api_error_of(call, **params)[:2]


def test_it_puts_and_gets_a_parameter_with_versions(ssm):
    assert ssm.put_parameter(Name="/app/db/host", Value="db1", Type="String")["Version"] == 1
    assert error_of(ssm.put_parameter, Name="/app/db/host", Value="db2", Type="String")[0] == "ParameterAlreadyExists"
    assert ssm.put_parameter(Name="/app/db/host", Value="db2", Overwrite=True)["Version"] == 2

    got = ssm.get_parameter(Name="/app/db/host")["Parameter"]
    assert (got["Value"], got["Version"], got["Type"]) == ("db2", 2, "String")
    assert got["ARN"] == "arn:aws:ssm:us-east-1:000000000000:parameter/app/db/host"
    assert ssm.get_parameter(Name="/app/db/host:1")["Parameter"]["Value"] == "db1"
    assert ssm.get_parameter(Name=got["ARN"])["Parameter"]["Value"] == "db2"
    assert error_of(ssm.get_parameter, Name="/app/db/host:7")[0] == "ParameterVersionNotFound"
    history = ssm.get_parameter_history(Name="/app/db/host")["Parameters"]
    assert [(p["Version"], p["Value"]) for p in history] == [(1, "db1"), (2, "db2")]


def test_a_secure_string_is_shown_only_with_decryption(ssm):
    ssm.put_parameter(Name="/app/db/password", Value="hunter2", Type="SecureString")
    hidden = ssm.get_parameter(Name="/app/db/password")["Parameter"]["Value"]
    assert "hunter2" not in hidden and hidden
    assert ssm.get_parameter(Name="/app/db/password", WithDecryption=True)["Parameter"]["Value"] == "hunter2"
    described = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": ["/app/db/password"]}])
    assert described["Parameters"][0]["KeyId"] == "alias/aws/ssm"
    assert "hunter2" not in str(list(Activity.objects.values_list("message", "request")))


def test_a_value_echoed_by_an_error_is_not_kept_in_the_activity_log(default_account):
    from django.test import Client

    from tests.support import fuzz

    api = fuzz.ServedApi("ssm", lambda: ())
    request = fuzz.Fuzzer(0, [api]).build(api, "PutParameter", {"Name": "/x", "Value": 424242,
                                                                "Type": "SecureString"}, "signed")
    response = fuzz.send(Client(), request)
    assert response.status_code == 400 and b"424242" in response.content  # the caller is told what was wrong
    [row] = Activity.objects.filter(action="PutParameter")
    assert "424242" not in row.message and "****" in row.message and "424242" not in str(row.request)


def test_it_lists_a_path_recursively_and_by_page(ssm):
    for name in ("/svc/a", "/svc/b", "/svc/deep/c", "/other/d", "top"):
        ssm.put_parameter(Name=name, Value=name.upper(), Type="StringList" if name == "/svc/a" else "String")
    one_level = ssm.get_parameters_by_path(Path="/svc")["Parameters"]
    assert [p["Name"] for p in one_level] == ["/svc/a", "/svc/b"]
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path="/svc/", Recursive=True,
                                                                  PaginationConfig={"PageSize": 2})
    assert [p["Name"] for page in pages for p in page["Parameters"]] == ["/svc/a", "/svc/b", "/svc/deep/c"]
    found = ssm.get_parameters(Names=["/svc/a", "/nope", "top"])
    assert sorted(p["Name"] for p in found["Parameters"]) == ["/svc/a", "top"]
    assert found["InvalidParameters"] == ["/nope"]
    typed = ssm.describe_parameters(ParameterFilters=[{"Key": "Type", "Values": ["StringList"]}])["Parameters"]
    assert [p["Name"] for p in typed] == ["/svc/a"]
    ssm.delete_parameter(Name="/svc/b")
    assert error_of(ssm.delete_parameter, Name="/svc/b")[0] == "ParameterNotFound"
    assert error_of(ssm.get_parameter, Name="/svc/b")[0] == "ParameterNotFound"


@pytest.mark.parametrize("params, code", [
    ({"Name": "aws-thing", "Value": "x", "Type": "String"}, "ValidationException"),
    ({"Name": "a/b", "Value": "x", "Type": "String"}, "ValidationException"),
    ({"Name": "/a b", "Value": "x", "Type": "String"}, "ValidationException"),
    ({"Name": "/new", "Value": "x"}, "ValidationException"),
    ({"Name": "/new", "Value": "x" * 4097, "Type": "String"}, "ValidationException"),
    ({"Name": "/new", "Value": "x", "Type": "String", "KeyId": "alias/k"}, "ValidationException"),
    ({"Name": "/new", "Value": "abc", "Type": "String", "AllowedPattern": "^[0-9]+$"}, "ParameterPatternMismatchException"),
    ({"Name": "/new", "Value": "abc", "Type": "String", "AllowedPattern": "("}, "InvalidAllowedPatternException"),
    ({"Name": "/" + "/".join("l" * 16), "Value": "x", "Type": "String"}, "HierarchyLevelLimitExceededException"),
    ({"Name": "/new", "Value": "x", "Type": "String", "Overwrite": True, "Tags": [{"Key": "k", "Value": "v"}]},
     "ValidationException"),
])
def test_it_refuses_bad_puts_in_its_own_words(ssm, params, code):
    assert error_of(ssm.put_parameter, **params)[0] == code
    assert ssm.describe_parameters()["Parameters"] == []


def test_it_refuses_bad_listings(ssm):
    assert error_of(ssm.get_parameters_by_path, Path="svc")[0] == "ValidationException"
    assert error_of(ssm.describe_parameters, ParameterFilters=[{"Key": "Colour", "Values": ["x"]}])[0] == \
        "InvalidFilterKey"
    assert error_of(ssm.describe_parameters, NextToken="garbage")[0] == "InvalidNextToken"
    assert error_of(ssm.get_parameters_by_path, Path="/", MaxResults=11)[0] == "ValidationException"


def test_one_account_never_sees_anothers_parameters(ssm, live_server):
    other = Account.objects.create(account_id="111111111111", name="bob")
    AccessKey.objects.create(account=other, access_key_id="bobkey", secret_access_key="bobsecret")
    bob = lab_client(live_server, "ssm", "bobkey", "bobsecret")
    ssm.put_parameter(Name="/shared/name", Value="alice", Type="String")
    assert error_of(bob.get_parameter, Name="/shared/name")[0] == "ParameterNotFound"
    assert error_of(bob.get_parameter, Name="arn:aws:ssm:us-east-1:000000000000:parameter/shared/name")[0] == \
        "ParameterNotFound"
    bob.put_parameter(Name="/shared/name", Value="bob", Type="String")
    assert ssm.get_parameter(Name="/shared/name")["Parameter"]["Value"] == "alice"
    assert bob.get_parameter(Name="/shared/name")["Parameter"]["ARN"].startswith("arn:aws:ssm:us-east-1:111111111111:")


def test_a_wrong_signature_is_refused(live_server, default_account):
    bad = lab_client(live_server, "ssm", "test", "wrong")
    assert error_of(bad.describe_parameters)[0] == "InvalidSignatureException"
