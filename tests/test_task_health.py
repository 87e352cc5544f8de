"""Container health on plain data: a container's healthStatus, the task's as ECS combines them
(with the load balancer's part), the agent's plan that records it, and the rollout's judgement."""
from datetime import datetime, timedelta, timezone as tz

import pytest

from orchestrator.agent import ContainerSeen, ContainerWanted, RecordHealth, TaskWanted, plan_task
from orchestrator.cluster_manager import (
    DeploymentState, RequeueAfter, ServiceState, StopTasks, TaskState, health, plan,
)
from orchestrator.docker_engine import _health_of_status, _healthcheck
from orchestrator.task_health import combine, container_health, containers_health

T0 = datetime(2026, 1, 1, tzinfo=tz.utc)
NEW, OLD = "ecs-svc/1111111111111111111", "ecs-svc/2222222222222222222"


@pytest.mark.parametrize("docker, has_check, expected", [
    ("healthy", True, "HEALTHY"), ("unhealthy", True, "UNHEALTHY"), ("starting", True, "UNKNOWN"),
    ("", True, "UNKNOWN"), ("healthy", False, "UNKNOWN"),  # a check baked into the image is not ECS's
])
def test_a_container_reports_its_docker_health_only_with_a_health_check(docker, has_check, expected):
    assert container_health(docker, has_check) == expected


@pytest.mark.parametrize("containers, expected", [
    ([(True, True, "HEALTHY"), (True, True, "HEALTHY")], "HEALTHY"),
    ([(True, True, "HEALTHY"), (True, True, "UNKNOWN")], "UNKNOWN"),
    ([(True, True, "HEALTHY"), (True, True, "UNHEALTHY")], "UNHEALTHY"),
    ([(True, True, "UNKNOWN"), (True, True, "UNHEALTHY")], "UNHEALTHY"),
    # Containers without a check report UNKNOWN and do not count.
    ([(True, True, "HEALTHY"), (True, False, "UNKNOWN")], "HEALTHY"),
    # A non-essential container's check counts only when no essential container has one.
    ([(True, True, "HEALTHY"), (False, True, "UNHEALTHY")], "HEALTHY"),
    ([(True, False, "UNKNOWN"), (False, True, "UNHEALTHY")], "UNHEALTHY"),
    ([(True, False, "UNKNOWN")], ""),
    ([], ""),
])
def test_the_task_combines_its_containers_as_ecs_does(containers, expected):
    assert containers_health(containers) == expected


@pytest.mark.parametrize("lb, containers, expected", [
    ("", "", "UNKNOWN"), ("HEALTHY", "", "HEALTHY"), ("", "UNHEALTHY", "UNHEALTHY"),
    ("HEALTHY", "HEALTHY", "HEALTHY"), ("HEALTHY", "UNKNOWN", "UNKNOWN"), ("UNKNOWN", "HEALTHY", "UNKNOWN"),
    ("HEALTHY", "UNHEALTHY", "UNHEALTHY"), ("UNHEALTHY", "HEALTHY", "UNHEALTHY"),
])
def test_with_a_load_balancer_the_task_is_healthy_only_if_both_pass(lb, containers, expected):
    assert combine(lb, containers) == expected


def test_docker_gets_the_check_in_nanoseconds_and_reports_it_in_the_list():
    assert _healthcheck({"command": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 5, "timeout": 2, "retries": 1,
                         "startPeriod": 10}) == {
        "test": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 5_000_000_000, "timeout": 2_000_000_000,
        "retries": 1, "start_period": 10_000_000_000}
    assert _healthcheck(None) is None
    assert [_health_of_status(s) for s in ("Up 3 seconds (health: starting)", "Up 2 minutes (healthy)",
                                           "Up 1 second (unhealthy)", "Up 5 seconds", "")] == [
        "starting", "healthy", "unhealthy", "", ""]


def running_task(*containers):
    return TaskWanted("RUNNING", "RUNNING", list(containers), has_instance=True)


def test_the_agent_records_a_health_change_and_nothing_when_it_is_recorded():
    checked = ContainerWanted("web", True, health_check=True, health_status="UNKNOWN")
    plain = ContainerWanted("sidecar", False)
    seen = [ContainerSeen("a", "web", "running", health="healthy"), ContainerSeen("b", "sidecar", "running")]
    assert plan_task(running_task(checked, plain), seen) == [RecordHealth({"web": "HEALTHY"})]
    recorded = ContainerWanted("web", True, health_check=True, health_status="HEALTHY")
    assert plan_task(running_task(recorded, plain), seen) == []
    seen[0].health = "unhealthy"
    assert plan_task(running_task(recorded, plain), seen) == [RecordHealth({"web": "UNHEALTHY"})]


def service(**fields):
    return ServiceState(1, "web", "ACTIVE", 1, [DeploymentState(NEW, "PRIMARY"), DeploymentState(OLD, "ACTIVE")],
                        health_grace_seconds=40.0, **fields)


def task(pk, deployment, container_health="", lb=None, running_for=3600):
    return TaskState(pk, f"t{pk}", "RUNNING", "RUNNING", T0, deployment, T0 - timedelta(seconds=running_for), lb,
                     container_health)


def test_a_task_with_a_health_check_counts_as_healthy_only_once_it_passes():
    state = service()
    assert health(task(1, NEW, "UNKNOWN"), state, T0) == (False, True)  # long past the grace: still waits
    assert health(task(1, NEW, "HEALTHY", running_for=0), state, T0) == (True, False)  # no grace to wait
    assert health(task(1, NEW, "UNHEALTHY"), state, T0) == (False, False)
    assert health(task(1, NEW), state, T0) == (True, False)  # no check: the grace period after RUNNING
    with_lb = service(has_load_balancer=True)
    assert health(task(1, NEW, "HEALTHY", lb="initial"), with_lb, T0) == (False, True)
    assert health(task(1, NEW, "UNKNOWN", lb="healthy"), with_lb, T0) == (False, True)
    assert health(task(1, NEW, "HEALTHY", lb="healthy"), with_lb, T0) == (True, False)


def test_a_rollout_keeps_the_old_task_until_the_new_ones_check_passes():
    old = task(1, OLD)
    waiting = plan(service(), [old, task(2, NEW, "UNKNOWN")], now=T0)
    assert not [a for a in waiting if isinstance(a, StopTasks)]
    assert [a for a in waiting if isinstance(a, RequeueAfter)]  # it looks again while the check runs
    passed = plan(service(), [old, task(2, NEW, "HEALTHY")], now=T0)
    assert [a.task_pks for a in passed if isinstance(a, StopTasks)] == [[1]]
