"""Task scale-in protection: the API through boto3, and the rollout's respect of it on plain data."""
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator.cluster_manager import RequeueAfter, StopTasks, plan
from orchestrator.deployments import RolloutTask, plan_rollout
from orchestrator.models import Task
from tests.support.api import FARGATE, assert_model_shape, error_of, fargate_task_definition
from tests.test_deployments_plan import NEW, OLD, T0, service, task

ARN = "arn:aws:ecs:us-east-1:000000000000:task/demo/"


@pytest.fixture
def demo(ecs):
    """A cluster "demo" with a service "svc" of 2 tasks and a standalone task."""
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    service = ecs.create_service(cluster="demo", serviceName="svc", taskDefinition="web:1", desiredCount=0, **FARGATE)["service"]
    deployment = service["deployments"][0]["id"]
    ecs.run_task(cluster="demo", taskDefinition="web:1", count=3, **FARGATE)
    tasks = list(Task.objects.order_by("pk"))
    Task.objects.filter(pk__in=[t.pk for t in tasks[:2]]).update(
        service_id=tasks[0].cluster.services.get().pk,
        deployment_id=tasks[0].cluster.services.get().deployments.get(deployment_id=deployment).pk)
    ecs.ids = [t.task_id for t in tasks]
    return ecs


def test_it_protects_service_tasks_for_120_minutes_by_default(demo):
    before = timezone.now()
    response = demo.update_task_protection(cluster="demo", tasks=[demo.ids[0]], protectionEnabled=True)
    assert_model_shape("UpdateTaskProtection", response)
    (shown,) = response["protectedTasks"]
    assert shown["taskArn"] == ARN + demo.ids[0] and shown["protectionEnabled"] is True
    expires = shown["expirationDate"]
    assert before + timedelta(minutes=119) < expires < timezone.now() + timedelta(minutes=121)
    read = demo.get_task_protection(cluster="demo", tasks=[demo.ids[0], demo.ids[1]])
    assert_model_shape("GetTaskProtection", read)
    assert [t["protectionEnabled"] for t in read["protectedTasks"]] == [True, False]
    assert "expirationDate" not in read["protectedTasks"][1]


def test_expires_in_minutes_is_reset_on_each_call_and_protection_can_be_lifted(demo):
    demo.update_task_protection(cluster="demo", tasks=[demo.ids[0]], protectionEnabled=True, expiresInMinutes=2880)
    response = demo.update_task_protection(cluster="demo", tasks=[demo.ids[0]], protectionEnabled=True,
                                           expiresInMinutes=1)
    assert response["protectedTasks"][0]["expirationDate"] < timezone.now() + timedelta(minutes=2)
    lifted = demo.update_task_protection(cluster="demo", tasks=[demo.ids[0]], protectionEnabled=False)
    assert lifted["protectedTasks"] == [{"taskArn": ARN + demo.ids[0], "protectionEnabled": False}]
    assert Task.objects.get(task_id=demo.ids[0]).protected_until is None


def test_an_expired_protection_reads_as_off(demo):
    demo.update_task_protection(cluster="demo", tasks=[demo.ids[0]], protectionEnabled=True)
    Task.objects.filter(task_id=demo.ids[0]).update(protected_until=timezone.now() - timedelta(seconds=1))
    (shown,) = demo.get_task_protection(cluster="demo", tasks=[demo.ids[0]])["protectedTasks"]
    assert shown["protectionEnabled"] is False


def test_a_standalone_or_unknown_task_is_a_failure_and_changes_nothing(demo):
    response = demo.update_task_protection(cluster="demo", tasks=[demo.ids[2], "nope"], protectionEnabled=True)
    assert response["protectedTasks"] == []
    assert [(f["arn"], f["reason"]) for f in response["failures"]] == [
        (ARN + demo.ids[2], "TASK_NOT_VALID"), (ARN + "nope", "MISSING")]
    assert not Task.objects.exclude(protected_until=None).exists()


def test_it_refuses_an_expiry_outside_1_to_2880_minutes_and_more_than_10_tasks(demo):
    for minutes in (0, 2881):
        code, message, _ = error_of(demo.update_task_protection, cluster="demo", tasks=[demo.ids[0]],
                                    protectionEnabled=True, expiresInMinutes=minutes)
        assert code == "InvalidParameterException" and "2880" in message
    code, _, _ = error_of(demo.update_task_protection, cluster="demo", tasks=[demo.ids[0]] * 11,
                          protectionEnabled=True)
    assert code == "InvalidParameterException"
    code, _, _ = error_of(demo.update_task_protection, cluster="nope", tasks=[demo.ids[0]], protectionEnabled=True)
    assert code == "ClusterNotFoundException"
    assert not Task.objects.exclude(protected_until=None).exists()


def test_get_task_protection_without_tasks_lists_the_clusters_service_tasks(demo):
    tasks = demo.get_task_protection(cluster="demo")["protectedTasks"]
    assert sorted(t["taskArn"] for t in tasks) == sorted(ARN + i for i in demo.ids[:2])


def protected(pk, deployment=NEW, minutes=60):
    t = task(pk, deployment)
    t.protected_until = T0 + timedelta(minutes=minutes)
    return t


def test_a_scale_in_stops_only_unprotected_tasks_and_looks_again_when_protection_expires():
    svc = service(1, primary_state="COMPLETED")
    svc.deployments = svc.deployments[:1]
    actions = plan(svc, [protected(1), protected(2, minutes=5), task(3)], now=T0)
    assert [pk for a in actions if isinstance(a, StopTasks) for pk in a.task_pks] == [3]
    assert [a.seconds for a in actions if isinstance(a, RequeueAfter)] == [300]


def test_a_deployment_waits_for_a_protected_old_task():
    svc = service(1)
    actions = plan(svc, [protected(1, OLD), task(2, NEW)], now=T0)
    assert not [a for a in actions if isinstance(a, StopTasks)]
    assert [a.seconds for a in actions if isinstance(a, RequeueAfter)] == [3600]
    expired = protected(1, OLD, minutes=-1)
    actions = plan(svc, [expired, task(2, NEW)], now=T0)
    assert [pk for a in actions if isinstance(a, StopTasks) for pk in a.task_pks] == [1]


def test_plan_rollout_never_picks_a_protected_surplus_task():
    tasks = [RolloutTask(key=i, primary=True, running=True, healthy=True, created_order=i, protected=i < 3)
             for i in range(4)]
    step = plan_rollout(1, tasks)
    assert sorted(step.stop) == [3] and step.start == 0
