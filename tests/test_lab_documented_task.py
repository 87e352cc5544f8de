"""Issue 12's first "done means": a task definition shaped like AWS's documentation examples,
with awslogs, a healthCheck, secrets from both stores, dependsOn and a sidecar, runs on a real
lab as it would on AWS: the init container completes first, the app starts once its database is
HEALTHY and has its secrets, the sidecar runs beside it, and the app's lines reach CloudWatch Logs."""
import pytest

from tests.support.lab import poll
from tests.support.api import FARGATE

pytestmark = [pytest.mark.docker]


def container(name, script, essential=True, **fields):
    return {"name": name, "image": "fargate-lab/demo:latest", "essential": essential,
            "entryPoint": ["sh", "-c"], "command": [script],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/documented", "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "ecs", "awslogs-create-group": "true"}}, **fields}


def test_a_documented_task_definition_runs_as_on_aws(lab):
    ecs, ssm, sm, logs = lab.client(), lab.client("ssm"), lab.client("secretsmanager"), lab.client("logs")
    ssm.put_parameter(Name="/documented/api-key", Value="key-from-ssm", Type="SecureString")
    secret_arn = sm.create_secret(Name="documented/db", SecretString='{"password": "pw-from-asm"}')["ARN"]
    ecs.create_cluster(clusterName="documented")
    ecs.register_task_definition(
        family="documented", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        executionRoleArn="arn:aws:iam::000000000000:role/ecsTaskExecutionRole",
        containerDefinitions=[
            container("db", "touch /tmp/ready; trap 'exit 0' TERM; while true; do sleep 0.2; done",
                      healthCheck={"command": ["CMD-SHELL", "test -f /tmp/ready"], "interval": 5, "retries": 2}),
            container("migrate", "echo migrations applied", essential=False),
            container("app", "echo app sees key=$API_KEY password=$DB_PASSWORD; trap 'exit 0' TERM; "
                             "while true; do sleep 0.2; done",
                      secrets=[{"name": "API_KEY", "valueFrom": "/documented/api-key"},
                               {"name": "DB_PASSWORD", "valueFrom": f"{secret_arn}:password::"}],
                      dependsOn=[{"containerName": "migrate", "condition": "SUCCESS"},
                                 {"containerName": "db", "condition": "HEALTHY"}]),
            container("sidecar", "echo sidecar up; trap 'exit 0' TERM; while true; do sleep 0.2; done",
                      essential=False, dependsOn=[{"containerName": "app", "condition": "START"}]),
        ])
    arn = ecs.run_task(cluster="documented", taskDefinition="documented", **FARGATE)["tasks"][0]["taskArn"]
    task_id = arn.rsplit("/", 1)[1]
    task = poll(lambda: next((t for t in ecs.describe_tasks(cluster="documented", tasks=[arn])["tasks"]
                              if t["lastStatus"] == "RUNNING"), None), timeout=90, message="the task to run")
    containers = {c["name"]: c for c in task["containers"]}
    assert containers["sidecar"]["lastStatus"] == "RUNNING" and containers["migrate"]["lastStatus"] == "STOPPED"
    assert containers["migrate"]["exitCode"] == 0

    def lines(name):
        stream = f"ecs/{name}/{task_id}"
        try:
            events = logs.get_log_events(logGroupName="/ecs/documented", logStreamName=stream,
                                         startFromHead=True)["events"]
        except logs.exceptions.ResourceNotFoundException:
            return []
        return [e["message"] for e in events]

    poll(lambda: "app sees key=key-from-ssm password=pw-from-asm" in lines("app"), message="the app's line in its stream")
    poll(lambda: "migrations applied" in lines("migrate") and "sidecar up" in lines("sidecar"),
         message="the init container's and the sidecar's lines")
    ecs.stop_task(cluster="documented", task=arn)
    poll(lambda: ecs.describe_tasks(cluster="documented", tasks=[arn])["tasks"][0]["lastStatus"] == "STOPPED",
         timeout=60, message="the task to stop")
