"""Service deployments and revisions through boto3: the lab's rollouts as ECS shows them."""
import pytest
from django.utils import timezone

from orchestrator.models import Deployment, Service
from tests.support.api import FARGATE, assert_model_shape, error_of, fargate_task_definition

ARN = "arn:aws:ecs:us-east-1:000000000000:"


@pytest.fixture
def demo(ecs):
    """A cluster "demo", task definitions web:1 and web:2, and service "svc" on web:1."""
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    ecs.register_task_definition(**fargate_task_definition())
    ecs.create_service(cluster="demo", serviceName="svc", taskDefinition="web:1", desiredCount=1,
                       deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": False}}, **FARGATE)
    return ecs


def complete(deployment_arn):
    """Mark the deployment an ARN names COMPLETED, as the cluster manager does at steady state."""
    number = deployment_arn.rsplit("/", 1)[-1]
    Deployment.objects.filter(deployment_id=f"ecs-svc/{number}").update(
        rollout_state="COMPLETED", rollout_state_reason=f"ECS deployment ecs-svc/{number} completed.",
        finished_at=timezone.now())


def listed(ecs, **params):
    response = ecs.list_service_deployments(cluster="demo", service="svc", **params)
    assert_model_shape("ListServiceDeployments", response)
    return response["serviceDeployments"]


def test_each_rollout_is_a_service_deployment_newest_first(demo):
    (first,) = listed(demo)
    assert first["serviceDeploymentArn"].startswith(ARN + "service-deployment/demo/svc/")
    assert (first["status"], first["serviceArn"], first["clusterArn"]) == (
        "IN_PROGRESS", ARN + "service/demo/svc", ARN + "cluster/demo")
    complete(first["serviceDeploymentArn"])
    demo.update_service(cluster="demo", service="svc", taskDefinition="web:2")
    second, again = listed(demo)
    assert again["serviceDeploymentArn"] == first["serviceDeploymentArn"]
    assert (second["status"], again["status"]) == ("IN_PROGRESS", "SUCCESSFUL")
    assert "finishedAt" in again and "finishedAt" not in second
    assert [d["status"] for d in listed(demo, status=["SUCCESSFUL"])] == ["SUCCESSFUL"]
    page = demo.list_service_deployments(cluster="demo", service="svc", maxResults=1)
    assert len(page["serviceDeployments"]) == 1 and page["nextToken"]
    rest = demo.list_service_deployments(cluster="demo", service="svc", nextToken=page["nextToken"])
    assert [d["serviceDeploymentArn"] for d in rest["serviceDeployments"]] == [first["serviceDeploymentArn"]]
    future = timezone.now() + timezone.timedelta(days=1)
    assert listed(demo, createdAt={"after": future}) == []


def test_it_describes_a_deployment_from_its_source_to_its_target_revision(demo):
    (first,) = listed(demo)
    complete(first["serviceDeploymentArn"])
    demo.update_service(cluster="demo", service="svc", taskDefinition="web:2", desiredCount=3)
    newest = listed(demo)[0]["serviceDeploymentArn"]
    response = demo.describe_service_deployments(serviceDeploymentArns=[newest, ARN + "service-deployment/demo/svc/1"])
    assert_model_shape("DescribeServiceDeployments", response)
    (shown,) = response["serviceDeployments"]
    assert response["failures"] == [{"arn": ARN + "service-deployment/demo/svc/1", "reason": "MISSING"}]
    assert shown["status"] == "IN_PROGRESS"
    assert shown["targetServiceRevision"]["requestedTaskCount"] == 3
    assert [s["arn"] for s in shown["sourceServiceRevisions"]] == [first["targetServiceRevisionArn"]]
    assert shown["deploymentCircuitBreaker"] == {"status": "MONITORING", "failureCount": 0, "threshold": 3}
    assert shown["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": False}

    revisions = demo.describe_service_revisions(
        serviceRevisionArns=[shown["targetServiceRevision"]["arn"], first["targetServiceRevisionArn"]])
    assert_model_shape("DescribeServiceRevisions", revisions)
    new, old = revisions["serviceRevisions"]
    assert (new["taskDefinition"], old["taskDefinition"]) == (ARN + "task-definition/web:2", ARN + "task-definition/web:1")
    assert new["serviceRevisionArn"].startswith(ARN + "service-revision/demo/svc/")
    assert new["launchType"] == "FARGATE" and new["containerImages"][0]["containerName"] == "web"

    service = demo.describe_services(cluster="demo", services=["svc"])["services"][0]
    assert service["currentServiceDeployment"] == newest
    assert {r["arn"] for r in service["currentServiceRevisions"]} == {
        shown["targetServiceRevision"]["arn"], first["targetServiceRevisionArn"]}


def test_a_superseded_rollout_is_stopped(demo):
    (first,) = listed(demo)
    demo.update_service(cluster="demo", service="svc", taskDefinition="web:2")
    shown = demo.describe_service_deployments(serviceDeploymentArns=[first["serviceDeploymentArn"]])
    (old,) = shown["serviceDeployments"]
    assert old["status"] == "STOPPED" and "newer service deployment" in old["statusReason"]
    assert "stoppedAt" in old


def test_stop_service_deployment_asks_for_a_rollback(demo):
    (first,) = listed(demo)
    complete(first["serviceDeploymentArn"])
    demo.update_service(cluster="demo", service="svc", taskDefinition="web:2")
    newest = listed(demo)[0]["serviceDeploymentArn"]
    response = demo.stop_service_deployment(serviceDeploymentArn=newest, stopType="ROLLBACK")
    assert_model_shape("StopServiceDeployment", response)
    assert response["serviceDeploymentArn"] == newest
    assert listed(demo)[0]["status"] == "ROLLBACK_REQUESTED"
    assert Deployment.objects.get(status="PRIMARY").stop_requested == "ROLLBACK"
    # Asking again is no error: it goes on rolling back.
    assert demo.stop_service_deployment(serviceDeploymentArn=newest)["serviceDeploymentArn"] == newest


def test_stop_service_deployment_refuses_what_it_cannot_stop(demo):
    (first,) = listed(demo)
    code, message, _ = error_of(demo.stop_service_deployment, serviceDeploymentArn=first["serviceDeploymentArn"])
    assert code == "InvalidParameterException" and "earlier service revision" in message
    complete(first["serviceDeploymentArn"])
    code, message, _ = error_of(demo.stop_service_deployment, serviceDeploymentArn=first["serviceDeploymentArn"])
    assert code == "ConflictException" and "SUCCESSFUL" in message
    demo.update_service(cluster="demo", service="svc", taskDefinition="web:2")
    newest = listed(demo)[0]["serviceDeploymentArn"]
    code, message, _ = error_of(demo.stop_service_deployment, serviceDeploymentArn=newest, stopType="ABORT")
    assert code == "InvalidParameterException" and "ROLLBACK" in message
    code, _, _ = error_of(demo.stop_service_deployment, serviceDeploymentArn=ARN + "service-deployment/demo/svc/9")
    assert code == "ServiceDeploymentNotFoundException"
    other = "arn:aws:ecs:us-east-1:111111111111:service-deployment/demo/svc/" + newest.rsplit("/", 1)[-1]
    code, _, _ = error_of(demo.stop_service_deployment, serviceDeploymentArn=other)
    assert code == "ServiceDeploymentNotFoundException"
    assert not Deployment.objects.exclude(stop_requested="").exists()


def test_continue_service_deployment_says_there_is_no_lifecycle_hook(demo):
    (first,) = listed(demo)
    code, message, _ = error_of(demo.continue_service_deployment,
                                serviceDeploymentArn=first["serviceDeploymentArn"], hookId="hook-1")
    assert code == "InvalidParameterException" and "ROLLING" in message
    code, _, _ = error_of(demo.continue_service_deployment,
                          serviceDeploymentArn=ARN + "service-deployment/demo/svc/9", hookId="hook-1")
    assert code == "ServiceDeploymentNotFoundException"


def test_strategies_other_than_rolling_are_refused(demo):
    code, message, _ = error_of(demo.update_service, cluster="demo", service="svc",
                                deploymentConfiguration={"strategy": "BLUE_GREEN"})
    assert code == "InvalidParameterException" and "ROLLING" in message
    code, _, _ = error_of(demo.update_service, cluster="demo", service="svc", deploymentConfiguration={
        "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"]}]})
    assert code == "InvalidParameterException"
    assert "strategy" not in Service.objects.get().deployment_configuration


def test_list_service_deployments_of_an_unknown_service_is_service_not_found(demo):
    code, _, _ = error_of(demo.list_service_deployments, cluster="demo", service="nope")
    assert code == "ServiceNotFoundException"
    code, _, _ = error_of(demo.list_service_deployments, cluster="nope", service="svc")
    assert code == "ClusterNotFoundException"


def test_the_code_deploy_controller_and_a_change_of_controller_are_refused(demo):
    code, message, _ = error_of(demo.create_service, cluster="demo", serviceName="bg-code-deploy",
                                taskDefinition="web:1", deploymentController={"type": "CODE_DEPLOY"}, **FARGATE)
    assert code == "InvalidParameterException" and "CODE_DEPLOY" in message and "EXTERNAL" in message
    for kind in ("EXTERNAL", "CODE_DEPLOY"):
        code, message, _ = error_of(demo.update_service, cluster="demo", service="svc",
                                    deploymentController={"type": kind})
        assert code == "InvalidParameterException" and kind in message
    assert list(Service.objects.values_list("name", flat=True)) == ["svc"]
    ok = demo.create_service(cluster="demo", serviceName="ecs", taskDefinition="web:1",
                             desiredCount=0, deploymentController={"type": "ECS"}, **FARGATE)["service"]
    assert ok["deploymentController"] == {"type": "ECS"}
