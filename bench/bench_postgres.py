"""30 API clients at once on PostgreSQL with 3 server processes, beside SQLite with one (issue 13).

Each round runs both back to back, each against real ``manage.py lab`` processes (a temporary
state database, a unique lab id, the control plane running):

- the baseline: the embedded SQLite and the in-memory channel layer, one process;
- PostgreSQL and Redis (DATABASE_URL, REDIS_URL): three processes of one lab on one database,
  each on its own port, the clients spread over them.

--clients students (``addstudent --count``, each their own account and key) then call the ECS
API for --seconds each, as fast as answers come: a cluster and a task definition of their own
first, then a mix of four reads to one write (DescribeClusters, ListTaskDefinitions,
DescribeTaskDefinition, ListClusters; RegisterTaskDefinition). Every call is timed client-side,
as a student sees it. Prints p50, p95 and p99 of each and the ratio PostgreSQL / SQLite; the
target is p99 ≤ 100 ms on PostgreSQL. No task is started: the figure is the frontend's and the
state database's.

    DATABASE_URL=postgres://user:pass@127.0.0.1:5432/name REDIS_URL=redis://127.0.0.1:6379/0 \\
        /work/venv/bin/python bench/bench_postgres.py [--clients 30] [--seconds 20] [--rounds 1]

The role of DATABASE_URL must be allowed to create databases: each round makes one
(``<name>_bench_<id>``) and drops it, and touches no other. Removes every file it made.
"""
import argparse
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench_labs import enrol, percentile
from bench_noisy_neighbour import Lab

WEB = {
    "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True}],
}


def sqlite_labs():
    """One lab process on its own SQLite database (REDIS_URL and DATABASE_URL left out)."""
    lab = Lab()
    for name in ("DATABASE_URL", "REDIS_URL"):
        lab.env.pop(name, None)
    lab.start()
    return [lab]


def postgres_labs(processes):
    """``processes`` lab processes of one lab on a new PostgreSQL database; (labs, database name)."""
    base = urlsplit(os.environ["DATABASE_URL"])
    name = f"{base.path.lstrip('/')}_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(base._replace(path=f"/{name}"))
    labs = []
    secret = uuid.uuid4().hex
    for n in range(processes):
        lab = Lab()
        lab.env.update(DATABASE_URL=url, DJANGO_SECRET_KEY=secret)
        if labs:
            lab.lab_id = labs[0].lab_id
            lab.env["FARGATE_LAB_ID"] = lab.lab_id
        lab.start()  # one after another: the first migrates the database
        labs.append(lab)
    return labs, name


def drop(name):
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cpu_seconds(pid):
    """User and system CPU seconds of process ``pid`` so far (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(labs, clients, seconds):
    """``clients`` students calling the API of ``labs`` (spread over them) for ``seconds``:
    (latencies in seconds, errors, the server processes' CPU seconds meanwhile, wall seconds)."""
    students = enrol(labs[0], clients)
    latencies, errors, lock = [], [], threading.Lock()
    start = threading.Barrier(clients)

    def student(n):
        lab = labs[n % len(labs)]
        ecs = lab.client(students[n]["key"], students[n]["secret"])
        own = []

        def timed(call, *args, **kwargs):
            began = time.perf_counter()
            try:
                return call(*args, **kwargs)
            except Exception as exc:  # counted: the figure is p99 of the calls that answered
                with lock:
                    errors.append(f"{call.__name__}: {exc}")
            finally:
                with lock:
                    own.append(time.perf_counter() - began)

        start.wait()
        timed(ecs.create_cluster, clusterName="demo")
        timed(ecs.register_task_definition, **WEB)
        deadline = time.monotonic() + seconds
        calls = 0
        while time.monotonic() < deadline:
            calls += 1
            if calls % 5 == 0:
                timed(ecs.register_task_definition, **WEB)
            elif calls % 5 == 1:
                timed(ecs.describe_clusters, clusters=["demo"])
            elif calls % 5 == 2:
                timed(ecs.list_task_definitions, familyPrefix="web")
            elif calls % 5 == 3:
                timed(ecs.describe_task_definition, taskDefinition="web")
            else:
                timed(ecs.list_clusters)
        with lock:
            latencies.extend(own)

    cpu, began = sum(cpu_seconds(lab.proc.pid) for lab in labs), time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(student, range(clients)))
    wall = time.monotonic() - began
    return latencies, errors, sum(cpu_seconds(lab.proc.pid) for lab in labs) - cpu, wall


def summary(name, latencies, errors, cpu, wall):
    """Print one line of figures; returns the percentiles. The server's CPU per call and the
    calls per second say what the percentiles are made of: with clients that call again as soon
    as they are answered, a call waits for the ones ahead of it (Little's law: the mean latency
    is clients / calls per second), so the tail follows the CPU each call costs and the cores the
    servers get, on a shared machine more than anything else."""
    figures = {p: percentile(latencies, p) * 1000 for p in (0.5, 0.95, 0.99)}
    print(f"  {name:<28} {len(latencies):>6} calls  p50 {figures[0.5]:7.1f} ms  p95 {figures[0.95]:7.1f} ms  "
          f"p99 {figures[0.99]:7.1f} ms  errors {len(errors)}" + (f" (first: {errors[0][:120]})" if errors else ""))
    if latencies:
        print(f"  {'':<28} {len(latencies) / wall:6.1f} calls/s  server CPU {cpu * 1000 / len(latencies):5.1f} ms a call "
              f"({cpu / wall:.2f} cores)  load average {os.getloadavg()[0]:.1f}")
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("set DATABASE_URL (a role that may create databases) and REDIS_URL")
    ratios = []
    for number in range(1, args.rounds + 1):
        print(f"round {number}: {args.clients} clients for {args.seconds:g} s")
        labs = sqlite_labs()
        try:
            sqlite = summary("SQLite, 1 process", *load(labs, args.clients, args.seconds))
        finally:
            for lab in labs:
                lab.stop()
        labs, database = postgres_labs(args.processes)
        try:
            postgres = summary(f"PostgreSQL+Redis, {args.processes} processes",
                               *load(labs, args.clients, args.seconds))
        finally:
            for lab in labs:
                lab.stop()
            drop(database)
        ratio = postgres[0.99] / sqlite[0.99]
        ratios.append(ratio)
        print(f"  p99 PostgreSQL / SQLite: {ratio:.2f}x  (target: PostgreSQL p99 <= 100 ms: "
              f"{'met' if postgres[0.99] <= 100 else 'not met'} on this machine)")
    if len(ratios) > 1:
        print(f"median p99 ratio over {len(ratios)} rounds: {sorted(ratios)[len(ratios) // 2]:.2f}x")


if __name__ == "__main__":
    main()
