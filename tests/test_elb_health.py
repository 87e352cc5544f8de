"""The service scheduler's ELB health step: task health from the targets, and the replacement of
a task that fails its health checks once the grace period is over."""
import datetime

from django.utils import timezone

from orchestrator import elb_health, load_balancer
from orchestrator.cluster_manager import ClusterManager
from orchestrator.models import Deployment, Service, Target, Task
from tests.test_load_balancer_hooks import service_task


def running_target(grace=None, started_seconds_ago=60):
    """A RUNNING service task registered in its target group, started a while ago."""
    task, tg = service_task(status=Task.RUNNING)
    Task.objects.filter(pk=task.pk).update(started_at=timezone.now() - datetime.timedelta(seconds=started_seconds_ago))
    Service.objects.filter(pk=task.service_id).update(health_check_grace_period=grace)
    (target,) = load_balancer.register_task(task)
    return Task.objects.get(pk=task.pk), tg, target


def test_it_writes_the_task_health_from_its_targets(db):
    task, tg, target = running_target()
    queued = []

    elb_health.check_service(task.service_id, lambda key, delay=0: queued.append(key))
    assert Task.objects.get(pk=task.pk).health_status == "UNKNOWN"  # initial: checks still running

    Target.objects.filter(pk=target.pk).update(state=Target.HEALTHY)
    assert elb_health.check_service(task.service_id, queued.append) == []
    assert Task.objects.get(pk=task.pk).health_status == "HEALTHY"
    assert queued == []


def test_it_stops_a_task_that_fails_its_health_checks(db):
    task, tg, target = running_target()
    Target.objects.filter(pk=target.pk).update(state=Target.UNHEALTHY, reason="Target.ResponseCodeMismatch",
                                               description="Health checks failed with these codes: [404]")
    queued = []

    assert elb_health.check_service(task.service_id, lambda key, delay=0: queued.append(key)) == [task.pk]

    task.refresh_from_db()
    assert (task.desired_status, task.health_status, task.stop_code) == ("STOPPED", "UNHEALTHY", "ServiceSchedulerInitiated")
    assert task.stopped_reason == f"Task failed ELB health checks in (target-group {tg.arn})"
    assert queued == [f"task:{task.pk}"]
    events = [e.message for e in task.service.events.all()]
    assert f"(service web) (task {task.task_id}) (port 80) is unhealthy in (target-group {tg.arn}) due to " \
           "(reason Health checks failed with these codes: [404])." in events
    assert f"(service web) has stopped 1 running tasks: (task {task.task_id})." in events
    assert elb_health.check_service(task.service_id, queued.append) == []  # once is enough


def test_it_ignores_unhealthy_checks_during_the_grace_period(db):
    task, tg, target = running_target(grace=30, started_seconds_ago=10)
    Target.objects.filter(pk=target.pk).update(state=Target.UNHEALTHY)
    queued = []

    assert elb_health.check_service(task.service_id, lambda key, delay=0: queued.append((key, delay))) == []

    assert Task.objects.get(pk=task.pk).desired_status == "RUNNING"
    ((key, delay),) = queued
    assert key == f"service:{task.service_id}" and 19 < delay <= 20


def test_the_cluster_manager_replaces_the_unhealthy_task_in_the_same_pass(db):
    task, tg, target = running_target()
    service = task.service
    Deployment.objects.create(service=service, deployment_id=Deployment.new_id(), task_definition=task.task_definition,
                              desired_count=1)
    Task.objects.filter(pk=task.pk).update(deployment=service.deployments.get())
    Target.objects.filter(pk=target.pk).update(state=Target.UNHEALTHY)

    ClusterManager(lambda key, delay=0, urgent=False: None).sync_service(service.pk)

    assert Task.objects.get(pk=task.pk).desired_status == "STOPPED"
    assert service.tasks.filter(desired_status="RUNNING", last_status="PROVISIONING").count() == 1


def test_a_failed_health_check_starts_a_trace_the_stop_and_the_replacement_continue(db):
    from orchestrator.models import Activity, Trace

    task, tg, target = running_target()
    Target.objects.filter(pk=target.pk).update(state=Target.UNHEALTHY, reason="Target.Timeout")
    ClusterManager(enqueue=lambda key, delay=0, urgent=False: None).sync_service(task.service_id)

    trace = Trace.objects.get(component="load_balancer", action="health-check-failed")
    assert trace.object_arn == task.arn and trace.account == task.account
    steps = set(Activity.objects.filter(trace_id=trace.trace_id).values_list("component", "action"))
    assert {("load_balancer", "health-check-failed"), ("cluster_manager", "stop-unhealthy"),
            ("cluster_manager", "reconcile"), ("cluster_manager", "start-task")} <= steps
    events = task.service.events.filter(message__contains="is unhealthy")
    assert list(events.values_list("trace_id", flat=True)) == [trace.trace_id]
    replacement = Task.objects.exclude(pk=task.pk).get(service_id=task.service_id)
    assert replacement.trace_id == trace.trace_id
