"""The ECS API's read path (issue 11): DescribeTasks of 100 tasks and ListTasks with 10,000
tasks in the state database, and DescribeServices answers/s with 16 concurrent clients against
moto's server on the same calls in the same run.

Everything is measured as a user measures it: boto3 clients sending signed requests over HTTP
to a real ``manage.py lab`` (a temporary state database, a unique lab id, the control plane
running, one server process), and to ``moto_server`` started by this script.

1. **The read path at 10,000 tasks.** Before the lab starts, ``--tasks`` STOPPED tasks (one
   container each, stopped a minute ago, so the control plane leaves them be) are written
   through the models into its state database (``manage.py shell``, bulk inserts: a second or
   two). One client then walks every page of ``ListTasks(desiredStatus=STOPPED)`` (100 ARNs a
   page) and describes each page's 100 tasks with ``DescribeTasks``, --walks times: p50/p95/p99
   of each call (targets: p99 ≤ 50 ms each), and the lab process's CPU time per call (/proc).
2. **DescribeServices answers/s, the lab against moto.** The same cluster, task definition and
   --services services (desiredCount 0, so no container starts) are created in the lab and in
   moto; then --clients client processes (one boto3 client each, so that the clients' own
   signing does not share one interpreter) call ``DescribeServices`` of all of them as fast as
   answers come for --seconds, first against the lab, then against moto, --rounds times.
   Prints answers/s of each and the ratio lab / moto (target ≥ 1×), and each server's CPU time
   per answer (/proc): on a shared machine a server's answers/s follows the cores it is given,
   its CPU per answer much less.

Needs moto's server: ``/work/venv/bin/pip install -e '.[bench]'`` (or ``pip install
'moto[server]'``). Removes every file it made; starts no container.

    /work/venv/bin/python bench/bench_api.py [--tasks 10000] [--walks 1] [--clients 16]
        [--seconds 10] [--services 10] [--rounds 1] [--skip-tasks] [--skip-services]
"""
import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

import boto3
import requests
from botocore.config import Config

from bench_labs import percentile
from bench_noisy_neighbour import Lab, free_port

CLUSTER = "bench"
WEB = {
    "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                              "portMappings": [{"containerPort": 80}]}],
}
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-a"], "securityGroups": ["sg-a"], "assignPublicIp": "ENABLED"}}

# Run by ``manage.py shell -c`` in the lab's environment before the lab starts: the default
# account's cluster, a task definition and N STOPPED tasks with a container each.
FILL = """
import datetime
from django.utils import timezone
from orchestrator.models import Account, Cluster, Task, TaskContainer, TaskDefinition
account = Account.default()
cluster = Cluster.objects.create(account=account, name={cluster!r})
definition = TaskDefinition.objects.create(
    account=account, family="web", revision=1, cpu=256, memory=512,
    body={{"family": "web", "cpu": "256", "memory": "512", "compatibilities": ["EC2", "FARGATE"],
          "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
          "containerDefinitions": [{{"name": "web", "image": "fargate-lab/demo:latest", "essential": True}}]}})
now = timezone.now()
began, stopped = now - datetime.timedelta(minutes=3), now - datetime.timedelta(minutes=1)
for start in range(0, {tasks}, 1000):
    tasks = Task.objects.bulk_create([
        Task(account=account, cluster=cluster, task_definition=definition, group="family:web", cpu=256, memory=512,
             desired_status="STOPPED", last_status="STOPPED", stop_code="UserInitiated",
             stopped_reason="Task stopped by user", private_ip=f"10.0.{{n // 250}}.{{n % 250 + 2}}",
             network_configuration={network!r}, created_at=began, pull_started_at=began,
             pull_stopped_at=began, started_at=began, connectivity_at=began, stopping_at=stopped,
             execution_stopped_at=stopped, stopped_at=stopped, updated_at=stopped)
        for n in range(start, min(start + 1000, {tasks}))])
    TaskContainer.objects.bulk_create([
        TaskContainer(task=task, name="web", image="fargate-lab/demo:latest", last_status="STOPPED", exit_code=0,
                      started_at=began, stopped_at=stopped) for task in tasks])
print(Task.objects.filter(cluster=cluster).count())
"""


def cpu_seconds(pid):
    """CPU time (user + system, every thread) process ``pid`` has used, from /proc: what a call
    costs the server, which a loaded machine's wait for a core does not inflate as it does latency."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(samples, call, cpu=None, pid=None, **kwargs):
    """``call(**kwargs)``, its latency added to ``samples`` and, with ``pid``, the server's CPU
    time meanwhile added to ``cpu[0]``."""
    before = cpu_seconds(pid) if pid else 0.0
    began = time.perf_counter()
    answer = call(**kwargs)
    samples.append(time.perf_counter() - began)
    if pid:
        cpu[0] += cpu_seconds(pid) - before
    return answer


def figures(name, samples):
    ms = {p: percentile(samples, p) * 1000 for p in (0.5, 0.95, 0.99)}
    print(f"  {name:<34} {len(samples):>6} calls  p50 {ms[0.5]:6.1f} ms  p95 {ms[0.95]:6.1f} ms  "
          f"p99 {ms[0.99]:6.1f} ms", flush=True)
    return ms


def read_path(args):
    """Part 1: ListTasks pages and DescribeTasks of 100 with --tasks tasks in the database."""
    lab = Lab()
    try:
        began = time.monotonic()
        lab.manage("migrate", "--verbosity", "0")
        count = int(lab.manage("shell", "-c", FILL.format(cluster=CLUSTER, tasks=args.tasks, network=NETWORK)).split()[-1])
        print(f"{count} STOPPED tasks written in {time.monotonic() - began:.1f} s", flush=True)
        lab.start()
        ecs = lab.client()
        listed, described, list_cpu, describe_cpu, pid = [], [], [0.0], [0.0], lab.proc.pid
        for _ in range(args.walks):
            token, seen = None, 0
            while True:
                page = timed(listed, ecs.list_tasks, list_cpu, pid, cluster=CLUSTER, desiredStatus="STOPPED",
                             maxResults=100, **({"nextToken": token} if token else {}))
                answer = timed(described, ecs.describe_tasks, describe_cpu, pid, cluster=CLUSTER, tasks=page["taskArns"])
                assert len(answer["tasks"]) == len(page["taskArns"]) and not answer["failures"], answer["failures"][:1]
                seen += len(page["taskArns"])
                token = page.get("nextToken")
                if not token:
                    break
            assert seen == count, (seen, count)
        print(f"{args.walks} walk(s) of all {count} tasks, 100 a page (targets: p99 <= 50 ms each):")
        results = {"ListTasks": figures(f"ListTasks (100 of {count:,} ARNs)", listed),
                   "DescribeTasks": figures("DescribeTasks (100 tasks)", described)}
        for name, ms in results.items():
            print(f"  {name}: p99 {ms[0.99]:.1f} ms: {'met' if ms[0.99] <= 50 else 'not met'} on this machine")
        for name, used, samples in (("ListTasks", list_cpu[0], listed), ("DescribeTasks", describe_cpu[0], described)):
            print(f"  {name}: the lab process's CPU {used / len(samples) * 1000:.1f} ms a call "
                  f"(user + system, /proc; clock ticks of 10 ms summed over {len(samples)} calls)")
        print(f"  load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        lab.stop()


def ecs_client(url):
    return boto3.client("ecs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))


def prepare(url, services, moto=False):
    """The same objects in the lab and in moto: a cluster, a task definition, N idle services
    (in moto, in a subnet and the security group of its default VPC: moto checks that they exist)."""
    ecs = ecs_client(url)
    network = NETWORK
    if moto:
        ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                           aws_secret_access_key="test")
        network = {"awsvpcConfiguration": {**NETWORK["awsvpcConfiguration"],
                                           "subnets": [ec2.describe_subnets()["Subnets"][0]["SubnetId"]],
                                           "securityGroups": [ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]]}}
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(**WEB)
    names = [f"web-{n}" for n in range(services)]
    for name in names:
        ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition="web", desiredCount=0,
                           launchType="FARGATE", networkConfiguration=network)
    if not moto:  # the lab's control plane has done with the new services before the clock starts
        deadline = time.monotonic() + 120
        while not all(any("steady state" in e["message"] for e in s["events"])
                      for s in ecs.describe_services(cluster=CLUSTER, services=names)["services"]):
            if time.monotonic() > deadline:
                raise TimeoutError("the services did not reach a steady state")
            time.sleep(0.5)
    return names


def client_process(url, names, seconds, ready, go, results):
    """One client: DescribeServices of ``names`` for ``seconds`` from the parent's ``go`` (after
    every client said ``ready``); puts (answers, errors, latencies)."""
    answers, errors, latencies = 0, 0, []
    try:
        ecs = ecs_client(url)
        ecs.describe_services(cluster=CLUSTER, services=names)  # the connection and the model, before the clock
        ready.put(True)
        go.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                answer = ecs.describe_services(cluster=CLUSTER, services=names)
                if len(answer["services"]) == len(names):
                    answers += 1
                else:
                    errors += 1
            except Exception:  # counted: answers/s counts full answers only
                errors += 1
            latencies.append(time.perf_counter() - began)
    except Exception:  # the warm-up call failed: this client answers nothing
        ready.put(False)
        errors += 1
    finally:
        results.put((answers, errors, latencies))


def answers_per_second(url, names, clients, seconds):
    """--clients processes calling DescribeServices at once: (answers/s, errors, latencies)."""
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Queue(), context.Event(), context.Queue()
    processes = [context.Process(target=client_process, args=(url, names, seconds, ready, go, results))
                 for _ in range(clients)]
    for process in processes:
        process.start()
    for _ in processes:  # every process spawned and warmed up before the clock starts
        ready.get(timeout=300)
    go.set()
    gathered = [results.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    answers = sum(g[0] for g in gathered)
    return answers / seconds, sum(g[1] for g in gathered), [s for g in gathered for s in g[2]]


class Moto:
    """moto's server (``moto_server``) on a free port."""

    def __init__(self):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = None

    def start(self):
        try:
            import moto.server  # noqa: F401
        except ImportError:
            sys.exit("moto's server is needed: /work/venv/bin/pip install -e '.[bench]' (or pip install 'moto[server]')")
        port = self.url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/moto-api/", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise TimeoutError("moto's server did not answer")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def services_rate(args):
    """Part 2: DescribeServices answers/s with --clients clients, the lab against moto."""
    lab, moto = Lab(), Moto()
    try:
        lab.start()
        moto.start()
        lab_names = prepare(lab.url, args.services)
        moto_names = prepare(moto.url, args.services, moto=True)
        ratios = []
        for number in range(1, args.rounds + 1):
            print(f"round {number}: {args.clients} clients, DescribeServices of {args.services} services, "
                  f"{args.seconds:g} s each", flush=True)
            rates, costs = {}, {}
            for name, url, names, pid in (("Fargate Lab (1 process)", lab.url, lab_names, lab.proc.pid),
                                          ("moto_server", moto.url, moto_names, moto.proc.pid)):
                before, load = cpu_seconds(pid), os.getloadavg()[0]
                rate, errors, latencies = answers_per_second(url, names, args.clients, args.seconds)
                rates[name] = rate
                costs[name] = (cpu_seconds(pid) - before) / max(1, rate * args.seconds) * 1000
                print(f"  {name:<24} {rate:7.1f} answers/s  errors {errors}  p50 {percentile(latencies, 0.5) * 1000:6.1f} ms"
                      f"  p99 {percentile(latencies, 0.99) * 1000:6.1f} ms  server CPU {costs[name]:5.1f} ms/answer"
                      f"  (load {load:.1f})", flush=True)
            ratio = rates["Fargate Lab (1 process)"] / rates["moto_server"]
            ratios.append(ratio)
            print(f"  lab / moto: {ratio:.2f}x (target >= 1x: {'met' if ratio >= 1 else 'not met'} on this machine); "
                  f"CPU per answer moto / lab: {costs['moto_server'] / costs['Fargate Lab (1 process)']:.2f}x")
        if len(ratios) > 1:
            print(f"median ratio over {len(ratios)} rounds: {statistics.median(ratios):.2f}x")
    finally:
        moto.stop()
        lab.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="Needs moto[server] for part 2 "
                                     "(pip install -e '.[bench]').")
    parser.add_argument("--tasks", type=int, default=10000, help="STOPPED tasks in the database (default 10000)")
    parser.add_argument("--walks", type=int, default=1, help="walks over every ListTasks page (default 1)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent DescribeServices clients (default 16)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of DescribeServices per server (default 10)")
    parser.add_argument("--services", type=int, default=10, help="services described per call, 1-10 (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="lab/moto pairs (default 1)")
    parser.add_argument("--skip-tasks", action="store_true", help="skip part 1 (the read path at --tasks tasks)")
    parser.add_argument("--skip-services", action="store_true", help="skip part 2 (DescribeServices against moto)")
    args = parser.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    if not args.skip_tasks:
        read_path(args)
    if not args.skip_services:
        services_rate(args)


if __name__ == "__main__":
    main()
