"""Clusters and tags through boto3 and the aws CLI."""
import os
import subprocess
import sys
from pathlib import Path

from orchestrator import bus
from orchestrator.models import Cluster, Service, Task
from tests.support.api import FARGATE, error_of, fargate_task_definition

ARN = "arn:aws:ecs:us-east-1:000000000000:cluster/"


def test_it_creates_a_cluster(ecs):
    cluster = ecs.create_cluster(clusterName="demo", tags=[{"key": "team", "value": "a"}])["cluster"]
    assert cluster["clusterArn"] == ARN + "demo"
    assert cluster["status"] == "ACTIVE"
    assert cluster["tags"] == [{"key": "team", "value": "a"}]
    assert Cluster.objects.get(name="demo").tags == [{"key": "team", "value": "a"}]


def test_it_creates_the_default_cluster_without_a_name(ecs):
    assert ecs.create_cluster()["cluster"]["clusterName"] == "default"


def test_it_returns_the_existing_cluster_on_create(ecs):
    ecs.create_cluster(clusterName="demo")
    ecs.create_cluster(clusterName="demo")
    assert Cluster.objects.filter(name="demo").count() == 1


def test_it_publishes_a_new_cluster(ecs):
    seen = []
    unsubscribe = bus.subscribe(lambda kind, pk, **info: seen.append((kind, pk)))
    try:
        ecs.create_cluster(clusterName="demo")
    finally:
        unsubscribe()
    assert ("cluster", Cluster.objects.get(name="demo").pk) in seen


def test_it_describes_clusters_with_failures_for_unknown_names(ecs):
    ecs.create_cluster(clusterName="demo")
    response = ecs.describe_clusters(clusters=["demo", ARN + "demo", "nope"], include=["TAGS"])
    assert [c["clusterName"] for c in response["clusters"]] == ["demo", "demo"]
    assert response["clusters"][0]["tags"] == []
    assert response["failures"] == [{"arn": ARN + "nope", "reason": "MISSING"}]


def test_it_counts_tasks_and_services_in_a_cluster(ecs, default_account):
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    ecs.run_task(cluster="demo", taskDefinition="web", count=2, **FARGATE)
    ecs.create_service(cluster="demo", serviceName="svc", taskDefinition="web", desiredCount=0, **FARGATE)
    Task.objects.filter(pk=Task.objects.first().pk).update(last_status="RUNNING")
    cluster = ecs.describe_clusters(clusters=["demo"])["clusters"][0]
    assert cluster["runningTasksCount"] == 1
    assert cluster["pendingTasksCount"] == 1
    assert cluster["activeServicesCount"] == 1


def test_it_lists_clusters_in_pages(ecs):
    for i in range(5):
        ecs.create_cluster(clusterName=f"c{i}")
    first = ecs.list_clusters(maxResults=2)
    second = ecs.list_clusters(maxResults=2, nextToken=first["nextToken"])
    third = ecs.list_clusters(maxResults=2, nextToken=second["nextToken"])
    arns = first["clusterArns"] + second["clusterArns"] + third["clusterArns"]
    assert arns == [ARN + f"c{i}" for i in range(5)]
    assert "nextToken" not in third
    paginated = [a for page in ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 2})
                 for a in page["clusterArns"]]
    assert paginated == arns


def test_it_rejects_a_bad_page_token_and_size(ecs):
    assert error_of(ecs.list_clusters, nextToken="garbage!")[0] == "InvalidParameterException"
    assert error_of(ecs.list_clusters, maxResults=101)[0] == "InvalidParameterException"
    assert error_of(ecs.list_clusters, maxResults=0)[0] == "InvalidParameterException"


def test_it_deletes_an_empty_cluster(ecs):
    ecs.create_cluster(clusterName="demo")
    assert ecs.delete_cluster(cluster="demo")["cluster"]["status"] == "INACTIVE"
    assert ecs.list_clusters()["clusterArns"] == []
    assert ecs.describe_clusters(clusters=["demo"])["clusters"][0]["status"] == "INACTIVE"
    assert error_of(ecs.run_task, cluster="demo", taskDefinition="web", **FARGATE)[0] == "ClusterNotFoundException"


def test_it_reactivates_a_deleted_cluster(ecs):
    ecs.create_cluster(clusterName="demo")
    ecs.delete_cluster(cluster="demo")
    assert ecs.create_cluster(clusterName="demo")["cluster"]["status"] == "ACTIVE"


def test_it_refuses_to_delete_a_cluster_with_services(ecs):
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    ecs.create_service(cluster="demo", serviceName="svc", taskDefinition="web", desiredCount=0, **FARGATE)
    assert error_of(ecs.delete_cluster, cluster="demo")[0] == "ClusterContainsServicesException"
    assert Cluster.objects.get(name="demo").status == "ACTIVE"


def test_it_refuses_to_delete_a_cluster_with_tasks(ecs):
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    ecs.run_task(cluster="demo", taskDefinition="web", **FARGATE)
    assert error_of(ecs.delete_cluster, cluster="demo")[0] == "ClusterContainsTasksException"
    Task.objects.update(last_status="STOPPED")
    assert ecs.delete_cluster(cluster="demo")["cluster"]["status"] == "INACTIVE"


def test_it_says_cluster_not_found(ecs):
    code, message, status = error_of(ecs.delete_cluster, cluster="nope")
    assert (code, message, status) == ("ClusterNotFoundException", "Cluster not found.", 400)


def test_it_tags_and_untags_resources(ecs):
    cluster_arn = ecs.create_cluster(clusterName="demo")["cluster"]["clusterArn"]
    td_arn = ecs.register_task_definition(**fargate_task_definition())["taskDefinition"]["taskDefinitionArn"]
    task_arn = ecs.run_task(cluster="demo", taskDefinition="web", **FARGATE)["tasks"][0]["taskArn"]
    service_arn = ecs.create_service(cluster="demo", serviceName="svc", taskDefinition="web", desiredCount=0,
                                     **FARGATE)["service"]["serviceArn"]
    for arn in (cluster_arn, td_arn, task_arn, service_arn):
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "3"}])
        ecs.untag_resource(resourceArn=arn, tagKeys=["b"])
        assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "a", "value": "3"}], arn
    assert Service.objects.get().tags == [{"key": "a", "value": "3"}]


def test_it_rejects_tags_on_unknown_resources(ecs):
    missing = "arn:aws:ecs:us-east-1:000000000000:service/demo/nope"
    assert error_of(ecs.list_tags_for_resource, resourceArn=missing)[0] == "ResourceNotFoundException"
    assert error_of(ecs.list_tags_for_resource, resourceArn="nonsense")[0] == "InvalidParameterException"
    reserved = [{"key": "aws:owner", "value": "x"}]
    ecs.create_cluster(clusterName="demo")
    assert error_of(ecs.tag_resource, resourceArn=ARN + "demo", tags=reserved)[0] == "InvalidParameterException"


def test_it_answers_the_aws_cli(live_server, default_account):
    Cluster.objects.create(account=default_account, name="from-cli")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    aws = Path(sys.executable).parent / "aws"
    result = subprocess.run(
        [str(aws), "--endpoint-url", live_server.url, "ecs", "list-clusters", "--output", "json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert ARN + "from-cli" in result.stdout
