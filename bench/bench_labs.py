"""How soon a lab's step ticks after the change that satisfies it, with a class at work.

``--students`` students (default 30) each have lab 1 started; all at once, each creates a
cluster through the frontend (what the "cluster" step checks) while the others do too. A tick
is timed from the moment the CreateCluster call returned to the moment the runner published the
student's ``lab_progress`` on the bus (what the lab page and the class page render on). Each
round's baseline is the same run's API calls: the ratio says how many API calls' time a tick
takes on top of the call. Target: tick p95 ≤ 1 s. No Docker is needed (the step reads the state
database only); the runner runs in-process, as the server runs it.

    .venv/bin/python bench/bench_labs.py [--students 30] [--rounds 3]
"""
import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from _common import remove_lab, setup_lab


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def one_round(students, number):
    """One class doing the step at once: (call seconds, tick seconds) per student."""
    from classroom import progress
    from classroom.runner import evaluate
    from orchestrator import bus
    from orchestrator.frontend import call
    from orchestrator.models import Account
    from django.contrib.auth import get_user_model

    runs = {}
    for index in range(students):
        user = get_user_model().objects.create_user(f"r{number}s{index}")
        account = Account.objects.create(account_id=f"{number:04d}{index:08d}", name=user.username)
        account.members.add(user)
        run = progress.start(user, "image-to-url")
        evaluate(run)  # as the Start button does: the first look, before the change measured
        runs[run.pk] = account
    ticked, returned, lock = {}, {}, threading.Lock()

    def on_bus(kind, pk, **info):
        if kind == "lab_progress" and pk in runs:
            with lock:
                ticked.setdefault(pk, time.perf_counter())

    unsubscribe = bus.subscribe(on_bus)

    def student(pk):
        started = time.perf_counter()
        call(runs[pk], "CreateCluster", {"clusterName": "demo"})
        returned[pk] = time.perf_counter()
        return returned[pk] - started

    try:
        with ThreadPoolExecutor(max_workers=students) as pool:
            calls = list(pool.map(student, list(runs)))
        deadline = time.monotonic() + 30
        while len(ticked) < len(runs) and time.monotonic() < deadline:
            time.sleep(0.01)  # the bench's own wait; the ticks arrive on the bus
    finally:
        unsubscribe()
    missing = [pk for pk in runs if pk not in ticked]
    ticks = [max(ticked[pk] - returned[pk], 0.0) for pk in runs if pk in ticked]
    return calls, ticks, missing


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir, lab = setup_lab()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from classroom import runner

    runner.start()
    try:
        ratios = []
        for number in range(1, args.rounds + 1):
            calls, ticks, missing = one_round(args.students, number)
            call_p95, tick_p50, tick_p95 = percentile(calls, 0.95), percentile(ticks, 0.5), percentile(ticks, 0.95)
            ratios.append(tick_p95 / call_p95)
            print(f"round {number}: {args.students} students, CreateCluster p95 {call_p95 * 1000:.0f} ms; "
                  f"tick after it p50 {tick_p50 * 1000:.0f} ms, p95 {tick_p95 * 1000:.0f} ms "
                  f"({tick_p95 / call_p95:.2f}× the call's p95); {len(missing)} never ticked")
        print(f"median ratio tick p95 / call p95: {statistics.median(ratios):.2f}×  (target: tick p95 ≤ 1 s)")
    finally:
        runner.stop()
        remove_lab(lab, workdir)


if __name__ == "__main__":
    main()
