"""The service scheduler's plan for tasks on a DRAINING instance (ECS's container instance
draining), on plain data: replaced as a rolling update replaces old tasks, within
minimumHealthyPercent and maximumPercent."""
from dataclasses import replace

from orchestrator.cluster_manager import StartTasks, StopTasks, plan
from tests.test_cluster_manager import DEP, T0, of, service, task


def draining(t):
    return replace(t, draining=True)


def test_a_task_on_a_draining_instance_gets_its_replacement_first():
    actions = plan(service(2, steady=True), [task(1), draining(task(2))], now=T0)
    assert [a.count for a in of(actions, StartTasks)] == [1]
    assert not of(actions, StopTasks)  # 100 % minimum healthy: it stops once the replacement is healthy


def test_it_stops_the_drained_task_once_its_replacement_is_healthy():
    actions = plan(service(2), [task(1), draining(task(2)), task(3, age=1)], now=T0)
    assert not of(actions, StartTasks)
    assert [a.task_pks for a in of(actions, StopTasks)] == [[2]]


def test_with_maximum_100_percent_it_stops_first_within_the_minimum():
    state = service(2, minimum_healthy_percent=50, maximum_percent=100)
    actions = plan(state, [task(1), draining(task(2))], now=T0)
    assert [a.task_pks for a in of(actions, StopTasks)] == [[2]]
    assert not of(actions, StartTasks)  # the room comes when it has stopped


def test_a_lone_task_on_a_draining_instance_is_replaced_in_the_primary_deployment():
    actions = plan(service(1, steady=True), [draining(task(1))], now=T0)
    assert [a.deployment_id for a in of(actions, StartTasks)] == [DEP]
