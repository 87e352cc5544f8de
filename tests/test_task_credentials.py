"""Task role credentials (issue 12, item 5): temporary keys of the task's own account, accepted by
every API of the lab with their session token, refused once expired or once the task stopped."""
import datetime

import boto3
import botocore.exceptions
import pytest

from orchestrator import task_credentials, task_metadata
from orchestrator.models import Account, Activity, Cluster, Task, TaskContainer, TaskDefinition

ROLE = "arn:aws:iam::000000000000:role/app-task"


def make_task(account, role=ROLE, cluster="demo", overrides=None):
    cluster, _ = Cluster.objects.get_or_create(account=account, name=cluster)
    body = {"family": "app", "containerDefinitions": [{"name": "app", "image": "demo"}], **({"taskRoleArn": role} if role else {})}
    revision = TaskDefinition.objects.filter(account=account, family="app").count() + 1
    definition = TaskDefinition.objects.create(account=account, family="app", revision=revision, cpu=256, memory=512, body=body)
    task = Task.objects.create(account=account, cluster=cluster, task_definition=definition, cpu=256, memory=512,
                               overrides=overrides or {}, last_status=Task.RUNNING)
    TaskContainer.objects.create(task=task, name="app", image="demo")
    return task


def client(live_server, credentials, service="ecs"):
    return boto3.client(service, endpoint_url=live_server.url, region_name="us-east-1",
                        aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                        aws_session_token=credentials["Token"])


def error_code(call, **params):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**params)
    return info.value.response["Error"]["Code"]


def test_only_a_task_with_a_role_gets_the_credentials_variable(db):
    account = Account.default()
    with_role, without = make_task(account), make_task(account, role="")
    assert task_metadata.environment(with_role, "app")["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"].startswith(
        f"/v2/credentials/{with_role.task_id}-")
    assert "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" not in task_metadata.environment(without, "app")
    assert task_credentials.relative_uri(without) == ""
    overridden = make_task(account, role="", overrides={"taskRoleArn": ROLE})
    assert task_credentials.role_arn(overridden) == ROLE  # RunTask's override gives a role too


def test_path_ids_are_the_tasks_own_and_unguessable(db):
    account = Account.default()
    one, two = make_task(account), make_task(account)
    assert task_credentials.path_id(one, "credentials") != task_credentials.path_id(one, "metadata:app")
    mine = task_credentials.path_id(one, "credentials")
    assert task_credentials.is_path_id(one, "credentials", mine)
    assert not task_credentials.is_path_id(two, "credentials", mine)
    forged = f"{two.task_id}-{mine.split('-')[1]}"  # a neighbour's id with my digest
    assert task_credentials.task_of_path_id(forged) == two and not task_credentials.is_path_id(two, "credentials", forged)


def test_role_credentials_sign_calls_to_every_api_as_the_tasks_account(live_server, db):
    student = Account.objects.create(account_id="222222222222")
    task = make_task(student, role="arn:aws:iam::222222222222:role/app-task")
    credentials = task_credentials.issue(task)
    assert credentials["RoleArn"] == "arn:aws:iam::222222222222:role/app-task"

    ecs = client(live_server, credentials)
    assert ecs.list_tasks(cluster="demo")["taskArns"] == [task.arn]
    assert ecs.list_clusters()["clusterArns"] == [f"arn:aws:ecs:us-east-1:222222222222:cluster/demo"]
    ssm = client(live_server, credentials, "ssm")  # a service checked by orchestrator/aws_auth.py
    ssm.put_parameter(Name="/app/colour", Value="blue", Type="String")
    assert ssm.get_parameter(Name="/app/colour")["Parameter"]["ARN"].startswith("arn:aws:ssm:us-east-1:222222222222:")

    # The activity names the assumed role's session, never the key.
    callers = set(Activity.objects.exclude(caller="").values_list("caller", flat=True))
    assert callers == {f"arn:aws:sts::222222222222:assumed-role/app-task/{task.task_id}"}
    for row in Activity.objects.all():
        assert credentials["AccessKeyId"] not in f"{row.caller} {row.message} {row.request}"
        assert credentials["SecretAccessKey"] not in f"{row.message} {row.request}"


def test_expired_credentials_are_refused(live_server, db):
    task = make_task(Account.default())
    long_ago = datetime.datetime.now(datetime.timezone.utc) - task_credentials.LIFETIME - datetime.timedelta(minutes=1)
    credentials = task_credentials.issue(task, now=long_ago)
    assert error_code(client(live_server, credentials).list_clusters) == "UnrecognizedClientException"
    assert error_code(client(live_server, credentials, "ssm").describe_parameters) == "UnrecognizedClientException"
    fresh = task_credentials.issue(task)
    assert client(live_server, fresh).list_clusters()["clusterArns"]


def test_credentials_of_a_stopped_task_are_refused(live_server, db):
    task = make_task(Account.default())
    credentials = task_credentials.issue(task)
    assert client(live_server, credentials).list_clusters()["clusterArns"]
    Task.objects.filter(pk=task.pk).update(desired_status=Task.STOPPED)
    assert error_code(client(live_server, credentials).list_clusters) == "UnrecognizedClientException"
    assert error_code(client(live_server, credentials, "logs").describe_log_groups) == "UnrecognizedClientException"


def test_a_token_works_only_with_its_own_key_and_secret(live_server, db):
    task = make_task(Account.default())
    one, two = task_credentials.issue(task), task_credentials.issue(task)
    mixed = {**one, "Token": two["Token"]}
    assert error_code(client(live_server, mixed).list_clusters) == "UnrecognizedClientException"
    wrong_secret = {**one, "SecretAccessKey": two["SecretAccessKey"]}
    assert error_code(client(live_server, wrong_secret).list_clusters) == "InvalidSignatureException"
    no_token = boto3.client("ecs", endpoint_url=live_server.url, region_name="us-east-1",
                            aws_access_key_id=one["AccessKeyId"], aws_secret_access_key=one["SecretAccessKey"])
    assert error_code(no_token.list_clusters) == "UnrecognizedClientException"
    assert task_credentials.key_for(one["AccessKeyId"], one["Token"] + "x") is None
