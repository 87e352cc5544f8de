"""Secrets from both stores reach a task's container on real Docker, and no page shows them: a
running lab, the AWS SDK, Docker's own view of the container, and a real Chromium reading every
page that names the task, its definition, its trace and the stores in the admin."""
import json

import pytest

from tests.support.lab import poll
from tests.support.api import FARGATE

pytestmark = [pytest.mark.docker, pytest.mark.browser]

SSM_SECURE = "ssm-secure-4fe81c2d"
SSM_PLAIN = "ssm-plain-77a0b913"
ASM_PASSWORD = "asm-password-c90d11e4"
ASM_OLD_PASSWORD = "asm-old-password-2b6e"
VALUES = (SSM_SECURE, SSM_PLAIN, ASM_PASSWORD, ASM_OLD_PASSWORD)


def container_env(docker_client, lab, task_id):
    [container] = docker_client.containers.list(filters={"label": [
        f"fargatelab.lab={lab.lab_id}", f"fargatelab.task-id={task_id}"]})
    _, output = container.exec_run(["env"])
    return dict(line.split("=", 1) for line in output.decode().splitlines() if "=" in line)


def definition(ecs, family, secrets):
    ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        executionRoleArn="arn:aws:iam::000000000000:role/ecsTaskExecutionRole",
        containerDefinitions=[{"name": "app", "image": "fargate-lab/demo:latest", "essential": True,
                               "environment": [{"name": "PLAIN", "value": "visible"}], "secrets": secrets}])


def test_secrets_from_both_stores_are_in_the_environment_and_on_no_page(lab, lab_tab, docker_client):
    ecs, ssm, sm = lab.client(), lab.client("ssm"), lab.client("secretsmanager")
    ssm.put_parameter(Name="/web/api-key", Value=SSM_SECURE, Type="SecureString")
    plain_arn = "arn:aws:ssm:us-east-1:000000000000:parameter/web/mode"
    ssm.put_parameter(Name="/web/mode", Value=SSM_PLAIN, Type="String")
    secret = sm.create_secret(Name="web/db", SecretString=json.dumps({"user": "app", "password": ASM_OLD_PASSWORD}))
    sm.put_secret_value(SecretId="web/db", SecretString=json.dumps({"user": "app", "password": ASM_PASSWORD}))
    arn = secret["ARN"]
    ecs.create_cluster(clusterName="vault")
    definition(ecs, "secretive", [
        {"name": "API_KEY", "valueFrom": "/web/api-key"},
        {"name": "MODE", "valueFrom": plain_arn},
        {"name": "DB_JSON", "valueFrom": arn},
        {"name": "DB_PASSWORD", "valueFrom": f"{arn}:password::"},
        {"name": "DB_OLD_PASSWORD", "valueFrom": f"{arn}:password:AWSPREVIOUS:"},
        {"name": "DB_FIRST_USER", "valueFrom": f"{arn}:user::{secret['VersionId']}"},
    ])
    task_arn = ecs.run_task(cluster="vault", taskDefinition="secretive", **FARGATE)["tasks"][0]["taskArn"]
    task_id = task_arn.rsplit("/", 1)[1]
    poll(lambda: ecs.describe_tasks(cluster="vault", tasks=[task_arn])["tasks"][0]["lastStatus"] == "RUNNING",
         message="the task to run")

    env = container_env(docker_client, lab, task_id)
    assert env["API_KEY"] == SSM_SECURE and env["MODE"] == SSM_PLAIN and env["PLAIN"] == "visible"
    assert json.loads(env["DB_JSON"])["password"] == ASM_PASSWORD
    assert env["DB_PASSWORD"] == ASM_PASSWORD and env["DB_OLD_PASSWORD"] == ASM_OLD_PASSWORD
    assert env["DB_FIRST_USER"] == "app"

    lab_tab.goto(f"{lab.url}/tasks/{task_id}/")
    lab_tab.wait_for_selector("text=secretive")
    pages = {"task": lab_tab.content()}
    trace_links = lab_tab.eval_on_selector_all("a[href*='/traces/']", "links => links.map(a => a.href)")
    for url in [f"{lab.url}/", f"{lab.url}/task-definitions/secretive/1/", f"{lab.url}/clusters/vault/",
                *trace_links[:5], f"{lab.url}/admin/orchestrator/parameter/", f"{lab.url}/admin/orchestrator/secret/",
                f"{lab.url}/admin/orchestrator/activity/", f"{lab.url}/admin/orchestrator/parameter/1/change/",
                f"{lab.url}/admin/orchestrator/secret/1/change/", f"{lab.url}/admin/orchestrator/task/1/change/"]:
        response = lab_tab.goto(url)
        assert response.ok, url
        pages[url] = lab_tab.content()
    assert "/web/api-key" in pages[f"{lab.url}/task-definitions/secretive/1/"]  # the reference is shown
    assert "secretKeyRef" in pages["task"] or "secretKeyRef" in pages[f"{lab.url}/task-definitions/secretive/1/"]
    for url, html in pages.items():
        for value in VALUES:
            assert value not in html, f"{value} shown on {url}"


def test_a_missing_secret_stops_the_task_as_ecs_does(lab):
    ecs = lab.client()
    ecs.create_cluster(clusterName="vault")
    definition(ecs, "missing", [
        {"name": "NOPE", "valueFrom": "arn:aws:secretsmanager:us-east-1:000000000000:secret:gone-AbCdEf"}])
    task_arn = ecs.run_task(cluster="vault", taskDefinition="missing", **FARGATE)["tasks"][0]["taskArn"]
    poll(lambda: ecs.describe_tasks(cluster="vault", tasks=[task_arn])["tasks"][0]["lastStatus"] == "STOPPED",
         message="the task to stop")
    task = ecs.describe_tasks(cluster="vault", tasks=[task_arn])["tasks"][0]
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
        "unable to retrieve secret from asm")
    assert "ResourceNotFoundException" in task["stoppedReason"]
