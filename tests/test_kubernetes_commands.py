"""kubectl beside each ECS call, and the aws CLI form of the call: plain data, then the activity
log of real calls through the frontend (what it keeps, and what it must never keep)."""
import pytest

from orchestrator import kubernetes
from orchestrator.frontend import call
from orchestrator.models import Account, Activity, Service
from tests.support.api import FARGATE, NETWORK, fargate_task_definition

WEB = [{"name": "web", "image": "fargate-lab/demo:latest"}]


@pytest.mark.parametrize("operation, params, known, expected", [
    ("UpdateService", {"cluster": "demo", "service": "web", "desiredCount": 5}, {},
     "kubectl scale deployment/web --replicas=5 -n demo"),
    ("UpdateService", {"cluster": "demo", "service": "web", "taskDefinition": "web:2"},
     {"containers": [{"name": "web", "image": "repo/web:v2"}]},
     "kubectl set image deployment/web web=repo/web:v2 -n demo"),
    ("UpdateService", {"cluster": "demo", "service": "web", "forceNewDeployment": True}, {},
     "kubectl rollout restart deployment/web -n demo"),
    ("RunTask", {"cluster": "demo", "taskDefinition": "web:1", **NETWORK}, {"containers": WEB},
     "kubectl run web --image=fargate-lab/demo:latest --restart=Never -n demo"),
    ("RunTask", {"cluster": "demo", "taskDefinition": "web:1", "count": 3, **NETWORK}, {"containers": WEB},
     "kubectl apply -f pod.yaml -n demo  # 3 Pods"),
    ("StopTask", {"cluster": "demo", "task": "arn:aws:ecs:us-east-1:000000000000:task/demo/0123456789abcdef"},
     {"pod": "web-0123456789abcdef"}, "kubectl delete pod web-0123456789abcdef -n demo"),
    ("CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web", "desiredCount": 2, **NETWORK},
     {"containers": WEB}, "kubectl create deployment web --image=fargate-lab/demo:latest --replicas=2 -n demo"),
    ("CreateCluster", {"clusterName": "Class_A"}, {}, "kubectl create namespace class-a"),
    ("DeleteCluster", {"cluster": "arn:aws:ecs:us-east-1:000000000000:cluster/demo"}, {}, "kubectl delete namespace demo"),
    ("DeleteService", {"cluster": "demo", "service": "web", "force": True}, {}, "kubectl delete deployment/web -n demo"),
    ("ListTasks", {"cluster": "demo", "serviceName": "web"}, {}, "kubectl get pods -l app=web -n demo"),
    ("DeregisterTaskDefinition", {"taskDefinition": "web:3"}, {}, "kubectl delete podtemplate web-3"),
])
def test_it_says_each_call_in_kubectl(operation, params, known, expected):
    assert kubernetes.kubectl_for(operation, params, known) == expected


def test_it_applies_a_pod_template_for_a_registered_task_definition():
    command = kubernetes.kubectl_for("RegisterTaskDefinition", {"family": "web"})
    assert command.startswith("kubectl apply -f podtemplate.yaml") and "web" in command


def test_it_says_nothing_for_a_call_kubernetes_has_no_verb_for():
    assert kubernetes.kubectl_for("PutAccountSetting", {"name": "x"}) == ""


def test_it_writes_the_aws_cli_form_of_a_call():
    assert kubernetes.aws_cli_for("UpdateService", {"cluster": "demo", "service": "web", "desiredCount": 5}) == (
        "aws ecs update-service --cluster demo --service web --desired-count 5")
    assert kubernetes.aws_cli_for("DeleteService", {"service": "web", "force": False}) == (
        "aws ecs delete-service --service web --no-force")
    assert kubernetes.aws_cli_for("DescribeTasks", {"tasks": ["a b", "c"]}) == "aws ecs describe-tasks --tasks 'a b' c"


def test_its_summary_keeps_names_and_counts_and_drops_environment_and_secrets():
    params = {
        **fargate_task_definition(), "cluster": "demo", "count": 2,
        "overrides": {"containerOverrides": [{"name": "web", "environment": [{"name": "PASSWORD", "value": "hunter2"}]}]},
    }
    params["containerDefinitions"][0]["secrets"] = [{"name": "TOKEN", "valueFrom": "arn:aws:ssm:::parameter/token"}]
    summary = kubernetes.request_summary(params)
    assert summary == {"cluster": "demo", "family": "web", "count": 2, "cpu": "256", "memory": "512",
                       "networkMode": "awsvpc"}
    assert "hunter2" not in repr(summary) and "token" not in repr(summary).lower()


@pytest.mark.django_db
def test_a_call_through_the_api_is_logged_with_its_kubectl_and_aws_forms(raw_api):
    account = Account.objects.get(account_id="000000000000")
    call(account, "CreateCluster", {"clusterName": "demo"})
    definition = fargate_task_definition()
    definition["containerDefinitions"][0]["environment"] = [{"name": "PASSWORD", "value": "hunter2"}]
    assert raw_api("RegisterTaskDefinition", definition).status_code == 200
    assert raw_api("CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web",
                                     "desiredCount": 2, **FARGATE}).status_code == 200
    assert raw_api("UpdateService", {"cluster": "demo", "service": "web", "desiredCount": 5}).status_code == 200

    calls = {row.action: row for row in Activity.objects.filter(component="frontend")}
    assert calls["UpdateService"].aws_command == "aws ecs update-service --cluster demo --service web --desired-count 5"
    assert calls["UpdateService"].kubectl_command == "kubectl scale deployment/web --replicas=5 -n demo"
    assert calls["CreateService"].kubectl_command == (
        "kubectl create deployment web --image=fargate-lab/demo:latest --replicas=2 -n demo")
    assert "hunter2" not in repr(calls["RegisterTaskDefinition"].request)


@pytest.mark.django_db
def test_a_stop_names_the_pod_of_the_task(raw_api):
    account = Account.objects.get(account_id="000000000000")
    call(account, "CreateCluster", {"clusterName": "demo"})
    call(account, "RegisterTaskDefinition", fargate_task_definition())
    arn = call(account, "RunTask", {"cluster": "demo", "taskDefinition": "web", **FARGATE})["tasks"][0]["taskArn"]
    assert raw_api("StopTask", {"cluster": "demo", "task": arn}).status_code == 200
    stop = Activity.objects.get(component="frontend", action="StopTask")
    assert stop.kubectl_command == f"kubectl delete pod web-{arn.rsplit('/', 1)[1]} -n demo"


@pytest.mark.django_db
def test_a_refused_call_is_logged_with_its_forms_too(raw_api):
    response = raw_api("UpdateService", {"cluster": "nowhere", "service": "web", "desiredCount": 1})
    assert response.status_code == 400
    row = Activity.objects.get(component="frontend", action="UpdateService")
    assert row.kubectl_command == "kubectl scale deployment/web --replicas=1 -n nowhere"


@pytest.mark.django_db
def test_a_call_from_the_dashboard_is_logged_with_its_kubectl_form(alice_client):
    Account.default()
    response = alice_client.post("/clusters/", {"name": "class-b"})
    assert response.status_code == 302
    row = Activity.objects.get(component="frontend", action="CreateCluster")
    assert row.caller == "console:alice"
    assert row.aws_command == "aws ecs create-cluster --cluster-name class-b"
    assert row.kubectl_command == "kubectl create namespace class-b"


@pytest.mark.django_db
def test_a_trace_shows_its_call_beside_the_kubectl_command(alice_client, alice):
    account = Account.default()
    account.members.add(alice)
    call(account, "CreateCluster", {"clusterName": "demo"})
    call(account, "RegisterTaskDefinition", fargate_task_definition())
    call(account, "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web", "desiredCount": 1, **FARGATE})
    assert alice_client.post(f"/services/{Service.objects.get(name='web').pk}/scale/",
                             {"desired_count": 5}).status_code == 302
    row = Activity.objects.get(component="frontend", action="UpdateService")

    steps = alice_client.get(f"/traces/{row.trace_id}.json").json()["steps"]
    assert steps[0]["aws_command"] == "aws ecs update-service --cluster demo --service web --desired-count 5"
    assert steps[0]["kubectl_command"] == "kubectl scale deployment/web --replicas=5 -n demo"
    page = alice_client.get(f"/traces/{row.trace_id}/").content.decode()
    assert '<code class="kubectl-command">kubectl scale deployment/web --replicas=5 -n demo</code>' in page
    assert '<code class="aws-command">aws ecs update-service --cluster demo --service web --desired-count 5</code>' in page
