"""ECS Express Mode (Create/Describe/Update/DeleteExpressGatewayService) through boto3: the parts
it builds with the lab's own operations show in the ELBv2, ECS and Application Auto Scaling APIs;
shapes match botocore's model; refusals name the parameter; one account never sees another's.
The URL answering over HTTP is tested on real Docker in tests/test_lab_express_gateway.py."""
import pytest

from orchestrator.models import AccessKey, Account, LoadBalancer, TargetGroup
from tests.support.api import assert_model_shape, error_of, lab_client

ROLES = {"executionRoleArn": "arn:aws:iam::000000000000:role/ecsTaskExecutionRole",
         "infrastructureRoleArn": "arn:aws:iam::000000000000:role/ecsInfrastructureRole"}
DEMO = {"image": "fargate-lab/demo:latest", "containerPort": 80}


@pytest.fixture
def elbv2(live_server, default_account):
    return lab_client(live_server, "elbv2")


@pytest.fixture
def aas(live_server, default_account):
    return lab_client(live_server, "application-autoscaling")


def tg_name(service):
    """The name of the service's target group (from its ARN)."""
    return service["loadBalancers"][0]["targetGroupArn"].split(":targetgroup/")[1].split("/")[0]


def create(ecs, **params):
    return ecs.create_express_gateway_service(**ROLES, serviceName="web", primaryContainer=DEMO, **params)["service"]


@pytest.mark.django_db(transaction=True)
def test_create_builds_the_five_steps_in_the_callers_account(ecs, elbv2, aas):
    created = create(ecs, healthCheckPath="/health", cpu="256", memory="512", tags=[{"key": "team", "value": "a"}],
                     scalingTarget={"minTaskCount": 2, "maxTaskCount": 4, "autoScalingMetric": "AVERAGE_CPU",
                                    "autoScalingTargetValue": 50})
    arn = created["serviceArn"]
    assert arn == "arn:aws:ecs:us-east-1:000000000000:service/default/web"
    assert created["status"] == {"statusCode": "ACTIVE"}
    [config] = created["activeConfigurations"]
    assert config["primaryContainer"] == DEMO and config["cpu"] == "256" and config["healthCheckPath"] == "/health"
    [ingress] = config["ingressPaths"]
    assert ingress["accessType"] == "PUBLIC" and ingress["endpoint"].startswith("http://")

    [service] = ecs.describe_services(cluster="default", services=["web"])["services"]
    assert service["desiredCount"] == 2 and service["launchType"] == "FARGATE"
    built = [e["message"] for e in service["events"] if "built by Express Mode" in e["message"]]
    assert built == [f"(service web) was built by Express Mode: task definition web:1, target group and load "
                     f"balancer {tg_name(service)}, listener {ingress['endpoint']}, scaling 2-4 tasks on "
                     "ECSServiceAverageCPUUtilization 50."]
    td = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    assert td["cpu"] == "256" and td["containerDefinitions"][0]["image"] == DEMO["image"]
    [lb_entry] = service["loadBalancers"]
    [tg] = elbv2.describe_target_groups(TargetGroupArns=[lb_entry["targetGroupArn"]])["TargetGroups"]
    assert tg["HealthCheckPath"] == "/health" and tg["TargetType"] == "ip"
    [listener] = elbv2.describe_listeners(LoadBalancerArn=tg["LoadBalancerArns"][0])["Listeners"]
    assert ingress["endpoint"].endswith(f":{listener['Port']}/")
    [target] = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)
    [policy] = aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 50

    described = ecs.describe_express_gateway_service(serviceArn=arn, include=["TAGS"])
    assert_model_shape("DescribeExpressGatewayService", described)
    assert described["service"]["tags"] == [{"key": "team", "value": "a"}]
    assert "tags" not in ecs.describe_express_gateway_service(serviceArn=arn)["service"]


@pytest.mark.django_db(transaction=True)
def test_update_rolls_a_new_deployment_and_retunes_the_health_check(ecs, elbv2):
    arn = create(ecs)["serviceArn"]
    updated = ecs.update_express_gateway_service(serviceArn=arn, cpu="512", memory="1024", healthCheckPath="/ok",
                                                 primaryContainer={"image": "fargate-lab/demo:v2"})
    assert_model_shape("UpdateExpressGatewayService", updated)
    target = updated["service"]["targetConfiguration"]
    assert target["cpu"] == "512" and target["primaryContainer"] == {"image": "fargate-lab/demo:v2", "containerPort": 80}
    [service] = ecs.describe_services(cluster="default", services=["web"])["services"]
    assert service["taskDefinition"].endswith(":2") and len(service["deployments"]) == 2
    tg_arn = service["loadBalancers"][0]["targetGroupArn"]
    assert elbv2.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"][0]["HealthCheckPath"] == "/ok"
    assert error_of(ecs.update_express_gateway_service, serviceArn=arn,
                    primaryContainer={"image": "x", "containerPort": 8080})[0] == "UnsupportedFeatureException"


@pytest.mark.django_db(transaction=True)
def test_delete_removes_the_service_and_its_load_balancer_parts(ecs, aas):
    arn = create(ecs, scalingTarget={"minTaskCount": 1, "maxTaskCount": 2})["serviceArn"]
    deleted = ecs.delete_express_gateway_service(serviceArn=arn)
    assert_model_shape("DeleteExpressGatewayService", deleted)
    assert deleted["service"]["status"]["statusCode"] == "DRAINING"
    assert not LoadBalancer.objects.exists() and not TargetGroup.objects.exists()
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []
    assert error_of(ecs.delete_express_gateway_service, serviceArn=arn)[0] == "ServiceNotActiveException"


@pytest.mark.django_db(transaction=True)
def test_what_the_lab_cannot_honour_is_refused_naming_the_parameter(ecs):
    code, message, _ = error_of(ecs.create_express_gateway_service, **ROLES, primaryContainer=DEMO,
                                scalingTarget={"autoScalingMetric": "REQUEST_COUNT_PER_TARGET"})
    assert code == "UnsupportedFeatureException" and "autoScalingMetric" in message
    assert error_of(ecs.create_express_gateway_service, **ROLES, primaryContainer=DEMO,
                    cluster="nope")[0] == "ClusterNotFoundException"
    code, message, _ = error_of(ecs.create_express_gateway_service, **{**ROLES, "executionRoleArn": "ecsRole"},
                                primaryContainer=DEMO)
    assert code == "InvalidParameterException" and "executionRoleArn" in message
    assert error_of(ecs.describe_express_gateway_service,
                    serviceArn="arn:aws:ecs:us-east-1:000000000000:service/default/none")[0] == "ResourceNotFoundException"
    assert not LoadBalancer.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_another_account_cannot_describe_update_or_delete_it(ecs, live_server):
    arn = create(ecs)["serviceArn"]
    other = Account.objects.create(account_id="111111111111", name="bob")
    AccessKey.objects.create(account=other, access_key_id="bobkey", secret_access_key="bobsecret")
    bob = lab_client(live_server, "ecs", "bobkey", "bobsecret")
    assert error_of(bob.describe_express_gateway_service, serviceArn=arn)[0] == "ResourceNotFoundException"
    assert error_of(bob.update_express_gateway_service, serviceArn=arn, cpu="512")[0] == "ServiceNotFoundException"
    assert error_of(bob.delete_express_gateway_service, serviceArn=arn)[0] == "ServiceNotFoundException"
    assert ecs.describe_express_gateway_service(serviceArn=arn)["service"]["status"]["statusCode"] == "ACTIVE"
