"""The warm pool of task sandboxes (issue 13) through the API, against raw `docker run` in the same run.

Two targets, each measured as a user measures it, with boto3 against uvicorn serving the lab's
app on this machine with its control plane in the same process (as ``make run`` does):
  1. RunTask -> RUNNING: from the ``run_task`` call until ``describe_tasks`` says RUNNING, polled
     every ``--poll`` seconds (20 ms), against one raw ``docker run -d`` of the same container
     (demo image, --cpus 0.25 -m 512m, the lab's pids and log limits, a user-defined network,
     the port published on 127.0.0.1). Target: <= 1.0.
  2. CreateService of ``--tasks`` (20) -> DescribeTasks shows them all RUNNING, against as many
     raw ``docker run -d`` of the same containers, ``--parallel`` (8) at a time. Target: <= 1.0.
Each round runs the raw runs, the lab with its sandbox pool (``--pool`` ready sandboxes, refilled
before each measurement) and the lab without one (FARGATE_LAB_SANDBOX_POOL=0, for reference)
back to back; the ratios printed are the medians of each round's own ratios.

    /work/venv/bin/python bench/bench_sandbox_pool.py [--rounds 2] [--tasks 20] [--parallel 8] [--pool 20]
"""
import argparse
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import demo_image, remove_lab, setup_lab  # noqa: E402

WORKDIR, LAB = setup_lab(FARGATE_LAB_SANDBOX_POOL="20")

import boto3  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from dashboard.screenshot import serve  # noqa: E402
from orchestrator import sandbox_pool  # noqa: E402
from orchestrator.agent import network_name  # noqa: E402
from orchestrator.controlplane import ControlPlane  # noqa: E402
from orchestrator.docker_engine import DockerEngine  # noqa: E402
from orchestrator.models import Account  # noqa: E402

RAW_LABEL = f"fargatelab.bench-raw={LAB}"
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-a"], "assignPublicIp": "ENABLED"}}


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def raw_run(image, n):
    """One ``docker run -d`` of the container the lab starts for the task."""
    docker("run", "-d", "--cpus", "0.25", "-m", "512m", "--pids-limit", str(settings.FARGATE_LAB["TASK_PIDS_LIMIT"]),
           "--log-opt", f"max-size={settings.FARGATE_LAB['TASK_LOG_MAX_SIZE']}",
           "--log-opt", f"max-file={settings.FARGATE_LAB['TASK_LOG_MAX_FILE']}",
           "--network", f"{LAB}-raw", "-p", "127.0.0.1::80", "--label", RAW_LABEL, "--name", f"{LAB}-raw-{n}", image)


def time_raw(image, count, parallel):
    """Seconds for ``count`` raw docker runs, ``parallel`` at a time."""
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda n: raw_run(image, n), range(count)))
    elapsed = time.monotonic() - started
    ids = docker("ps", "-aq", "--filter", f"label={RAW_LABEL}").split()
    if ids:
        docker("rm", "-f", *ids)
    return elapsed


def wait(predicate, timeout, poll):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(poll)


class Api:
    """The user's side: boto3 against the lab's endpoint."""

    def __init__(self, url, poll):
        self.ecs = boto3.client("ecs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                                aws_secret_access_key="test")
        self.poll = poll

    def statuses(self, arns):
        return [t["lastStatus"] for t in self.ecs.describe_tasks(cluster="bench", tasks=arns)["tasks"]]

    def run_task(self):
        """Seconds from run_task until describe_tasks says RUNNING; the task is then stopped."""
        started = time.monotonic()
        arn = self.ecs.run_task(cluster="bench", taskDefinition="web", launchType="FARGATE",
                                networkConfiguration=NETWORK)["tasks"][0]["taskArn"]
        wait(lambda: self.statuses([arn]) == ["RUNNING"], 60, self.poll)
        elapsed = time.monotonic() - started
        self.ecs.stop_task(cluster="bench", task=arn)
        wait(lambda: self.statuses([arn]) == ["STOPPED"], 60, 0.2)
        return elapsed

    def service(self, name, count):
        """Seconds from create_service until describe_tasks shows ``count`` RUNNING; then deleted."""
        started = time.monotonic()
        self.ecs.create_service(cluster="bench", serviceName=name, taskDefinition="web", desiredCount=count,
                                launchType="FARGATE", networkConfiguration=NETWORK)

        def all_running():
            arns = self.ecs.list_tasks(cluster="bench", serviceName=name)["taskArns"]
            return len(arns) == count and self.statuses(arns) == ["RUNNING"] * count

        wait(all_running, 120, self.poll)
        elapsed = time.monotonic() - started
        arns = self.ecs.list_tasks(cluster="bench", serviceName=name)["taskArns"]
        self.ecs.delete_service(cluster="bench", service=name, force=True)
        wait(lambda: set(self.statuses(arns)) == {"STOPPED"}, 120, 0.2)
        return elapsed


def ratio_line(name, lab, raw, target=None):
    ratios = sorted(a / b for a, b in zip(lab, raw))
    goal = f" (target <= {target:g})" if target else ""
    return (f"  {name}: median {statistics.median(lab):.3f} s against {statistics.median(raw):.3f} s; "
            f"ratio {statistics.median(ratios):.2f}{goal}, rounds {ratios[0]:.2f}-{ratios[-1]:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--pool", type=int, default=20, help="ready sandboxes per cluster network")
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between DescribeTasks calls")
    args = parser.parse_args()
    image = demo_image()
    call_command("migrate", verbosity=0)
    from orchestrator.frontend import call

    account = Account.default()
    call(account, "CreateCluster", {"clusterName": "bench"})
    call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": image, "essential": True,
                                                   "portMappings": [{"containerPort": 80}]}]})
    engine = DockerEngine(lab=LAB)
    network = network_name(LAB, account.account_id, "bench")
    plane = ControlPlane()
    server, port = serve()
    api = Api(f"http://127.0.0.1:{port}", args.poll)

    def pool(size):
        settings.FARGATE_LAB["SANDBOX_POOL"] = size
        if size:  # refilled before the measurement, as a lab between bursts is
            wait(lambda: len(sandbox_pool.pool().free(engine, network)) >= size, 180, 0.2)

    results = {key: [] for key in ("raw1", "warm1", "cold1", "raw", "warm", "cold")}
    try:
        docker("network", "create", "--label", RAW_LABEL, f"{LAB}-raw")
        time_raw(image, 2, 2)  # the engine's first runs are slower
        plane.start()
        api.run_task()  # the cluster's network is made on first use; the pool starts filling then
        for number in range(args.rounds):
            results["raw1"].append(time_raw(image, 1, 1))
            pool(args.pool)
            results["warm1"].append(api.run_task())
            pool(0)
            results["cold1"].append(api.run_task())
            results["raw"].append(time_raw(image, args.tasks, args.parallel))
            pool(args.pool)
            results["warm"].append(api.service(f"warm-{number}", args.tasks))
            pool(0)
            results["cold"].append(api.service(f"cold-{number}", args.tasks))
            print(f"round {number + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in results.items()), flush=True)
        print(f"sandbox pool {args.pool}, poll {args.poll * 1000:g} ms, {args.rounds} rounds")
        print(ratio_line("RunTask -> RUNNING, warm pool / one raw docker run", results["warm1"], results["raw1"], 1.0))
        print(ratio_line("RunTask -> RUNNING, no pool / one raw docker run", results["cold1"], results["raw1"]))
        print(ratio_line(f"{args.tasks}-task service, warm pool / {args.tasks} raw docker run, {args.parallel} at a time",
                         results["warm"], results["raw"], 1.0))
        print(ratio_line(f"{args.tasks}-task service, no pool / {args.tasks} raw docker run", results["cold"],
                         results["raw"]))
    finally:
        server.should_exit = True
        plane.stop()
        sandbox_pool.reset()
        subprocess.run(["docker", "network", "rm", f"{LAB}-raw"], capture_output=True)
        remove_lab(LAB, WORKDIR)


if __name__ == "__main__":
    main()
