"""AWS's pace for task launches (issue 13): with FARGATE_LAB_AWS_PACING on, how many tasks a
second RunTask accepts, through the API as a user calls it, against the same client unpaced.

One client calls RunTask (``--count`` tasks a call, boto3 with retries off, as fast as answers
come) for ``--seconds`` seconds against uvicorn serving the lab's app (lifespan off: only the API
writes rows, no container starts). Prints, for each run, the tasks accepted before the first refusal
(the burst; unpaced, in the first second) and the sustained rate after it, the ThrottlingExceptions, and the paced rate's
ratio to the configured 20 tasks/s (target: 1.0, within a few percent) and to the unpaced one.

    /work/venv/bin/python bench/bench_pacing.py [--seconds 10] [--count 5]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import setup_lab  # noqa: E402

WORKDIR, LAB = setup_lab()

import boto3  # noqa: E402
import botocore.config  # noqa: E402
import botocore.exceptions  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from dashboard.screenshot import serve  # noqa: E402
from orchestrator import pacing  # noqa: E402
from orchestrator.models import Account, Task  # noqa: E402


def run(url, seconds, count, paced):
    settings.FARGATE_LAB["AWS_PACING"] = int(paced)
    pacing.reset()
    Task.objects.all().delete()
    ecs = boto3.client("ecs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test",
                       config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}))
    network = {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}
    accepted, throttled, start = [], [], time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            ecs.run_task(cluster="bench", taskDefinition="web", count=count, launchType="FARGATE",
                         networkConfiguration=network)
            accepted.append((time.monotonic() - start, count))
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] != "ThrottlingException":
                raise
            throttled.append(time.monotonic() - start)
    # The burst is what was accepted before the first refusal; the sustained rate is measured
    # from then on (unpaced, from the first second on).
    since = throttled[0] if throttled else 1.0
    burst = sum(n for at, n in accepted if at < since)
    after = sum(n for at, n in accepted if at >= since)
    return burst, after / (seconds - since), len(throttled)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    account = Account.default()
    from orchestrator.frontend import call

    call(account, "CreateCluster", {"clusterName": "bench"})
    call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest"}]})
    server, port = serve()
    url = f"http://127.0.0.1:{port}"
    rate, burst_size = settings.FARGATE_LAB["TASK_LAUNCH_RATE"], settings.FARGATE_LAB["TASK_LAUNCH_BURST"]
    print(f"RunTask, count {args.count}, for {args.seconds:g} s; bucket {rate:g}/s, burst {burst_size}")
    unpaced = run(url, args.seconds, args.count, paced=False)
    paced = run(url, args.seconds, args.count, paced=True)
    for name, (burst, sustained, throttled) in (("unpaced", unpaced), ("paced", paced)):
        print(f"  {name:8} burst {burst:5d} tasks, then {sustained:7.1f} tasks/s, {throttled} ThrottlingException")
    print(f"paced sustained / configured rate: {paced[1] / rate:.2f} (target 1.0)")
    print(f"paced sustained / unpaced: {paced[1] / unpaced[1]:.3f}")
    server.should_exit = True


if __name__ == "__main__":
    try:
        main()
    finally:
        import shutil

        shutil.rmtree(WORKDIR, ignore_errors=True)
