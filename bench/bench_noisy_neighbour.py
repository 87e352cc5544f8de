"""Benchmark: one tenant's RunTask -> RUNNING while another tenant does its worst, against a quiet lab.

Run: .venv/bin/python bench/bench_noisy_neighbour.py [--rounds 5] [--stubborn 10] [--burst 10] [--floods 2]
     [--noisy-vcpu N] [--profile]

Starts `manage.py lab` (a temporary state database, a unique lab id, its own ports) and two
accounts: the quiet student (the default key) and the noisy one (`addstudent`). The quiet
student's RunTask is measured through the API as a user sees it: boto3 `run_task`, then
`describe_tasks` every 20 ms until the task is RUNNING. It is measured on the quiet lab, then
while the noisy student, within its quotas (its Fargate On-Demand vCPU quota is raised, as a
teacher would, to hold all of what follows unless --noisy-vcpu says otherwise):
  1. stops --stubborn tasks that ignore SIGTERM, with stopTimeout 120 (the lab's agents must not
     wait for them: they stay STOPPING for two minutes);
  2. keeps --floods tasks writing to stdout as fast as they can (a log flood);
  3. runs a burst of --burst tasks just before each of the quiet student's RunTasks.
Prints the median of each (target: the noisy figure within 2x the quiet one) and the cores
dockerd and the lab's own process used meanwhile (read from /proc, when this user may), and removes every container,
network and file it made (and the lab's paced log reader, which outlives the lab by design). --profile adds, per phase, where the quiet task's
time went: the median start (from the RunTask call) and duration of each step the lab recorded
for it (placement, docker create, docker start, RUNNING reported).
"""
import argparse
import os
import sqlite3
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import requests
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from orchestrator import paced_logs  # noqa: E402  (stdlib only: no Django set up here)
POLL = 0.02
STUBBORN = "trap '' TERM; while true; do sleep 1; done"
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}  # awsvpc: ECS wants the subnets
FLOOD = "yes 'a log line as long as a log line tends to be, over and over again' "


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """``manage.py lab`` in a subprocess, with the default account's client and a student's."""

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="fargatelab-bench-")
        self.lab_id = f"bench-{uuid.uuid4().hex[:8]}"
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = {**os.environ, "FARGATE_LAB_VAR": self.workdir, "FARGATE_LAB_DB": f"{self.workdir}/lab.sqlite3",
                    "FARGATE_LAB_ID": self.lab_id, "PORT": self.url.rsplit(":", 1)[1], "HOST": "127.0.0.1",
                    "FARGATE_LAB_REGISTRY_PORT": str(free_port()), "FARGATE_LAB_LOG": "WARNING"}
        self.proc = None

    def start(self):
        log = open(Path(self.workdir) / "lab.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "manage.py", "lab", "--skip-demo-image"], cwd=ROOT,
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the lab exited; see {self.workdir}/lab.log")
            try:
                if requests.get(self.url + "/accounts/login/", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError("the lab did not answer")

    def client(self, key="test", secret="test"):
        return boto3.client("ecs", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=key,
                            aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))

    def manage(self, *args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, check=True).stdout

    def student(self, name):
        out = self.manage("addstudent", name)
        return self.client(re.search(r"AWS_ACCESS_KEY_ID=(\S+)", out).group(1),
                           re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", out).group(1))

    def stop(self):
        """Stop the lab, then remove its containers and networks (and only them) and its files."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        label = f"label=fargatelab.lab={self.lab_id}"
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        networks = subprocess.run(["docker", "network", "ls", "-q", "--filter", label], capture_output=True,
                                  text=True).stdout.split()
        if networks:
            subprocess.run(["docker", "network", "rm", *networks], capture_output=True)
        paced_logs.stop(self.lab_id)
        shutil.rmtree(self.workdir, ignore_errors=True)


def definition(family, command=None, **container):
    spec = {"name": "web", "image": "fargate-lab/demo:latest", "essential": True, **container}
    if command:
        spec.update(entryPoint=["sh", "-c"], command=[command])
    return {"family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
            "memory": "512", "containerDefinitions": [spec]}


def wait_status(ecs, arns, status, timeout=120):
    """Poll describe_tasks until every task of ``arns`` has ``status``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = []
        for start in range(0, len(arns), 100):
            tasks += ecs.describe_tasks(cluster="demo", tasks=arns[start:start + 100])["tasks"]
        if all(t["lastStatus"] == status for t in tasks):
            return
        time.sleep(0.25)
    raise TimeoutError(f"tasks not {status}")


def run(ecs, family, count):
    arns = []
    while count > 0:  # RunTask starts at most 10 tasks per call
        arns += [t["taskArn"] for t in ecs.run_task(cluster="demo", taskDefinition=family, count=min(count, 10),
                                                     launchType="FARGATE", networkConfiguration=NETWORK)["tasks"]]
        count -= 10
    return arns


MEASURED = []  # (arn, the wall-clock time of its run_task call) of every quiet task timed


def time_run_task(ecs):
    """Seconds from run_task to a describe_tasks that says RUNNING (polled every 20 ms), as a user sees it."""
    started, called_at = time.monotonic(), time.time()
    [arn] = run(ecs, "web", 1)
    while (task := ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0])["lastStatus"] != "RUNNING":
        if task["lastStatus"] == "STOPPED":  # e.g. the engine is out of network address pools
            raise RuntimeError(f"the quiet tenant's task stopped: {task.get('stoppedReason')}")
        time.sleep(POLL)
    elapsed = time.monotonic() - started
    MEASURED.append((arn, called_at))
    ecs.stop_task(cluster="demo", task=arn)
    wait_status(ecs, [arn], "STOPPED")
    return elapsed


def profile(lab, what, measured):
    """Print where the quiet tasks' time went: each recorded step's median start and duration."""
    steps = {}
    with sqlite3.connect(lab.env["FARGATE_LAB_DB"]) as db:
        for arn, called_at in measured:
            rows = db.execute("SELECT component, action, started_at, created_at, duration_ms FROM orchestrator_activity "
                              "WHERE object_arn = ? AND action != 'DescribeTasks' ORDER BY id", (arn,)).fetchall()
            for component, action, started_at, created_at, duration_ms in rows:
                at = _epoch(started_at or created_at) - called_at
                steps.setdefault(f"{component} {action}", []).append((at, duration_ms or 0.0))
                if (component, action) == ("agent", "running"):
                    break  # what follows (the bench's StopTask) is not measured
    print(f"  where the time went, {what}:")
    for step, times in sorted(steps.items(), key=lambda item: statistics.median(t[0] for t in item[1])):
        print(f"    {step:<34} starts at {statistics.median(t[0] for t in times):5.2f} s, "
              f"takes {statistics.median(t[1] for t in times) / 1000:5.2f} s  ({len(times)} tasks)")


def _epoch(stamp):
    """Seconds since the epoch of a timestamp as SQLite keeps Django's (UTC)."""
    from datetime import datetime, timezone

    return datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()


def cpu_seconds(pid):
    """The CPU seconds process ``pid`` has used, or None when its /proc entry cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


LAB_PID = None  # the lab's process, once started


def dockerd_cpu():
    """(CPU seconds dockerd has used, the lab's process has used, wall time); None for what
    cannot be read."""
    try:
        dockerd = cpu_seconds(Path("/var/run/docker.pid").read_text().strip())
    except OSError:
        dockerd = None
    return dockerd, cpu_seconds(LAB_PID) if LAB_PID else None, time.monotonic()


def report(what, times, calm, since=None):
    """One line: the median of ``times``, its ratio to the quiet lab's median, and the cores
    dockerd and the lab's own process used since ``since`` (a dockerd_cpu())."""
    median = statistics.median(times)
    now = dockerd_cpu()
    cores = ""
    for n, name in enumerate(("dockerd", "lab")):
        if since and since[n] is not None and now[n] is not None:
            cores += f"  {name} {(now[n] - since[n]) / (now[2] - since[2]):4.2f} cores"
    print(f"{what:<64} median {median:5.2f} s  x{median / statistics.median(calm):4.2f}{cores}  "
          f"(runs {', '.join(f'{t:.2f}' for t in times)})", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stubborn", type=int, default=10, help="SIGTERM-ignoring tasks stopped (stopTimeout 120)")
    parser.add_argument("--burst", type=int, default=10, help="tasks the noisy tenant runs before each measurement")
    parser.add_argument("--floods", type=int, default=2, help="tasks flooding stdout")
    parser.add_argument("--noisy-vcpu", type=float, default=None,
                        help="the noisy student's Fargate On-Demand vCPU quota (default: room for all of the above)")
    parser.add_argument("--profile", action="store_true", help="also print where the quiet tasks' time went")
    args = parser.parse_args()
    subprocess.run([str(ROOT / "demo" / "build.sh")], check=True, capture_output=True)
    lab = Lab()
    try:
        lab.start()
        global LAB_PID
        LAB_PID = lab.proc.pid
        quiet, noisy = lab.client(), lab.student("noisy")
        vcpu = args.noisy_vcpu if args.noisy_vcpu is not None else (args.stubborn + args.floods + args.burst) / 4
        lab.manage("setquota", "noisy", "--fargate-on-demand-vcpu", str(vcpu))
        for ecs in (quiet, noisy):
            ecs.create_cluster(clusterName="demo")
            ecs.register_task_definition(**definition("web", portMappings=[{"containerPort": 80}]))
        noisy.register_task_definition(**definition("stubborn", STUBBORN, stopTimeout=120))
        noisy.register_task_definition(**definition("flood", FLOOD))
        time_run_task(quiet)  # warm: the image and the network are there for both phases

        phases = []

        def measured(what):
            """Start a phase; the next timed tasks are its."""
            phases.append((what, len(MEASURED)))

        measured("quiet lab")
        since = dockerd_cpu()
        calm = [time_run_task(quiet) for _ in range(args.rounds)]
        report("quiet lab", calm, calm, since)

        stubborn = run(noisy, "stubborn", args.stubborn)
        wait_status(noisy, stubborn, "RUNNING")
        for arn in stubborn:
            noisy.stop_task(cluster="demo", task=arn, reason="the worst a tenant can do")
        wait_status(noisy, stubborn, "STOPPING")
        measured("long stops")
        since = dockerd_cpu()
        report(f"+ {args.stubborn} SIGTERM-ignoring tasks STOPPING (stopTimeout 120)",
               [time_run_task(quiet) for _ in range(args.rounds)], calm, since)

        wait_status(noisy, run(noisy, "flood", args.floods), "RUNNING")
        measured("+ floods")
        since = dockerd_cpu()
        report(f"+ {args.floods} tasks flooding stdout", [time_run_task(quiet) for _ in range(args.rounds)], calm,
               since)

        loud = []
        measured("+ burst")
        since = dockerd_cpu()
        for _ in range(args.rounds):
            burst = run(noisy, "web", args.burst)
            loud.append(time_run_task(quiet))
            for arn in burst:
                noisy.stop_task(cluster="demo", task=arn)
        report(f"+ a burst of {args.burst} RunTasks just before each", loud, calm, since)
        still = not stubborn or all(t["lastStatus"] == "STOPPING"
                                    for t in noisy.describe_tasks(cluster="demo", tasks=stubborn)["tasks"])
        print(f"ratio, all of it against the quiet lab: {statistics.median(loud) / statistics.median(calm):.2f}  "
              f"(target <= 2){'' if still else '  [the stubborn tasks did not stay STOPPING throughout]'}")
        if args.profile:
            for n, (what, first) in enumerate(phases):
                last = phases[n + 1][1] if n + 1 < len(phases) else len(MEASURED)
                profile(lab, what, MEASURED[first:last])
    finally:
        lab.stop()


if __name__ == "__main__":
    main()
