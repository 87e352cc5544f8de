"""The capacity manager's placement strategies and constraints, and the fleet plan, on plain data."""
from collections import Counter
from datetime import datetime, timedelta, timezone as tz

from orchestrator.capacity_manager import (
    BootInstance, DrainInstance, FleetConfig, FleetInstance, InstanceRoom, LaunchInstance, PendingTask,
    RetireInstance, matches_expression, place, plan_fleet,
)

T0 = datetime(2026, 1, 1, tzinfo=tz.utc)


def room(pk, cpu=4096, memory=8192, zone="us-east-1a", groups=None):
    return InstanceRoom(pk, f"fleet-{pk}", cpu, memory,
                        {"instanceId": f"i{pk}", "ecs.availability-zone": zone, "fargatelab.engine": zone[-1]},
                        Counter(groups or {}))


def tasks(n, strategy=(), constraints=(), group="service:web"):
    return [PendingTask(i, f"t{i}", 256, 512, group, list(strategy), list(constraints)) for i in range(n)]


def spots(decisions):
    return [d.instance_pk for d in decisions]


def test_binpack_on_memory_fills_the_fullest_instance_first():
    rooms = [room(1, memory=8192), room(2, memory=2048), room(3, memory=4096)]
    decisions = place(tasks(5, [{"type": "binpack", "field": "memory"}]), rooms)
    assert spots(decisions) == [2, 2, 2, 2, 3]
    assert decisions[0].reason.endswith("(binpack(memory))")


def test_binpack_on_cpu_reads_cpu():
    rooms = [room(1, cpu=1024), room(2, cpu=512)]
    assert spots(place(tasks(3, [{"type": "binpack", "field": "cpu"}]), rooms)) == [2, 2, 1]


def test_spread_over_instances_balances_the_group_not_the_load():
    rooms = [room(1, groups={"service:web": 2}), room(2, cpu=1024), room(3)]
    decisions = place(tasks(4, [{"type": "spread", "field": "instanceId"}]), rooms)
    assert Counter(spots(decisions)) == Counter({2: 2, 3: 2})


def test_spread_over_availability_zones_puts_tasks_on_every_engine():
    rooms = [room(1, zone="us-east-1a"), room(2, zone="us-east-1a"), room(3, zone="us-east-1b", cpu=1024)]
    decisions = place(tasks(4, [{"type": "spread", "field": "attribute:ecs.availability-zone"}]), rooms)
    zones = Counter("b" if pk == 3 else "a" for pk in spots(decisions))
    assert zones == Counter({"a": 2, "b": 2})


def test_strategies_break_ties_in_order():
    rooms = [room(1, cpu=2048), room(2, cpu=1024), room(3, cpu=1024, zone="us-east-1b")]
    strategy = [{"type": "spread", "field": "attribute:ecs.availability-zone"}, {"type": "binpack", "field": "cpu"}]
    assert spots(place(tasks(2, strategy), rooms)) == [2, 3]


def test_random_is_deterministic_per_task_and_instance():
    rooms = [room(i) for i in range(1, 6)]
    first = spots(place(tasks(10, [{"type": "random"}]), rooms))
    assert first == spots(place(tasks(10, [{"type": "random"}]), rooms)) and len(set(first)) > 1


def test_distinct_instance_puts_one_task_of_the_group_per_instance():
    rooms = [room(1), room(2, groups={"service:web": 1}), room(3)]
    decisions = place(tasks(3, constraints=[{"type": "distinctInstance"}]), rooms)
    assert spots(decisions)[:2] in ([1, 3], [3, 1]) and decisions[2].instance_pk is None
    assert decisions[2].reason.startswith("No instance meets the placement constraints (distinctInstance")
    other = place(tasks(1, constraints=[{"type": "distinctInstance"}], group="service:api"), [room(2)])
    assert spots(other) == [2]


def test_member_of_keeps_tasks_to_matching_instances():
    rooms = [room(1, zone="us-east-1a"), room(2, zone="us-east-1b")]
    only_b = [{"type": "memberOf", "expression": "attribute:ecs.availability-zone == us-east-1b"}]
    assert spots(place(tasks(2, constraints=only_b), rooms)) == [2, 2]
    not_b = [{"type": "memberOf", "expression": "attribute:ecs.availability-zone not_in [us-east-1b]"}]
    assert spots(place(tasks(1, constraints=not_b), rooms)) == [1]
    bad = place(tasks(1, constraints=[{"type": "memberOf", "expression": "task:group == x"}]), rooms)
    assert bad[0].instance_pk is None and "cannot evaluate" in bad[0].reason


def test_expressions_of_the_supported_subset():
    attributes = {"ecs.availability-zone": "us-east-1a", "instanceId": "i1"}
    assert matches_expression("attribute:ecs.availability-zone in [us-east-1a, us-east-1c]", attributes)
    assert not matches_expression("attribute:ecs.availability-zone != us-east-1a", attributes)
    assert matches_expression("attribute:instanceId == i1", attributes)
    assert matches_expression("attribute:ecs.availability-zone ~= x", attributes) is None


CONFIG = FleetConfig(warm_pool=2, max_instances=4, instance_cpu=1024, instance_memory=2048,
                     engines=["", "unix:///second.sock"], boot_seconds=2, idle_seconds=30)


def instance(pk, status="ACTIVE", engine="", tasks=0, since=T0 - timedelta(hours=1)):
    return FleetInstance(pk, f"fleet-{pk}", status, engine, tasks, since)


def of(plan, kind):
    return [a for a in plan.actions if isinstance(a, kind)]


def test_it_launches_instances_for_tasks_that_fit_nowhere_on_the_least_used_engine():
    fleet = [instance(1, tasks=4), instance(2, tasks=4)]
    plan = plan_fleet(fleet, [(256, 512)] * 5, CONFIG, T0)
    assert of(plan, LaunchInstance) == [
        LaunchInstance("fleet-3", "unix:///second.sock", "5 waiting task(s) fit on no instance"),
        LaunchInstance("fleet-4", "unix:///second.sock", "5 waiting task(s) fit on no instance")]
    assert plan.wake_after == 2


def test_it_counts_booting_instances_and_stops_at_the_maximum():
    booting = [instance(1, tasks=4), instance(2, tasks=4), instance(3, "PROVISIONING", since=T0)]
    assert of(plan_fleet(booting, [(256, 512)] * 4, CONFIG, T0), LaunchInstance) == []
    full = booting + [instance(4, "PROVISIONING", since=T0)]
    assert of(plan_fleet(full, [(256, 512)] * 20, CONFIG, T0), LaunchInstance) == []
    # a task no instance could ever hold launches nothing
    assert of(plan_fleet(booting[:2], [(2048, 4096)], CONFIG, T0), LaunchInstance) == []


def test_it_boots_an_instance_once_its_boot_time_has_passed():
    fleet = [instance(1), instance(2), instance(3, "PROVISIONING", since=T0)]
    plan = plan_fleet(fleet, [], CONFIG, T0 + timedelta(seconds=1))
    assert not of(plan, BootInstance) and plan.wake_after == 1
    assert of(plan_fleet(fleet, [], CONFIG, T0 + timedelta(seconds=2)), BootInstance) == [BootInstance(3)]


def test_it_tops_the_warm_pool_up():
    assert [a.name for a in of(plan_fleet([instance(1)], [], CONFIG, T0), LaunchInstance)] == ["fleet-2"]


def test_it_drains_idle_instances_beyond_the_warm_pool_newest_first_then_retires_them():
    fleet = [instance(1), instance(2), instance(3, since=T0 - timedelta(seconds=40)),
             instance(4, since=T0 - timedelta(seconds=40))]
    plan = plan_fleet(fleet, [], CONFIG, T0)
    assert [a.pk for a in of(plan, DrainInstance)] == [4, 3]
    assert of(plan, DrainInstance)[0].reason == "idle for 40 s beyond the warm pool of 2"
    recent = [instance(1, tasks=1), instance(2, tasks=1), instance(3, since=T0 - timedelta(seconds=10))]
    plan = plan_fleet(recent, [], CONFIG, T0)
    assert not of(plan, DrainInstance) and plan.wake_after == 20
    busy = [instance(1, tasks=1), instance(2, tasks=1), instance(3, tasks=1)]
    assert not of(plan_fleet(busy, [], CONFIG, T0), DrainInstance)
    # the fleet shrinks to the pool's size, whichever instance is the idle one
    assert of(plan_fleet([instance(1), instance(2, tasks=1), instance(3, tasks=1)], [], CONFIG, T0),
              DrainInstance)[0].pk == 1
    # nothing is drained while tasks wait
    assert not of(plan_fleet(fleet, [(4096, 8192)], CONFIG, T0), DrainInstance)
    draining = [instance(1), instance(2), instance(3, "DRAINING"), instance(4, "DRAINING", tasks=1)]
    assert of(plan_fleet(draining, [], CONFIG, T0), RetireInstance) == [RetireInstance(3)]


def test_it_never_drains_the_warm_pool():
    assert not of(plan_fleet([instance(1), instance(2)], [], CONFIG, T0), DrainInstance)
