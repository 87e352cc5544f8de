"""A student's progress: the runner's evaluation (ticks kept once earned, what is missing noted),
the quiz answers, and the rolling-update floor read from the tasks' own timestamps."""
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from classroom import progress
from classroom.checks import running_between
from classroom.models import LabProgress
from classroom.runner import Runner, evaluate, evaluate_account, owner_of
from orchestrator.frontend import call
from orchestrator.models import Account, Cluster

pytestmark = pytest.mark.django_db(transaction=True)
LAB = "image-to-url"


def test_a_tick_is_kept_once_earned_and_the_rest_say_what_they_miss(students):
    run = progress.start(students[0], LAB)
    account = Account.of_user(students[0])
    assert evaluate(run) is True  # the notes changed
    assert run.ticked() == set()
    assert run.notes["cluster"] == "no cluster yet"

    call(account, "CreateCluster", {"clusterName": "demo"})
    evaluate(run)
    assert run.ticked() == {"cluster"} and "cluster" not in run.notes

    call(account, "DeleteCluster", {"cluster": "demo"})
    evaluate(run)
    assert run.ticked() == {"cluster"}  # done once is done
    assert LabProgress.objects.get(pk=run.pk).completed_at is None
    assert evaluate(run) is False  # nothing new: nothing written, nothing published


def test_one_students_objects_tick_no_other_students_steps(students):
    amy, bob = (progress.start(student, LAB) for student in students[:2])
    call(Account.of_user(students[0]), "CreateCluster", {"clusterName": "demo"})
    evaluate(amy)
    evaluate(bob)
    assert amy.ticked() == {"cluster"} and bob.ticked() == set()


def test_the_runner_finds_the_account_of_what_changed(students):
    account = Account.of_user(students[1])
    call(account, "CreateCluster", {"clusterName": "demo"})
    cluster = Cluster.objects.get(account=account)
    assert owner_of("cluster", cluster.pk) == account.pk
    assert owner_of("cluster", cluster.pk + 1000) is None
    runner = Runner()
    runner.on_bus("instance", 1, heartbeat=True)  # heartbeats change no check
    runner.on_bus("activity", 1)
    assert runner.queue.get(timeout=0.2) is None
    runner.on_bus("cluster", cluster.pk)
    assert runner.queue.get(timeout=1) == f"cluster:{cluster.pk}"


def test_a_change_reruns_only_the_checks_that_read_its_kind(students):
    from classroom.labs import get_lab

    run = progress.start(students[0], LAB)
    account = Account.of_user(students[0])
    evaluate(run)  # every check runs once, and the runner notes what each read
    ran = []
    for step in get_lab(LAB).steps:  # a Step is frozen: its check swapped for one that counts
        object.__setattr__(step, "check", _counting(step.id, step.check, ran))
    try:
        call(account, "CreateCluster", {"clusterName": "demo"})
        evaluate_account(account.pk, kinds={"cluster"})
        assert ran == ["cluster", "service"]  # the steps whose queries read clusters (services join theirs)
        assert LabProgress.objects.get(pk=run.pk).ticked() == {"cluster"}
        assert run.notes["push"] == "no repository yet: create one (ECR)"  # the others' notes are kept
        ran.clear()
        evaluate_account(account.pk, kinds={"repository"})
        assert set(ran) == {"push", "task-definition"}  # both read the repositories
        ran.clear()
        evaluate_account(account.pk, kinds=None)  # a change of unknown kind: every step not ticked
        assert set(ran) == {"push", "task-definition", "load-balancer", "service"}
    finally:
        for step in get_lab(LAB).steps:
            object.__setattr__(step, "check", getattr(step.check, "wrapped", step.check))


def _counting(step_id, check, ran):
    def counted(facts):
        ran.append(step_id)
        return check(facts)

    counted.wrapped = check
    return counted


def test_the_runner_sends_a_known_objects_next_change_to_its_account(students):
    account = Account.of_user(students[1])
    call(account, "CreateCluster", {"clusterName": "demo"})
    cluster = Cluster.objects.get(account=account)
    runner = Runner()
    runner.on_bus("cluster", cluster.pk)
    key = runner.queue.get(timeout=1)
    runner.handle(key)  # looks the owner up, and asks for the account
    runner.queue.done(key)
    assert runner.queue.get(timeout=1) == f"account:{account.pk}"
    runner.queue.done(f"account:{account.pk}")
    runner.on_bus("cluster", cluster.pk)  # the owner is known now: straight to the account
    assert runner.queue.get(timeout=1) == f"account:{account.pk}"


def test_a_restart_clears_the_ticks_and_answers(students):
    run = progress.start(students[0], LAB)
    run.tick("push")
    run.answers = {"x": 1}
    run.save()
    progress.restart(run)
    run.refresh_from_db()
    assert run.ticked() == set() and run.answers == {} and run.completed_at is None


def test_a_quiz_answer_is_kept_and_a_bad_one_refused(client, students):
    client.force_login(students[0])
    slug = "self-healing"
    assert client.post(f"/labs/{slug}/answer/predict/", {"choice": "1"}).status_code == 404  # not started
    client.post(f"/labs/{slug}/start/")
    assert client.post(f"/labs/{slug}/answer/predict/", {"choice": "9"}).status_code == 400
    assert client.post(f"/labs/{slug}/answer/service/", {"choice": "0"}).status_code == 404  # no quiz there
    assert client.post(f"/labs/{slug}/answer/predict/", {"choice": "0"}).status_code == 302
    assert client.get(f"/labs/{slug}/progress.json").json()["notes"]["predict"] == "not that one: try again"
    client.post(f"/labs/{slug}/answer/predict/", {"choice": "1"})
    assert client.get(f"/labs/{slug}/progress.json").json()["ticked"] == ["predict"]
    assert client.get("/labs/no-such-lab/").status_code == 404


def test_the_rollout_floor_is_the_fewest_tasks_running_at_any_moment():
    t0 = timezone.now()

    def task(start, stop=None):
        return SimpleNamespace(started_at=t0 + timedelta(seconds=start),
                               stopping_at=None if stop is None else t0 + timedelta(seconds=stop), stopped_at=None)

    old = [task(-10, 5), task(-10, 12)]
    new = [task(4), task(11)]
    assert running_between(old + new, t0, t0 + timedelta(seconds=20)) == 2
    assert running_between([task(-10, 5), task(-10, 6), task(8)], t0, t0 + timedelta(seconds=20)) == 0
    assert running_between([task(-10, 5), task(4)], t0, t0 + timedelta(seconds=20)) == 1
