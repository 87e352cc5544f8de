"""The pages count ready replicas in the database (cluster_manager.healthy_filter): it must agree
with the rollout's own judgement (cluster_manager.health) on every kind of task."""
import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator import cluster_manager
from orchestrator.models import Account, Cluster, Deployment, Service, Task, TaskDefinition


@pytest.mark.parametrize("load_balanced", [False, True])
def test_the_database_count_agrees_with_the_rollouts_judgement(db, settings, load_balanced):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "HEALTH_GRACE_SECONDS": 10}
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    service = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=td,
                                     load_balancers=[{"targetGroupArn": "arn:tg", "containerName": "web",
                                                      "containerPort": 80}] if load_balanced else [])
    deployment = Deployment.objects.create(service=service, deployment_id="ecs-svc/1", task_definition=td)
    now = timezone.now()
    combos = itertools.product(
        ["RUNNING", "PENDING", "ACTIVATING"], ["RUNNING", "STOPPED"], [None, 1, 60],
        ["", "HEALTHY", "UNHEALTHY", "UNKNOWN"], ["", "HEALTHY", "UNHEALTHY", "INITIAL"])
    for last, desired, age, container, lb in combos:
        Task.objects.create(account=account, cluster=cluster, task_definition=td, service=service,
                            deployment=deployment, cpu=256, memory=512, last_status=last, desired_status=desired,
                            started_at=None if age is None else now - timedelta(seconds=age),
                            container_health_status=container, lb_health_status=lb)
    _, (state, tasks) = cluster_manager.load(service.pk)
    judged = {t.task_id for t in tasks if t.desired_status == "RUNNING" and cluster_manager.health(t, state, now)[0]}
    assert judged  # the matrix holds healthy tasks, and unhealthy ones
    assert set(cluster_manager.healthy_tasks(service.pk, now)) == judged
    assert cluster_manager.healthy_count(service, now) == len(judged)
