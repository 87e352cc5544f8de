"""Dashboard actions: each goes through the ECS frontend; a failure shows ECS's error and changes nothing."""
import re

import pytest

from orchestrator.frontend import call
from orchestrator.models import Account, Activity, Cluster, Service, Task, TaskDefinition


@pytest.fixture
def account(db):
    return Account.default()


@pytest.fixture
def demo(account):
    """Cluster demo and task definition web:1, made through the frontend as any client would."""
    call(account, "CreateCluster", {"clusterName": "demo"})
    call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True}],
    })
    return Cluster.objects.get(name="demo")


def snapshot():
    """Counts of everything an action could write."""
    return (
        Cluster.objects.filter(status="ACTIVE").count(), TaskDefinition.objects.count(), Task.objects.count(),
        Service.objects.count(), list(Service.objects.values_list("desired_count", flat=True)),
    )


def test_it_creates_a_cluster(alice_client, account):
    response = alice_client.post("/clusters/", {"name": "lab1"})
    assert response.status_code == 302
    assert response.url == "/clusters/lab1/"
    assert Cluster.objects.filter(account=account, name="lab1", status="ACTIVE").exists()
    call_row = Activity.objects.get(component="frontend", action="CreateCluster")
    assert call_row.caller == "console:alice" and call_row.status_code == 200


def test_it_shows_the_ecs_error_of_a_bad_cluster_name(alice_client, account):
    before = snapshot()
    response = alice_client.post("/clusters/", {"name": "bad name!"})
    assert response.status_code == 400
    assert b"InvalidParameterException: Cluster name must be 1-255 characters" in response.content
    assert snapshot() == before
    assert Activity.objects.get(component="frontend", action="CreateCluster").status_code == 400


def test_it_registers_a_task_definition_from_fields(alice_client, account):
    response = alice_client.post("/task-definitions/", {
        "family": "web", "image": "fargate-lab/demo:latest", "cpu": "256", "memory": "512", "port": "80",
        "environment": "GREETING=hello\nEMPTY=", "command": "sh -c 'echo hi'",
    })
    assert response.status_code == 302
    td = TaskDefinition.objects.get(family="web", revision=1)
    container = td.body["containerDefinitions"][0]
    assert container["command"] == ["sh", "-c", "echo hi"]
    assert {"name": "GREETING", "value": "hello"} in container["environment"]
    assert container["portMappings"][0]["containerPort"] == 80


def test_it_registers_a_task_definition_from_pasted_json(alice_client, account):
    body = (
        '{"family": "pasted", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "512",'
        ' "memory": "1024", "containerDefinitions": [{"name": "app", "image": "busybox", "essential": true}]}'
    )
    response = alice_client.post("/task-definitions/", {"json": body})
    assert response.status_code == 302
    assert response.url == "/task-definitions/pasted/1/"
    assert TaskDefinition.objects.get(family="pasted").cpu == 512


def test_it_shows_the_ecs_error_of_an_invalid_task_size(alice_client, account):
    before = snapshot()
    response = alice_client.post("/task-definitions/", {"family": "web", "image": "x", "cpu": "300", "memory": "512"})
    assert response.status_code == 400
    assert b"ClientException: No Fargate configuration exists for given values" in response.content
    assert snapshot() == before


def test_it_refuses_json_that_does_not_parse(alice_client, account):
    before = snapshot()
    response = alice_client.post("/task-definitions/", {"json": "{not json"})
    assert response.status_code == 400
    assert b"Not valid JSON" in response.content
    assert snapshot() == before


def test_it_refuses_a_privileged_task_definition(alice_client, account):
    before = snapshot()
    body = (
        '{"family": "evil", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",'
        ' "memory": "512", "containerDefinitions": [{"name": "app", "image": "busybox", "privileged": true}]}'
    )
    response = alice_client.post("/task-definitions/", {"json": body})
    assert response.status_code == 400
    assert b"ClientException" in response.content
    assert snapshot() == before


def test_it_runs_a_task(alice_client, demo):
    response = alice_client.post("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": "web:1", "count": "2"})
    assert response.status_code == 302
    assert Task.objects.filter(cluster=demo, last_status="PROVISIONING", desired_status="RUNNING").count() == 2


def test_the_run_task_and_service_forms_offer_the_accounts_subnets_the_default_preselected(alice_client, demo, account):
    call(account, "CreateService", {"cluster": "demo", "serviceName": "s", "taskDefinition": "web", "desiredCount": 0,
                                    "launchType": "FARGATE",
                                    "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-0own"]}}})
    bob = Account.objects.create(account_id="222222222222", name="bob")
    call(bob, "CreateCluster", {"clusterName": "demo"})
    call(bob, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest"}]})
    call(bob, "CreateService", {"cluster": "demo", "serviceName": "s", "taskDefinition": "web", "desiredCount": 0,
                                "launchType": "FARGATE",
                                "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-0bob"]}}})
    page = alice_client.get("/clusters/demo/").content.decode()
    assert '<datalist id="subnets"><option value="subnet-a"><option value="subnet-b"><option value="subnet-0own">' in page
    for form in ("run-task", "create-service"):
        (field,) = re.findall(rf'<input[^>]*id="{form}-subnets"[^>]*>', page)
        assert 'value="subnet-a"' in field and 'list="subnets"' in field, field
    response = alice_client.post("/clusters/demo/run-task/", {"subnets": "subnet-b", "task_definition": "web:1",
                                                             "count": "1", "security_groups": "sg-1, sg-2", "assign_public_ip": "DISABLED"})
    assert response.status_code == 302
    assert Task.objects.get().network_configuration == {"awsvpcConfiguration": {
        "subnets": ["subnet-b"], "securityGroups": ["sg-1", "sg-2"], "assignPublicIp": "DISABLED"}}
    assert "subnet-0bob" not in page  # another account's subnets are not offered


def test_a_run_task_without_a_subnet_shows_ecss_error_and_starts_nothing(alice_client, demo):
    before = snapshot()
    response = alice_client.post("/clusters/demo/run-task/", {"subnets": "", "task_definition": "web:1", "count": "1"})
    assert response.status_code == 400
    assert ("InvalidParameterException: Network Configuration must be provided when networkMode "
            "&#x27;awsvpc&#x27; is specified.") in response.content.decode()
    assert snapshot() == before


def test_it_shows_the_ecs_error_of_a_bad_run_task(alice_client, demo):
    before = snapshot()
    response = alice_client.post("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": "web:1", "count": "11"})
    assert response.status_code == 400
    assert b"InvalidParameterException: count must be between 1 and 10." in response.content
    response = alice_client.post("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": "nope:7", "count": "1"})
    assert response.status_code == 400
    assert b"ClientException" in response.content or b"Exception" in response.content
    assert snapshot() == before


def test_it_stops_a_task(alice_client, demo):
    alice_client.post("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": "web:1", "count": "1"})
    task = Task.objects.get()
    response = alice_client.post(f"/tasks/{task.task_id}/stop/", {"reason": "class is over"})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.desired_status == "STOPPED" and task.stopped_reason == "class is over"


def test_it_creates_scales_and_deletes_a_service(alice_client, demo):
    response = alice_client.post("/clusters/demo/services/", {"subnets": "subnet-a", "name": "web", "task_definition": "web:1", "desired_count": "2"})
    assert response.status_code == 302
    service = Service.objects.get(name="web")
    assert service.desired_count == 2
    response = alice_client.post(f"/services/{service.pk}/scale/", {"desired_count": "5"})
    assert response.status_code == 302
    service.refresh_from_db()
    assert service.desired_count == 5
    response = alice_client.post(f"/services/{service.pk}/delete/", {"force": "on"})
    assert response.status_code == 302
    service.refresh_from_db()
    assert service.status in ("DRAINING", "INACTIVE")


def test_it_shows_the_ecs_error_of_a_bad_scale_and_changes_nothing(alice_client, demo):
    alice_client.post("/clusters/demo/services/", {"subnets": "subnet-a", "name": "web", "task_definition": "web:1", "desired_count": "2"})
    service = Service.objects.get(name="web")
    before = snapshot()
    response = alice_client.post(f"/services/{service.pk}/scale/", {"desired_count": "-1"})
    assert response.status_code == 400
    assert b"InvalidParameterException: desiredCount must be between 0 and 5000." in response.content
    response = alice_client.post(f"/services/{service.pk}/delete/", {})
    assert response.status_code == 400
    assert b"The service cannot be stopped while it is scaled above 0." in response.content
    response = alice_client.post("/clusters/demo/delete/", {})
    assert response.status_code == 400
    assert b"ClusterContainsServicesException" in response.content
    assert snapshot() == before


def test_it_deletes_an_empty_cluster(alice_client, demo):
    response = alice_client.post("/clusters/demo/delete/", {})
    assert response.status_code == 302
    demo.refresh_from_db()
    assert demo.status == "INACTIVE"


def test_it_refuses_to_kill_a_task_that_is_not_running(alice_client, demo):
    alice_client.post("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": "web:1", "count": "1"})
    task = Task.objects.get()
    response = alice_client.post(f"/tasks/{task.task_id}/kill/")
    assert response.status_code == 400
    assert b"not RUNNING" in response.content


def test_it_kills_a_running_task_and_leaves_the_activity_row_to_the_agent(alice_client, demo, monkeypatch):
    from orchestrator import agent

    alice_client.post("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": "web:1", "count": "1"})
    Task.objects.update(last_status="RUNNING")
    killed = []
    monkeypatch.setattr(agent, "kill_task_container", lambda task: killed.append(task.pk) or True)
    task = Task.objects.get()
    response = alice_client.post(f"/tasks/{task.task_id}/kill/")
    assert response.status_code == 302
    assert killed == [task.pk]
    assert not Activity.objects.filter(action="kill").exists()  # the agent records the kill, once


def test_it_says_so_when_a_running_task_has_no_container_to_kill(alice_client, demo, monkeypatch):
    from orchestrator import agent

    alice_client.post("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": "web:1", "count": "1"})
    Task.objects.update(last_status="RUNNING")
    monkeypatch.setattr(agent, "kill_task_container", lambda task: False)
    task = Task.objects.get()
    response = alice_client.post(f"/tasks/{task.task_id}/kill/")
    assert response.status_code == 400
    assert b"no running container to kill" in response.content


@pytest.mark.parametrize("url, data", [
    ("/clusters/", {"name": ""}),
    ("/clusters/", {"name": "x" * 5000}),
    ("/clusters/", {}),
    ("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": "", "count": "many"}),
    ("/clusters/demo/run-task/", {"subnets": "subnet-a", "task_definition": "web:1", "count": "99999999999999999999999"}),
    ("/clusters/demo/services/", {"subnets": "subnet-a", "name": "\x00", "task_definition": "web:1", "desired_count": "1"}),
    ("/task-definitions/", {"json": "[1, 2]"}),
    ("/task-definitions/", {"json": '{"family": 5}'}),
    ("/task-definitions/", {"family": "web", "image": "x", "port": "eighty"}),
    ("/task-definitions/", {"family": "web", "image": "x", "environment": "novalue"}),
    ("/task-definitions/", {"family": "web", "image": "x", "command": "sh -c 'unclosed"}),
    ("/task-definitions/", {"family": "web", "image": "x", "cpu": "256", "memory": "512", "port": "70000"}),
])
def test_it_never_answers_500_to_malformed_input(alice_client, demo, url, data):
    before = snapshot()
    response = alice_client.post(url, data)
    assert response.status_code == 400
    assert b'class="form-errors"' in response.content or b"field-error" in response.content
    assert snapshot() == before


def test_it_requires_a_login_for_actions(client, demo):
    before = snapshot()
    response = client.post("/clusters/", {"name": "sneaky"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert snapshot() == before


def test_it_enforces_csrf(alice, demo):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    before = snapshot()
    assert strict.post("/clusters/", {"name": "forged"}).status_code == 403
    assert snapshot() == before
