"""The task page of a real lab (``manage.py lab``) in Chromium shows the task endpoint: each
container's metadata URI and the task role, never the role's credentials, while the container
reads its metadata and credentials from 169.254.170.2 of that same lab."""
import boto3
import pytest
from playwright.sync_api import expect

from tests.support.lab import poll
from tests.test_task_metadata_docker import container_env, http_get
from tests.support.api import FARGATE

pytestmark = [pytest.mark.docker, pytest.mark.browser]
ROLE = "arn:aws:iam::000000000000:role/web-task"


def test_the_task_page_shows_the_endpoints_and_never_the_credentials(lab, lab_tab, docker_client):
    ecs = lab.client()
    ecs.create_cluster(clusterName="meta")
    ecs.register_task_definition(
        family="meta", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        taskRoleArn=ROLE, containerDefinitions=[{"name": "web", "image": "fargate-lab/demo:latest", "essential": True}])
    arn = ecs.run_task(cluster="meta", taskDefinition="meta", **FARGATE)["tasks"][0]["taskArn"]
    task_id = arn.rsplit("/", 1)[1]
    poll(lambda: ecs.describe_tasks(cluster="meta", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
         message="the task to run")
    [container] = docker_client.containers.list(filters={"label": [
        f"fargatelab.lab={lab.lab_id}", f"fargatelab.task-id={task_id}"]})
    env = container_env(container)

    status, task = http_get(container, "$ECS_CONTAINER_METADATA_URI_V4/task")
    assert status == 200 and task["TaskARN"] == arn
    status, credentials = http_get(container, "$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    assert status == 200 and credentials["RoleArn"] == ROLE

    lab_tab.goto(f"{lab.url}/tasks/{task_id}/")
    expect(lab_tab.locator("[data-field=metadata_uri]")).to_have_text(env["ECS_CONTAINER_METADATA_URI_V4"])
    expect(lab_tab.locator("[data-field=task_role]")).to_contain_text(ROLE)
    html = lab_tab.content()
    for secret in (credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["Token"],
                   env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]):
        assert secret not in html
    # An API call signed with them is recorded by its role session, not by its key.
    as_task = boto3.client("ecs", endpoint_url=lab.url, region_name="us-east-1",
                           aws_access_key_id=credentials["AccessKeyId"],
                           aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["Token"])
    assert as_task.list_tasks(cluster="meta")["taskArns"] == [arn]
    lab_tab.goto(f"{lab.url}/")
    expect(lab_tab.get_by_text(f"assumed-role/web-task/{task_id}").first).to_be_visible()
    html = lab_tab.content()
    assert credentials["AccessKeyId"] not in html and credentials["Token"] not in html
    assert credentials["AccessKeyId"] not in lab.log() and credentials["SecretAccessKey"] not in lab.log()
