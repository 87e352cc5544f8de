"""RunTask, StopTask, DescribeTasks and ListTasks: the frontend writes desired state only."""
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator import bus, frontend
from orchestrator.models import Task, TaskContainer
from tests.support.api import FARGATE, NETWORK, error_of, fargate_task_definition

TWO_CONTAINERS = [
    {"name": "web", "image": "fargate-lab/demo:latest", "cpu": 128, "memory": 256},
    {"name": "sidecar", "image": "fargate-lab/busybox:offline", "essential": False, "memoryReservation": 64},
]


@pytest.fixture
def demo(ecs):
    """A cluster "demo" and the task definition web:1 (two containers)."""
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition(containerDefinitions=TWO_CONTAINERS))
    return ecs


def test_it_writes_provisioning_tasks(demo):
    tasks = demo.run_task(cluster="demo", taskDefinition="web", count=2, startedBy="me", **FARGATE)["tasks"]
    assert len(tasks) == 2
    assert {t["lastStatus"] for t in tasks} == {"PROVISIONING"}
    assert {t["desiredStatus"] for t in tasks} == {"RUNNING"}
    assert tasks[0]["group"] == "family:web"
    assert (tasks[0]["cpu"], tasks[0]["memory"]) == ("256", "512")
    assert tasks[0]["taskArn"].startswith("arn:aws:ecs:us-east-1:000000000000:task/demo/")
    rows = Task.objects.all()
    assert {(t.last_status, t.desired_status, t.started_by, t.cpu, t.memory) for t in rows} == {
        ("PROVISIONING", "RUNNING", "me", 256, 512)
    }
    assert all(t.trace_id for t in rows)
    containers = TaskContainer.objects.filter(task=rows[0]).order_by("pk")
    assert [(c.name, c.image, c.essential, c.cpu, c.memory) for c in containers] == [
        ("web", "fargate-lab/demo:latest", True, 128, 256),
        ("sidecar", "fargate-lab/busybox:offline", False, 0, 64),
    ]


def test_it_publishes_each_new_task(demo):
    seen = []
    unsubscribe = bus.subscribe(lambda kind, pk, **info: seen.append((kind, pk)))
    try:
        demo.run_task(cluster="demo", taskDefinition="web", count=3, **FARGATE)
    finally:
        unsubscribe()
    assert {("task", pk) for pk in Task.objects.values_list("pk", flat=True)} <= set(seen)


def test_it_runs_in_the_default_cluster_only_when_it_exists(ecs):
    ecs.register_task_definition(**fargate_task_definition())
    code, message, _ = error_of(ecs.run_task, taskDefinition="web", **FARGATE)
    assert (code, message) == ("ClusterNotFoundException", "Cluster not found.")
    ecs.create_cluster()
    assert ecs.run_task(taskDefinition="web", **FARGATE)["tasks"][0]["clusterArn"].endswith(":cluster/default")


@pytest.mark.parametrize("count", [0, 11, -1])
def test_it_bounds_the_count(demo, count):
    assert error_of(demo.run_task, cluster="demo", taskDefinition="web", count=count, **FARGATE)[0] == "InvalidParameterException"
    assert not Task.objects.exists()


@pytest.mark.parametrize("launch_type", ["EC2", "EXTERNAL"])
def test_it_runs_on_fargate_only(demo, launch_type):
    code, _, _ = error_of(demo.run_task, cluster="demo", taskDefinition="web", launchType=launch_type, **NETWORK)
    assert code == "InvalidParameterException"
    assert not Task.objects.exists()


def test_it_refuses_an_unknown_task_definition(demo):
    assert error_of(demo.run_task, cluster="demo", taskDefinition="nope", **FARGATE)[0] == "ClientException"
    assert error_of(demo.run_task, cluster="demo", taskDefinition="web:9", **FARGATE)[0] == "ClientException"


def test_it_stores_overrides_and_network_configuration(demo):
    overrides = {
        "containerOverrides": [
            {"name": "web", "command": ["sh", "-c", "echo hi"], "environment": [{"name": "A", "value": "1"}],
             "cpu": 64, "memory": 128}
        ],
        "taskRoleArn": "arn:aws:iam::000000000000:role/app",
    }
    network = {"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "ENABLED"}}
    task = demo.run_task(cluster="demo", taskDefinition="web", overrides=overrides, launchType="FARGATE",
                         networkConfiguration=network)["tasks"][0]
    assert task["overrides"]["containerOverrides"] == overrides["containerOverrides"]
    assert task["overrides"]["taskRoleArn"] == overrides["taskRoleArn"]
    row = Task.objects.get()
    assert row.overrides == overrides
    assert row.containers.get(name="web").memory == 128


def test_it_stores_placement_for_the_capacity_manager(demo):
    strategy = [{"type": "spread", "field": "attribute:ecs.availability-zone"}, {"type": "binpack", "field": "memory"}]
    constraints = [{"type": "distinctInstance"},
                   {"type": "memberOf", "expression": "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]"}]
    demo.run_task(cluster="demo", taskDefinition="web", placementStrategy=strategy, placementConstraints=constraints, **FARGATE)
    row = Task.objects.get()
    assert (row.placement_strategy, row.placement_constraints) == (strategy, constraints)


@pytest.mark.parametrize("placement, words", [
    ({"placementStrategy": [{"type": "binpack", "field": "disk"}]}, "binpack placement strategy takes the field"),
    ({"placementStrategy": [{"type": "spread", "field": "rack"}]}, "spread placement strategy takes the field"),
    ({"placementStrategy": [{"type": "random", "field": "cpu"}]}, "random placement strategy takes no field"),
    ({"placementStrategy": [{"type": "random"}] * 6}, "at most 5 placement strategies"),
    ({"placementConstraints": [{"type": "memberOf"}]}, "needs an expression"),
    ({"placementConstraints": [{"type": "memberOf", "expression": "task:group == web"}]}, "cannot evaluate"),
    ({"placementConstraints": [{"type": "distinctInstance", "expression": "x"}]}, "takes no expression"),
    ({"placementConstraints": [{"type": "distinctInstance"}] * 11}, "at most 10 placement constraints"),
])
def test_it_refuses_placement_it_could_never_honour(demo, placement, words):
    code, message, _ = error_of(demo.run_task, cluster="demo", taskDefinition="web", **placement, **FARGATE)
    assert code == "InvalidParameterException" and words in message
    assert not Task.objects.exists()


def test_it_refuses_an_override_for_an_unknown_container(demo):
    overrides = {"containerOverrides": [{"name": "ghost", "command": ["true"]}]}
    assert error_of(demo.run_task, cluster="demo", taskDefinition="web", overrides=overrides, **FARGATE)[0] == "InvalidParameterException"


def test_it_is_idempotent_with_a_client_token(demo):
    first = demo.run_task(cluster="demo", taskDefinition="web", count=2, clientToken="token-1", **FARGATE)["tasks"]
    again = demo.run_task(cluster="demo", taskDefinition="web", count=2, clientToken="token-1", **FARGATE)["tasks"]
    assert [t["taskArn"] for t in again] == [t["taskArn"] for t in first]
    assert Task.objects.count() == 2


def test_it_refuses_a_reused_token_with_other_parameters(demo):
    demo.run_task(cluster="demo", taskDefinition="web", clientToken="token-1", **FARGATE)
    code, _, _ = error_of(demo.run_task, cluster="demo", taskDefinition="web", count=2, clientToken="token-1", **FARGATE)
    assert code == "ConflictException"
    assert Task.objects.count() == 1


@pytest.mark.parametrize("token", ["x" * 65, "has space", "tab\there", "é"])
def test_it_refuses_a_malformed_token(demo, token):
    code, _, _ = error_of(demo.run_task, cluster="demo", taskDefinition="web", clientToken=token, **FARGATE)
    assert code == "InvalidParameterException"


def test_it_stops_a_task(demo):
    arn = demo.run_task(cluster="demo", taskDefinition="web", **FARGATE)["tasks"][0]["taskArn"]
    task = demo.stop_task(cluster="demo", task=arn, reason="enough")["task"]
    assert (task["desiredStatus"], task["stopCode"], task["stoppedReason"]) == ("STOPPED", "UserInitiated", "enough")
    assert "stoppingAt" in task
    row = Task.objects.get()
    assert (row.desired_status, row.last_status) == ("STOPPED", "PROVISIONING")
    assert row.stopping_at is not None


def test_it_stops_a_task_by_id_with_the_default_reason(demo):
    task_id = demo.run_task(cluster="demo", taskDefinition="web", **FARGATE)["tasks"][0]["taskArn"].rsplit("/", 1)[1]
    assert demo.stop_task(cluster="demo", task=task_id)["task"]["stoppedReason"] == "Task stopped by user"


def test_it_stops_a_task_by_arn_without_naming_the_cluster(demo):
    arn = demo.run_task(cluster="demo", taskDefinition="web", **FARGATE)["tasks"][0]["taskArn"]
    assert demo.stop_task(task=arn)["task"]["desiredStatus"] == "STOPPED"


def test_it_says_an_unknown_task_was_not_found(demo):
    code, message, _ = error_of(demo.stop_task, cluster="demo", task="0" * 32)
    assert (code, message) == ("InvalidParameterException", "The referenced task was not found.")


def test_it_describes_tasks_with_failures(demo):
    arn = demo.run_task(cluster="demo", taskDefinition="web", tags=[{"key": "k", "value": "v"}], **FARGATE)["tasks"][0]["taskArn"]
    response = demo.describe_tasks(cluster="demo", tasks=[arn, "f" * 32], include=["TAGS"])
    (task,) = response["tasks"]
    assert task["taskArn"] == arn
    assert task["tags"] == [{"key": "k", "value": "v"}]
    assert [c["name"] for c in task["containers"]] == ["web", "sidecar"]
    assert response["failures"] == [
        {"arn": "arn:aws:ecs:us-east-1:000000000000:task/demo/" + "f" * 32, "reason": "MISSING"}
    ]


def test_its_task_ids_are_the_same_uuid5s_as_before(demo):
    """The ENI and container ids are uuid5s of the task id, derived without uuid.UUID objects
    (shapes._uuid5_hex): the same ids as uuid.uuid5 gives, so they stay stable across versions."""
    arn = demo.run_task(cluster="demo", taskDefinition="web", **FARGATE)["tasks"][0]["taskArn"]
    task_id = arn.rsplit("/", 1)[1]
    Task.objects.filter(task_id=task_id).update(private_ip="10.0.0.7")
    (task,) = demo.describe_tasks(cluster="demo", tasks=[arn])["tasks"]
    eni = uuid.uuid5(uuid.NAMESPACE_URL, f"eni/{task_id}")
    attachment = task["attachments"][0]
    details = {d["name"]: d["value"] for d in attachment["details"]}
    assert attachment["id"] == str(eni)
    assert details["networkInterfaceId"] == f"eni-{eni.hex[:17]}"
    assert details["macAddress"] == ":".join(["02"] + [eni.hex[i:i + 2] for i in range(17, 27, 2)])
    for container in task["containers"]:
        container_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{task_id}/{container['name']}")
        assert container["containerArn"].endswith(f"/{task_id}/{container_id}")
        assert container["networkInterfaces"] == [{"attachmentId": str(eni), "privateIpv4Address": "10.0.0.7"}]


@pytest.mark.parametrize("include", [[], ["TAGS"]])
def test_it_describes_many_tasks_in_as_many_queries_as_one(demo, default_account, include):
    """DescribeTasks reads the tasks, their task definitions and their containers in a few
    queries whatever their number, and never a column it left unread (that would be a query
    per task)."""
    arns = [t["taskArn"] for t in demo.run_task(cluster="demo", taskDefinition="web", count=5, **FARGATE)["tasks"]]

    def queries(tasks):
        with CaptureQueriesContext(connection) as captured:
            answer = frontend.call(default_account, "DescribeTasks", {"cluster": "demo", "tasks": tasks, "include": include})
        assert len(answer["tasks"]) == len(tasks) and ("tags" in answer["tasks"][0]) == bool(include)
        return len(captured)

    assert queries(arns) == queries(arns[:1])


def test_it_lists_tasks_by_filter(demo):
    demo.register_task_definition(**fargate_task_definition(family="other"))
    web = demo.run_task(cluster="demo", taskDefinition="web", startedBy="alice", **FARGATE)["tasks"][0]["taskArn"]
    other = demo.run_task(cluster="demo", taskDefinition="other", **FARGATE)["tasks"][0]["taskArn"]
    stopped = demo.run_task(cluster="demo", taskDefinition="web", **FARGATE)["tasks"][0]["taskArn"]
    demo.stop_task(cluster="demo", task=stopped)
    assert set(demo.list_tasks(cluster="demo")["taskArns"]) == {web, other}
    assert demo.list_tasks(cluster="demo", family="web")["taskArns"] == [web]
    assert demo.list_tasks(cluster="demo", startedBy="alice")["taskArns"] == [web]
    assert demo.list_tasks(cluster="demo", desiredStatus="STOPPED")["taskArns"] == [stopped]
    page = demo.list_tasks(cluster="demo", maxResults=1)
    rest = demo.list_tasks(cluster="demo", maxResults=1, nextToken=page["nextToken"])
    assert set(page["taskArns"] + rest["taskArns"]) == {web, other}


def test_its_task_pages_follow_the_last_task_handed_out(demo):
    """ListTasks' nextToken remembers the last task of its page (a keyset page, cheap at 10,000
    tasks): a task stopped before the next page is asked for makes no other task skipped."""
    arns = [t["taskArn"] for t in demo.run_task(cluster="demo", taskDefinition="web", count=5, **FARGATE)["tasks"]]
    assert len(arns) == 5
    first = demo.list_tasks(cluster="demo", maxResults=2)
    demo.stop_task(cluster="demo", task=first["taskArns"][0])  # an OFFSET page would now skip one
    seen, token = list(first["taskArns"]), first["nextToken"]
    while token:
        page = demo.list_tasks(cluster="demo", maxResults=2, nextToken=token)
        seen += page["taskArns"]
        token = page.get("nextToken")
    assert len(seen) == len(set(seen))
    assert set(arns) - set(first["taskArns"][:1]) <= set(seen)
    assert error_of(demo.list_tasks, cluster="demo", nextToken="not-ours")[0] == "InvalidParameterException"


def test_it_lists_a_services_tasks(demo):
    demo.create_service(cluster="demo", serviceName="svc", taskDefinition="web", desiredCount=0, **FARGATE)
    demo.run_task(cluster="demo", taskDefinition="web", **FARGATE)
    task = Task.objects.get()
    task.service = task.cluster.services.get()
    task.save(update_fields=("service",))
    assert demo.list_tasks(cluster="demo", serviceName="svc")["taskArns"] == [task.arn]
    assert demo.list_tasks(cluster="demo", serviceName="other")["taskArns"] == []
