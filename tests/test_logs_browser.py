"""The task page's log view reads the task's CloudWatch Logs stream (live, and after the
container is gone), beside its kubectl logs counterpart; the log group pages show an account's
groups, streams and events, and never another account's. Real Chromium, real Docker."""
import time

import pytest
from playwright.sync_api import expect

from orchestrator.frontend import call
from orchestrator.frontend.logs import SERVICE as LOGS
from orchestrator.models import Account, LogStream, Task, TaskDefinition

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.django_db(transaction=True)]


def awslogs_task(lab_rows, script):
    body = call(lab_rows.account, "RegisterTaskDefinition", {
        "family": "logged", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{
            "name": "app", "image": lab_rows.image, "essential": True, "entryPoint": ["sh", "-c"], "command": [script],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/web", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "ecs",
                "awslogs-create-group": "true"}}}]})
    return lab_rows.run_task(TaskDefinition.objects.get(family="logged", revision=body["taskDefinition"]["revision"]))


def test_the_task_page_streams_the_tasks_cloudwatch_stream(control_plane, lab_rows, page, live_lab_server,
                                                           wait_until):
    task = awslogs_task(lab_rows, 'echo "hello from the container"; sleep 8; echo "bye"')
    stream = f"ecs/app/{task.task_id}"
    wait_until(lambda: LogStream.objects.filter(name=stream).exists(), 30, message="the task's stream")
    page.goto(f"{live_lab_server.url}/tasks/{task.task_id}/")
    source = page.locator(".log-source")
    expect(source).to_contain_text(f"stream {stream}")
    expect(source).to_contain_text("aws logs tail /ecs/web --follow")
    expect(source).to_contain_text(f"kubectl logs -f {Task.objects.get(pk=task.pk).pod_name} -c app")
    view = page.locator(f"#task-logs-{task.pk}")
    expect(view).to_contain_text("hello from the container", timeout=20_000)
    # Another client writes to the same stream: the page shows it, so it reads the stream itself.
    LOGS.call(lab_rows.account, "PutLogEvents", {
        "logGroupName": "/ecs/web", "logStreamName": stream,
        "logEvents": [{"timestamp": int(time.time() * 1000), "message": "written by PutLogEvents"}]})
    expect(view).to_contain_text("written by PutLogEvents", timeout=10_000)
    expect(view).to_contain_text("bye", timeout=20_000)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 30, message="the task to stop")
    page.reload()  # the container is gone: the events are still there
    expect(page.locator(f"#task-logs-{task.pk}")).to_contain_text("hello from the container", timeout=10_000)
    page.locator(".log-source a").click()
    expect(page.locator("h1")).to_contain_text("/ecs/web")
    expect(page.locator(".log-streams")).to_contain_text(stream)
    expect(page.locator(".log-events")).to_contain_text("written by PutLogEvents")


def test_log_group_pages_show_only_the_accounts_own(page, live_lab_server, lab_rows):
    LOGS.call(lab_rows.account, "CreateLogGroup", {"logGroupName": "/mine/app"})
    LOGS.call(lab_rows.account, "PutRetentionPolicy", {"logGroupName": "/mine/app", "retentionInDays": 7})
    bob = Account.objects.create(account_id="222222222222", name="bob")
    LOGS.call(bob, "CreateLogGroup", {"logGroupName": "/bobs/secret"})
    page.goto(f"{live_lab_server.url}/logs/")
    expect(page.locator(".log-groups")).to_contain_text("/mine/app")
    expect(page.locator(".log-groups")).to_contain_text("7 days")
    expect(page.locator("body")).not_to_contain_text("/bobs/secret")
    response = page.goto(f"{live_lab_server.url}/logs//bobs/secret/")
    assert response.status == 404
    page.goto(f"{live_lab_server.url}/logs//mine/app/")
    expect(page.locator("h1")).to_contain_text("/mine/app")
