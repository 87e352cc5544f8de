"""Traces: steps recorded as components work, the trace carried by the work queue, the JSON
endpoint and its tenancy, pruning, and the Kubernetes counterpart of each step."""
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator import activity, traces
from orchestrator.frontend import call
from orchestrator.models import Account, Activity, Cluster, Trace
from orchestrator.workqueue import WorkQueue


def test_a_step_records_its_component_action_object_start_and_duration(db):
    trace_id = traces.begin("frontend", "RunTask")
    with traces.continuing(trace_id):
        with traces.step("agent", "create", "arn:aws:ecs:us-east-1:000000000000:task/demo/abc") as step:
            step.message = "created"
    row = Activity.objects.get(trace_id=trace_id)
    assert (row.component, row.action, row.message) == ("agent", "create", "created")
    assert row.object_arn.endswith("task/demo/abc")
    assert row.started_at <= row.created_at and row.duration_ms >= 0


def test_a_step_that_raises_is_recorded_with_what_went_wrong(db):
    with pytest.raises(ValueError), traces.step("agent", "start", message="starting", trace_id="t1"):
        raise ValueError("no such container")
    row = Activity.objects.get(trace_id="t1")
    assert "ValueError: no such container" in row.message


def test_records_join_the_current_trace_unless_told_otherwise(db):
    with traces.continuing("t-current"):
        activity.record("cluster_manager", "start-task")
        activity.record("agent", "kill", trace_id="")
    assert list(Activity.objects.order_by("id").values_list("trace_id", flat=True)) == ["t-current", ""]
    assert traces.current() == ""


def test_adopt_begins_a_trace_only_within_a_block_and_not_beyond_it(db):
    with traces.continuing(""):
        begun = traces.adopt("docker", "die", account=Account.default())
        assert traces.current() == begun
    assert traces.current() == ""
    assert Trace.objects.get(trace_id=begun).component == "docker"
    outside = traces.adopt("cluster_manager", "reconcile")
    assert outside and traces.current() == ""  # never leaks into the caller's thread


def test_the_queue_hands_a_key_out_with_the_trace_of_whoever_asked_first():
    queue = WorkQueue()
    queue.add("task:1", trace="first")
    queue.add("task:1", trace="second")  # coalesced: the key waits once, for the first asker
    queue.add("task:2")
    assert queue.get(timeout=1) == "task:1"
    assert queue.trace_of("task:1") == "first"
    queue.add("task:1", trace="while-processing")
    queue.done("task:1")
    assert queue.trace_of("task:1") == ""
    assert queue.get(timeout=1) == "task:2" and queue.trace_of("task:2") == ""
    assert queue.get(timeout=1) == "task:1" and queue.trace_of("task:1") == "while-processing"


def test_a_delayed_and_a_retried_key_keep_their_trace():
    queue = WorkQueue(base_delay=0.01)
    queue.add_after("service:3", 0.01, trace="later")
    assert queue.get(timeout=2) == "service:3" and queue.trace_of("service:3") == "later"
    queue.done("service:3")
    queue.add_rate_limited("service:3", trace="retry")
    assert queue.get(timeout=2) == "service:3" and queue.trace_of("service:3") == "retry"


def test_an_api_call_writes_its_step_into_the_state_database_as_a_step_of_its_trace(db):
    account = Account.default()
    with traces.continuing("t-api"):
        call(account, "CreateCluster", {"clusterName": "demo"}, trace_id="t-api")
    write = Activity.objects.get(trace_id="t-api", component="state_database")
    assert write.action == "write" and "CreateCluster" in write.message and write.duration_ms > 0
    with traces.continuing("t-read"):
        call(account, "ListClusters", {}, trace_id="t-read")
    assert not Activity.objects.filter(trace_id="t-read").exists()  # reads write nothing


def test_steps_are_ordered_by_start_with_offsets_durations_and_counterparts(db):
    now = timezone.now()
    Activity.objects.create(component="agent", action="start", trace_id="t", started_at=now + timedelta(milliseconds=300),
                            duration_ms=50)
    Activity.objects.create(component="frontend", action="RunTask", trace_id="t", started_at=now, duration_ms=20)
    Activity.objects.create(component="capacity_manager", action="place", trace_id="t",
                            started_at=now + timedelta(milliseconds=40), duration_ms=5)
    steps = traces.steps("t")
    assert [s["component"] for s in steps] == ["frontend", "capacity_manager", "agent"]
    assert [s["start_ms"] for s in steps] == [0.0, 40.0, 300.0]
    assert steps[2]["kubernetes"] == "CRI RuntimeService.StartContainer"
    assert steps[1]["kubernetes"] == "kube-scheduler: Filter, Score, Bind"
    assert traces.span_ms(steps) == 350.0


def test_every_component_has_a_kubernetes_counterpart():
    for component in ("frontend", "state_database", "cluster_manager", "capacity_manager", "agent", "docker"):
        assert traces.kubernetes_counterpart(component, "something new")
    assert "SyncPod" in traces.kubernetes_counterpart("agent", "sync")
    assert "CreateContainer" in traces.kubernetes_counterpart("agent", "create")


def test_old_traces_and_traces_beyond_the_count_are_pruned_with_their_steps(db, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "TRACE_RETENTION_SECONDS": 3600, "TRACE_RETENTION_COUNT": 2}
    now = timezone.now()
    for n, age in enumerate([7200, 30, 20, 10]):
        Trace.objects.create(trace_id=f"t{n}", component="frontend", action="RunTask",
                             started_at=now - timedelta(seconds=age))
        Activity.objects.create(component="frontend", action="RunTask", trace_id=f"t{n}")
    Activity.objects.create(component="capacity_manager", action="launch-instance")  # no trace: kept
    assert traces.prune(now) == 2
    assert sorted(Trace.objects.values_list("trace_id", flat=True)) == ["t2", "t3"]
    assert sorted(Activity.objects.values_list("trace_id", flat=True)) == ["", "t2", "t3"]


@pytest.fixture
def two_traces(db):
    """A trace of the default account and one of bob's account."""
    mine = Account.default()
    bob = Account.objects.create(account_id="222222222222", name="bob")
    traces.begin("frontend", "RunTask", account=mine, trace_id="mine")
    traces.begin("frontend", "RunTask", account=bob, trace_id="bobs")
    for trace_id in ("mine", "bobs"):
        activity.record("frontend", "RunTask", message="RunTask → 200", trace_id=trace_id,
                        started_at=timezone.now(), duration_ms=12.5)
    return mine, bob


def test_the_json_endpoint_gives_the_steps_of_the_viewers_trace(alice_client, two_traces):
    response = alice_client.get("/traces/mine.json")
    assert response.status_code == 200
    body = response.json()
    assert body["trace_id"] == "mine"
    assert body["steps"][0] == {
        "component": "frontend", "action": "RunTask", "object_arn": "", "message": "RunTask → 200",
        "start_ms": 0.0, "duration_ms": 12.5, "kubernetes": "kube-apiserver: authentication, authorization, admission",
        "details": {}, "aws_command": "", "kubectl_command": "",  # a step written without the call's parameters
    }


def test_another_accounts_trace_is_not_found(alice_client, two_traces):
    assert alice_client.get("/traces/bobs.json").status_code == 404
    assert alice_client.get("/traces/bobs/").status_code == 404
    assert alice_client.get("/traces/nothing/").status_code == 404


def test_staff_see_every_trace(client, django_user_model, two_traces):
    client.force_login(django_user_model.objects.create_user("teacher", password="pw", is_staff=True))
    assert client.get("/traces/bobs.json").status_code == 200


def test_the_trace_page_needs_a_login(client, two_traces):
    assert client.get("/traces/mine/").status_code == 302
    assert client.get("/traces/mine.json").status_code == 302


def test_cluster_create_through_the_dashboard_starts_a_trace_of_the_users_account(alice_client):
    response = alice_client.post("/clusters/", {"name": "demo"})
    assert response.status_code == 302
    row = Activity.objects.get(component="frontend", action="CreateCluster")
    trace = Trace.objects.get(trace_id=row.trace_id)
    assert trace.account == Account.default()
    assert Activity.objects.filter(trace_id=row.trace_id, component="state_database").exists()
    assert Cluster.objects.filter(name="demo").exists()


def test_the_trace_page_renders_a_placement_decision_with_rejected_and_scored_instances(alice_client, two_traces):
    considered = [
        {"instance": "fleet-2", "status": "ACTIVE", "cpu_free": 3840, "memory_free": 7680, "verdict": "chosen",
         "score": "most room: 3840 CPU units, 7680 MiB free", "rank": 1},
        {"instance": "fleet-1", "status": "ACTIVE", "cpu_free": 0, "memory_free": 0, "verdict": "rejected",
         "reason": "CPU short by 256 units (needs 256, 0 free)"},
    ]
    activity.record("capacity_manager", "place", message="placed", trace_id="mine", started_at=timezone.now(),
                    duration_ms=1.5, details={"chosen": "fleet-2", "considered": considered})
    page = alice_client.get("/traces/mine/").content.decode()
    assert "CPU short by 256 units" in page and "most room: 3840 CPU units" in page
    assert 'class="verdict-chosen"' in page and "kube-scheduler: Filter, Score, Bind" in page


def test_a_stopped_task_remembers_the_trace_that_stopped_it(db):
    from orchestrator.models import Task, TaskDefinition

    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512,
                                       body={"containerDefinitions": [{"name": "web", "image": "busybox"}]})
    task = Task.objects.create(account=account, cluster=cluster, task_definition=td, cpu=256, memory=512,
                               trace_id="t-run", last_status=Task.RUNNING)
    with traces.continuing("t-stop"):
        call(account, "StopTask", {"cluster": "demo", "task": task.task_id}, trace_id="t-stop")
    task.refresh_from_db()
    assert (task.trace_id, task.stop_trace_id) == ("t-run", "t-stop")
