"""Secrets Manager through boto3 against the live lab: secrets and their versions and stages,
ARNs with the random suffix, listing, deletion with a recovery window or forced, and its own
error types (never a 500); per account."""
import datetime
import re

import pytest
from django.utils import timezone

from orchestrator.models import AccessKey, Account, Activity, Secret
from tests.support.api import error_of as api_error_of
from tests.support.api import lab_client


@pytest.fixture
def sm(live_server, default_account):
    return lab_client(live_server, "secretsmanager")


def error_of(call, **params):
    return api_error_of(call, **params)[0]


def test_it_creates_a_secret_with_an_arn_as_aws_shapes_it(sm):
    created = sm.create_secret(Name="prod/db", SecretString='{"user":"app","password":"s3cret"}')
    assert re.fullmatch(r"arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-[A-Za-z0-9]{6}", created["ARN"])
    for secret_id in ("prod/db", created["ARN"], created["ARN"][:-7]):
        got = sm.get_secret_value(SecretId=secret_id)
        assert got["SecretString"] == '{"user":"app","password":"s3cret"}'
        assert got["VersionStages"] == ["AWSCURRENT"] and got["VersionId"] == created["VersionId"]
    assert error_of(sm.create_secret, Name="prod/db", SecretString="x") == "ResourceExistsException"
    assert error_of(sm.get_secret_value, SecretId=created["ARN"][:-6] + "zzzzzz") == "ResourceNotFoundException"
    assert "s3cret" not in str(list(Activity.objects.values_list("message", "request")))


def test_a_new_value_becomes_current_and_the_old_one_previous(sm):
    first = sm.create_secret(Name="token", SecretString="one")["VersionId"]
    second = sm.put_secret_value(SecretId="token", SecretString="two")
    assert second["VersionStages"] == ["AWSCURRENT"]
    assert sm.get_secret_value(SecretId="token")["SecretString"] == "two"
    assert sm.get_secret_value(SecretId="token", VersionStage="AWSPREVIOUS")["SecretString"] == "one"
    assert sm.get_secret_value(SecretId="token", VersionId=first)["SecretString"] == "one"
    stages = sm.describe_secret(SecretId="token")["VersionIdsToStages"]
    assert stages == {first: ["AWSPREVIOUS"], second["VersionId"]: ["AWSCURRENT"]}
    token = "a" * 32
    sm.put_secret_value(SecretId="token", SecretString="three", ClientRequestToken=token)
    assert sm.put_secret_value(SecretId="token", SecretString="three", ClientRequestToken=token)["VersionId"] == token
    assert error_of(sm.put_secret_value, SecretId="token", SecretString="four",
                    ClientRequestToken=token) == "ResourceExistsException"
    assert error_of(sm.get_secret_value, SecretId="token", VersionStage="NOPE") == "ResourceNotFoundException"
    sm.put_secret_value(SecretId="token", SecretBinary=b"\x00\x01binary")
    assert sm.get_secret_value(SecretId="token")["SecretBinary"] == b"\x00\x01binary"


def test_it_lists_and_filters_secrets(sm):
    for name in ("team/a", "team/b", "other"):
        sm.create_secret(Name=name, SecretString="v", Description=f"about {name}")
    names = [s["Name"] for page in sm.get_paginator("list_secrets").paginate(PaginationConfig={"PageSize": 2})
             for s in page["SecretList"]]
    assert sorted(names) == ["other", "team/a", "team/b"]
    filtered = sm.list_secrets(Filters=[{"Key": "name", "Values": ["team/"]}])["SecretList"]
    assert sorted(s["Name"] for s in filtered) == ["team/a", "team/b"]
    assert "SecretString" not in str(filtered)
    assert error_of(sm.list_secrets, NextToken="forged") == "InvalidNextTokenException"


def test_deletion_waits_for_its_recovery_window_unless_forced(sm):
    sm.create_secret(Name="old", SecretString="v")
    deleted = sm.delete_secret(SecretId="old", RecoveryWindowInDays=7)
    assert deleted["DeletionDate"] > timezone.now() + datetime.timedelta(days=6)
    assert error_of(sm.get_secret_value, SecretId="old") == "InvalidRequestException"
    assert "DeletedDate" in sm.describe_secret(SecretId="old")
    assert sm.list_secrets()["SecretList"] == []
    assert [s["Name"] for s in sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]] == ["old"]
    assert error_of(sm.create_secret, Name="old", SecretString="v") == "InvalidRequestException"
    sm.restore_secret(SecretId="old")
    assert sm.get_secret_value(SecretId="old")["SecretString"] == "v"
    Secret.objects.filter(name="old").update(deletion_date=timezone.now() - datetime.timedelta(seconds=1))
    assert error_of(sm.describe_secret, SecretId="old") == "ResourceNotFoundException"
    sm.create_secret(Name="gone", SecretString="v")
    sm.delete_secret(SecretId="gone", ForceDeleteWithoutRecovery=True)
    assert error_of(sm.describe_secret, SecretId="gone") == "ResourceNotFoundException"


@pytest.mark.parametrize("params", [
    {"SecretId": "x", "RecoveryWindowInDays": 3},
    {"SecretId": "x", "RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": True},
])
def test_it_refuses_bad_deletions(sm, params):
    sm.create_secret(Name="x", SecretString="v")
    assert error_of(sm.delete_secret, **params) == "InvalidParameterException"
    assert sm.get_secret_value(SecretId="x")["SecretString"] == "v"


def test_it_refuses_bad_secrets(sm):
    assert error_of(sm.create_secret, Name="bad name!", SecretString="v") == "InvalidParameterException"
    assert error_of(sm.create_secret, Name="both", SecretString="v", SecretBinary=b"v") == "InvalidParameterException"
    assert error_of(sm.create_secret, Name="big", SecretString="v" * 65537) == "InvalidParameterException"
    assert error_of(sm.put_secret_value, SecretId="missing", SecretString="v") == "ResourceNotFoundException"
    assert error_of(sm.get_secret_value, SecretId="missing") == "ResourceNotFoundException"
    assert sm.list_secrets()["SecretList"] == []


def test_one_account_never_reaches_anothers_secret(sm, live_server):
    other = Account.objects.create(account_id="111111111111", name="bob")
    AccessKey.objects.create(account=other, access_key_id="bobkey", secret_access_key="bobsecret")
    bob = lab_client(live_server, "secretsmanager", "bobkey", "bobsecret")
    arn = sm.create_secret(Name="mine", SecretString="alice's")["ARN"]
    assert error_of(bob.get_secret_value, SecretId=arn) == "ResourceNotFoundException"
    assert error_of(bob.get_secret_value, SecretId="mine") == "ResourceNotFoundException"
    assert bob.list_secrets()["SecretList"] == []
