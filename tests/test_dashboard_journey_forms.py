"""The article's five steps as dashboard forms (issue 14, item 1): each goes through its
service's API code (ECR, ELBv2, ECS), shows the API's error and changes nothing on error, shows
the same request as aws and kubectl commands, and links to the next step."""
import json

import pytest

from orchestrator import registry
from orchestrator.elbv2.views import call as elbv2
from orchestrator.frontend import call
from orchestrator.models import Account, Activity, Listener, LoadBalancer, Repository, Service, TargetGroup
from tests.support.common import free_port
from tests.support.api import FARGATE


@pytest.fixture
def account(db):
    return Account.default()


def register_web(account):
    """Cluster demo and task definition web:1 and web:2 (container "web" on port 80)."""
    call(account, "CreateCluster", {"clusterName": "demo"})
    for _ in range(2):
        call(account, "RegisterTaskDefinition", {
            "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
            "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest",
                                                       "essential": True, "portMappings": [{"containerPort": 80}]}],
        })
    return account


def make_alb(account):
    """web-lb, web-tg (ip targets) and a listener on a free port, through the ELBv2 API."""
    lb = elbv2(account, "CreateLoadBalancer", {"Name": "web-lb", "Subnets": ["subnet-a", "subnet-b"]})["LoadBalancers"][0]
    tg = elbv2(account, "CreateTargetGroup", {"Name": "web-tg", "Protocol": "HTTP", "Port": 80,
                                              "TargetType": "ip"})["TargetGroups"][0]
    elbv2(account, "CreateListener", {"LoadBalancerArn": lb["LoadBalancerArn"], "Port": free_port(),
                                      "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]})
    return {"lb": lb, "tg_arn": tg["TargetGroupArn"]}


@pytest.fixture
def web(account):
    return register_web(account)


@pytest.fixture
def alb(web):
    return make_alb(web)


def test_the_service_form_offers_the_accounts_revisions_and_target_groups(alice_client, alb):
    page = alice_client.get("/clusters/demo/").content.decode()

    assert '<option value="web:2" selected>web:2</option>' in page and '<option value="web:1">web:1</option>' in page
    assert f'<option value="{alb["tg_arn"]}">web-tg (port 80)</option>' in page
    for field in ("minimum_healthy_percent", "maximum_percent", "circuit_breaker", "rollback", "subnets",
                  "assign_public_ip", "container_name", "container_port"):
        assert f'id="create-service-{field}"' in page, field
    assert "aws ecs create-service --cluster demo --service-name web --task-definition web:2" in page
    assert "kubectl create deployment web --image=fargate-lab/demo:latest --replicas=1 -n demo" in page


def test_it_creates_a_service_behind_a_target_group_and_lands_on_its_page(alice_client, alb):
    response = alice_client.post("/clusters/demo/services/", {
        "name": "web", "task_definition": "web:1", "desired_count": "3", "target_group": alb["tg_arn"],
        "container_name": "web", "container_port": "80", "subnets": "subnet-a, subnet-b", "security_groups": "",
        "assign_public_ip": "DISABLED", "minimum_healthy_percent": "50", "maximum_percent": "150",
        "circuit_breaker": "on", "rollback": "on",
    })

    service = Service.objects.get(name="web")
    assert response.status_code == 302 and response.url == f"/services/{service.pk}/"
    assert service.desired_count == 3
    assert service.load_balancers == [{"targetGroupArn": alb["tg_arn"], "containerName": "web", "containerPort": 80}]
    assert service.network_configuration == {"awsvpcConfiguration": {
        "subnets": ["subnet-a", "subnet-b"], "assignPublicIp": "DISABLED"}}
    conf = service.deployment_configuration
    assert (conf["minimumHealthyPercent"], conf["maximumPercent"]) == (50, 150)
    assert conf["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    page = alice_client.get(response.url).content.decode()
    listener = Listener.objects.get()
    assert f'class="service-url" href="{listener.url}"' in page


def test_a_service_the_api_refuses_shows_its_error_and_is_not_created(alice_client, alb):
    response = alice_client.post("/clusters/demo/services/", {
        "name": "web", "task_definition": "web:1", "desired_count": "1", "target_group": alb["tg_arn"],
        "container_name": "nope", "container_port": "80", "subnets": "subnet-a", "assign_public_ip": "ENABLED",
        "minimum_healthy_percent": "100", "maximum_percent": "200",
    })

    assert response.status_code == 400
    assert "InvalidParameterException" in response.content.decode()
    assert not Service.objects.exists()


def test_it_rolls_out_a_new_revision_and_forces_a_new_deployment(alice_client, web):
    call(web, "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 1, **FARGATE})
    service = Service.objects.get(name="web")
    page = alice_client.get(f"/services/{service.pk}/").content.decode()
    assert '<option value="web:2" selected>web:2</option>' in page
    assert "kubectl set image deployment/web web=fargate-lab/demo:latest -n demo" in page

    assert alice_client.post(f"/services/{service.pk}/update/", {"task_definition": "web:2"}).status_code == 302
    service.refresh_from_db()
    assert service.task_definition.revision == 2 and service.deployments.count() == 2

    assert alice_client.post(f"/services/{service.pk}/update/",
                             {"task_definition": "web:2", "force_new_deployment": "on"}).status_code == 302
    assert service.deployments.count() == 3
    assert Activity.objects.filter(component="frontend", action="UpdateService", status_code=200).count() == 2

    refused = alice_client.post(f"/services/{service.pk}/update/", {"task_definition": "web:9"})
    assert refused.status_code == 400 and "ClientException: TaskDefinition not found." in refused.content.decode()
    assert service.deployments.count() == 3


def test_the_load_balancer_forms_make_a_load_balancer_a_target_group_and_a_listener(alice_client, web):
    page = alice_client.get("/load-balancers/").content.decode()
    assert "aws elbv2 create-load-balancer --name" in page and "kubectl create ingress" in page

    response = alice_client.post("/load-balancers/create/", {"lb_name": "web-lb", "lb_subnets": "subnet-a, subnet-b",
                                                              "scheme": "internet-facing"})
    lb = LoadBalancer.objects.get(name="web-lb")
    assert response.status_code == 302 and response.url.endswith("#target-group")
    assert lb.subnets == ["subnet-a", "subnet-b"]

    response = alice_client.post("/target-groups/create/", {
        "tg_name": "web-tg", "tg_port": "80", "target_type": "ip", "health_check_path": "/health",
        "health_check_interval": "5", "healthy_threshold": "2", "deregistration_delay": "7"})
    tg = TargetGroup.objects.get(name="web-tg")
    assert response.status_code == 302 and response.url.endswith("#listener")
    assert (tg.health_check_path, tg.health_check_interval, tg.healthy_threshold, tg.deregistration_delay) == (
        "/health", 5, 2, 7)

    port = free_port()
    page = alice_client.get(response.url).content.decode()
    assert f'<option value="{tg.arn}" selected>web-tg</option>' in page
    response = alice_client.post("/listeners/create/", {"load_balancer": lb.arn, "listener_port": str(port),
                                                        "forward_to": tg.arn})
    assert response.status_code == 302
    listener = Listener.objects.get(port=port)
    page = alice_client.get(response.url).content.decode()
    assert f'href="{listener.url}"' in page
    assert f'href="/clusters/demo/?target_group={tg.arn.replace(":", "%3A")}#create-service"' in page


def test_a_preview_answers_the_commands_of_what_was_typed_and_runs_nothing(alice_client, alb):
    response = alice_client.post("/clusters/demo/services/", {"name": "shop", "task_definition": "web:1",
                                                              "desired_count": "4"}, HTTP_X_COMMANDS_PREVIEW="1")
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<details class="form-commands"')
    assert "aws ecs create-service --cluster demo --service-name shop --task-definition web:1 --desired-count 4" in html
    assert "kubectl create deployment shop --image=fargate-lab/demo:latest --replicas=4 -n demo" in html
    assert not Service.objects.exists()

    html = alice_client.post("/target-groups/create/", {"tg_name": "api-tg", "tg_port": "8080"},
                             HTTP_X_COMMANDS_PREVIEW="1").content.decode()
    assert "aws elbv2 create-target-group --name api-tg --protocol HTTP --port 8080" in html
    assert "kubectl create service clusterip api-tg --tcp=8080:8080" in html
    assert not TargetGroup.objects.filter(name="api-tg").exists()


def test_the_load_balancer_forms_show_elbv2s_errors_and_leave_nothing(alice_client, web):
    response = alice_client.post("/load-balancers/create/", {"lb_name": "-bad-", "lb_subnets": "subnet-a",
                                                              "scheme": "internet-facing"})
    assert response.status_code == 400 and "ValidationError: Load balancer name" in response.content.decode()
    assert not LoadBalancer.objects.exists()

    response = alice_client.post("/target-groups/create/", {
        "tg_name": "web-tg", "tg_port": "80", "target_type": "ip", "health_check_path": "/",
        "health_check_interval": "5", "healthy_threshold": "2", "deregistration_delay": "9999"})
    assert response.status_code == 400
    assert "ValidationError: deregistration_delay.timeout_seconds must be between 0 and 3600" in response.content.decode()
    assert not TargetGroup.objects.exists()

    response = alice_client.post("/target-groups/create/", {
        "tg_name": "web-tg", "tg_port": "80", "target_type": "ip", "health_check_path": "health",
        "health_check_interval": "5", "healthy_threshold": "2", "deregistration_delay": "5"})
    assert response.status_code == 400 and "Health check path must begin with a" in response.content.decode()
    assert not TargetGroup.objects.exists()


def test_it_creates_a_repository_and_shows_how_to_push(alice_client, account, lab_registry):
    page = alice_client.get("/repositories/").content.decode()
    assert '<code class="aws-command" id="create-repository-commands-aws">aws ecr create-repository --repository-name' in page

    response = alice_client.post("/repositories/", {"repository_name": "team/web", "image_tag_mutability": "MUTABLE"})
    assert response.status_code == 302 and response.url == "/repositories/team/web/"
    page = alice_client.get(response.url).content.decode()
    uri = registry.call(account, "DescribeRepositories", {})["repositories"][0]["repositoryUri"]
    assert f"docker push {uri}:v1" in page and f"docker tag fargate-lab/demo:latest {uri}:v1" in page
    assert "aws ecr get-login-password --endpoint-url http://testserver | docker login --username AWS" in page
    assert "No image yet" in page

    refused = alice_client.post("/repositories/", {"repository_name": "Bad Name", "image_tag_mutability": "MUTABLE"})
    assert refused.status_code == 400 and "InvalidParameterException: Invalid parameter at" in refused.content.decode()
    assert Repository.objects.count() == 1


def test_the_registrys_push_event_publishes_the_repository(client, account, lab_registry,
                                                          django_capture_on_commit_callbacks):
    from orchestrator import bus

    repo = Repository.objects.create(account=account, name="web")
    uri = registry.call(account, "DescribeRepositories", {})["repositories"][0]["repositoryUri"]
    heard = []
    unsubscribe = bus.subscribe(lambda kind, pk, **info: heard.append((kind, pk)))
    envelope = {"events": [{"action": "push", "target": {
        "repository": uri.split("/", 1)[1], "tag": "v1", "digest": "sha256:" + "0" * 64,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}}]}
    try:
        with django_capture_on_commit_callbacks(execute=True):
            refused = client.post("/registry/notifications/", json.dumps(envelope), content_type="application/json")
            answered = client.post("/registry/notifications/", json.dumps(envelope), content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Bearer {registry.notifications_token()}")
    finally:
        unsubscribe()
    assert refused.status_code == 403 and answered.status_code == 200
    assert [change for change in heard if change[0] == "repository"] == [("repository", repo.pk)]
    assert Activity.objects.filter(component="registry", action="push", object_arn=repo.arn).exists()


def test_the_task_definition_form_is_prefilled_from_a_repository_image_and_links_on(alice_client, web):
    page = alice_client.get("/task-definitions/?image=127.0.0.1:5000/web:v1&family=web").content.decode()
    assert 'value="127.0.0.1:5000/web:v1"' in page and 'list="image-suggestions"' in page
    assert '<datalist id="image-suggestions">' in page

    page = alice_client.get("/task-definitions/web/2/").content.decode()
    assert 'href="/clusters/demo/?task_definition=web:2#run-task-form"' in page
    assert 'href="/clusters/demo/?task_definition=web:2#create-service"' in page
