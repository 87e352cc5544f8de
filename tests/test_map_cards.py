"""The map's cards tell what happened: the state database card names each written object and
what changed, the Docker card lists the operations Docker performed for the agents, and an
agent's reports keep its instance's heartbeat fresh (bounded in writes)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard import broadcast, fragments
from orchestrator import bus
from orchestrator.agent import Agent
from orchestrator.models import Activity, ContainerInstance, Task


@pytest.fixture
def fresh_writes():
    """An empty write log (it is the process's, shared by the tests that run in it)."""
    with broadcast._describe_lock, broadcast._writes_lock:
        broadcast._writes.clear()
        broadcast._seen.clear()


def changes_of(write):
    """A write's changes as text: "last_status PENDING RUNNING" (before, if any, then after)."""
    return [" ".join(part for part in change if part) for change in write["changes"]]


@pytest.mark.django_db(transaction=True)
def test_each_write_names_its_object_and_what_changed_since_its_previous_write(fresh_writes, lab_rows):
    task = lab_rows.run_task()
    broadcast.describe_writes()  # as the broadcaster does when it passes each batch on
    for status in (Task.PENDING, Task.RUNNING):
        Task.objects.filter(pk=task.pk).update(last_status=status)
        bus.publish("task", task.pk)
        broadcast.describe_writes()
    running, pending, created = broadcast.recent_writes(3)
    assert {w["label"] for w in (running, pending, created)} == {task.task_id[:8]}
    assert changes_of(created) == ["last_status PROVISIONING", "desired_status RUNNING", "health_status UNKNOWN"]
    assert changes_of(pending) == ["last_status PROVISIONING PENDING"]
    assert changes_of(running) == ["last_status PENDING RUNNING"]

    html = fragments.render("card-statedb")
    assert f'{task.task_id[:8]}</code> <span class="change">last_status PENDING → RUNNING</span>' in html
    assert f"#{task.pk}" not in html


@pytest.mark.django_db(transaction=True)
def test_a_service_write_says_its_cluster_and_name_and_the_count_that_changed(fresh_writes, lab_rows):
    service = lab_rows.create_service(1)
    broadcast.describe_writes()
    lab_rows.update_service(service, desired_count=3)
    [write] = broadcast.recent_writes(1)
    assert write["label"] == f"{lab_rows.cluster.name}/svc"
    assert changes_of(write) == ["desired_count 1 3"]


@pytest.mark.docker
def test_the_docker_card_lists_the_operations_docker_performed_for_a_task(control_plane, lab_rows, wait_until):
    task = lab_rows.run_task()
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == Task.RUNNING, 30, message="task RUNNING")
    Task.objects.filter(pk=task.pk).update(desired_status=Task.STOPPED, stop_code="UserInitiated")
    bus.publish("task", task.pk)
    wanted = {"create", "start", "kill", "die", "destroy"}

    def operations():
        return set(Activity.objects.filter(component="docker", object_arn=task.arn).values_list("action", flat=True))

    wait_until(lambda: wanted <= operations(), 30, message=f"Docker operations {wanted}")
    die = Activity.objects.filter(component="docker", object_arn=task.arn, action="die").first()
    assert f"container web of task {task.task_id[:8]}" in die.message and "exit code" in die.message
    html = fragments.render("card-docker")
    assert "No Docker operation yet." not in html
    assert '<span class="kind">start</span>' in html and task.task_id[:8] in html


@pytest.mark.docker
@pytest.mark.django_db(transaction=True)
def test_an_agents_reports_refresh_its_instances_heartbeat_at_a_bounded_rate(docker_engine, lab_id, fresh_writes):
    long_ago = timezone.now() - timedelta(hours=1)
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192,
                                                engine_url="", last_heartbeat=long_ago)
    agent = Agent("", enqueue=lambda key: None)
    agent.relist()  # the agent has just heard from its engine: a heartbeat
    instance.refresh_from_db()
    first = instance.last_heartbeat
    assert first > long_ago

    ContainerInstance.objects.filter(pk=instance.pk).update(last_heartbeat=long_ago)
    agent.handle_event({"Action": "start", "id": "abc", "Actor": {"Attributes": {"name": "x"}}})
    instance.refresh_from_db()
    assert instance.last_heartbeat == long_ago  # within HEARTBEAT_SECONDS of the last: no write

    agent.HEARTBEAT_SECONDS = 0.0
    agent.handle_event({"Action": "die", "id": "abc", "Actor": {"Attributes": {"name": "x", "exitCode": "0"}}})
    instance.refresh_from_db()
    assert instance.last_heartbeat >= first
    # Heartbeats are writes the card leaves out: they would crowd out the ones a class watches.
    assert [w for w in broadcast.recent_writes(10) if w["kind"] == "instance"] == []
