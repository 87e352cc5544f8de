"""A service's running-tasks plot: those running since before the window counted by the
database, the window's changes drawn as steps, changes within one pixel drawn as one."""
from datetime import timedelta

from django.utils import timezone

from dashboard import state
from orchestrator.models import Account, Cluster, Service, Task, TaskDefinition


def _levels(plot):
    """The task counts the polyline's points stand for, in order."""
    height, top = plot["height"], plot["top"]
    return [round((height - float(p.split(",")[1])) / (height - 10) * top) for p in plot["points"].split()]


def test_the_plot_counts_the_tasks_running_over_the_window(db):
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    now = timezone.now()
    service = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=td,
                                     desired_count=4, created_at=now - timedelta(hours=3))

    def task(started_ago, stopped_ago=None):
        Task.objects.create(account=account, cluster=cluster, task_definition=td, service=service, cpu=256,
                            memory=512, started_at=now - timedelta(seconds=started_ago),
                            stopped_at=None if stopped_ago is None else now - timedelta(seconds=stopped_ago))

    for _ in range(3):
        task(7200)  # running since long before the window
    task(7200, stopped_ago=7000)  # stopped before it: not drawn at all
    task(600)  # started in the window
    task(7200, stopped_ago=300)  # running at its start, stopped in it
    for _ in range(50):  # a burst within one pixel: one step
        task(120)
    plot = state.running_plot(service, now=now)
    levels = _levels(plot)
    assert levels[0] == 4 and levels[-1] == 54
    assert 5 in levels and 54 in levels
    assert len(levels) <= 12  # start, three changes as steps (two points each), the end
