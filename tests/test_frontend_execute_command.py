"""ECS Exec's API through boto3: enableExecuteCommand, the managed agent, and ExecuteCommand's answer."""
import pytest

from orchestrator.models import Task, TaskContainer
from tests.support.api import FARGATE, assert_model_shape, error_of, fargate_task_definition


@pytest.fixture
def demo(ecs):
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    return ecs


def run(ecs, **params):
    task = ecs.run_task(cluster="demo", taskDefinition="web", **{**FARGATE, **params})["tasks"][0]
    return Task.objects.get(task_id=task["taskArn"].rsplit("/", 1)[1])


def running(task):
    Task.objects.filter(pk=task.pk).update(last_status="RUNNING")
    TaskContainer.objects.filter(task=task).update(last_status="RUNNING")
    return task


def test_run_task_with_exec_shows_the_managed_agent(demo):
    task = run(demo, enableExecuteCommand=True)
    shown = demo.describe_tasks(cluster="demo", tasks=[task.task_id])["tasks"][0]
    assert shown["enableExecuteCommand"] is True
    assert shown["containers"][0]["managedAgents"] == [{"name": "ExecuteCommandAgent", "lastStatus": "PENDING"}]
    running(task)
    shown = demo.describe_tasks(cluster="demo", tasks=[task.task_id])["tasks"][0]
    assert shown["containers"][0]["managedAgents"][0]["lastStatus"] == "RUNNING"
    plain = run(demo)
    shown = demo.describe_tasks(cluster="demo", tasks=[plain.task_id])["tasks"][0]
    assert shown["enableExecuteCommand"] is False and "managedAgents" not in shown["containers"][0]


def test_execute_command_answers_a_session_for_a_running_exec_task(demo):
    task = running(run(demo, enableExecuteCommand=True))
    response = demo.execute_command(cluster="demo", task=task.task_id, command="/bin/sh", interactive=True)
    assert_model_shape("ExecuteCommand", response)
    assert response["taskArn"].endswith(task.task_id) and response["containerName"] == "web"
    assert response["interactive"] is True
    session = response["session"]
    assert session["sessionId"].startswith("ecs-execute-command-") and session["tokenValue"]
    assert session["streamUrl"] == f"/ws/tasks/{task.pk}/exec/?container=web"


def test_execute_command_refuses_a_task_without_exec_as_ecs_does(demo):
    task = running(run(demo))
    code, message, status = error_of(demo.execute_command, cluster="demo", task=task.task_id, command="ls",
                                     interactive=True)
    assert (code, status) == ("InvalidParameterException", 400)
    assert message.startswith("The execute command failed because execute command was not enabled")


def test_execute_command_refuses_non_interactive_unknown_containers_and_tasks_not_running(demo):
    task = run(demo, enableExecuteCommand=True)
    code, message, _ = error_of(demo.execute_command, cluster="demo", task=task.task_id, command="ls",
                                interactive=True)
    assert code == "TargetNotConnectedException" and "PROVISIONING" in message
    running(task)
    code, message, _ = error_of(demo.execute_command, cluster="demo", task=task.task_id, command="ls",
                                interactive=False)
    assert code == "InvalidParameterException" and "Interactive" in message
    code, _, _ = error_of(demo.execute_command, cluster="demo", task=task.task_id, command="ls", interactive=True,
                          container="nope")
    assert code == "InvalidParameterException"
    code, _, _ = error_of(demo.execute_command, cluster="demo", task="f" * 32, command="ls", interactive=True)
    assert code == "InvalidParameterException"


def test_a_service_hands_exec_to_its_tasks_and_update_service_changes_it(demo):
    service = demo.create_service(cluster="demo", serviceName="svc", taskDefinition="web", desiredCount=0,
                                  enableExecuteCommand=True, **FARGATE)["service"]
    assert service["enableExecuteCommand"] is True
    updated = demo.update_service(cluster="demo", service="svc", enableExecuteCommand=False)["service"]
    assert updated["enableExecuteCommand"] is False
