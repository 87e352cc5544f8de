"""The capacity manager: placement on plain data, and placement passes on the state database."""
import pytest

from orchestrator.capacity_manager import (
    CapacityManager, InstanceRoom, PendingTask, Placement, ensure_fleet, instance_rooms, no_capacity_reason, place,
)
from orchestrator.models import Account, Activity, Cluster, ContainerInstance, Task, TaskDefinition


def test_it_places_on_the_instance_with_most_room_that_fits():
    rooms = [InstanceRoom(1, "fleet-1", 512, 1024), InstanceRoom(2, "fleet-2", 3840, 7680)]
    [decision] = place([PendingTask(10, "t", 256, 512)], rooms)
    assert decision == Placement(10, 2, "fleet-2", "fleet-2 has 3840 CPU / 7680 MiB free (most room)")


def test_it_books_capacity_as_it_places_oldest_first():
    rooms = [InstanceRoom(1, "fleet-1", 512, 1024)]
    decisions = place([PendingTask(1, "a", 256, 512), PendingTask(2, "b", 256, 512), PendingTask(3, "c", 256, 512)],
                      rooms)
    assert [d.instance_pk for d in decisions] == [1, 1, None]
    assert decisions[2].reason == "No Fargate capacity: no instance has 256 CPU units and 512 MiB free"


def test_it_checks_memory_as_well_as_cpu():
    [decision] = place([PendingTask(1, "a", 256, 2048)], [InstanceRoom(1, "fleet-1", 4096, 1024)])
    assert decision.instance_pk is None
    assert decision.reason == no_capacity_reason(256, 2048)


def test_a_decision_lists_every_instance_considered_rejected_with_why_or_scored():
    from collections import Counter

    rooms = [
        InstanceRoom(1, "fleet-1", 128, 4096),
        InstanceRoom(2, "fleet-2", 4096, 8192, status="PROVISIONING"),
        InstanceRoom(3, "fleet-3", 2048, 4096, groups=Counter({"service:web": 1})),
        InstanceRoom(4, "fleet-4", 1024, 2048),
        InstanceRoom(5, "fleet-5", 3072, 6144),
    ]
    task = PendingTask(1, "a", 512, 1024, group="service:web", strategy=[{"type": "binpack", "field": "cpu"}],
                       constraints=[{"type": "distinctInstance"}])
    [decision] = place([task], rooms)
    assert decision.instance_name == "fleet-4"
    verdicts = {c["instance"]: c for c in decision.considered}
    assert verdicts["fleet-1"]["verdict"] == "rejected"
    assert verdicts["fleet-1"]["reason"] == "CPU short by 384 units (needs 512, 128 free)"
    assert verdicts["fleet-2"]["reason"] == "not ACTIVE (PROVISIONING)"
    assert verdicts["fleet-3"]["reason"].startswith("distinctInstance")
    assert verdicts["fleet-4"]["verdict"] == "chosen" and verdicts["fleet-4"]["rank"] == 1
    assert verdicts["fleet-4"]["score"].startswith("binpack(cpu): 1024 CPU units left")
    assert verdicts["fleet-5"]["verdict"] == "scored" and verdicts["fleet-5"]["rank"] == 2
    assert [c["instance"] for c in decision.considered][:2] == ["fleet-4", "fleet-5"]


def test_a_task_that_fits_nowhere_keeps_each_instances_shortfall():
    [decision] = place([PendingTask(1, "a", 256, 2048)], [InstanceRoom(1, "fleet-1", 4096, 1024)])
    assert decision.considered == [{"instance": "fleet-1", "status": "ACTIVE", "cpu_free": 4096, "memory_free": 1024,
                                    "verdict": "rejected",
                                    "reason": "memory short by 1024 MiB (needs 2048, 1024 free)"}]


@pytest.fixture
def small_fleet(db, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "FLEET_INSTANCES": 1, "INSTANCE_CPU": 512,
                            "INSTANCE_MEMORY": 1024}
    ensure_fleet()
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="default")
    definition = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512,
                                               body={"containerDefinitions": [{"name": "web", "image": "x"}]})

    def new_task():
        return Task.objects.create(account=account, cluster=cluster, task_definition=definition, cpu=256, memory=512)

    return new_task


def test_it_places_pending_tasks_and_leaves_the_rest_waiting_with_a_reason(small_fleet):
    tasks = [small_fleet() for _ in range(3)]
    placed = []
    assert CapacityManager(on_placed=lambda pk, account_id, instance_pk: placed.append(pk)).place_pending() == 2
    for task in tasks:
        task.refresh_from_db()
    assert [t.last_status for t in tasks] == ["PENDING", "PENDING", "PROVISIONING"]
    assert placed == [tasks[0].pk, tasks[1].pk]
    assert tasks[0].container_instance.name == "fleet-1"
    assert tasks[2].pending_reason == "No Fargate capacity: no instance has 256 CPU units and 512 MiB free"
    assert Activity.objects.filter(component="capacity_manager", action="place",
                                   message__contains="fleet-1 has 512 CPU / 1024 MiB free").exists()
    assert [(r.cpu_free, r.memory_free) for r in instance_rooms()] == [(0, 0)]


def test_a_task_stopped_between_the_decision_and_the_claim_is_not_placed(small_fleet, monkeypatch):
    from orchestrator import capacity_manager

    tasks = [small_fleet() for _ in range(2)]
    decide = capacity_manager.place

    def decide_then_stop_one(pending, rooms):  # a StopTask lands while the pass decides
        decisions = decide(pending, rooms)
        Task.objects.filter(pk=tasks[0].pk).update(last_status="STOPPED", desired_status="STOPPED")
        return decisions

    monkeypatch.setattr(capacity_manager, "place", decide_then_stop_one)
    placed = []
    assert CapacityManager(on_placed=lambda pk, account_id, instance_pk: placed.append(pk)).place_pending() == 1
    assert placed == [tasks[1].pk]
    stopped, bound = Task.objects.get(pk=tasks[0].pk), Task.objects.get(pk=tasks[1].pk)
    assert (stopped.last_status, stopped.container_instance_id, stopped.version) == ("STOPPED", None, tasks[0].version)
    assert (bound.last_status, bound.container_instance.name, bound.version) == ("PENDING", "fleet-1",
                                                                                   tasks[1].version + 1)
    assert not Activity.objects.filter(component="capacity_manager", action="place", object_arn=stopped.arn).exists()


def test_it_re_places_a_waiting_task_when_capacity_frees(small_fleet):
    tasks = [small_fleet() for _ in range(3)]
    manager = CapacityManager()
    manager.place_pending()
    Task.objects.filter(pk=tasks[0].pk).update(last_status="STOPPED", desired_status="STOPPED")
    assert manager.place_pending() == 1
    tasks[2].refresh_from_db()
    assert tasks[2].last_status == "PENDING" and tasks[2].pending_reason == ""


def test_it_skips_tasks_no_longer_wanted_and_draining_instances(small_fleet):
    stopped = small_fleet()
    Task.objects.filter(pk=stopped.pk).update(desired_status="STOPPED")
    ContainerInstance.objects.update(status="DRAINING")
    waiting = small_fleet()
    assert CapacityManager().place_pending() == 0
    stopped.refresh_from_db()
    waiting.refresh_from_db()
    assert stopped.last_status == "PROVISIONING" and stopped.pending_reason == ""
    assert waiting.pending_reason.startswith("No Fargate capacity")


def test_it_creates_the_warm_pool_once(db, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "FLEET_INSTANCES": 3}
    ensure_fleet()
    ensure_fleet()
    assert list(ContainerInstance.objects.values_list("name", "status")) == [
        ("fleet-1", "ACTIVE"), ("fleet-2", "ACTIVE"), ("fleet-3", "ACTIVE")]


def test_it_places_a_run_task_by_its_own_constraints_and_strategy(db, settings):
    """RunTask's placementConstraints and placementStrategy (a service's tasks follow the service's)."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "FLEET_INSTANCES": 2, "INSTANCE_CPU": 4096,
                            "INSTANCE_MEMORY": 8192}
    ensure_fleet()
    first, second = ContainerInstance.objects.order_by("name")
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="default")
    definition = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512,
                                               body={"containerDefinitions": [{"name": "web", "image": "x"}]})

    def run(**placement):
        return Task.objects.create(account=account, cluster=cluster, task_definition=definition, cpu=256, memory=512,
                                   group="family:web", **placement)

    pinned = [run(placement_constraints=[{"type": "memberOf",
                                          "expression": f"attribute:instanceId == {first.instance_id}"}])
              for _ in range(2)]
    distinct = [run(placement_constraints=[{"type": "distinctInstance"}]) for _ in range(3)]
    CapacityManager(on_placed=lambda pk, account_id, instance_pk: None).place_pending()
    for task in pinned + distinct:
        task.refresh_from_db()
    # Without its constraint a task goes where most room is left: the pinned pair would split.
    assert [t.container_instance_id for t in pinned] == [first.pk, first.pk]
    # One task of the group per instance: the pinned pair holds the first, so one more fits on
    # the second and the rest wait, saying why.
    assert distinct[0].container_instance_id == second.pk
    assert [t.last_status for t in distinct[1:]] == ["PROVISIONING", "PROVISIONING"]
    assert all("distinctInstance" in t.pending_reason for t in distinct[1:])
