"""Benchmark of a rolling deployment against starting the same tasks fresh, on this machine's Docker.

Run: .venv/bin/python bench/bench_deployments.py [--tasks 20] [--rounds 5]

Prints, per round:
  1. fresh: CreateService of N tasks -> N RUNNING;
  2. rolling: UpdateService to revision 2 (maximumPercent 200, minimumHealthyPercent 100)
     -> the new deployment COMPLETED (N new tasks RUNNING, the N old ones STOPPED);
  3. their ratio;
then the median of the rounds' ratios (target <= 1.5), and the ratio of the best of each.
The health grace period is 0 here (a task counts as healthy once RUNNING), so the rollout
measures the control plane and Docker, not a 40 s wait. It uses a temporary database and a
unique lab id, runs the ControlPlane in-process, drives the ECS frontend in-process, and
removes every container and network it made.
"""
import argparse
import statistics
import time

from _common import demo_image, remove_lab, setup_lab, wait_for  # bench/ is on sys.path when run

WORKDIR, LAB = setup_lab(FARGATE_LAB_HEALTH_GRACE_SECONDS="0", FARGATE_LAB_STOP_TIMEOUT="2")

from django.core.management import call_command  # noqa: E402

from orchestrator.controlplane import ControlPlane  # noqa: E402
from orchestrator.frontend.operations import dispatch  # noqa: E402
from orchestrator.models import Account, Deployment, Service, Task  # noqa: E402


def register(account, image, revision_note):
    definition = {"name": "web", "image": image, "essential": True, "portMappings": [{"containerPort": 80}],
                  "environment": [{"name": "NOTE", "value": revision_note}]}
    return dispatch(account, "RegisterTaskDefinition", {
        "family": "bench", "cpu": "256", "memory": "512", "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"], "containerDefinitions": [definition],
    })["taskDefinition"]["taskDefinitionArn"]


def one_round(account, image, tasks, name):
    """(fresh seconds, rolling seconds) for one service."""
    rev1, rev2 = register(account, image, "1"), register(account, image, "2")
    started = time.monotonic()
    dispatch(account, "CreateService", {
        "cluster": "bench", "serviceName": name, "taskDefinition": rev1, "desiredCount": tasks,
        "launchType": "FARGATE", "deploymentConfiguration": {"maximumPercent": 200, "minimumHealthyPercent": 100},
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-a"]}},
    })
    service = Service.objects.get(name=name, status="ACTIVE")
    wait_for(lambda: Task.objects.filter(service=service, last_status="RUNNING").count() == tasks, 180,
             kinds=("task",))
    fresh = time.monotonic() - started
    wait_for(lambda: Deployment.objects.filter(service=service, rollout_state="COMPLETED").exists(), 60)

    started = time.monotonic()
    dispatch(account, "UpdateService", {"cluster": "bench", "service": name, "taskDefinition": rev2})
    primary = Deployment.objects.get(service=service, status="PRIMARY")
    wait_for(lambda: Deployment.objects.get(pk=primary.pk).rollout_state == "COMPLETED", 300, kinds=("service",))
    rolling = time.monotonic() - started
    assert Task.objects.filter(service=service, last_status="RUNNING", deployment=primary).count() == tasks

    dispatch(account, "DeleteService", {"cluster": "bench", "service": name, "force": True})
    wait_for(lambda: Service.objects.get(pk=service.pk).status == "INACTIVE", 120)
    return fresh, rolling


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    image = demo_image()
    call_command("migrate", verbosity=0)
    account = Account.default()
    dispatch(account, "CreateCluster", {"clusterName": "bench"})
    plane = ControlPlane()
    try:
        plane.start()
        one_round(account, image, 2, "warm-up")  # the cluster's network, a warm engine
        results = []
        for n in range(args.rounds):
            fresh, rolling = one_round(account, image, args.tasks, f"web-{n}")
            results.append((fresh, rolling))
            print(f"round {n + 1}: {args.tasks} fresh tasks RUNNING {fresh:6.2f} s; rolling update to "
                  f"revision 2 COMPLETED {rolling:6.2f} s; ratio {rolling / fresh:4.2f}")
        # Each round pairs a fresh start with a rolling update run right after it on the same
        # machine: the median of those paired ratios is the figure; the machine's drift between
        # rounds (±20 % here) cancels out of each pair but not out of a ratio of bests.
        ratios = sorted(r[1] / r[0] for r in results)
        median = statistics.median(ratios)
        fresh = min(r[0] for r in results)
        rolling = min(r[1] for r in results)
        print(f"median of the {len(ratios)} paired ratios: {median:4.2f} (target <= 1.5); "
              f"range {ratios[0]:4.2f}-{ratios[-1]:4.2f}")
        print(f"  best of each: fresh {fresh:6.2f} s, rolling {rolling:6.2f} s, ratio {rolling / fresh:4.2f}")
    finally:
        plane.stop()
        remove_lab(LAB, WORKDIR)


if __name__ == "__main__":
    main()
