"""The task sets' plan on plain data: each kept at its count, a deleted one drained and retired."""
from orchestrator.task_sets import SetTask, plan_task_sets


def task(key, task_set, order, running=True, protected=False):
    return SetTask(key, task_set, running, order, protected)


def test_it_starts_what_each_task_set_lacks():
    step = plan_task_sets([("blue", "PRIMARY", 3), ("green", "ACTIVE", 2)], [task("b1", "blue", 1)], {"blue"})
    assert step.start == {"blue": 2, "green": 2} and step.stop == [] and not step.steady


def test_a_scale_in_stops_pending_then_newest_tasks_but_never_a_protected_one():
    live = [task("old", "blue", 1), task("new", "blue", 2), task("pending", "blue", 3, running=False),
            task("guarded", "blue", 4, protected=True)]
    step = plan_task_sets([("blue", "PRIMARY", 2)], live, {"blue"})
    assert step.stop == ["pending", "new"] and step.start == {}


def test_a_deleted_task_set_drains_then_retires_and_orphans_stop():
    live = [task("b1", "blue", 1, protected=True), task("g1", "green", 2), task("x", "gone", 3)]
    step = plan_task_sets([("blue", "DRAINING", 0), ("green", "PRIMARY", 1)], live, {"blue", "green", "gone"})
    assert sorted(step.stop) == ["b1", "x"] and step.retire == [] and not step.steady
    step = plan_task_sets([("blue", "DRAINING", 0), ("green", "PRIMARY", 1)], [task("g1", "green", 2)], {"green"})
    assert step.retire == ["blue"] and step.stop == [] and step.steady


def test_it_is_steady_only_when_every_task_set_runs_its_count():
    sets = [("blue", "ACTIVE", 1), ("green", "PRIMARY", 1)]
    assert plan_task_sets(sets, [task("b", "blue", 1), task("g", "green", 2)], {"blue", "green"}).steady
    assert not plan_task_sets(sets, [task("b", "blue", 1), task("g", "green", 2, running=False)],
                              {"blue", "green"}).steady
    assert not plan_task_sets(sets, [task("b", "blue", 1), task("g", "green", 2)], {"blue", "green"},
                              stopping=1).steady
