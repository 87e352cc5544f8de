"""Task sets of the EXTERNAL deployment controller through boto3: shapes as botocore's model has
them, counts as ECS computes them, and the errors ECS gives."""
import boto3
import pytest

from orchestrator.cluster_manager import ClusterManager
from orchestrator.models import Deployment, Service, Task
from tests.support.api import assert_model_shape, error_of, fargate_task_definition

ARN = "arn:aws:ecs:us-east-1:000000000000:"
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}


@pytest.fixture
def bg(ecs):
    """A cluster "demo", task definitions web:1 (blue) and web:2 (green), EXTERNAL service "bg" of 4."""
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    ecs.register_task_definition(**fargate_task_definition())
    ecs.create_service(cluster="demo", serviceName="bg", taskDefinition="web:1", desiredCount=4,
                       launchType="FARGATE", deploymentController={"type": "EXTERNAL"})
    return ecs


def create(ecs, td="web:1", **params):
    params.setdefault("networkConfiguration", NETWORK)
    if "capacityProviderStrategy" not in params:
        params.setdefault("launchType", "FARGATE")
    response = ecs.create_task_set(cluster="demo", service="bg", taskDefinition=td, **params)
    assert_model_shape("CreateTaskSet", response)
    return response["taskSet"]


def sync(service_name="bg"):
    """One pass of the cluster manager over the service."""
    ClusterManager(lambda *a, **k: None).sync_service(Service.objects.get(name=service_name).pk)


def test_an_external_service_starts_no_tasks_of_its_own(bg):
    service = bg.describe_services(cluster="demo", services=["bg"])["services"][0]
    assert service["deploymentController"] == {"type": "EXTERNAL"}
    assert service["deployments"] == [] and service["taskSets"] == []
    sync()
    assert Task.objects.count() == 0


def test_a_task_set_runs_its_share_of_the_desired_count_rounded_up(bg):
    blue = create(bg, scale={"value": 30, "unit": "PERCENT"}, externalId="deploy-1",
                  tags=[{"key": "colour", "value": "blue"}])
    assert blue["id"].startswith("ecs-svc/") and blue["taskSetArn"] == ARN + "task-set/demo/bg/" + blue["id"]
    assert (blue["status"], blue["computedDesiredCount"], blue["stabilityStatus"]) == ("ACTIVE", 2, "STABILIZING")
    assert blue["scale"] == {"value": 30.0, "unit": "PERCENT"} and blue["externalId"] == "deploy-1"
    assert blue["taskDefinition"] == ARN + "task-definition/web:1" and blue["launchType"] == "FARGATE"
    assert blue["serviceArn"] == ARN + "service/demo/bg" and "startedBy" not in blue
    sync()
    tasks = bg.describe_tasks(cluster="demo", tasks=bg.list_tasks(cluster="demo")["taskArns"])["tasks"]
    assert len(tasks) == 2
    assert {t["startedBy"] for t in tasks} == {blue["id"]} and {t["group"] for t in tasks} == {"service:bg"}
    assert Task.objects.filter(network_configuration=NETWORK).count() == 2
    sync()  # the counts of what the last pass started
    (shown,) = bg.describe_task_sets(cluster="demo", service="bg")["taskSets"]
    assert (shown["pendingCount"], shown["runningCount"]) == (2, 0)
    assert "tags" not in shown
    tagged = bg.describe_task_sets(cluster="demo", service="bg", taskSets=[blue["taskSetArn"]], include=["TAGS"])
    assert_model_shape("DescribeTaskSets", tagged)
    assert tagged["taskSets"][0]["tags"] == [{"key": "colour", "value": "blue"}]

    # The service's desired count moves every task set's computed count.
    bg.update_service(cluster="demo", service="bg", desiredCount=10)
    assert bg.describe_task_sets(cluster="demo", service="bg")["taskSets"][0]["computedDesiredCount"] == 3
    sync()
    assert Task.objects.filter(desired_status="RUNNING").count() == 3


def test_a_task_set_with_neither_and_no_default_strategy_takes_ec2_and_starts_nothing(bg):
    response = bg.create_task_set(cluster="demo", service="bg", taskDefinition="web:1", networkConfiguration=NETWORK)
    assert_model_shape("CreateTaskSet", response)
    assert response["taskSet"]["launchType"] == "EC2" and "capacityProviderStrategy" not in response["taskSet"]
    sync()
    assert not Task.objects.exists()
    [event] = bg.describe_services(cluster="demo", services=["bg"])["services"][0]["events"]
    assert "Reason: No Container Instances were found in your cluster." in event["message"]


def test_update_task_set_scales_and_delete_drains(bg):
    blue = create(bg)
    green = create(bg, td="web:2", scale={"value": 0, "unit": "PERCENT"})
    sync()
    assert Task.objects.filter(deployment__deployment_id=blue["id"]).count() == 4
    assert Task.objects.filter(deployment__deployment_id=green["id"]).count() == 0

    scaled = bg.update_task_set(cluster="demo", service="bg", taskSet=green["id"],
                                scale={"value": 50, "unit": "PERCENT"})
    assert_model_shape("UpdateTaskSet", scaled)
    assert scaled["taskSet"]["computedDesiredCount"] == 2
    sync()
    assert Task.objects.filter(deployment__deployment_id=green["id"], desired_status="RUNNING").count() == 2
    service = bg.describe_services(cluster="demo", services=["bg"])["services"][0]
    assert {s["id"]: s["computedDesiredCount"] for s in service["taskSets"]} == {blue["id"]: 4, green["id"]: 2}

    primary = bg.update_service_primary_task_set(cluster="demo", service="bg", primaryTaskSet=green["taskSetArn"])
    assert_model_shape("UpdateServicePrimaryTaskSet", primary)
    assert primary["taskSet"]["status"] == "PRIMARY"
    statuses = {s["id"]: s["status"] for s in bg.describe_task_sets(cluster="demo", service="bg")["taskSets"]}
    assert statuses == {blue["id"]: "ACTIVE", green["id"]: "PRIMARY"}
    service = bg.describe_services(cluster="demo", services=["bg"])["services"][0]
    assert service["taskDefinition"] == ARN + "task-definition/web:2"

    code, message, _ = error_of(bg.delete_task_set, cluster="demo", service="bg", taskSet=blue["id"])
    assert code == "InvalidParameterException" and "force" in message
    deleted = bg.delete_task_set(cluster="demo", service="bg", taskSet=blue["id"], force=True)
    assert_model_shape("DeleteTaskSet", deleted)
    assert (deleted["taskSet"]["status"], deleted["taskSet"]["computedDesiredCount"]) == ("DRAINING", 0)
    sync()
    blue_tasks = Task.objects.filter(deployment__deployment_id=blue["id"])
    assert set(blue_tasks.values_list("desired_status", flat=True)) == {"STOPPED"}
    blue_tasks.update(last_status="STOPPED")  # the agent's part, on real Docker in the end-to-end test
    sync()
    assert Deployment.objects.get(deployment_id=blue["id"]).status == "INACTIVE"
    listed = bg.describe_task_sets(cluster="demo", service="bg", taskSets=[blue["id"]])
    assert listed["taskSets"] == [] and listed["failures"] == [{"arn": blue["id"], "reason": "MISSING"}]
    code, _, _ = error_of(bg.update_task_set, cluster="demo", service="bg", taskSet=blue["id"],
                          scale={"value": 10, "unit": "PERCENT"})
    assert code == "TaskSetNotFoundException"


def test_a_restarted_cluster_manager_starts_no_duplicates(bg):
    blue = create(bg, scale={"value": 50, "unit": "PERCENT"})
    sync()
    sync()  # a second pass, as after a restart: the tasks it finds are the task set's own
    ClusterManager(lambda *a, **k: None).sync_service(Service.objects.get(name="bg").pk)
    assert Task.objects.filter(deployment__deployment_id=blue["id"]).count() == 2


def test_the_errors_are_those_ecs_gives(bg):
    bg.create_service(cluster="demo", serviceName="rolling", taskDefinition="web:1", desiredCount=0,
                      launchType="FARGATE", networkConfiguration=NETWORK)
    code, message, _ = error_of(bg.create_task_set, cluster="demo", service="rolling", taskDefinition="web:1",
                                launchType="FARGATE", networkConfiguration=NETWORK)
    assert code == "InvalidParameterException" and "EXTERNAL" in message
    code, _, _ = error_of(bg.create_task_set, cluster="demo", service="nope", taskDefinition="web:1")
    assert code == "ServiceNotFoundException"
    code, _, _ = error_of(bg.create_task_set, cluster="nope", service="bg", taskDefinition="web:1")
    assert code == "ClusterNotFoundException"
    code, _, _ = error_of(bg.create_task_set, cluster="demo", service="bg", taskDefinition="web:9",
                          launchType="FARGATE", networkConfiguration=NETWORK)
    assert code == "ClientException"
    code, message, _ = error_of(bg.create_task_set, cluster="demo", service="bg", taskDefinition="web:1")
    assert code == "InvalidParameterException" and "Network Configuration" in message
    for scale in ({"value": 101, "unit": "PERCENT"}, {"value": -1, "unit": "PERCENT"}):
        code, _, _ = error_of(bg.create_task_set, cluster="demo", service="bg", taskDefinition="web:1",
                              launchType="FARGATE", networkConfiguration=NETWORK, scale=scale)
        assert code == "InvalidParameterException"
    code, _, _ = error_of(bg.create_task_set, cluster="demo", service="bg", taskDefinition="web:1",
                          networkConfiguration=NETWORK, launchType="EC2")
    assert code == "InvalidParameterException"
    for call, extra in ((bg.update_task_set, {"taskSet": "ecs-svc/1", "scale": {"value": 1, "unit": "PERCENT"}}),
                        (bg.delete_task_set, {"taskSet": "ecs-svc/1"}),
                        (bg.update_service_primary_task_set, {"primaryTaskSet": "ecs-svc/1"})):
        assert error_of(call, cluster="demo", service="bg", **extra)[0] == "TaskSetNotFoundException"
    assert error_of(bg.describe_task_sets, cluster="demo", service="rolling")[0] == "InvalidParameterException"

    # UpdateService of an EXTERNAL service changes what ECS lets it change; the rest takes a task set.
    for change in ({"taskDefinition": "web:2"}, {"networkConfiguration": NETWORK}, {"forceNewDeployment": True},
                   {"capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}]}):
        code, message, _ = error_of(bg.update_service, cluster="demo", service="bg", **change)
        assert code == "InvalidParameterException" and "task set" in message, change
    assert bg.update_service(cluster="demo", service="bg", desiredCount=2,
                             healthCheckGracePeriodSeconds=5)["service"]["desiredCount"] == 2
    code, _, _ = error_of(bg.create_service, cluster="demo", serviceName="bg2", taskDefinition="web:1",
                          deploymentController={"type": "EXTERNAL"},
                          loadBalancers=[{"targetGroupArn": "arn:x", "containerName": "web", "containerPort": 80}])
    assert code == "InvalidParameterException"


def test_another_account_cannot_see_or_touch_the_task_sets(bg, live_server):
    from orchestrator.models import Account

    blue = create(bg)
    other = Account.objects.create(account_id="111111111111", name="bob")
    other.access_keys.create(access_key_id="BOB", secret_access_key="bob-secret")
    bob = boto3.client("ecs", endpoint_url=live_server.url, region_name="us-east-1",
                       aws_access_key_id="BOB", aws_secret_access_key="bob-secret")
    assert error_of(bob.describe_task_sets, cluster="demo", service="bg")[0] == "ClusterNotFoundException"
    bob.create_cluster(clusterName="demo")
    assert error_of(bob.delete_task_set, cluster="demo", service="bg", taskSet=blue["id"],
                    force=True)[0] == "ServiceNotFoundException"
    assert Deployment.objects.get(deployment_id=blue["id"]).status == "ACTIVE"


def test_the_same_client_token_gives_back_the_same_task_set(bg):
    first = create(bg, clientToken="token-1", scale={"value": 50, "unit": "PERCENT"})
    assert create(bg, clientToken="token-1", scale={"value": 50, "unit": "PERCENT"})["id"] == first["id"]
    code, _, _ = error_of(bg.create_task_set, cluster="demo", service="bg", taskDefinition="web:2",
                          launchType="FARGATE", networkConfiguration=NETWORK, clientToken="token-1")
    assert code == "ConflictException"
    assert Deployment.objects.filter(service__name="bg").count() == 1


def test_service_auto_scaling_rescales_every_task_set(bg):
    from orchestrator.frontend.application_autoscaling import SERVICE as AUTOSCALING
    from orchestrator.models import Account, ScalableTarget
    from orchestrator.service_autoscaler import sync_target

    blue = create(bg, scale={"value": 50, "unit": "PERCENT"})
    AUTOSCALING.call(Account.default(), "RegisterScalableTarget", {
        "ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount", "ResourceId": "service/demo/bg",
        "MinCapacity": 6, "MaxCapacity": 10})
    sync_target(ScalableTarget.objects.get().pk, lambda *args, **kwargs: None)
    assert Service.objects.get(name="bg").desired_count == 6
    assert bg.describe_task_sets(cluster="demo", service="bg")["taskSets"][0]["computedDesiredCount"] == 3
    assert Deployment.objects.get(deployment_id=blue["id"]).desired_count == 3


def test_task_sets_are_not_service_deployments(bg):
    create(bg)
    listed = bg.list_service_deployments(cluster="demo", service="bg")
    assert listed["serviceDeployments"] == []
