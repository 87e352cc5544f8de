"""The cluster manager: the service scheduler's plan on plain data, and services on real Docker."""
from datetime import datetime, timedelta, timezone as tz

import pytest

from orchestrator.cluster_manager import (
    THROTTLE_EVENT, AddEvent, CompleteRollout, DeploymentState, MarkInactive, RequeueAfter, RetireDeployment, ServiceState, SetCounts, SetSteady, StartTasks,
    StopTasks, TaskState, plan,
)
from orchestrator.models import Service, ServiceEvent

T0 = datetime(2026, 1, 1, tzinfo=tz.utc)
DEP = "ecs-svc/1111111111111111111"
OLD = "ecs-svc/2222222222222222222"


def service(desired, status="ACTIVE", steady=False, deployments=None, **fields):
    return ServiceState(1, "web", status, desired, deployments or [DeploymentState(DEP, "PRIMARY")],
                        steady=steady, **fields)


def task(pk, last="RUNNING", desired="RUNNING", age=0, deployment=DEP, running_for=3600, lb=None):
    """A task created ``age`` s after T0; a RUNNING one started ``running_for`` s before T0."""
    started = T0 - timedelta(seconds=running_for) if last == "RUNNING" else None
    return TaskState(pk, f"t{pk}", desired, last, T0 + timedelta(seconds=age), deployment, started, lb)


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def test_it_starts_the_missing_tasks():
    actions = plan(service(3), [task(1)], now=T0)
    assert of(actions, StartTasks) == [StartTasks(2, DEP)]
    assert of(actions, SetCounts) == [SetCounts(1, 0, {DEP: (3, 1, 0, 0)})]
    assert not of(actions, SetSteady)


def test_it_stops_the_surplus_preferring_tasks_not_yet_running_then_the_newest():
    tasks = [task(1, age=1), task(2, age=3), task(3, "PENDING", age=2), task(4, age=2)]
    [stop] = of(plan(service(1), tasks, now=T0), StopTasks)
    assert stop.task_pks == [3, 2, 4]
    assert stop.reason == f"Scaling activity initiated by (deployment {DEP})"


def test_it_says_steady_state_once():
    actions = plan(service(2), [task(1), task(2)], now=T0)
    assert SetSteady(True) in actions
    assert AddEvent("has reached a steady state.") in actions
    assert CompleteRollout(DEP) in actions
    again = plan(service(2, steady=True, running_count=2), [task(1), task(2)], now=T0)
    assert not of(again, AddEvent) and not of(again, SetSteady)


def test_it_is_not_steady_while_a_task_is_pending():
    actions = plan(service(2, steady=True), [task(1), task(2, "PENDING")], now=T0)
    assert SetSteady(False) in actions
    assert not of(actions, AddEvent)


def test_it_drains_a_deleted_service_and_makes_it_inactive_when_empty():
    actions = plan(service(0, status="DRAINING"), [task(1), task(2, "PROVISIONING")], now=T0)
    [stop] = of(actions, StopTasks)
    assert set(stop.task_pks) == {1, 2}
    assert not of(actions, MarkInactive)
    assert of(plan(service(0, status="DRAINING"), [], now=T0), MarkInactive) == [MarkInactive()]
    # a task still stopping keeps the service DRAINING
    assert not of(plan(service(0, status="DRAINING"), [task(1, "STOPPING", "STOPPED")], now=T0), MarkInactive)


def test_it_replaces_old_deployment_tasks_keeping_the_minimum_healthy():
    deployments = [DeploymentState(DEP, "PRIMARY"), DeploymentState(OLD, "ACTIVE")]
    old = [task(1, deployment=OLD), task(2, deployment=OLD)]
    actions = plan(service(2, deployments=deployments), old, now=T0)
    assert of(actions, StartTasks) == [StartTasks(2, DEP)]
    assert not of(actions, StopTasks)  # nothing new runs yet: minimumHealthyPercent 100
    actions = plan(service(2, deployments=deployments), old + [task(3), task(4, "PENDING")], now=T0)
    assert [s.task_pks for s in of(actions, StopTasks)] == [[2]]  # one old task, the newest
    actions = plan(service(2, deployments=deployments), [task(3), task(4)], now=T0)
    assert RetireDeployment(OLD) in actions


def test_it_throttles_a_service_whose_tasks_keep_failing_to_start():
    failing = service(1, failed_starts=3, last_failed_at=T0)
    actions = plan(failing, [], now=T0 + timedelta(seconds=1))
    assert not of(actions, StartTasks)
    # three failed starts in a row: wait 20 s (10 s after two, doubling, at most 15 minutes)
    assert of(actions, RequeueAfter) == [RequeueAfter(19.0)]
    assert AddEvent(THROTTLE_EVENT) in actions
    assert THROTTLE_EVENT.startswith("is unable to consistently start tasks successfully.")
    assert of(plan(failing, [], now=T0 + timedelta(seconds=21)), StartTasks) == [StartTasks(1, DEP)]


def test_it_does_nothing_for_an_inactive_service():
    assert plan(service(2, status="INACTIVE"), [], now=T0) == []


def running(service_obj):
    return service_obj.tasks.filter(last_status="RUNNING", desired_status="RUNNING")


@pytest.mark.docker
def test_it_keeps_a_service_at_its_desired_count_and_scales_in(
        control_plane, lab_rows, docker_engine, wait_until):
    svc = lab_rows.create_service(3)
    wait_until(lambda: running(svc).count() == 3, 30, message="3 tasks RUNNING")
    wait_until(lambda: Service.objects.get(pk=svc.pk).running_count == 3, 10, message="running_count 3")
    wait_until(lambda: ServiceEvent.objects.filter(service=svc, message__endswith="has reached a steady state.")
               .exists(), 10, message="steady-state event")
    assert ServiceEvent.objects.filter(message__startswith=f"(service {svc.name}) has started 3 tasks: (task ").exists()
    assert len([c for c in docker_engine.list_containers() if c["state"] == "running"]) == 3
    task = svc.tasks.first()
    assert task.group == f"service:{svc.name}" and task.started_by == svc.deployments.get().deployment_id
    assert svc.deployments.get().rollout_state == "COMPLETED"

    lab_rows.update_service(svc, desired_count=1)
    wait_until(lambda: len(docker_engine.list_containers()) == 1, 30, message="one container left")
    wait_until(lambda: Service.objects.get(pk=svc.pk).running_count == 1, 10, message="running_count 1")
    # A stopping task's container is removed just before it is reported STOPPED.
    stopped = svc.tasks.filter(last_status="STOPPED")
    wait_until(lambda: stopped.count() == 2, 10, message="the 2 surplus tasks STOPPED")
    assert running(svc).count() == 1
    assert set(stopped.values_list("stop_code", flat=True)) == {"ServiceSchedulerInitiated"}
    assert ServiceEvent.objects.filter(message__contains="has stopped 2 running tasks: (task ").exists()


@pytest.mark.docker
def test_it_drains_a_deleted_service_to_no_containers(control_plane, lab_rows, docker_engine, wait_until):
    svc = lab_rows.create_service(2)
    wait_until(lambda: running(svc).count() == 2, 30, message="2 tasks RUNNING")
    lab_rows.update_service(svc, status="DRAINING", desired_count=0)
    wait_until(lambda: Service.objects.get(pk=svc.pk).status == "INACTIVE", 30, message="service INACTIVE")
    assert docker_engine.list_containers() == []
    assert not svc.tasks.exclude(last_status="STOPPED").exists()
