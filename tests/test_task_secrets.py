"""How a container's ``secrets`` are read from the stores of its task's account (and nobody
else's), and what a missing one says, in ECS's words."""
import json

import pytest

from orchestrator import task_secrets
from orchestrator.frontend.secretsmanager import operations as secretsmanager
from orchestrator.frontend.ssm import operations as ssm
from orchestrator.models import Account

PREFIX = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "


@pytest.fixture
def alice(db):
    return Account.default()


@pytest.fixture
def bob(db):
    return Account.objects.create(account_id="111111111111", name="bob")


def secret(account, name, value):
    return secretsmanager.create_secret(account, {"Name": name, "SecretString": value}, "")


def test_it_parses_every_form_of_value_from():
    arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf"
    assert task_secrets.parse(arn) == task_secrets.SecretReference("secretsmanager", arn)
    assert task_secrets.parse(f"{arn}:password:AWSPREVIOUS:") == task_secrets.SecretReference(
        "secretsmanager", arn, "password", "AWSPREVIOUS", "")
    assert task_secrets.parse("/app/key") == task_secrets.SecretReference("ssm", "/app/key")
    assert task_secrets.problem(f"{arn}:a:b:c:d") is not None
    assert task_secrets.problem("arn:aws:s3:::bucket/key") is not None
    assert task_secrets.problem(f"{arn}:password::") is None


def test_it_reads_both_stores(alice):
    ssm.put_parameter(alice, {"Name": "/app/key", "Value": "k", "Type": "SecureString"}, "")
    ssm.put_parameter(alice, {"Name": "root", "Value": "r", "Type": "StringList"}, "")
    arn = secret(alice, "db", json.dumps({"password": "p", "port": 5432}))["ARN"]
    env = task_secrets.environment(alice, [
        {"name": "KEY", "valueFrom": "/app/key"},
        {"name": "ROOT", "valueFrom": "arn:aws:ssm:us-east-1:000000000000:parameter/root"},
        {"name": "PASSWORD", "valueFrom": f"{arn}:password::"},
        {"name": "PORT", "valueFrom": f"{arn}:port::"},
    ])
    assert env == {"KEY": "k", "ROOT": "r", "PASSWORD": "p", "PORT": "5432"}


def test_missing_parameters_are_named_as_ecs_names_them(alice):
    with pytest.raises(task_secrets.SecretsUnavailable) as caught:
        task_secrets.environment(alice, [{"name": "A", "valueFrom": "/nope"}, {"name": "B", "valueFrom": "/gone"}])
    assert str(caught.value) == (PREFIX + "unable to retrieve secrets from ssm: service call has been retried 1 "
                                          "time(s): invalid parameters: /nope, /gone")


def test_a_missing_json_key_or_stage_fails(alice):
    arn = secret(alice, "db", json.dumps({"password": "p"}))["ARN"]
    with pytest.raises(task_secrets.SecretsUnavailable, match="did not contain json key user"):
        task_secrets.environment(alice, [{"name": "U", "valueFrom": f"{arn}:user::"}])
    with pytest.raises(task_secrets.SecretsUnavailable, match="ResourceNotFoundException"):
        task_secrets.environment(alice, [{"name": "U", "valueFrom": f"{arn}::AWSPREVIOUS:"}])


def test_another_accounts_secrets_are_out_of_reach(alice, bob):
    arn = secret(alice, "db", "alice's")["ARN"]
    ssm.put_parameter(alice, {"Name": "/app/key", "Value": "k", "Type": "String"}, "")
    with pytest.raises(task_secrets.SecretsUnavailable, match="ResourceNotFoundException"):
        task_secrets.environment(bob, [{"name": "S", "valueFrom": arn}])
    with pytest.raises(task_secrets.SecretsUnavailable, match="invalid parameters"):
        task_secrets.environment(bob, [{"name": "S", "valueFrom": "arn:aws:ssm:us-east-1:000000000000:parameter/app/key"}])
