"""What the state database keeps: STOPPED tasks for about an hour, as ECS does, and the activity
feed by age and count (orchestrator/retention.py)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator import retention
from orchestrator.models import Account, Activity, Cluster, Deployment, Service, Task, TaskContainer, TaskDefinition
from tests.support.api import default_account, ecs  # noqa: F401  (fixtures)


@pytest.fixture
def world(db):
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    return account, cluster, td


def _task(world, *, status=Task.STOPPED, stopped_ago=None, **fields):
    account, cluster, td = world
    now = timezone.now()
    task = Task.objects.create(
        account=account, cluster=cluster, task_definition=td, cpu=256, memory=512, last_status=status,
        desired_status=Task.STOPPED if status == Task.STOPPED else Task.RUNNING,
        created_at=now - timedelta(hours=5),
        stopped_at=None if stopped_ago is None else now - timedelta(seconds=stopped_ago), **fields)
    TaskContainer.objects.create(task=task, name="web")
    return task


def test_tasks_stopped_longer_than_the_retention_are_forgotten_with_their_containers(world, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "STOPPED_TASK_RETENTION_SECONDS": 3600}
    old = _task(world, stopped_ago=3700)
    recent = _task(world, stopped_ago=600)
    running = _task(world, status=Task.RUNNING)  # five hours old, but running
    assert retention.prune_stopped_tasks() == 1
    assert set(Task.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not TaskContainer.objects.filter(task_id=old.pk).exists()


def test_the_failed_tasks_of_a_rollout_in_progress_are_kept_for_its_circuit_breaker(world, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "STOPPED_TASK_RETENTION_SECONDS": 3600}
    account, cluster, td = world
    service = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=td)
    rolling = Deployment.objects.create(service=service, deployment_id="ecs-svc/1", task_definition=td,
                                        rollout_state=Deployment.IN_PROGRESS)
    done = Deployment.objects.create(service=service, deployment_id="ecs-svc/2", task_definition=td,
                                     status=Deployment.INACTIVE, rollout_state=Deployment.COMPLETED)
    kept = _task(world, stopped_ago=7200, service=service, deployment=rolling, stop_code="TaskFailedToStart")
    _task(world, stopped_ago=7200, service=service, deployment=done, stop_code="TaskFailedToStart")
    assert retention.prune_stopped_tasks() == 1
    assert list(Task.objects.values_list("pk", flat=True)) == [kept.pk]


def test_activity_is_pruned_by_age_and_beyond_the_count_the_oldest_first(db, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "ACTIVITY_RETENTION_SECONDS": 3600,
                            "ACTIVITY_RETENTION_COUNT": 3}
    now = timezone.now()
    for n, age in enumerate([7200, 50, 40, 30, 20]):
        Activity.objects.create(component="frontend", action=f"a{n}", created_at=now - timedelta(seconds=age))
    assert retention.prune_activity(now) == 2
    assert sorted(Activity.objects.values_list("action", flat=True)) == ["a2", "a3", "a4"]


@pytest.mark.django_db(transaction=True)
def test_describe_tasks_answers_a_forgotten_task_missing_as_ecs_does(ecs, settings):  # noqa: F811
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "STOPPED_TASK_RETENTION_SECONDS": 3600}
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    task = _task((account, cluster, td), stopped_ago=3700)
    arn = task.arn
    assert ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]["taskArn"] == arn
    retention.prune()
    answer = ecs.describe_tasks(cluster="demo", tasks=[arn])
    assert answer["tasks"] == []
    assert answer["failures"] == [{"arn": arn, "reason": "MISSING"}]
