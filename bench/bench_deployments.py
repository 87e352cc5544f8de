"""Benchmark of a rolling deployment against starting the same tasks fresh, on this machine's Docker.

Run: .venv/bin/python bench/bench_deployments.py [--tasks 20] [--rounds 2]

Prints, per round and best of the rounds:
  1. fresh: CreateService of N tasks -> N RUNNING;
  2. rolling: UpdateService to revision 2 (maximumPercent 200, minimumHealthyPercent 100)
     -> the new deployment COMPLETED (N new tasks RUNNING, the N old ones STOPPED);
  3. their ratio (target <= 1.5).
The health grace period is 0 here (a task counts as healthy once RUNNING), so the rollout
measures the control plane and Docker, not a 40 s wait. It uses a temporary database and a
unique lab id, runs the ControlPlane in-process, drives the ECS frontend in-process, and
removes every container and network it made.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKDIR = tempfile.mkdtemp(prefix="fargatelab-bench-")
LAB = f"bench-{uuid.uuid4().hex[:8]}"
os.environ.update({
    "DJANGO_SETTINGS_MODULE": "config.settings", "FARGATE_LAB_VAR": WORKDIR,
    "FARGATE_LAB_DB": f"{WORKDIR}/bench.sqlite3", "FARGATE_LAB_ID": LAB, "FARGATE_LAB_LOG": "WARNING",
    "FARGATE_LAB_HEALTH_GRACE_SECONDS": "0", "FARGATE_LAB_STOP_TIMEOUT": "2",
})
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from orchestrator.controlplane import ControlPlane  # noqa: E402
from orchestrator.docker_engine import DockerEngine  # noqa: E402
from orchestrator.frontend.operations import dispatch  # noqa: E402
from orchestrator.models import Account, Deployment, Service, Task  # noqa: E402


def wait_for(predicate, timeout, interval=0.01):
    """Poll until ``predicate`` is true; raise if ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(interval)


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
    })
    service = Service.objects.get(name=name, status="ACTIVE")
    wait_for(lambda: Task.objects.filter(service=service, last_status="RUNNING").count() == tasks, 180)
    fresh = time.monotonic() - started
    wait_for(lambda: Deployment.objects.filter(service=service, rollout_state="COMPLETED").exists(), 60)

    started = time.monotonic()
    dispatch(account, "UpdateService", {"cluster": "bench", "service": name, "taskDefinition": rev2})
    primary = Deployment.objects.get(service=service, status="PRIMARY")
    wait_for(lambda: Deployment.objects.get(pk=primary.pk).rollout_state == "COMPLETED", 300)
    rolling = time.monotonic() - started
    assert Task.objects.filter(service=service, last_status="RUNNING", deployment=primary).count() == tasks

    dispatch(account, "DeleteService", {"cluster": "bench", "service": name, "force": True})
    wait_for(lambda: Service.objects.get(pk=service.pk).status == "INACTIVE", 120, interval=0.1)
    return fresh, rolling


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    image = subprocess.run([str(ROOT / "demo" / "build.sh")], check=True, capture_output=True,
                           text=True).stdout.strip().splitlines()[-1]
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
        fresh = min(r[0] for r in results)
        rolling = min(r[1] for r in results)
        print(f"best: fresh {fresh:6.2f} s, rolling {rolling:6.2f} s, ratio {rolling / fresh:4.2f} (target <= 1.5)")
    finally:
        plane.stop()
        engine = DockerEngine(lab=LAB)
        for container in engine.list_containers():
            engine.remove(container["id"])
        engine.remove_unused_networks()
        subprocess.run(["rm", "-rf", WORKDIR])


if __name__ == "__main__":
    main()
