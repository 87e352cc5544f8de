"""Benchmark of a line printed in an awslogs container until GetLogEvents returns it, on this
machine's Docker (issue 12's target: p95 ≤ 1 s).

Run: .venv/bin/python bench/bench_logs.py [--lines 100] [--every 0.1] [--poll 0.05]

A task whose container prints ``line N`` every ``--every`` seconds ships to CloudWatch Logs
(logConfiguration awslogs). For each line, the time Docker read it (its timestamp in the
container's log) is the print; the benchmark measures, in the same run and for the same lines:
  1. the baseline: when ``docker logs --follow --timestamps`` of the container shows the line
     (Docker's own log stream, what any log shipper starts from);
  2. the lab: when GetLogEvents (the frontend's operation, in-process, polled every ``--poll``
     seconds with its forward token) first returns it.
It prints p50, p95 and the worst of each, the lab's p95 against the baseline's, and the target.
It uses a temporary database and a unique lab id, runs the ControlPlane in-process, and removes
every container and network it made.
"""
import argparse
import statistics
import subprocess
import threading
import time

from _common import demo_image, remove_lab, setup_lab, wait_for  # bench/ is on sys.path when run

WORKDIR, LAB = setup_lab(FARGATE_LAB_STOP_TIMEOUT="1")

from django.core.management import call_command  # noqa: E402

from orchestrator.awslogs import parse_line  # noqa: E402
from orchestrator.controlplane import ControlPlane  # noqa: E402
from orchestrator.frontend.logs import SERVICE as LOGS  # noqa: E402
from orchestrator.frontend.operations import dispatch  # noqa: E402
from orchestrator.models import Account, Task  # noqa: E402


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def follow_docker(container_id, seen):
    """Thread: ``docker logs -f -t`` of the container; records when each line shows (epoch s)."""
    process = subprocess.Popen(["docker", "logs", "-f", "-t", container_id], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        parsed = parse_line(line.rstrip("\n"))
        if parsed and parsed[1].startswith("line "):
            seen.setdefault(parsed[1], (parsed[0] / 1e9, time.time()))
    process.wait()


def follow_lab(account, stream, lines, poll, seen):
    """GetLogEvents with its forward token until every line is seen; records when each shows."""
    token = None
    deadline = time.monotonic() + lines * 2 + 60
    while len(seen) < lines and time.monotonic() < deadline:
        page = LOGS.call(account, "GetLogEvents", {
            "logGroupName": "/bench/logs", "logStreamName": stream, "startFromHead": True,
            **({"nextToken": token} if token else {})})
        now = time.time()
        for event in page["events"]:
            seen.setdefault(event["message"], now)
        token = page["nextForwardToken"]
        time.sleep(poll)


def report(name, delays):
    print(f"{name:<34} p50 {statistics.median(delays) * 1000:7.1f} ms   p95 {percentile(delays, 0.95) * 1000:7.1f} ms"
          f"   worst {max(delays) * 1000:7.1f} ms   ({len(delays)} lines)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--every", type=float, default=0.1)
    parser.add_argument("--poll", type=float, default=0.05)
    args = parser.parse_args()

    image = demo_image()
    call_command("migrate", verbosity=0)
    account = Account.default()
    dispatch(account, "CreateCluster", {"clusterName": "bench"})
    script = (f"sleep 2; i=0; while [ $i -lt {args.lines} ]; do echo \"line $i\"; i=$((i+1)); sleep {args.every}; "
              "done; sleep 600")
    arn = dispatch(account, "RegisterTaskDefinition", {
        "family": "bench", "cpu": "256", "memory": "512", "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"], "containerDefinitions": [{
            "name": "app", "image": image, "essential": True, "entryPoint": ["sh", "-c"], "command": [script],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/bench/logs", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "bench",
                "awslogs-create-group": "true"}}}]})["taskDefinition"]["taskDefinitionArn"]
    plane = ControlPlane()
    try:
        plane.start()
        task_arn = dispatch(account, "RunTask", {"cluster": "bench", "taskDefinition": arn, "launchType": "FARGATE",
                                                 "networkConfiguration": {"awsvpcConfiguration": {
                                                     "subnets": ["subnet-a"]}}})["tasks"][0]["taskArn"]
        task = Task.objects.get(task_id=task_arn.rsplit("/", 1)[1])
        wait_for(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 60, kinds=("task",))
        container_id = task.containers.get().docker_id
        docker_seen, lab_seen = {}, {}
        baseline = threading.Thread(target=follow_docker, args=(container_id, docker_seen), daemon=True)
        baseline.start()
        follow_lab(account, f"bench/app/{task.task_id}", args.lines, args.poll, lab_seen)
        wait_for(lambda: len(docker_seen) >= args.lines, 30)
        printed = {message: stamp for message, (stamp, _) in docker_seen.items()}
        docker_delays = [shown - printed[m] for m, (_, shown) in docker_seen.items()]
        lab_delays = [shown - printed[m] for m, shown in lab_seen.items() if m in printed]
        missing = args.lines - len(lab_delays)
        report("docker logs -f (baseline)", docker_delays)
        report("GetLogEvents (the lab)", lab_delays)
        p95_lab, p95_docker = percentile(lab_delays, 0.95), percentile(docker_delays, 0.95)
        print(f"lab p95 / baseline p95 = {p95_lab / max(p95_docker, 1e-6):.1f}x; target p95 <= 1000 ms: "
              f"{'met' if p95_lab <= 1.0 else 'NOT met'}; lines the lab never returned: {missing}")
    finally:
        plane.stop()
        remove_lab(LAB, WORKDIR)


if __name__ == "__main__":
    main()
