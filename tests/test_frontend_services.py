"""Services: create, update (scale and roll), describe, list and delete."""
import pytest

from orchestrator import bus
from orchestrator.models import Account, Deployment, Listener, LoadBalancer, Service, TargetGroup
from tests.support.api import FARGATE, error_of, fargate_task_definition

ARN = "arn:aws:ecs:us-east-1:000000000000:"


@pytest.fixture
def demo(ecs):
    """A cluster "demo" with task definitions web:1 and web:2."""
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    ecs.register_task_definition(**fargate_task_definition())
    return ecs


def create(ecs, name="svc", **params):
    params = {**FARGATE, "desiredCount": 0, **params}
    return ecs.create_service(cluster="demo", serviceName=name, taskDefinition="web:1", **params)["service"]


def test_it_refuses_a_service_without_a_desired_count_as_ecs_does(demo):
    code, message, status = error_of(demo.create_service, cluster="demo", serviceName="svc", taskDefinition="web:1",
                                     **FARGATE)
    assert (code, message, status) == ("InvalidParameterException", "DesiredCount is missing", 400)
    assert not Service.objects.exists()
    create(demo, desiredCount=2)
    demo.update_service(cluster="demo", service="svc", forceNewDeployment=True)  # UpdateService keeps it
    assert demo.describe_services(cluster="demo", services=["svc"])["services"][0]["desiredCount"] == 2


def test_it_creates_a_service_with_ecs_defaults(demo):
    service = create(demo, desiredCount=2)
    assert service["serviceArn"] == ARN + "service/demo/svc"
    assert (service["status"], service["desiredCount"], service["runningCount"]) == ("ACTIVE", 2, 0)
    assert service["launchType"] == "FARGATE"
    assert service["taskDefinition"] == ARN + "task-definition/web:1"
    assert service["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
    }
    (deployment,) = service["deployments"]
    assert (deployment["status"], deployment["rolloutState"], deployment["desiredCount"]) == ("PRIMARY", "IN_PROGRESS", 2)
    assert deployment["id"].startswith("ecs-svc/")
    row = Service.objects.get()
    assert row.deployments.get().deployment_id == deployment["id"]


def test_it_refuses_placement_it_could_never_honour_on_create_and_update(demo):
    bad = [{"type": "memberOf", "expression": "attribute:ecs.instance-type =~ t2.*"}]
    code, message, _ = error_of(demo.create_service, cluster="demo", serviceName="svc", taskDefinition="web:1",
                                placementConstraints=bad, **FARGATE)
    assert code == "InvalidParameterException" and "cannot evaluate" in message
    assert not Service.objects.exists()
    create(demo, desiredCount=1)
    code, _, _ = error_of(demo.update_service, cluster="demo", service="svc",
                          placementStrategy=[{"type": "binpack", "field": "gpu"}])
    assert code == "InvalidParameterException"
    assert Service.objects.get().placement_strategy == []


def test_it_stores_what_the_cluster_manager_needs(demo):
    lbs = [{"targetGroupArn": listened_target_group().arn, "containerName": "web", "containerPort": 80}]
    network = {"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "ENABLED"}}
    create(
        demo, desiredCount=1, loadBalancers=lbs, networkConfiguration=network,
        placementStrategy=[{"type": "spread", "field": "attribute:ecs.availability-zone"}],
        deploymentConfiguration={"maximumPercent": 150, "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        healthCheckGracePeriodSeconds=30,
    )
    row = Service.objects.get()
    assert row.load_balancers == lbs
    assert row.network_configuration == network
    assert row.placement_strategy == [{"type": "spread", "field": "attribute:ecs.availability-zone"}]
    assert row.deployment_configuration == {
        "deploymentCircuitBreaker": {"enable": True, "rollback": True}, "maximumPercent": 150,
        "minimumHealthyPercent": 100,
    }
    assert row.health_check_grace_period == 30


def listened_target_group(target_type="ip"):
    """A target group "tg" of the default account that a listener of load balancer "lb" forwards to."""
    account = Account.default()
    tg = TargetGroup.objects.create(account=account, name="tg", port=80, target_type=target_type)
    lb = LoadBalancer.objects.create(account=account, name="lb")
    listener = Listener.objects.create(load_balancer=lb, port=8080, default_actions=[
        {"Type": "forward", "TargetGroupArn": tg.arn}])
    listener.target_groups.add(tg)
    return tg


def test_it_rejects_load_balancers_ecs_would_refuse(demo):
    tg = listened_target_group()
    lonely = TargetGroup.objects.create(account=tg.account, name="lonely", target_type="ip")
    cases = [
        ({"targetGroupArn": tg.arn.replace("/tg/", "/nope/"), "containerName": "web", "containerPort": 80}, "does not exist"),
        ({"targetGroupArn": "not-an-arn", "containerName": "web", "containerPort": 80}, "does not exist"),
        ({"targetGroupArn": lonely.arn, "containerName": "web", "containerPort": 80}, "associated load balancer"),
        ({"targetGroupArn": tg.arn, "containerName": "db", "containerPort": 80}, "container db does not exist"),
        ({"targetGroupArn": tg.arn, "containerName": "web", "containerPort": 8080}, "container port 8080"),
        ({"loadBalancerName": "classic", "containerName": "web", "containerPort": 80}, "Classic"),
    ]
    for entry, message in cases:
        code, text, _ = error_of(lambda: create(demo, loadBalancers=[entry]))
        assert code == "InvalidParameterException" and message in text, (entry, text)
    assert not Service.objects.exists()

    TargetGroup.objects.filter(pk=tg.pk).update(target_type="instance")
    code, text, _ = error_of(lambda: create(demo, loadBalancers=[
        {"targetGroupArn": tg.arn, "containerName": "web", "containerPort": 80}]))
    assert code == "InvalidParameterException" and "awsvpc" in text


def test_it_validates_load_balancers_on_update(demo):
    tg = listened_target_group()
    create(demo, desiredCount=0)

    code, _, _ = error_of(lambda: demo.update_service(cluster="demo", service="svc", loadBalancers=[
        {"targetGroupArn": tg.arn, "containerName": "web", "containerPort": 81}]))
    assert code == "InvalidParameterException"
    demo.update_service(cluster="demo", service="svc", loadBalancers=[
        {"targetGroupArn": tg.arn, "containerName": "web", "containerPort": 80}])
    assert Service.objects.get().load_balancers[0]["targetGroupArn"] == tg.arn


def test_it_publishes_a_new_service(demo):
    seen = []
    unsubscribe = bus.subscribe(lambda kind, pk, **info: seen.append((kind, pk)))
    try:
        create(demo)
    finally:
        unsubscribe()
    assert ("service", Service.objects.get().pk) in seen


def test_it_refuses_a_second_service_of_the_same_name(demo):
    create(demo, desiredCount=1)
    code, message, _ = error_of(demo.create_service, cluster="demo", serviceName="svc", taskDefinition="web:2", **FARGATE)
    assert (code, message) == ("InvalidParameterException", "Creation of service was not idempotent.")
    assert Service.objects.count() == 1


def test_it_returns_the_same_service_for_the_same_request(demo):
    first = create(demo, desiredCount=1)
    again = create(demo, desiredCount=1)
    assert again["serviceArn"] == first["serviceArn"]
    assert Service.objects.count() == 1


def test_it_honours_the_client_token(demo):
    create(demo, desiredCount=1, clientToken="tok")
    assert create(demo, desiredCount=1, clientToken="tok")["serviceName"] == "svc"
    assert error_of(demo.create_service, cluster="demo", serviceName="other", taskDefinition="web:1",
                    clientToken="tok", **FARGATE)[0] == "ConflictException"
    assert error_of(demo.create_service, cluster="demo", serviceName="long", taskDefinition="web:1",
                    clientToken="t" * 37, **FARGATE)[0] == "InvalidParameterException"


@pytest.mark.parametrize(
    "params",
    [
        {"launchType": "EC2"},
        {"desiredCount": -1},
        {"schedulingStrategy": "DAEMON"},
        {"deploymentConfiguration": {"minimumHealthyPercent": 150}},
        {"deploymentConfiguration": {"maximumPercent": 50}},
    ],
)
def test_it_refuses_invalid_services(demo, params):
    assert error_of(demo.create_service, cluster="demo", serviceName="svc", taskDefinition="web:1",
                    **{**FARGATE, "desiredCount": 1, **params})[0] == (
        "InvalidParameterException"
    )
    assert not Service.objects.exists()


def test_it_refuses_a_service_without_a_usable_task_definition(demo):
    assert error_of(demo.create_service, cluster="demo", serviceName="svc", **FARGATE)[0] == "InvalidParameterException"
    assert error_of(demo.create_service, cluster="demo", serviceName="svc", taskDefinition="nope", **FARGATE)[0] == "ClientException"
    assert error_of(demo.create_service, cluster="nope", serviceName="svc", taskDefinition="web", **FARGATE)[0] == (
        "ClusterNotFoundException"
    )


def test_it_scales_a_service(demo):
    create(demo, desiredCount=1)
    before = Service.objects.get().updated_at
    service = demo.update_service(cluster="demo", service="svc", desiredCount=3)["service"]
    assert service["desiredCount"] == 3
    assert len(service["deployments"]) == 1
    row = Service.objects.get()
    assert row.desired_count == 3
    assert row.deployments.get().desired_count == 3
    assert row.updated_at > before


def test_it_rolls_a_service_to_a_new_task_definition(demo):
    create(demo, desiredCount=2)
    old = Deployment.objects.get()
    service = demo.update_service(cluster="demo", service=ARN + "service/demo/svc", taskDefinition="web:2")["service"]
    assert service["taskDefinition"] == ARN + "task-definition/web:2"
    primary, active = service["deployments"]
    assert (primary["status"], primary["taskDefinition"], primary["desiredCount"]) == (
        "PRIMARY", ARN + "task-definition/web:2", 2
    )
    assert (active["id"], active["status"]) == (old.deployment_id, "ACTIVE")


def test_it_forces_a_new_deployment(demo):
    create(demo, desiredCount=1)
    service = demo.update_service(cluster="demo", service="svc", forceNewDeployment=True)["service"]
    assert [d["status"] for d in service["deployments"]] == ["PRIMARY", "ACTIVE"]


def test_it_says_service_not_found(demo):
    code, message, _ = error_of(demo.update_service, cluster="demo", service="nope", desiredCount=1)
    assert (code, message) == ("ServiceNotFoundException", "Service not found.")


def test_it_refuses_to_delete_a_scaled_service_without_force(demo):
    create(demo, desiredCount=1)
    code, message, _ = error_of(demo.delete_service, cluster="demo", service="svc")
    assert (code, message) == ("InvalidParameterException", "The service cannot be stopped while it is scaled above 0.")
    assert Service.objects.get().status == "ACTIVE"


def test_it_drains_a_deleted_service(demo):
    create(demo, desiredCount=2)
    service = demo.delete_service(cluster="demo", service="svc", force=True)["service"]
    assert (service["status"], service["desiredCount"]) == ("DRAINING", 0)
    row = Service.objects.get()
    assert (row.status, row.desired_count) == ("DRAINING", 0)
    assert row.deployments.get().desired_count == 0
    assert error_of(demo.update_service, cluster="demo", service="svc", desiredCount=1)[0] == "ServiceNotActiveException"
    assert demo.list_services(cluster="demo")["serviceArns"] == [ARN + "service/demo/svc"]


def test_it_allows_a_new_service_once_the_old_one_is_inactive(demo):
    create(demo)
    demo.delete_service(cluster="demo", service="svc")
    Service.objects.update(status="INACTIVE")
    assert demo.list_services(cluster="demo")["serviceArns"] == []
    assert create(demo)["status"] == "ACTIVE"
    assert Service.objects.count() == 2
    assert demo.describe_services(cluster="demo", services=["svc"])["services"][0]["status"] == "ACTIVE"


def test_it_describes_services_with_events_newest_first(demo):
    create(demo)
    row = Service.objects.get()
    for i in range(105):
        row.add_event(f"event {i}")
    response = demo.describe_services(cluster="demo", services=["svc", "ghost"], include=["TAGS"])
    (service,) = response["services"]
    assert len(service["events"]) == 100
    assert service["events"][0]["message"] == "(service svc) event 104"
    assert service["tags"] == []
    assert response["failures"] == [{"arn": ARN + "service/demo/ghost", "reason": "MISSING"}]


def test_it_lists_services_in_pages(demo):
    for i in range(3):
        create(demo, name=f"s{i}")
    page = demo.list_services(cluster="demo", maxResults=2)
    rest = demo.list_services(cluster="demo", maxResults=2, nextToken=page["nextToken"])
    assert page["serviceArns"] + rest["serviceArns"] == [ARN + f"service/demo/s{i}" for i in range(3)]
