"""dependsOn on plain data: the start plan's waves, waits and give-ups, the reverse stop order,
and the agent's plan around them (no database, no Docker)."""
from orchestrator.agent import (
    AwaitDependencies, AwaitExit, ContainerSeen, ContainerWanted, MarkStopping, RecordWaiting, SignalStop,
    StartContainers, TaskWanted, plan_task,
)
from orchestrator.container_dependencies import Member, problems, start_plan, stoppable
from orchestrator.models import Task

NOW = 1000.0


def test_start_dependencies_start_in_waves_in_one_pass():
    plan = start_plan([Member("app", (("proxy", "START"),)), Member("proxy", (("db", "START"),)), Member("db")], NOW)
    assert plan.waves == [["db"], ["proxy"], ["app"]] and not plan.waiting


def test_complete_success_and_healthy_wait_for_the_dependency():
    members = [Member("init"), Member("app", (("init", "SUCCESS"),)), Member("web", (("db", "HEALTHY"),)),
               Member("db", state="running", started_at=NOW - 5, health="starting")]
    plan = start_plan(members, NOW)
    assert plan.waves == [["init"]]
    assert plan.waiting == {"app": "Waiting for init to be exited with code 0", "web": "Waiting for db to be HEALTHY"}
    assert plan.wake == NOW - 5 + 120

    done = [Member("init", state="exited", exit_code=0, started_at=NOW - 1), members[1], members[2],
            Member("db", state="running", started_at=NOW - 5, health="healthy")]
    assert start_plan(done, NOW).waves == [["app", "web"]]


def test_a_failed_or_late_dependency_gives_its_dependents_up():
    failed = start_plan([Member("init", state="exited", exit_code=3, started_at=NOW),
                         Member("app", (("init", "SUCCESS"),))], NOW)
    assert failed.given_up == {"app": "app was not started: dependency init exited with code 3 (SUCCESS needed)"}
    late = start_plan([Member("db", start_timeout=10, state="running", started_at=NOW - 11),
                       Member("app", (("db", "HEALTHY"),))], NOW)
    assert "within its startTimeout of 10 s" in late.given_up["app"]
    assert start_plan([Member("init", state="exited", exit_code=3, started_at=NOW),
                       Member("app", (("init", "COMPLETE"),))], NOW).waves == [["app"]]


def test_dependents_stop_before_what_they_depend_on():
    depends_on = {"app": ["db", "proxy"], "proxy": ["db"], "db": []}
    assert stoppable(depends_on, ["db", "proxy", "app"]) == ["app"]
    assert stoppable(depends_on, ["db", "proxy"]) == ["proxy"]
    assert stoppable(depends_on, ["db"]) == ["db"]


def test_registration_problems():
    side = {"name": "side", "essential": False}
    assert problems([{"name": "web", "dependsOn": [{"containerName": "side", "condition": "SUCCESS"}]}, side]) is None
    assert "essential" in problems([{"name": "web", "dependsOn": [{"containerName": "side", "condition": "SUCCESS"}]},
                                    {"name": "side"}])
    assert "cycle" in problems([{"name": "a", "dependsOn": [{"containerName": "b", "condition": "START"}]},
                                {"name": "b", "dependsOn": [{"containerName": "a", "condition": "START"}]}])


def wanted(last_status, *containers, desired=Task.RUNNING):
    return TaskWanted(desired, last_status, list(containers), has_instance=True, network="net")


def test_a_pending_task_waits_for_its_init_container_without_advancing():
    task = wanted(Task.PENDING, ContainerWanted("init", essential=False),
                  ContainerWanted("app", depends_on=(("init", "SUCCESS"),)))
    seen = [ContainerSeen("1", "init", "running"), ContainerSeen("2", "app", "created")]
    steps = plan_task(task, seen, NOW)
    assert [type(s) for s in steps] == [RecordWaiting, AwaitDependencies]
    seen[0] = ContainerSeen("1", "init", "exited", exit_code=0)
    steps = plan_task(task, seen, NOW)
    assert steps[0] == StartContainers(["app"]) and steps[1].new == Task.ACTIVATING


def test_an_essential_container_given_up_fails_the_task():
    task = wanted(Task.PENDING, ContainerWanted("init", essential=False),
                  ContainerWanted("app", depends_on=(("init", "SUCCESS"),)))
    seen = [ContainerSeen("1", "init", "exited", exit_code=1), ContainerSeen("2", "app", "created")]
    steps = plan_task(task, seen, NOW)
    assert isinstance(steps[-1], MarkStopping) and steps[-1].stop_code == "TaskFailedToStart"


def test_an_exited_sidecar_is_not_started_again_and_the_task_runs_on():
    task = wanted(Task.RUNNING, ContainerWanted("app"), ContainerWanted("side", essential=False))
    seen = [ContainerSeen("1", "app", "running", networks=("net",)), ContainerSeen("2", "side", "exited", exit_code=0)]
    assert not [s for s in plan_task(task, seen, NOW) if isinstance(s, (StartContainers, MarkStopping))]


def test_a_stopping_task_signals_dependents_first():
    task = wanted(Task.STOPPING, ContainerWanted("db", stop_timeout=5),
                  ContainerWanted("app", stop_timeout=5, depends_on=(("db", "HEALTHY"),)), desired=Task.STOPPED)
    seen = [ContainerSeen("d", "db", "running"), ContainerSeen("a", "app", "running")]
    steps = plan_task(task, seen, NOW)
    assert steps == [SignalStop({"a": NOW + 5}), AwaitExit(NOW + 5)]
    seen[1] = ContainerSeen("a", "app", "exited", exit_code=0)
    assert plan_task(task, seen, NOW + 1)[0] == SignalStop({"d": NOW + 6})
