"""Benchmark: the load balancer's proxied throughput and added latency, against one container.

Starts one demo container (no CPU limit, so the container is not the bottleneck), registers
its bridge address as an ip target (Linux hosts reach container addresses) behind a listener of the lab's data plane (a throwaway state database), and measures with a
load generator in a separate process (so it does not share the data plane's interpreter):

  * throughput: requests/s at concurrency 16, direct vs proxied in alternating half-second
    windows (target: proxied ≥ 0.5 × direct);
  * latency: median of sequential requests, direct vs proxied (target: added ≤ 2 ms).

Run: .venv/bin/python bench/bench_load_balancer.py [--seconds 5] [--concurrency 16]
Needs Docker and the demo image (demo/build.sh). Prints one JSON line with the figures.
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def _load(url, seconds, concurrency):
    """Requests/s that ``concurrency`` clients get from ``url`` in ``seconds``."""
    import aiohttp

    done, errors = 0, 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker():
            nonlocal done, errors
            while time.monotonic() < deadline:
                try:
                    async with session.get(url) as response:
                        await response.read()
                        done += response.status == 200
                        errors += response.status != 200
                except aiohttp.ClientError:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"rps": done / elapsed, "errors": errors}


def _latency(urls, count):
    """Median and p95 milliseconds of ``count`` sequential GETs (fresh connections) per URL.

    The URLs are taken in turn, request by request, so that the load other processes put on
    the machine meanwhile weighs on each of them alike.
    """
    import http.client
    from urllib.parse import urlsplit

    samples = {url: [] for url in urls}
    for _ in range(count):
        for url in urls:
            parts = urlsplit(url)
            started = time.perf_counter()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            conn.request("GET", parts.path or "/")
            conn.getresponse().read()
            conn.close()
            samples[url].append((time.perf_counter() - started) * 1000)
    result = {}
    for url, values in samples.items():
        values.sort()
        result[url] = {"median_ms": statistics.median(values), "p95_ms": values[int(len(values) * 0.95) - 1]}
    return result


def load_generator(args):
    """The child process: throughput of each URL in turn, then interleaved latency; prints JSON."""
    # Half-second windows, URL after URL, so that a burst of load from other processes on the
    # machine falls on both alike instead of on whichever ran second.
    rounds = max(1, int(args.seconds / 0.5))
    totals = {url: {"requests": 0.0, "errors": 0} for url in args.urls}
    for _ in range(rounds):
        for url in args.urls:
            window = asyncio.run(_load(url, args.seconds / rounds, args.concurrency))
            totals[url]["requests"] += window["rps"] * args.seconds / rounds
            totals[url]["errors"] += window["errors"]
    result = {url: {"rps": t["requests"] / args.seconds, "errors": t["errors"]} for url, t in totals.items()}
    for url, latency in _latency(args.urls, args.requests).items():
        result[url].update(latency)
    print(json.dumps(result))


def measure(urls, args):
    output = subprocess.run(
        [sys.executable, __file__, "--seconds", str(args.seconds), "--concurrency", str(args.concurrency),
         "--requests", str(args.requests), "--generate", *urls],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(output)


def main(args):
    db_dir = tempfile.mkdtemp(prefix="bench-elb-")
    os.environ.update(FARGATE_LAB_DB=f"{db_dir}/lab.sqlite3", FARGATE_LAB_ID=f"bench-{uuid.uuid4().hex[:8]}",
                      DJANGO_SETTINGS_MODULE="config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from orchestrator.load_balancer import DataPlane
    from orchestrator.models import Account, Listener, LoadBalancer, Target, TargetGroup

    call_command("migrate", verbosity=0)
    lab = settings.FARGATE_LAB["LAB_ID"]
    image = subprocess.run([str(ROOT / "demo/build.sh")], capture_output=True, text=True, check=True).stdout.split()[-1]
    container = subprocess.run(
        ["docker", "run", "-d", "--label", f"fargatelab.lab={lab}", "-e",
         "FARGATE_LAB_TASK_ARN=bench", image], capture_output=True, text=True, check=True,
    ).stdout.strip()
    plane = None
    try:
        # The container's own address on the bridge, as an ip target of an awsvpc task is
        # registered on AWS; both runs then reach it the same way, without docker-proxy.
        address = subprocess.run(
            ["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container],
            capture_output=True, text=True, check=True,
        ).stdout.split()[0]
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            listen_port = probe.getsockname()[1]
        account = Account.default()
        lb = LoadBalancer.objects.create(account=account, name="bench")
        tg = TargetGroup.objects.create(account=account, name="bench", port=80, target_type="ip",
                                        health_check_interval=1, health_check_timeout=0.5)
        listener = Listener.objects.create(load_balancer=lb, port=listen_port,
                                           default_actions=[{"Type": "forward", "TargetGroupArn": tg.arn}])
        listener.target_groups.set([tg])
        target = Target.objects.create(target_group=tg, target_id=address, port=80,
                                       address=address, connect_port=80)
        plane = DataPlane(sync_seconds=1.0)
        plane.start()
        deadline = time.monotonic() + 20
        while Target.objects.get(pk=target.pk).state != Target.HEALTHY:
            if time.monotonic() > deadline:
                raise SystemExit("the bench target never turned healthy")
            time.sleep(0.1)
        plane.sync()

        direct_url, proxied_url = f"http://{address}:80/", f"http://127.0.0.1:{listen_port}/"
        figures = measure([direct_url, proxied_url], args)
        direct, proxied = figures[direct_url], figures[proxied_url]
        ratio = proxied["rps"] / direct["rps"]
        added = proxied["median_ms"] - direct["median_ms"]
        print(json.dumps({
            "direct": direct, "proxied": proxied,
            "throughput_ratio": round(ratio, 3), "added_median_ms": round(added, 3),
            "throughput_target_met": ratio >= 0.5, "latency_target_met": added <= 2.0,
        }, indent=2))
    finally:
        if plane is not None:
            plane.stop()
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests for the latency median")
    parser.add_argument("--generate", metavar="URL", dest="urls", nargs="+", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.urls:
        load_generator(arguments)
    else:
        main(arguments)
