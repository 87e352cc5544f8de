"""The agent and the load balancer: a service task registers while ACTIVATING and drains while
DEACTIVATING (plan on plain data, the drain step against the state database), and image pulls
report their progress."""
import datetime

import pytest
from django.utils import timezone

from orchestrator import agent
from orchestrator.agent import (
    Advance, ContainerSeen, ContainerWanted, DrainTargets, EnsureImages, PullProgress, ReportRunning, SignalStop,
    TaskWanted, plan_task,
)
from orchestrator.models import Target, Task
from tests.test_load_balancer_hooks import service_task


def wanted(last, desired="RUNNING", load_balanced=True):
    return TaskWanted(desired, last, [ContainerWanted("web")], has_instance=True, load_balanced=load_balanced)


def test_it_registers_a_load_balanced_task_before_it_reports_running():
    actions = plan_task(wanted("PENDING"), [])
    assert actions[0] == EnsureImages()
    assert actions[-2:] == [Advance("PENDING", "ACTIVATING"), ReportRunning(register_targets=True)]
    assert plan_task(wanted("PENDING", load_balanced=False), [])[-1] == ReportRunning(register_targets=False)


def test_it_drains_between_deactivating_and_stopping():
    seen = [ContainerSeen("c1", "web", "running")]
    actions = plan_task(wanted("RUNNING", desired="STOPPED"), seen, now=100.0)
    assert actions[:4] == [Advance("RUNNING", "DEACTIVATING"), DrainTargets(), Advance("DEACTIVATING", "STOPPING"),
                           SignalStop({"c1": 130.0})]
    # A pass that finds the task still DEACTIVATING drains again (a no-op once drained) and goes on.
    assert plan_task(wanted("DEACTIVATING", desired="STOPPED"), seen)[:2] == [
        DrainTargets(), Advance("DEACTIVATING", "STOPPING")]
    assert DrainTargets() not in plan_task(wanted("RUNNING", desired="STOPPED", load_balanced=False), seen)


def test_it_drains_a_task_whose_container_died():
    actions = plan_task(wanted("RUNNING"), [ContainerSeen("c1", "web", "exited")])
    assert actions[1:3] == [Advance("RUNNING", "DEACTIVATING"), DrainTargets()]


def test_it_requeues_a_draining_task_for_when_the_delay_is_over(db):
    task, tg = service_task(delay=5.0, status=Task.DEACTIVATING)
    from orchestrator import load_balancer

    load_balancer.register_task(task)
    queued = []
    sync = agent.TaskSync.__new__(agent.TaskSync)
    sync.task, sync.enqueue = task, lambda key, delay=0: queued.append((key, delay))

    with pytest.raises(agent.Requeued):
        sync.do_DrainTargets(DrainTargets(), [])
    assert Target.objects.get(task=task).state == Target.DRAINING
    ((key, delay),) = queued
    assert key == f"task:{task.pk}" and 4.5 < delay <= 5.1

    Target.objects.filter(task=task).update(drain_until=timezone.now() - datetime.timedelta(seconds=1))
    sync.do_DrainTargets(DrainTargets(), [])  # drained: the stop goes on
    assert not Target.objects.filter(task=task).exists()
    assert len(queued) == 1


def test_it_summarizes_a_pull_stream():
    lines = []
    progress = PullProgress("127.0.0.1:5000/web:v1", lines.append, every=0)
    for message in [
        {"status": "Pulling from web", "id": "v1"},
        {"status": "Pulling fs layer", "id": "aaa"},
        {"status": "Pulling fs layer", "id": "bbb"},
        {"status": "Downloading", "id": "aaa", "progressDetail": {"current": 500_000, "total": 1_000_000}},
        {"status": "Pull complete", "id": "aaa"},
        {"status": "Already exists", "id": "bbb"},
        {"status": "Digest: sha256:0123"},
        {"status": "Status: Downloaded newer image for 127.0.0.1:5000/web:v1"},
    ]:
        progress(message)

    assert lines == [
        "127.0.0.1:5000/web:v1: Pulling from web",
        "downloading: 0/2 layers, 0.5 of 1.0 MB",
        "layer aaa: pull complete (1/2 layers, 1.0 of 1.0 MB)",
        "layer bbb: already exists (2/2 layers, 1.0 of 1.0 MB)",
    ]
    assert progress.summary() == "2/2 layers, 1.0 of 1.0 MB"
    assert progress.digest == "sha256:0123"
