"""Fargate Spot interruptions: the draw on plain data, the warning bounding the agent's stop
plan, and what an interruption writes (the task, its service's event, the trace)."""
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator import spot
from orchestrator.agent import (
    Advance, AwaitExit, ContainerSeen, ContainerWanted, DrainTargets, SignalStop, TaskWanted, plan_task,
)
from orchestrator.models import Account, Activity, Cluster, Service, Task, TaskDefinition, Trace


def test_the_chance_of_an_interruption_grows_with_the_rate_and_the_time():
    assert spot.chance(0, 3600) == 0 and spot.chance(1, 0) == 0
    assert spot.chance(1, 3600) == pytest.approx(1 - 1 / 2.718281828, rel=1e-6)  # one an hour on average
    assert spot.chance(6, 600) == pytest.approx(spot.chance(1, 3600))
    assert spot.chance(10_000, 10) > 0.99


def test_the_draw_takes_each_task_with_that_chance():
    rng = random.Random(7)
    tasks = list(range(10_000))
    drawn = spot.draw(tasks, 6, 60, rng)  # 6 an hour, over a minute: about 1 in 10.5
    assert 850 < len(drawn) < 1050
    assert spot.draw(tasks, 0, 60, rng) == []


def spot_wanted(stop_by, stop_timeout=60, load_balanced=False):
    return TaskWanted("STOPPED", "RUNNING", [ContainerWanted("web", True, stop_timeout)], has_instance=True,
                      load_balanced=load_balanced, stop_by=stop_by)


def test_the_warning_brings_sigkill_forward_from_a_longer_stop_timeout():
    actions = plan_task(spot_wanted(stop_by=1003.0), [ContainerSeen("abc", "web", "running")], now=1000.0)
    assert actions[:2] == [Advance("RUNNING", "DEACTIVATING"), Advance("DEACTIVATING", "STOPPING")]
    assert SignalStop({"abc": 1003.0}) in actions and actions[-1] == AwaitExit(1003.0)
    short = plan_task(spot_wanted(stop_by=1100.0, stop_timeout=5), [ContainerSeen("abc", "web", "running")], now=1000.0)
    assert SignalStop({"abc": 1005.0}) in short  # a stopTimeout within the warning is kept


def test_draining_waits_no_longer_than_the_warning():
    actions = plan_task(spot_wanted(stop_by=1003.0, load_balanced=True), [ContainerSeen("abc", "web", "running")],
                        now=1000.0)
    assert DrainTargets(1003.0) in actions
    plain = TaskWanted("STOPPED", "RUNNING", [ContainerWanted("web", True)], has_instance=True, load_balanced=True)
    assert DrainTargets(None) in plan_task(plain, [ContainerSeen("abc", "web", "running")], now=1000.0)


@pytest.fixture
def spot_task(db):
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="spot", capacity_providers=["FARGATE_SPOT"])
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    service = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=td, desired_count=1)
    return Task.objects.create(account=account, cluster=cluster, task_definition=td, service=service, cpu=256,
                               memory=512, capacity_provider="FARGATE_SPOT", last_status=Task.RUNNING)


def test_an_interruption_marks_the_task_to_stop_and_tells_its_service(spot_task, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "SPOT_WARNING_SECONDS": 5.0}
    assert spot.interrupt(spot_task)
    task = Task.objects.get(pk=spot_task.pk)
    assert (task.desired_status, task.last_status) == ("STOPPED", "RUNNING")
    assert (task.stop_code, task.stopped_reason) == ("SpotInterruption", "Your Spot Task was interrupted.")
    assert spot.stop_by(task) == pytest.approx((task.stopping_at + timedelta(seconds=5)).timestamp())
    [event] = spot_task.service.events.all()
    assert f"task {task.task_id} will be interrupted" in event.message and event.trace_id == task.stop_trace_id
    trace = Trace.objects.get(trace_id=task.stop_trace_id)
    assert (trace.component, trace.action, trace.object_arn) == ("capacity_manager", "spot-interruption", task.arn)
    step = Activity.objects.get(trace_id=trace.trace_id, action="spot-interruption")
    assert "SIGTERM now" in step.message and "5 s warning" in step.message
    assert not spot.interrupt(task)  # already stopping: one warning only


def test_only_a_running_spot_task_is_interrupted(spot_task):
    Task.objects.filter(pk=spot_task.pk).update(capacity_provider="FARGATE")
    assert not spot.interruptible(Task.objects.get(pk=spot_task.pk))
    assert not spot.interrupt(spot_task)
    Task.objects.filter(pk=spot_task.pk).update(capacity_provider="FARGATE_SPOT", last_status=Task.PENDING)
    assert not spot.interrupt(spot_task)
    assert Task.objects.get(pk=spot_task.pk).desired_status == "RUNNING"
    assert not Trace.objects.exists() and not spot_task.service.events.exists()  # nothing half-written


def test_the_sweep_interrupts_at_the_configured_rate_only(spot_task, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "SPOT_INTERRUPTION_RATE": 0.0}
    assert spot.sweep(3600) == 0
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "SPOT_INTERRUPTION_RATE": 1e6}
    assert spot.sweep(10) == 1
    assert Task.objects.get(pk=spot_task.pk).stop_code == "SpotInterruption"
    assert spot.sweep(10) == 0  # nothing left running on FARGATE_SPOT


def test_stop_by_is_none_for_other_stops():
    task = Task(stop_code="UserInitiated", stopping_at=timezone.now())
    assert spot.stop_by(task) is None


# --- the task page's action ------------------------------------------------------------------

def interrupt_url(task):
    return f"/tasks/{task.task_id}/interrupt/"


def test_the_task_page_interrupts_its_owners_spot_task(spot_task, alice_client):
    response = alice_client.post(interrupt_url(spot_task))
    assert response.status_code == 302 and response["Location"] == f"/tasks/{spot_task.task_id}/"
    assert Task.objects.get(pk=spot_task.pk).stop_code == "SpotInterruption"
    page = alice_client.get(response["Location"])
    assert "Spot interruption sent" in page.content.decode()


def test_the_action_refuses_get_a_missing_csrf_token_and_another_accounts_task(spot_task, alice, django_user_model):
    from django.test import Client

    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(alice)
    assert guarded.post(interrupt_url(spot_task)).status_code == 403
    guarded.get(f"/tasks/{spot_task.task_id}/")
    assert guarded.get(interrupt_url(spot_task)).status_code == 405
    charlie = django_user_model.objects.create_user("charlie", password="pw")
    Account.objects.create(account_id="222222222222", name="charlie").members.add(charlie)
    other = Client()
    other.force_login(charlie)
    assert other.post(interrupt_url(spot_task)).status_code == 404
    assert Task.objects.get(pk=spot_task.pk).desired_status == "RUNNING"


def test_the_action_says_why_it_cannot_interrupt(spot_task, alice_client):
    Task.objects.filter(pk=spot_task.pk).update(capacity_provider="")
    response = alice_client.post(interrupt_url(spot_task))
    assert response.status_code == 400
    assert "Only a FARGATE_SPOT task can be interrupted: this one runs on FARGATE." in response.content.decode()
    Task.objects.filter(pk=spot_task.pk).update(capacity_provider="FARGATE_SPOT", desired_status="STOPPED")
    response = alice_client.post(interrupt_url(spot_task))
    assert response.status_code == 400 and "there is nothing to interrupt" in response.content.decode()
    assert Task.objects.get(pk=spot_task.pk).stop_code == ""
