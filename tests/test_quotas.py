"""Service quotas per account through boto3 against the live server: each refusal is ECS's
error type and changes nothing; a teacher's value replaces the lab's default."""
import boto3
import pytest
from django.core.management import call_command

from orchestrator import quotas
from orchestrator.models import AccessKey, Account, Cluster, Service, Task
from tests.support.api import FARGATE, NETWORK, error_of, fargate_task_definition


@pytest.fixture
def bob(db):
    """A student's account, with the classroom defaults."""
    account = Account.objects.create(account_id="000000000002", name="bob")
    AccessKey.objects.create(account=account, access_key_id="AKIDBOB", secret_access_key="bob-secret")
    return account


@pytest.fixture
def bobs_ecs(live_server, bob):
    """Bob's boto3 ECS client."""
    return boto3.client("ecs", endpoint_url=live_server.url, region_name="us-east-1",
                        aws_access_key_id="AKIDBOB", aws_secret_access_key="bob-secret")


@pytest.fixture
def bobs_demo(bobs_ecs):
    """Bob's cluster demo (with both Fargate capacity providers) and task definition web."""
    bobs_ecs.create_cluster(clusterName="demo", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    bobs_ecs.register_task_definition(**fargate_task_definition())
    return bobs_ecs


def run(ecs, count=1, **params):
    return ecs.run_task(cluster="demo", taskDefinition="web", count=count, launchType="FARGATE", **{**NETWORK, **params})


def test_a_student_has_the_classroom_defaults_and_the_default_account_awss(bob, default_account):
    assert bob.quota(quotas.ON_DEMAND_VCPU) == 1 and bob.quota(quotas.CLUSTERS) == 5
    assert default_account.quota(quotas.ON_DEMAND_VCPU) == 4000 and default_account.quota(quotas.CLUSTERS) == 10000
    bob.fargate_on_demand_vcpu_quota = 2.5
    assert bob.quota(quotas.ON_DEMAND_VCPU) == 2.5


def test_run_task_over_the_vcpu_quota_starts_none_and_says_why(bobs_demo):
    assert len(run(bobs_demo, count=3)["tasks"]) == 3  # 0.75 of the 1 vCPU
    response = run(bobs_demo, count=2)
    assert response["tasks"] == []
    assert [f["reason"] for f in response["failures"]] == [quotas.VCPU_LIMIT_REASON] * 2
    assert "Fargate On-Demand vCPU resource count (L-3032A538) is 1 vCPU; 0.75 in use, 0.5 asked" in \
        response["failures"][0]["detail"]
    assert Task.objects.count() == 3
    assert len(run(bobs_demo)["tasks"]) == 1  # the last quarter still fits


def test_a_stopped_task_gives_its_vcpus_back(bobs_demo):
    arns = [t["taskArn"] for t in run(bobs_demo, count=4)["tasks"]]
    assert run(bobs_demo)["tasks"] == []
    Task.objects.filter(task_id=arns[0].rsplit("/", 1)[1]).update(last_status=Task.STOPPED)
    assert len(run(bobs_demo)["tasks"]) == 1


def test_spot_tasks_count_against_the_spot_quota(bob, bobs_demo):
    bob.fargate_on_demand_vcpu_quota, bob.fargate_spot_vcpu_quota = 0.25, 0.5
    bob.save()
    spot = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert len(bobs_demo.run_task(cluster="demo", taskDefinition="web", count=2,
                                  capacityProviderStrategy=spot, **NETWORK)["tasks"]) == 2
    refused = bobs_demo.run_task(cluster="demo", taskDefinition="web", capacityProviderStrategy=spot, **NETWORK)
    assert refused["tasks"] == [] and "Fargate Spot vCPU resource count (L-36FBB829)" in refused["failures"][0]["detail"]
    assert len(run(bobs_demo)["tasks"]) == 1  # On-Demand has its own quarter


def test_the_default_account_keeps_awss_quota(ecs):
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    assert len(run(ecs, count=10)["tasks"]) == 10


def test_clusters_per_account(bob, bobs_ecs):
    bob.clusters_quota = 2
    bob.save()
    bobs_ecs.create_cluster(clusterName="one")
    bobs_ecs.create_cluster(clusterName="two")
    code, message, status = error_of(bobs_ecs.create_cluster, clusterName="three")
    assert (code, status) == ("ClientException", 400)
    assert "Clusters per account (L-21C621EB) of this account is 2" in message
    assert not Cluster.objects.filter(name="three").exists()
    assert bobs_ecs.create_cluster(clusterName="two")["cluster"]["status"] == "ACTIVE"  # idempotent, as before


def test_services_per_cluster(bob, bobs_demo):
    bob.services_per_cluster_quota = 1
    bob.save()
    bobs_demo.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=0, **FARGATE)
    code, message, _ = error_of(bobs_demo.create_service, cluster="demo", serviceName="api", taskDefinition="web",
                                desiredCount=0, **FARGATE)
    assert code == "ClientException" and "Services per cluster (L-9EF96962) of this account is 1" in message
    assert list(Service.objects.values_list("name", flat=True)) == ["web"]


def test_tasks_per_service_bounds_the_desired_count(bob, bobs_demo):
    bob.tasks_per_service_quota = 3
    bob.save()
    code, message, _ = error_of(bobs_demo.create_service, cluster="demo", serviceName="web", taskDefinition="web",
                                desiredCount=4, **FARGATE)
    assert code == "ClientException" and "Tasks per service" in message and "(3 tasks)" in message
    assert not Service.objects.exists()
    bobs_demo.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=0, **FARGATE)
    assert error_of(bobs_demo.update_service, cluster="demo", service="web", desiredCount=4)[0] == "ClientException"
    assert Service.objects.get().desired_count == 0
    assert bobs_demo.update_service(cluster="demo", service="web", desiredCount=3)["service"]["desiredCount"] == 3


def test_setquota_sets_and_clears_a_teachers_values(bob, capsys):
    call_command("setquota", "000000000002", "--fargate-on-demand-vcpu", "2.5", "--clusters", "7")
    bob.refresh_from_db()
    assert (bob.fargate_on_demand_vcpu_quota, bob.clusters_quota) == (2.5, 7)
    assert "Fargate On-Demand vCPU resource count: 2.5 vCPU (set; in use 0)" in capsys.readouterr().out
    call_command("setquota", "000000000002", "--clusters", "default")
    bob.refresh_from_db()
    assert bob.clusters_quota is None and bob.quota(quotas.CLUSTERS) == 5


def test_an_admin_sets_an_accounts_quota_in_the_django_admin(client, bob):
    from django.urls import reverse

    from dashboard.bootstrap import ensure_admin

    ensure_admin()
    assert client.login(username="admin", password="admin")
    url = reverse("admin:orchestrator_account_change", args=[bob.pk])
    page = client.get(url).content.decode()
    assert "Service quotas" in page and 'name="fargate_on_demand_vcpu_quota"' in page
    response = client.post(url, {"account_id": bob.account_id, "name": "bob", "created_at_0": "2026-11-26",
                                 "created_at_1": "12:00:00", "fargate_on_demand_vcpu_quota": "3",
                                 "tasks_per_service_quota": "20"})
    assert response.status_code == 302, response.content.decode()[:2000]
    bob.refresh_from_db()
    assert bob.quota(quotas.ON_DEMAND_VCPU) == 3 and bob.quota(quotas.TASKS_PER_SERVICE) == 20
    assert bob.quota(quotas.CLUSTERS) == 5  # left empty: the lab's default


def test_a_services_spot_tasks_start_within_the_spot_quota(bob, bobs_demo):
    from orchestrator.cluster_manager import ClusterManager

    bob.fargate_spot_vcpu_quota = 0.5
    bob.save()
    bobs_demo.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=3,
                             capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}], **NETWORK)
    service = Service.objects.get()
    ClusterManager(enqueue=lambda *args, **kwargs: None).sync_service(service.pk)
    assert list(Task.objects.values_list("capacity_provider", flat=True)) == ["FARGATE_SPOT"] * 2
    assert service.events.filter(message__contains=quotas.VCPU_LIMIT_REASON).count() == 1
    ClusterManager(enqueue=lambda *args, **kwargs: None).sync_service(service.pk)  # said once, nothing more
    assert Task.objects.count() == 2
    assert service.events.filter(message__contains=quotas.VCPU_LIMIT_REASON).count() == 1
