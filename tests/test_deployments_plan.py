"""The service scheduler's rollout on plain data: health, circuit breaker, rollback, throttling."""
from datetime import datetime, timedelta, timezone as tz

from orchestrator.cluster_manager import (
    CIRCUIT_BREAKER_REASON, AddEvent, CompleteRollout, DeploymentState, FailDeployment, RequeueAfter,
    RetireDeployment, Rollback, ServiceState, StartTasks, StopTasks, TaskState, health, plan,
)

T0 = datetime(2026, 1, 1, tzinfo=tz.utc)
NEW = "ecs-svc/1111111111111111111"
OLD = "ecs-svc/2222222222222222222"


def service(desired, primary_state="IN_PROGRESS", old_state="COMPLETED", failed=0, **fields):
    deployments = [DeploymentState(NEW, "PRIMARY", primary_state, failed_tasks=failed),
                   DeploymentState(OLD, "ACTIVE", old_state)]
    fields.setdefault("health_grace_seconds", 40)
    return ServiceState(1, "web", "ACTIVE", desired, deployments, **fields)


def task(pk, deployment=NEW, last="RUNNING", running_for=3600, lb=None, desired="RUNNING"):
    started = T0 - timedelta(seconds=running_for) if last == "RUNNING" else None
    return TaskState(pk, f"t{pk}", desired, last, T0 + timedelta(seconds=pk), deployment, started, lb)


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def stopped(actions):
    return sorted(pk for a in of(actions, StopTasks) for pk in a.task_pks)


def started(actions):
    return sum(a.count for a in of(actions, StartTasks))


def test_it_counts_a_task_healthy_after_the_grace_period_without_a_load_balancer():
    svc = service(1)
    assert health(task(1, running_for=39), svc, T0) == (False, True)
    assert health(task(1, running_for=40), svc, T0) == (True, False)
    assert health(task(1, last="PENDING"), svc, T0) == (False, False)


def test_it_takes_the_load_balancers_word_where_the_service_has_one():
    svc = service(1, has_load_balancer=True)
    assert health(task(1, lb="healthy", running_for=1), svc, T0) == (True, False)
    assert health(task(1, lb="initial"), svc, T0) == (False, True)
    assert health(task(1, lb="unhealthy"), svc, T0) == (False, False)
    graced = service(1, has_load_balancer=True, health_check_grace_period=60)
    assert health(task(1, lb="unhealthy", running_for=10), graced, T0) == (False, True)


def test_a_min_50_max_100_rollout_of_4_never_drops_below_2_healthy():
    svc = service(4, minimum_healthy_percent=50, maximum_percent=100)
    old = [task(i, OLD) for i in range(1, 5)]
    actions = plan(svc, old, now=T0)
    assert len(stopped(actions)) == 2 and started(actions) == 0
    # The two stopping tasks still count against the maximum: nothing starts yet.
    going = [task(i, OLD, desired="STOPPED") for i in stopped(actions)]
    kept = [t for t in old if t.pk not in stopped(actions)]
    assert started(plan(svc, kept + going, now=T0)) == 0
    assert started(plan(svc, kept, now=T0)) == 2
    # New tasks RUNNING but in their grace period: the old ones stay, and the pass looks again
    # when the first new one turns healthy.
    fresh = [task(10, running_for=30), task(11, running_for=35)]
    actions = plan(svc, kept + fresh, now=T0)
    assert stopped(actions) == [] and started(actions) == 0
    assert of(actions, RequeueAfter) == [RequeueAfter(5.0)]
    healthy = [task(10, running_for=45), task(11, running_for=50)]
    actions = plan(svc, kept + healthy, now=T0)
    assert stopped(actions) == sorted(t.pk for t in kept)


def test_it_completes_the_rollout_and_retires_the_old_deployment():
    actions = plan(service(2), [task(10), task(11)], now=T0)
    assert CompleteRollout(NEW) in actions
    assert RetireDeployment(OLD) in actions
    assert AddEvent(f"(deployment {NEW}) deployment completed.") in actions


def test_the_circuit_breaker_fails_the_deployment_at_its_threshold_and_rolls_back():
    tasks = [task(i, OLD) for i in range(1, 5)]
    below = service(4, failed=2, circuit_breaker=True, rollback=True)
    assert not of(plan(below, tasks, now=T0), FailDeployment)
    tripped = service(4, failed=3, circuit_breaker=True, rollback=True)
    actions = plan(tripped, tasks, now=T0)
    assert of(actions, FailDeployment) == [FailDeployment(NEW, CIRCUIT_BREAKER_REASON, 3)]
    assert of(actions, Rollback) == [Rollback(NEW, OLD)]
    assert AddEvent(f"(deployment {NEW}) deployment failed: tasks failed to start.") in actions
    assert AddEvent(f"rolling back to deployment {OLD}.") in actions
    assert not of(actions, StartTasks) and not of(actions, StopTasks)


def test_the_circuit_breaker_is_off_unless_enabled():
    actions = plan(service(4, failed=10), [task(i, OLD) for i in range(1, 5)], now=T0)
    assert not of(actions, FailDeployment)


def test_a_failed_deployment_without_rollback_launches_nothing_and_keeps_the_old_tasks():
    tasks = [task(i, OLD) for i in range(1, 5)]
    actions = plan(service(4, failed=3, circuit_breaker=True), tasks, now=T0)
    assert of(actions, FailDeployment) and not of(actions, Rollback)
    assert started(actions) == 0 and stopped(actions) == []
    actions = plan(service(4, primary_state="FAILED"), tasks, now=T0)
    assert started(actions) == 0 and stopped(actions) == [] and not of(actions, FailDeployment)


def test_without_a_completed_deployment_there_is_nothing_to_roll_back_to():
    actions = plan(service(2, old_state="FAILED", failed=3, circuit_breaker=True, rollback=True), [], now=T0)
    assert of(actions, FailDeployment) and not of(actions, Rollback)
    assert started(actions) == 0


def test_a_surge_of_max_200_starts_all_new_tasks_at_once():
    actions = plan(service(20), [task(i, OLD) for i in range(1, 21)], now=T0)
    assert started(actions) == 20 and stopped(actions) == []
