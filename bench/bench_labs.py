"""A class doing lab 1 at once: API latency, how soon each check ticks, and errors (issue 14).

Two parts, one run, each against a real ``manage.py lab`` (a temporary state database, a unique
lab id, its own ports; the control plane running), every student an ``addstudent`` account of
their own with their own access key:

1. Write burst, before/after: --burst-rounds rounds of --students students sending CreateCluster
   at the same instant (boto3, a barrier), alternating between a lab on Django's stock SQLite
   engine (bench/stock_sqlite_settings.py, the baseline) and one on the lab's own engine
   (orchestrator/state_database: one writer at a time, handed over by a lock). Prints p50, p95
   and p99 of each and their ratio.
2. Lab 1 ("From image to URL", labs/image-to-url) for --students students at once on the lab's
   engine: each logs in and starts the lab on the dashboard, then runs the lab's solution
   (labs/image-to-url/solution.py) with boto3 and the docker CLI (a config of their own):
   create-repository, get-authorization-token, docker login, tag and push, register a task
   definition, create a cluster, a load balancer, a target group and a listener, create a
   service of 3 tasks behind it, then wait as the lab says (describe-services and
   describe-target-health every --poll seconds until 3 targets are healthy). Every boto3 call is timed
   (client-side, as the student sees it); every error (an API error, a failed docker command, a
   step never ticked) is counted. A tick's latency is the check runner's StepTick.ticked_at minus
   the moment of the change that satisfies it: the end of the call (or of docker push) that made
   it, and for the service step the later of its third task RUNNING and its first target healthy,
   as the lab recorded them. Targets: API p99 ≤ 200 ms, tick p95 ≤ 1 s, 0 errors. Prints
   p50/p95/p99 per API operation, per phase (the lab step the student was at) and per docker
   command, and each tick's way split from the check runner's timing log (bench/
   tick_timing_settings.py): change → heard on the bus → checks begin → checks run → tick
   committed → pushed.

    /work/venv/bin/python bench/bench_labs.py [--students 30] [--burst-rounds 4] [--poll 5] [--timeout 600]
                                              [--skip-burst] [--skip-lab] [--fifo-write-lock]

--fifo-write-lock runs lab 1 first with the write lock's turns in the order asked
(bench/fifo_write_lock_settings.py: API calls and checks' ticks not ahead of the control plane), then
as the lab is.

Removes every container, network, image tag and file it made.
"""
import argparse
import base64
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import boto3
import requests
from botocore.config import Config

from bench_noisy_neighbour import Lab, free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "labs" / "image-to-url"))
import solution  # noqa: E402  (lab 1's solution, as the end-to-end test runs it)

LAB = "image-to-url"
STEPS = ("push", "task-definition", "cluster", "load-balancer", "service")
MIN_TASKS = 3  # what the service step's check wants RUNNING (labs/image-to-url/checks.py)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else float("nan")


def epoch(stamp):
    """Seconds since the epoch of a timestamp as SQLite keeps Django's (UTC)."""
    return datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()


def class_lab(settings_module="config.settings"):
    """A started lab whose web server uses ``settings_module``, and its class of students."""
    lab = Lab()
    lab.env["DJANGO_SETTINGS_MODULE"] = settings_module
    lab.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench"), lab.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    lab.start()
    return lab


def enrol(lab, count):
    """``addstudent --count`` in ``lab``: [{name, password, account, key, secret}] from the sheet."""
    sheet = lab.manage("addstudent", "--count", str(count), "--prefix", "s")
    students = []
    for slip in sheet.split("-" * 72)[1:]:
        students.append({
            "name": re.search(r"student (\S+):", slip).group(1),
            "password": re.search(r"dashboard password (\S+)", slip).group(1),
            "account": re.search(r"account (\d{12})", slip).group(1),
            "key": re.search(r"AWS_ACCESS_KEY_ID=(\S+)", slip).group(1),
            "secret": re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", slip).group(1),
        })
    assert len(students) == count, sheet[:500]
    return students


class Timings:
    """Every API call's latency and every error, from all the students' threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []  # (operation, phase, seconds)
        self.commands = []  # (docker command, phase, seconds)
        self.errors = []  # (student, what)

    def call(self, operation, phase, seconds):
        with self.lock:
            self.calls.append((operation, phase, seconds))

    def command(self, name, phase, seconds):
        with self.lock:
            self.commands.append((name, phase, seconds))

    def error(self, student, what):
        with self.lock:
            self.errors.append((student, what))


class Timed:
    """A boto3 client whose every call is timed into ``timings``, with the phase ``phase()`` names."""

    def __init__(self, client, timings, phase=lambda: ""):
        self._client, self._timings, self._phase = client, timings, phase

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if not callable(method) or name.startswith(("get_paginator", "get_waiter", "can_paginate")):
            return method

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._timings.call(self._client.meta.method_to_api_mapping.get(name, name), self._phase(),
                                   time.perf_counter() - started)

        return timed


def client(lab, service, key, secret, timings=None, phase=lambda: ""):
    made = boto3.client(service, endpoint_url=lab.url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}, max_pool_connections=4, read_timeout=60))
    return Timed(made, timings, phase) if timings is not None else made


# --- part 1: a burst of writes, stock engine against the lab's --------------------------------


def burst(lab, ecs, number):
    """Every student's CreateCluster at the same instant: their latencies (seconds)."""
    barrier = threading.Barrier(len(ecs))

    def one(client_):
        barrier.wait()
        started = time.perf_counter()
        client_.create_cluster(clusterName=f"burst-{number}")
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=len(ecs)) as pool:
        return list(pool.map(one, ecs))


def write_burst(students, rounds):
    labs = {"stock": class_lab("stock_sqlite_settings"), "lab": class_lab()}
    try:
        clients = {}
        for name, lab in labs.items():
            clients[name] = [client(lab, "ecs", s["key"], s["secret"]) for s in enrol(lab, students)]
            for ecs in clients[name]:
                ecs.list_clusters()  # each client's connection open before the burst
        seen = {name: [] for name in labs}
        for number in range(rounds):
            for name in ("stock", "lab") if number % 2 == 0 else ("lab", "stock"):
                times = burst(labs[name], clients[name], number)
                seen[name] += times
                print(f"  round {number + 1} {name:>5}: CreateCluster x{students} at once p50 "
                      f"{percentile(times, .5) * 1000:4.0f} ms, p95 {percentile(times, .95) * 1000:4.0f} ms, "
                      f"p99 {percentile(times, .99) * 1000:4.0f} ms", flush=True)
                time.sleep(0.5)  # the control plane's reaction to the burst settles before the next
        for fraction, label in ((.5, "p50"), (.95, "p95"), (.99, "p99")):
            stock, ours = percentile(seen["stock"], fraction), percentile(seen["lab"], fraction)
            print(f"  CreateCluster x{students} at once, {label}: stock SQLite engine {stock * 1000:.0f} ms, "
                  f"the lab's engine {ours * 1000:.0f} ms ({ours / stock:.2f}x)")
    finally:
        for lab in labs.values():
            lab.stop()


# --- part 2: lab 1, the whole class at once ---------------------------------------------------


class Student:
    """One student of the class: boto3 clients with their own key (timed), the docker CLI with a
    config of their own, and a dashboard session. The lab's solution acts through it."""

    demo_image = "fargate-lab/demo:latest"

    def __init__(self, lab, slip, timings, workdir, poll):
        self.lab, self.name, self.timings, self.poll = lab, slip["name"], timings, poll
        self.phase = "start"  # the lab step the student is at ("wait": for healthy targets)
        self.ecs, self.elbv2, self.ecr = (client(lab, s, slip["key"], slip["secret"], timings, lambda: self.phase)
                                          for s in ("ecs", "elbv2", "ecr"))
        self.docker_config = Path(workdir) / f"docker-{self.name}"
        self.tags, self.done_at = [], {}
        self.session = requests.Session()
        self.session.get(lab.url + "/accounts/login/", timeout=60)
        self.post("/accounts/login/", {"username": slip["name"], "password": slip["password"]})

    def post(self, path, data=None):
        response = self.session.post(self.lab.url + path, timeout=60, headers={"Referer": self.lab.url + path},
                                     data={**(data or {}), "csrfmiddlewaretoken": self.session.cookies.get("csrftoken", "")})
        if response.status_code >= 400:
            raise RuntimeError(f"POST {path} answered {response.status_code}")

    def docker(self, *args):
        began = time.perf_counter()
        done = subprocess.run(["docker", "--config", str(self.docker_config), *args], capture_output=True,
                              text=True, timeout=300)
        self.timings.command(f"docker {args[0]}", self.phase, time.perf_counter() - began)
        if done.returncode != 0:
            raise RuntimeError(f"docker {args[0]} failed: {done.stderr.strip()[:300]}")
        if args[0] == "tag":
            self.tags.append(args[2])
        return done.stdout

    def docker_login(self):
        data = self.ecr.get_authorization_token()["authorizationData"][0]
        password = base64.b64decode(data["authorizationToken"]).decode().partition(":")[2]
        began = time.perf_counter()
        done = subprocess.run(["docker", "--config", str(self.docker_config), "login", "--username", "AWS",
                               "--password-stdin", data["proxyEndpoint"].split("://", 1)[-1]],
                              input=password, capture_output=True, text=True, timeout=60)
        self.timings.command("docker login", self.phase, time.perf_counter() - began)
        if done.returncode != 0:
            raise RuntimeError(f"docker login failed: {done.stderr.strip()[:300]}")

    @staticmethod
    def free_port():
        return free_port()

    def wait_until_healthy(self, timeout):
        """As the lab says: describe-services and describe-target-health until 3 targets are healthy."""
        target_group = self.elbv2.describe_target_groups(Names=["web-tg"])["TargetGroups"][0]["TargetGroupArn"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ecs.describe_services(cluster="demo", services=["web"])
            health = self.elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
            if sum(1 for t in health if t["TargetHealth"]["State"] == "healthy") >= MIN_TASKS:
                return
            time.sleep(self.poll)  # a student re-runs the command every few seconds
        raise TimeoutError(f"{self.name}: 3 healthy targets not seen within {timeout:.0f} s")

    def do_lab(self, timeout):
        """The whole lab, step by step; each step's end (wall clock) in ``done_at``."""
        self.post(f"/labs/{LAB}/start/")
        for step in STEPS:
            self.phase = step
            getattr(solution, step.replace("-", "_"))(self)
            self.done_at[step] = time.time()
        self.phase = "wait"
        self.wait_until_healthy(timeout)

    def cleanup(self):
        for tag in self.tags:
            subprocess.run(["docker", "rmi", tag], capture_output=True, timeout=60)


def service_ready_at(db, account):
    """When the account's service step was satisfied, as the lab recorded it: the later of its
    third task RUNNING and its first target healthy (None if either never happened)."""
    started = [epoch(row[0]) for row in db.execute(
        "SELECT t.started_at FROM orchestrator_task t JOIN orchestrator_account a ON t.account_id = a.id "
        "WHERE a.account_id = ? AND t.started_at IS NOT NULL ORDER BY t.started_at", (account,))]
    healthy = db.execute(
        "SELECT MIN(act.created_at) FROM orchestrator_activity act WHERE act.action = 'target.healthy' AND "
        "act.object_arn LIKE ?", (f"arn:aws:ecs:%:{account}:task/%",)).fetchone()[0]
    if len(started) < MIN_TASKS or healthy is None:
        return None
    return max(started[MIN_TASKS - 1], epoch(healthy))


def ticks_of(db, name):
    """{step: ticked_at (epoch)} of student ``name``'s lab 1."""
    return {step: epoch(at) for step, at in db.execute(
        "SELECT t.step, t.ticked_at FROM classroom_steptick t JOIN classroom_labprogress p ON t.progress_id = p.id "
        "JOIN auth_user u ON p.user_id = u.id WHERE u.username = ? AND p.lab = ?", (name, LAB))}


TICK_LINE = re.compile(r"tick account=(\d{12}) lab=(\S+) step=(\S+) heard=([\d.]+) started=([\d.]+) "
                       r"checked=([\d.]+) committed=([\d.]+) published=([\d.]+)")
# A tick's way, from the change that satisfied it to the page (the runner's timing log).
SPLIT = (("change → bus", "changed", "heard"), ("bus → checks begin", "heard", "started"),
         ("checks run", "started", "checked"), ("tick committed", "checked", "committed"),
         ("tick pushed", "committed", "published"))


def tick_timings(log_path):
    """{(account, step): {heard, started, checked, committed, published}} from the lab's log."""
    found = {}
    for line in Path(log_path).read_text(errors="replace").splitlines():
        match = TICK_LINE.search(line)
        if match and match.group(2) == LAB:
            found[(match.group(1), match.group(3))] = dict(zip(
                ("heard", "started", "checked", "committed", "published"), map(float, match.groups()[3:])))
    return found


TURN_LINE = re.compile(r"turn by=(\S+) waited=([\d.]+) held=([\d.]+)")


def write_turns(log_path):
    """[(who, waited, held)] of every turn at the write lock, from the lab's log."""
    found = []
    for line in Path(log_path).read_text(errors="replace").splitlines():
        match = TURN_LINE.search(line)
        if match:
            found.append((match.group(1), float(match.group(2)), float(match.group(3))))
    return found


def ms(values, fraction):
    return f"{percentile(values, fraction) * 1000:5.0f}"


def spread(values):
    """p50/p95/p99 of ``values`` (seconds) in ms."""
    return f"p50 {ms(values, .5)} ms  p95 {ms(values, .95)} ms  p99 {ms(values, .99)} ms"


def whole_lab(count, timeout, poll, settings_module="tick_timing_settings"):
    subprocess.run([str(ROOT / "demo" / "build.sh")], check=True, capture_output=True)
    lab = class_lab(settings_module)
    students, timings = [], Timings()
    try:
        slips = enrol(lab, count)
        students = [Student(lab, slip, timings, lab.workdir, poll) for slip in slips]
        accounts = {s["name"]: s["account"] for s in slips}
        barrier = threading.Barrier(len(students))
        started = time.monotonic()

        def run(student):
            barrier.wait()
            try:
                student.do_lab(timeout)
            except Exception as exc:  # counted: the target is 0 errors
                timings.error(student.name, f"{type(exc).__name__}: {exc}"[:300])
                traceback.print_exc(limit=1)

        with ThreadPoolExecutor(max_workers=len(students)) as pool:
            list(pool.map(run, students))
        finished = time.monotonic() - started
        # The last ticks land after the students saw their targets healthy: wait for them (or the deadline).
        deadline = time.monotonic() + 30
        with sqlite3.connect(f"file:{lab.env['FARGATE_LAB_DB']}?mode=ro", uri=True) as db:
            while time.monotonic() < deadline and any(len(ticks_of(db, s.name)) < len(STEPS) for s in students):
                time.sleep(0.5)  # the bench's own wait for the runner's last writes
            latencies = {step: [] for step in STEPS}
            split = {step: {name: [] for name, _, _ in SPLIT} for step in STEPS}
            logged = tick_timings(Path(lab.workdir) / "lab.log")
            turns = write_turns(Path(lab.workdir) / "lab.log")
            for student in students:
                ticked = ticks_of(db, student.name)
                changed = dict(student.done_at)
                if "service" in changed:
                    changed["service"] = service_ready_at(db, accounts[student.name])
                for step in STEPS:
                    if step not in ticked:
                        timings.error(student.name, f"step {step} never ticked")
                    elif changed.get(step) is not None:
                        latencies[step].append(max(ticked[step] - changed[step], 0.0))
                        moments = logged.get((accounts[student.name], step))
                        if moments:
                            moments = {**moments, "changed": changed[step]}
                            for name, since, until in SPLIT:
                                split[step][name].append(moments[until] - moments[since])
        load = os.getloadavg()
    finally:
        for student in students:
            student.cleanup()
        lab.stop()
    calls = [seconds for _, _, seconds in timings.calls]
    print(f"  {count} students did lab 1 in {finished:.0f} s (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})")
    print(f"  API calls: {len(calls)}, {spread(calls)}, worst {max(calls, default=0) * 1000:.0f} ms  (target p99 ≤ 200 ms)")
    for title, index in (("per operation", 0), ("per phase (the lab step the student was at)", 1)):
        print(f"  {title}:")
        grouped = {}
        for call in timings.calls:
            grouped.setdefault(call[index], []).append(call[2])
        for name, times in sorted(grouped.items(), key=lambda item: -percentile(item[1], .99)):
            print(f"    {name:<28} x{len(times):<4} {spread(times)}")
    grouped = {}
    for name, _, seconds in timings.commands:
        grouped.setdefault(name, []).append(seconds)
    print("  docker commands:")
    for name, times in sorted(grouped.items()):
        print(f"    {name:<28} x{len(times):<4} {spread(times)}")
    every = [latency for step in STEPS for latency in latencies[step]]
    print(f"  ticks: {len(every)}, {spread(every)}  (target p95 ≤ 1 s)")
    for step in STEPS:
        print(f"    {step:<16} x{len(latencies[step]):<3} {spread(latencies[step])}")
    print("  a tick's way (change → the runner hears it on the bus → its checks begin → have run → the tick "
          "is committed → pushed), p50 / p95 in ms:")
    print("    " + " " * 16 + "".join(f"{name:>22}" for name, _, _ in SPLIT))
    for step in STEPS:
        print(f"    {step:<16}" + "".join(f"{ms(split[step][name], .5):>13} / {ms(split[step][name], .95):>5}"
                                          for name, _, _ in SPLIT))
    print(f"  write-lock turns: {len(turns)} ({len(turns) / max(len(calls), 1):.2f} per API call), waited "
          f"{sum(t[1] for t in turns):.0f} s, held {sum(t[2] for t in turns):.0f} s; by who asked (most held first):")
    grouped = {}
    for who, waited, held in turns:
        grouped.setdefault(who, []).append((waited, held))
    for who, both in sorted(grouped.items(), key=lambda item: -sum(h for _, h in item[1]))[:15]:
        held = [h for _, h in both]
        print(f"    {who:<60} x{len(both):<5} held {sum(held):6.1f} s (p50 {ms(held, .5)}, p99 {ms(held, .99)} ms), "
              f"waited p50 {ms([w for w, _ in both], .5)}, p99 {ms([w for w, _ in both], .99)} ms")
    print(f"  errors: {len(timings.errors)}  (target 0)")
    for name, what in timings.errors[:10]:
        print(f"    {name}: {what}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--burst-rounds", type=int, default=4)
    parser.add_argument("--skip-burst", action="store_true", help="only the whole lab")
    parser.add_argument("--skip-lab", action="store_true", help="only the write burst (no Docker needed)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a student waits for healthy targets")
    parser.add_argument("--poll", type=float, default=5, help="seconds between a student's looks at their targets")
    parser.add_argument("--fifo-write-lock", action="store_true",
                        help="the lab first with every write-lock turn in the order asked (the baseline), then as it is")
    args = parser.parse_args()
    if not args.skip_burst:
        print(f"1. write burst, Django's stock SQLite engine against the lab's ({args.students} students)", flush=True)
        write_burst(args.students, args.burst_rounds)
    if not args.skip_lab:
        if args.fifo_write_lock:
            print(f"2a. lab 1 by {args.students} students at once, write-lock turns in the order asked (baseline)",
                  flush=True)
            whole_lab(args.students, args.timeout, args.poll, "fifo_write_lock_settings")
        print(f"2. lab 1 by {args.students} students at once", flush=True)
        whole_lab(args.students, args.timeout, args.poll)


if __name__ == "__main__":
    main()
