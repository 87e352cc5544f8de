"""Benchmark of the control plane against raw `docker run`, on this machine's Docker engine.

Run: .venv/bin/python bench/bench_control_plane.py [--tasks 20] [--parallel 8] [--rounds 3]

Prints (baselines measured in the same run, interleaved with the lab's runs, best of --rounds):
  1. 20 raw `docker run -d` (8 at a time) of the same containers the lab starts (demo image,
     --cpus 0.25 -m 512m, a user-defined network, the port published on 127.0.0.1) vs a 20-task
     service written to the state database reaching 20 RUNNING, and their ratio (target <= 1.25);
  2. one raw `docker run -d` of the same container vs one RunTask-shaped task reaching RUNNING,
     and their ratio (target <= 1.3);
  3. `docker kill` of a service's container -> its replacement RUNNING (target <= 1 s).
For information it also prints both ratios against a plain `docker run -d` with no network and
no published port, which Docker starts faster than the lab's containers.
It uses a temporary database and a unique lab id, runs the ControlPlane in-process, and
removes every container and network it made.
"""
import argparse
import statistics
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


def measure_service(account, cluster, definition, count, name):
    """Seconds until a new service of ``count`` tasks has them all RUNNING; returns (seconds, service)."""
    started = time.monotonic()
    service = Service.objects.create(account=account, cluster=cluster, name=name, task_definition=definition,
                                     desired_count=count)
    Deployment.objects.create(service=service, deployment_id=Deployment.new_id(), task_definition=definition,
                              desired_count=count)
    bus.publish("service", service.pk)
    wait_for(lambda: running(service) == count, 120, kinds=("task",))
    return time.monotonic() - started, service


def drain(service):
    """Delete the service (as DeleteService --force does) and wait until its tasks are STOPPED."""
    Service.objects.filter(pk=service.pk).update(status="DRAINING", desired_count=0)
    bus.publish("service", service.pk)
    wait_for(lambda: not Task.objects.filter(service=service).exclude(last_status="STOPPED").exists(), 120)


def paired(lab, baseline):
    """The median (and range) of each round's ratio: a round's lab run and its baseline ran back
    to back, so the machine's drift between rounds cancels out of each pair."""
    ratios = sorted(a / b for a, b in zip(lab, baseline))
    return (f"  median of the {len(ratios)} rounds' own ratios: {statistics.median(ratios):4.2f} "
            f"(range {ratios[0]:4.2f}-{ratios[-1]:4.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    args = parser.parse_args()

    image = demo_image()
    call_command("migrate", verbosity=0)
    account, cluster, definition = lab_objects(image)
    plane = ControlPlane()
    # The same containers as the lab's: a user-defined network (the cluster's VPC) and the
    # container port published on a free port of 127.0.0.1.
    same = ("--network", f"{LAB}-raw", "-p", "127.0.0.1::80")
    results = {key: [] for key in ("plain", "same", "lab", "plain1", "same1", "lab1", "replaced")}
    try:
        docker("network", "create", "--label", RAW_LABEL, f"{LAB}-raw")
        time_raw(image, 2, 2)  # warm the engine up (first runs are slower)
        plane.start()
        # Warm-up task: the cluster's network is created on first use, as on a fresh lab.
        warm = run_task(account, cluster, definition)
        wait_for(lambda: Task.objects.get(pk=warm.pk).last_status == "RUNNING", 30)

        for round_number in range(args.rounds):
            # Interleaved, so that whatever else loads the machine weighs on every side alike.
            results["plain"].append(time_raw(image, args.tasks, args.parallel))
            results["same"].append(time_raw(image, args.tasks, args.parallel, same))
            seconds, service = measure_service(account, cluster, definition, args.tasks, f"web-{round_number}")
            results["lab"].append(seconds)

            victim = Task.objects.filter(service=service, last_status="RUNNING").first()
            before = set(Task.objects.filter(service=service).values_list("pk", flat=True))
            started = time.monotonic()
            kill_task_container(victim)
            wait_for(lambda: Task.objects.filter(service=service, last_status="RUNNING", desired_status="RUNNING")
                     .exclude(pk__in=before).exists(), 30, kinds=("task",))
            results["replaced"].append(time.monotonic() - started)
            drain(service)

            results["plain1"].append(time_raw(image, 1, 1))
            results["same1"].append(time_raw(image, 1, 1, same))
            started = time.monotonic()
            task = run_task(account, cluster, definition)
            wait_for(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 30, kinds=("task",))
            results["lab1"].append(time.monotonic() - started)

        best = {key: min(values) for key, values in results.items()}
        n = args.tasks
        print(f"best of {args.rounds} interleaved rounds; the same containers = the lab's user network "
              f"and published port")
        print(f"raw docker run -d x{n} ({args.parallel} parallel), same containers: {best['same']:6.2f} s")
        print(f"service of {n} -> {n} RUNNING:                          {best['lab']:6.2f} s   "
              f"ratio {best['lab'] / best['same']:4.2f} (target <= 1.25)")
        print(paired(results["lab"], results["same"]))
        print(f"  for information, plain docker run -d x{n} (default bridge, no port): {best['plain']:6.2f} s; "
              f"ratio {best['lab'] / best['plain']:4.2f}")
        print(f"raw docker run -d x1, same container:                {best['same1']:6.2f} s")
        print(f"RunTask -> RUNNING:                                   {best['lab1']:6.2f} s   "
              f"ratio {best['lab1'] / best['same1']:4.2f} (target <= 1.3)")
        print(paired(results["lab1"], results["same1"]))
        print(f"  for information, plain docker run -d x1: {best['plain1']:6.2f} s; "
              f"ratio {best['lab1'] / best['plain1']:4.2f}")
        print(f"docker kill -> replacement RUNNING:                   {best['replaced']:6.2f} s   (target <= 1 s; "
              f"worst of {args.rounds}: {max(results['replaced']):.2f} s)")

        Task.objects.exclude(last_status="STOPPED").update(desired_status="STOPPED", stop_code="UserInitiated")
        for pk in Task.objects.exclude(last_status="STOPPED").values_list("pk", flat=True):
            bus.publish("task", pk)
        wait_for(lambda: not Task.objects.exclude(last_status="STOPPED").exists(), 120)
    finally:
        plane.stop()
        raw_cleanup()
        subprocess.run(["docker", "network", "rm", f"{LAB}-raw"], capture_output=True)
        remove_lab(LAB, WORKDIR)

if __name__ == "__main__":
    main()
