"""Benchmark of the task metrics sampler's cost on this machine's Docker: one sampling pass over
N running containers, the lab's way (``task_metrics.read_all``: Docker's one-shot read of every
container at once) against the baseline of what a plain ``docker stats --no-stream`` does for
each container in turn (``stream=False``: Docker reads twice, a second apart, to give a rate).

Run: .venv/bin/python bench/bench_task_metrics.py [--containers 10] [--rounds 3] [--interval 5]

For information it also times one-shot reads made one after the other (what reading all at
once saves). Per round and mode it prints the pass's wall time and the CPU it cost: this process's CPU time
plus dockerd's (from /proc/<pid>/stat), in CPU-seconds; then the ratios lab / baseline, and what
sampling every ``--interval`` seconds costs as a share of one core (the lab's mode). The
containers are busybox ``sleep`` from the demo image with the lab's limits (0.25 vCPU, 512 MiB),
under a unique lab id, removed at the end.
"""
import argparse
import os
import statistics
import time
from pathlib import Path

from _common import demo_image, remove_lab, setup_lab  # bench/ is on sys.path when run

WORKDIR, LAB = setup_lab()

from orchestrator.docker_engine import DockerEngine  # noqa: E402
from orchestrator.task_metrics import read_all  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def dockerd_cpu():
    """dockerd's CPU-seconds so far (user + system)."""
    pid = Path("/var/run/docker.pid").read_text().strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measured(fn):
    """(wall seconds, CPU-seconds of this process and dockerd) of ``fn()``."""
    wall, own, daemon = time.perf_counter(), time.process_time(), dockerd_cpu()
    fn()
    return time.perf_counter() - wall, (time.process_time() - own) + (dockerd_cpu() - daemon)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    engine = DockerEngine.for_url("", lab=LAB)
    image = demo_image()
    try:
        ids = []
        for n in range(args.containers):
            ids.append(engine.create_container({"name": f"{LAB}-sleep-{n}", "image": image, "command": ["sleep", "3600"],
                                                "nano_cpus": 250_000_000, "memory": 512 << 20}))
            engine.start(ids[-1])
        raw = engine._client()
        lab = lambda: read_all([("", i) for i in ids])  # noqa: E731
        baseline = lambda: [raw.stats(i, stream=False) for i in ids]  # noqa: E731
        serial = lambda: [engine.stats(i) for i in ids]  # noqa: E731
        results = {"lab (one-shot)": [], "baseline (stream=False)": [], "one-shot in turn": []}
        for round_ in range(args.rounds):
            for name, fn in (("lab (one-shot)", lab), ("baseline (stream=False)", baseline),
                             ("one-shot in turn", serial)):
                wall, cpu = measured(fn)
                results[name].append((wall, cpu))
                print(f"round {round_ + 1} {name}: {len(ids)} containers, {wall:.2f} s wall, {cpu:.3f} CPU-s")
        lab_wall = statistics.median(w for w, _ in results["lab (one-shot)"])
        lab_cpu = statistics.median(c for _, c in results["lab (one-shot)"])
        base_wall = statistics.median(w for w, _ in results["baseline (stream=False)"])
        base_cpu = statistics.median(c for _, c in results["baseline (stream=False)"])
        print(f"median pass: lab {lab_wall:.2f} s / {lab_cpu:.3f} CPU-s; baseline {base_wall:.2f} s / "
              f"{base_cpu:.3f} CPU-s")
        print(f"ratio lab/baseline: wall {lab_wall / base_wall:.3f}, CPU {lab_cpu / base_cpu if base_cpu else 0:.3f}")
        print("for information, one-shot reads one container after the other: median "
              f"{statistics.median(w for w, _ in results['one-shot in turn']):.2f} s wall (Docker answers each "
              "with its collector's next tick, up to 1 s away)")
        print(f"sampling every {args.interval:g} s: {100 * lab_cpu / args.interval:.1f} % of one core for "
              f"{len(ids)} containers ({100 * lab_cpu / args.interval / len(ids):.2f} % each)")
    finally:
        remove_lab(LAB, WORKDIR)


if __name__ == "__main__":
    main()
