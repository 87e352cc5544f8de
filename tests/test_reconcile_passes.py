"""The reconcile loop made visible: each cluster manager pass over a service, desired against
observed and what the plan chose, kept as data; a pass that acts on its own starts a trace."""
import pytest

from orchestrator import traces
from orchestrator.cluster_manager import ClusterManager, StartTasks, StopTasks, describe_pass
from orchestrator.models import (
    Account, Activity, Cluster, Deployment, ReconcilePass, Service, ServiceEvent, Task, TaskDefinition, Trace,
)
from tests.test_cluster_manager import service, task


def test_a_pass_reads_desired_observed_and_the_actions_chosen():
    state = service(3)
    tasks = [task(1), task(2), task(3, "PENDING"), task(4, "STOPPED")]
    desired, running, pending, words, summary = describe_pass(state, tasks, [StartTasks(1, "d")])
    assert (desired, running, pending, words) == (3, 2, 1, ["start 1"])
    assert summary == "desired 3, running 2, pending 1 → start 1"
    assert describe_pass(state, tasks[:3], [])[4] == "desired 3, running 2, pending 1 → nothing to do"
    stop = StopTasks([1, 2], ["t1", "t2"], "scale in", running=True)
    assert describe_pass(service(0), tasks[:2], [stop])[4] == "desired 0, running 2, pending 0 → stop 2 running"


@pytest.fixture
def web(db):
    """Service web (desired 2) of the default account with a PRIMARY deployment and no task."""
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512,
                                       body={"containerDefinitions": [{"name": "web", "image": "busybox"}]})
    svc = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=td, desired_count=2)
    Deployment.objects.create(service=svc, deployment_id=Deployment.new_id(), task_definition=td)
    return svc


def test_a_pass_that_starts_tasks_on_its_own_starts_a_trace_its_tasks_and_events_continue(web):
    manager = ClusterManager(enqueue=lambda key, delay=0, urgent=False: None)
    manager.sync_service(web.pk)
    [kept] = ReconcilePass.objects.filter(service=web)
    assert kept.summary == "desired 2, running 0, pending 0 → start 2"
    assert kept.trace_id and Trace.objects.get(trace_id=kept.trace_id).account == web.account
    assert set(Task.objects.filter(service=web).values_list("trace_id", flat=True)) == {kept.trace_id}
    event = ServiceEvent.objects.get(service=web, message__contains="has started 2 tasks")
    assert event.trace_id == kept.trace_id
    step = Activity.objects.get(trace_id=kept.trace_id, component="cluster_manager", action="reconcile")
    assert step.duration_ms >= 0 and "start 2" in step.message
    assert traces.current() == ""


def test_a_pass_continues_the_trace_it_works_for(web):
    manager = ClusterManager(enqueue=lambda key, delay=0, urgent=False: None)
    with traces.continuing("t-update"):
        manager.sync_service(web.pk)
    assert ReconcilePass.objects.get(service=web).trace_id == "t-update"
    assert set(Task.objects.filter(service=web).values_list("trace_id", flat=True)) == {"t-update"}


def test_passes_with_nothing_to_do_count_up_and_only_the_last_n_are_kept(web, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "RECONCILE_PASSES_KEPT": 3}
    manager = ClusterManager(enqueue=lambda key, delay=0, urgent=False: None)
    manager.sync_service(web.pk)  # start 2
    manager.sync_service(web.pk)  # pending 2: nothing to do
    manager.sync_service(web.pk)  # the same: counted, not kept again
    passes = list(ReconcilePass.objects.filter(service=web))
    assert [p.summary for p in passes] == ["desired 2, running 0, pending 2 → nothing to do",
                                           "desired 2, running 0, pending 0 → start 2"]
    assert passes[0].repeats == 2
    for desired in (3, 4, 5, 6):
        Service.objects.filter(pk=web.pk).update(desired_count=desired)
        manager.sync_service(web.pk)
    assert ReconcilePass.objects.filter(service=web).count() == 3
    assert ReconcilePass.objects.filter(service=web).first().summary.startswith("desired 6,")
