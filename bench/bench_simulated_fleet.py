"""The control plane at scale on a simulated fleet (issue 13): a service of N tasks to RUNNING
on instances whose agent simulates containers (a sim:// runtime, orchestrator/simulated_engine.py:
KWOK's idea), and the map and the service page rendered at that size.

Everything but the runtime is the real lab, in-process: the state database (a throwaway SQLite),
the cluster manager, the capacity manager placing every task, the agent's passes (pull, create,
start, report RUNNING) and the bus. For each size (--sizes, default 100 1000 5000) it writes a
service as CreateService does, times it until every task is RUNNING (tasks/s placed and RUNNING;
target ≥ 100 tasks/s, kube-scheduler's scalability threshold; Fargate's own sustained launch rate
is 20/s), then renders the map ("/") and the service's page through Django's test client as a
logged-in user (median of --renders; target ≤ 100 ms at 5,000 tasks), and deletes the service
(but the last one: its database is thrown away).
The baseline in the same run is the smallest size's rate: the ratios say how the control plane
scales. Beside the wall time it prints the process's CPU time per task RUNNING (all threads:
the control plane is one interpreter), which a loaded machine changes far less than the rate,
and the statements run (by kind and by thread) and bus events published per task RUNNING,
which it does not change at all.

    /work/venv/bin/python bench/bench_simulated_fleet.py [--sizes 100 1000 5000] [--renders 5]
"""
import argparse
import collections
import os
import statistics
import threading
import time

from _common import setup_lab, wait_for  # bench/ is on sys.path when run

WORKDIR, LAB = setup_lab(FARGATE_LAB_DOCKER_URL="sim://bench?cpus=320&memory=655360", FARGATE_LAB_WARM_POOL="4")

from django.contrib.auth import get_user_model  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from orchestrator import bus  # noqa: E402
from orchestrator.controlplane import ControlPlane  # noqa: E402
from orchestrator.models import Account, Cluster, Deployment, Service, Task, TaskDefinition  # noqa: E402


# Statements run and bus events published, counted from every thread's connection: per task
# RUNNING they do not depend on the machine's load, as the rate does.
QUERIES = collections.Counter()  # (thread kind, statement kind) -> statements
PUBLISHED = collections.Counter()  # bus kind -> events


def _count_query(execute, sql, params, many, context):
    kind = threading.current_thread().name.rsplit("-", 1)[0]
    QUERIES[kind, sql.lstrip().split(None, 1)[0].upper()] += 1
    return execute(sql, params, many, context)


def _counting(sender, connection, **kwargs):
    connection.execute_wrappers.append(_count_query)


def _count_published(kind, pk, **info):
    PUBLISHED[kind] += 1


def per_task(counter, size, key=lambda k: k):
    """``counter``'s counts per task, grouped by ``key``, largest first."""
    grouped = collections.Counter()
    for k, n in counter.items():
        grouped[key(k)] += n
    return ", ".join(f"{k} {n / size:.1f}" for k, n in grouped.most_common())


def running(service):
    return Task.objects.filter(service=service, last_status="RUNNING", desired_status="RUNNING").count()


def render_ms(client, url, rounds):
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert client.get(url).status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    connection_created.connect(_counting)  # the control plane's threads open their connections later
    bus.subscribe(_count_published)
    setup_test_environment()
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="bench")
    definition = TaskDefinition.objects.create(
        account=account, family="web", revision=1, cpu=256, memory=512,
        body={"family": "web", "cpu": "256", "memory": "512", "containerDefinitions": [
            {"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
             "portMappings": [{"containerPort": 80}]}]})
    client = Client()
    client.force_login(get_user_model().objects.create_user("bench", password="bench"))
    plane = ControlPlane()
    plane.start()
    rows = []
    try:
        for n, size in enumerate(args.sizes):
            started, cpu = time.monotonic(), time.process_time()
            QUERIES.clear()
            PUBLISHED.clear()
            service = Service.objects.create(account=account, cluster=cluster, name=f"web-{size}",
                                             task_definition=definition, desired_count=size)
            Deployment.objects.create(service=service, deployment_id=Deployment.new_id(), task_definition=definition,
                                      desired_count=size)
            bus.publish("service", service.pk)
            wait_for(lambda: running(service) == size, 60 + size / 5, interval=1.0, kinds=("service",))
            seconds = time.monotonic() - started
            cpu_ms = (time.process_time() - cpu) * 1000 / size
            queries, published = dict(QUERIES), dict(PUBLISHED)
            map_ms = render_ms(client, "/", args.renders)
            page_ms = render_ms(client, f"/services/{service.pk}/", args.renders)
            rows.append((size, seconds, size / seconds, cpu_ms, sum(queries.values()) / size, map_ms, page_ms))
            print(f"  {size:5d} tasks RUNNING in {seconds:6.1f} s: {size / seconds:6.1f} tasks/s "
                  f"({cpu_ms:.1f} ms CPU per task); map {map_ms:5.0f} ms, service page {page_ms:5.0f} ms", flush=True)
            print(f"        per task: {sum(queries.values()) / size:.1f} queries "
                  f"({per_task(queries, size, lambda k: k[1])}; by thread: {per_task(queries, size, lambda k: k[0])}), "
                  f"{sum(published.values()) / size:.1f} bus events ({per_task(published, size)})", flush=True)
            if n == len(args.sizes) - 1:
                break  # the last service is not drained: the state database is thrown away
            Service.objects.filter(pk=service.pk).update(status="DRAINING", desired_count=0)
            bus.publish("service", service.pk)
            wait_for(lambda: not Task.objects.filter(service=service).exclude(last_status="STOPPED").exists(),
                     60 + size / 5, interval=1.0, kinds=("service",))
            Task.objects.filter(service=service).delete()
    finally:
        plane.stop()
    base = rows[0][2]
    print("size  seconds  tasks/s  ÷ smallest  CPU ms/task  queries/task  map ms  service page ms"
          "   (targets: ≥ 100 tasks/s; ≤ 100 ms)")
    for size, seconds, rate, cpu_ms, queries, map_ms, page_ms in rows:
        print(f"{size:5d}  {seconds:7.1f}  {rate:7.1f}  {rate / base:10.2f}  {cpu_ms:11.1f}  {queries:12.1f}  {map_ms:6.0f}"
              f"  {page_ms:15.0f}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    try:
        main()
    finally:
        import shutil

        shutil.rmtree(WORKDIR, ignore_errors=True)
