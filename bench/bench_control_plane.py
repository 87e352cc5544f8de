"""Benchmark of the control plane against raw `docker run`, on this machine's Docker engine.

Run: .venv/bin/python bench/bench_control_plane.py [--tasks 20] [--parallel 8]

Prints (baselines measured in the same run, same image and limits: --cpus 0.25 -m 512m):
  1. 20 raw `docker run -d` (8 at a time) vs a 20-task service written to the state database
     reaching 20 RUNNING, and their ratio (target <= 1.25);
  2. one raw `docker run -d` vs one RunTask-shaped task reaching RUNNING, and their ratio;
  3. `docker kill` of a service's container -> its replacement RUNNING (target <= 1 s).
It uses a temporary database and a unique lab id, runs the ControlPlane in-process, and
removes every container and network it made.
"""
import argparse
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from _common import demo_image, remove_lab, setup_lab, wait_for  # bench/ is on sys.path when run

WORKDIR, LAB = setup_lab()

from django.core.management import call_command  # noqa: E402

from orchestrator import bus  # noqa: E402
from orchestrator.agent import kill_task_container  # noqa: E402
from orchestrator.controlplane import ControlPlane  # noqa: E402
from orchestrator.models import (  # noqa: E402
    Account, Cluster, Deployment, Service, Task, TaskContainer, TaskDefinition,
)

RAW_LABEL = f"fargatelab.bench-raw={LAB}"


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def raw_run(image, n, extra=()):
    docker("run", "-d", "--cpus", "0.25", "-m", "512m", "--label", RAW_LABEL, "--name", f"{LAB}-raw-{n}",
           *extra, image)


def raw_cleanup():
    ids = docker("ps", "-aq", "--filter", f"label={RAW_LABEL}").split()
    if ids:
        docker("rm", "-f", *ids)


def time_raw(image, count, parallel, extra=()):
    """Seconds for ``count`` raw docker runs, ``parallel`` at a time."""
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda n: raw_run(image, n, extra), range(count)))
    elapsed = time.monotonic() - started
    raw_cleanup()
    return elapsed


def lab_objects(image):
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="bench")
    definition = TaskDefinition.objects.create(
        account=account, family="demo", revision=1, cpu=256, memory=512,
        body={"family": "demo", "cpu": "256", "memory": "512", "containerDefinitions": [
            {"name": "web", "image": image, "essential": True, "portMappings": [{"containerPort": 80}]}]},
    )
    return account, cluster, definition


def run_task(account, cluster, definition):
    """Write a task as RunTask does and publish it; returns it."""
    task = Task.objects.create(account=account, cluster=cluster, task_definition=definition, cpu=256, memory=512)
    TaskContainer.objects.create(task=task, name="web", image=definition.container_definitions[0]["image"])
    bus.publish("task", task.pk)
    return task


def running(service):
    return Task.objects.filter(service=service, last_status="RUNNING", desired_status="RUNNING").count()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()

    image = demo_image()
    call_command("migrate", verbosity=0)
    account, cluster, definition = lab_objects(image)
    plane = ControlPlane()
    try:
        time_raw(image, 2, 2)  # warm the engine up (first runs are slower)
        raw_many = time_raw(image, args.tasks, args.parallel)
        raw_one = min(time_raw(image, 1, 1) for _ in range(3))
        # For information: what the lab asks Docker for (a user network, a published port).
        docker("network", "create", "--label", RAW_LABEL, f"{LAB}-raw")
        raw_net = time_raw(image, args.tasks, args.parallel, ("--network", f"{LAB}-raw", "-p", "127.0.0.1::80"))
        docker("network", "rm", f"{LAB}-raw")

        plane.start()
        # Warm-up task: the cluster's network is created on first use, as on a fresh lab.
        warm = run_task(account, cluster, definition)
        wait_for(lambda: Task.objects.get(pk=warm.pk).last_status == "RUNNING", 30)

        singles = []
        for _ in range(3):
            started = time.monotonic()
            task = run_task(account, cluster, definition)
            wait_for(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 30)
            singles.append(time.monotonic() - started)
        one = min(singles)

        started = time.monotonic()
        service = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=definition,
                                         desired_count=args.tasks)
        Deployment.objects.create(service=service, deployment_id=Deployment.new_id(), task_definition=definition,
                                  desired_count=args.tasks)
        bus.publish("service", service.pk)
        wait_for(lambda: running(service) == args.tasks, 120)
        many = time.monotonic() - started

        victim = Task.objects.filter(service=service, last_status="RUNNING").first()
        before = set(Task.objects.filter(service=service).values_list("pk", flat=True))
        started = time.monotonic()
        kill_task_container(victim)
        wait_for(lambda: Task.objects.filter(service=service, last_status="RUNNING", desired_status="RUNNING")
                 .exclude(pk__in=before).exists(), 30)
        replaced = time.monotonic() - started

        print(f"raw docker run -d x{args.tasks} ({args.parallel} parallel): {raw_many:6.2f} s")
        print(f"service of {args.tasks} -> {args.tasks} RUNNING:        {many:6.2f} s   "
              f"ratio {many / raw_many:4.2f} (target <= 1.25)")
        print(f"  (same, on a user network with -p 127.0.0.1::80: {raw_net:6.2f} s; "
              f"ratio to it {many / raw_net:4.2f})")
        print(f"raw docker run -d x1:                  {raw_one:6.2f} s")
        print(f"RunTask -> RUNNING (best of 3):        {one:6.2f} s   ratio {one / raw_one:4.2f}")
        print(f"docker kill -> replacement RUNNING:    {replaced:6.2f} s   (target <= 1 s)")

        Service.objects.filter(pk=service.pk).update(status="DRAINING", desired_count=0)
        bus.publish("service", service.pk)
        Task.objects.exclude(service=service).update(desired_status="STOPPED", stop_code="UserInitiated")
        for pk in Task.objects.exclude(service=service).values_list("pk", flat=True):
            bus.publish("task", pk)
        wait_for(lambda: not Task.objects.exclude(last_status="STOPPED").exists(), 120, interval=0.1)
    finally:
        plane.stop()
        raw_cleanup()
        subprocess.run(["docker", "network", "rm", f"{LAB}-raw"], capture_output=True)
        remove_lab(LAB, WORKDIR)


if __name__ == "__main__":
    main()
