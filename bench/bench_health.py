"""Benchmark of a failing container health check until the service's replacement is RUNNING,
on this machine's Docker (issue 12's target: within the check's interval × retries, plus ≤ 1 s).

Run: .venv/bin/python bench/bench_health.py [--rounds 3] [--interval 5] [--retries 2]

A service of one task whose healthCheck is ``test ! -f /tmp/fail`` runs until HEALTHY; then
``docker exec … touch /tmp/fail`` breaks the check. Per round it prints:
  1. Docker's own time from the touch to its ``health_status: unhealthy`` event (the baseline,
     from ``docker events``' timestamps): at most interval × retries, as the check ticks;
  2. the lab's time from the touch to the replacement task RUNNING;
  3. the lab's part: (2) − (1), the target ≤ 1 s, and (2) against interval × retries + 1 s;
     split into the control plane's reaction (Docker's event → the replacement task written)
     and the replacement's start (written → RUNNING: placement, docker create and start).
It uses a temporary database and a unique lab id, runs the ControlPlane in-process, drives the
ECS frontend in-process, and removes every container and network it made.
"""
import argparse
import statistics
import subprocess
import time

from _common import demo_image, remove_lab, setup_lab, wait_for  # bench/ is on sys.path when run

WORKDIR, LAB = setup_lab(FARGATE_LAB_STOP_TIMEOUT="2")

from django.core.management import call_command  # noqa: E402

from orchestrator.controlplane import ControlPlane  # noqa: E402
from orchestrator.frontend.operations import dispatch  # noqa: E402
from orchestrator.models import Account, Service, Task  # noqa: E402


def container_id(task):
    return task.containers.get().docker_id


def one_round(account, service, interval, retries):
    """(Docker's seconds to unhealthy, the lab's seconds to the replacement RUNNING, the control
    plane's reaction in seconds, the replacement's start in seconds)."""
    wait_for(lambda: Task.objects.filter(service=service, desired_status="RUNNING", health_status="HEALTHY")
             .count() == 1, 120, kinds=("task",))
    task = Task.objects.get(service=service, desired_status="RUNNING")
    docker_id = container_id(task)
    events = subprocess.Popen(
        ["docker", "events", "--filter", f"container={docker_id}", "--filter", "event=health_status",
         "--format", "{{.Action}} {{.TimeNano}}"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)  # let `docker events` subscribe before the check is broken
        touched_ns = time.time_ns()
        touched = time.monotonic()
        subprocess.run(["docker", "exec", docker_id, "touch", "/tmp/fail"], check=True)
        wait_for(lambda: Task.objects.filter(service=service, desired_status="RUNNING", last_status="RUNNING")
                 .exclude(pk=task.pk).exists(), interval * retries + 60, kinds=("task",))
        replaced = time.monotonic() - touched
        new = Task.objects.filter(service=service).exclude(pk=task.pk).latest("created_at")
        for line in events.stdout:
            action, stamp = line.rsplit(" ", 1)
            if action.endswith("unhealthy"):
                reaction = new.created_at.timestamp() - int(stamp) / 1e9
                return (int(stamp) - touched_ns) / 1e9, replaced, reaction, (new.started_at - new.created_at).total_seconds()
    finally:
        events.terminate()
        events.wait()
    raise RuntimeError("Docker reported no health_status: unhealthy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--retries", type=int, default=2)
    args = parser.parse_args()

    image = demo_image()
    call_command("migrate", verbosity=0)
    account = Account.default()
    dispatch(account, "CreateCluster", {"clusterName": "bench"})
    check = {"command": ["CMD-SHELL", "test ! -f /tmp/fail"], "interval": args.interval, "timeout": 2,
             "retries": args.retries}
    arn = dispatch(account, "RegisterTaskDefinition", {
        "family": "bench", "cpu": "256", "memory": "512", "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": [{"name": "web", "image": image, "essential": True, "healthCheck": check}],
    })["taskDefinition"]["taskDefinitionArn"]
    plane = ControlPlane()
    budget = args.interval * args.retries
    try:
        plane.start()
        dispatch(account, "CreateService", {"cluster": "bench", "serviceName": "web", "taskDefinition": arn,
                                            "desiredCount": 1, "launchType": "FARGATE",
                                            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}})
        service = Service.objects.get(name="web", status="ACTIVE")
        results = []
        for n in range(args.rounds):
            docker_s, lab_s, reaction, start = one_round(account, service, args.interval, args.retries)
            results.append((docker_s, lab_s))
            print(f"round {n + 1}: Docker unhealthy after {docker_s:5.2f} s; replacement RUNNING after "
                  f"{lab_s:5.2f} s; the lab's part {lab_s - docker_s:4.2f} s (target <= 1 s: reaction "
                  f"{reaction * 1000:4.0f} ms, replacement start {start:4.2f} s); "
                  f"{lab_s:5.2f} s against interval x retries + 1 = {budget + 1} s")
        parts = [lab - docker for docker, lab in results]
        print(f"median lab part {statistics.median(parts):4.2f} s (range {min(parts):4.2f}-{max(parts):4.2f}); "
              f"worst replacement {max(lab for _, lab in results):5.2f} s against {budget + 1} s")
    finally:
        plane.stop()
        remove_lab(LAB, WORKDIR)


if __name__ == "__main__":
    main()
