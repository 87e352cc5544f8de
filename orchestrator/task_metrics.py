"""Task metrics: each RUNNING task's CPU and memory use, sampled from Docker.

This is what the Fargate agent's stats collection is to CloudWatch's ECS metrics, and cAdvisor
with metrics-server to Kubernetes' HorizontalPodAutoscaler. The ``Sampler`` runs in the
control plane's leader: every ``METRICS_SAMPLE_SECONDS`` it reads one sample of each RUNNING
task's containers (``DockerEngine.stats``, Docker's one-shot mode: a single read, not the two a
second apart that ``docker stats --no-stream`` makes; all containers at once, see
``read_all``), and keeps, per task, the utilisation between two samples as a fraction of
what the task reserved: CPU used / the task's ``cpu`` units, memory used / its ``memory`` MiB
(1.0 = all of it; CPU may pass 1.0 only where Docker does not enforce the limit).

Readers:
- ``latest(task_pks)``: the newest ``Usage`` of each task (through the Django cache, so a page
  served by another process of a shared lab sees what the leader sampled);
- ``sampler().average(task_pks, seconds)``: the mean over a recent window (the scaling
  controller, in the leader);
- ``sampler().container_stats(docker_id)``: the last two raw Docker samples of a container
  (what a task metadata endpoint's ``/stats`` answers).
"""
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from orchestrator.docker_engine import DockerEngine, EngineError
from orchestrator.models import Task, TaskContainer

log = logging.getLogger(__name__)
CACHE_PREFIX = "task-usage:"
# What the control plane publishes on the bus after each sampling pass (the pages showing use listen).
BUS_KIND = "task_metrics"
# How much history a task keeps: the longest metric window anyone asks for.
HISTORY_SECONDS = 900.0
# Reads in flight at once (the engine client's connection pool holds 32).
READERS = 16
_readers = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="task-metrics")


@dataclass(frozen=True)
class Usage:
    """A task's resource use over one sampling interval."""

    cpu: float  # fraction of the task's reserved CPU units
    memory: float  # fraction of the task's memory (MiB)
    cpu_units: float  # CPU used, in ECS units (1024 = one vCPU)
    memory_mib: float
    at: float  # epoch seconds of the later sample

    @property
    def cpu_percent(self):
        return self.cpu * 100

    @property
    def memory_percent(self):
        return self.memory * 100


def read_ns(stamp):
    """Docker's RFC 3339 ``read`` time (nanoseconds, ``Z``) as integer epoch nanoseconds, or None."""
    if not isinstance(stamp, str) or not stamp.endswith("Z") or stamp.startswith("0001-"):
        return None
    whole, _, fraction = stamp[:-1].partition(".")
    try:
        seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        nanos = int((fraction + "000000000")[:9]) if fraction else 0
    except ValueError:
        return None
    return int(seconds) * 1_000_000_000 + nanos


def cpu_ns(stats):
    """CPU time a container has used since it started, in nanoseconds."""
    return int(((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0)


def memory_bytes(stats):
    """Memory a container uses as ``docker stats`` counts it: usage less the page cache
    (cgroup v1's ``total_inactive_file``, cgroup v2's ``inactive_file``)."""
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    cache_bytes = detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0
    return max(0, int(memory.get("usage") or 0) - int(cache_bytes))


def cores_between(previous, current):
    """CPU cores a container used between two samples (None when they do not make a rate: a
    restarted container, a sample without time)."""
    start, end = read_ns(previous.get("read")), read_ns(current.get("read"))
    used = cpu_ns(current) - cpu_ns(previous)
    if start is None or end is None or end <= start or used < 0:
        return None
    return used / (end - start)


def usage_of(pairs, cpu_units, memory_mib, at):
    """A task's ``Usage`` from (previous, current) samples of each of its containers, or None
    when no container gives a rate (pure)."""
    cores = [cores_between(previous, current) for previous, current in pairs]
    cores = [c for c in cores if c is not None]
    if not cores:
        return None
    used_units = sum(cores) * 1024
    used_mib = sum(memory_bytes(current) for _, current in pairs) / (1024 * 1024)
    return Usage(cpu=used_units / cpu_units if cpu_units else 0.0, memory=used_mib / memory_mib if memory_mib else 0.0,
                 cpu_units=used_units, memory_mib=used_mib, at=at)


def mean(usages):
    """The mean ``Usage`` of a list (None for none): what averaging a metric over a window gives."""
    if not usages:
        return None
    n = len(usages)
    return Usage(cpu=sum(u.cpu for u in usages) / n, memory=sum(u.memory for u in usages) / n,
                 cpu_units=sum(u.cpu_units for u in usages) / n, memory_mib=sum(u.memory_mib for u in usages) / n,
                 at=max(u.at for u in usages))


def read_all(containers):
    """{docker id: one raw sample} of each (engine URL, docker id), read all at once.

    Docker (20.10) answers a one-shot read with its stats collector's next tick, up to a second
    away: read one after the other, N containers take N seconds of waiting; read together, one
    tick answers them all. A container Docker cannot read (gone meanwhile) is left out."""
    def one(url, docker_id):
        try:
            return docker_id, DockerEngine.for_url(url).stats(docker_id)
        except EngineError as exc:
            log.debug("no stats for %s: %s", docker_id[:12], exc)
            return docker_id, None
        except Exception:  # one engine's bug must not leave every other task unmeasured
            log.exception("stats of %s failed", docker_id[:12])
            return docker_id, None
    if not containers:
        return {}
    futures = [_readers.submit(one, url, docker_id) for url, docker_id in containers]
    return {docker_id: stats for docker_id, stats in (f.result() for f in futures) if stats is not None}


class Sampler:
    """Samples RUNNING tasks' containers and keeps their recent utilisation (see the module)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._samples = {}  # docker id -> (previous raw stats or None, latest raw stats)
        self._history = {}  # task pk -> deque of Usage, oldest first
        self.passes = 0

    @staticmethod
    def interval():
        return settings.FARGATE_LAB["METRICS_SAMPLE_SECONDS"]

    def sample_once(self):
        """Read one sample of every RUNNING task's running containers; returns how many tasks got a
        new ``Usage``. A container Docker cannot read (gone meanwhile) is skipped until next time."""
        rows = (TaskContainer.objects.filter(task__last_status=Task.RUNNING, last_status="RUNNING")
                .exclude(docker_id="")
                .values_list("task_id", "docker_id", "task__cpu", "task__memory",
                             "task__container_instance__engine_url"))
        tasks = {}
        for task_pk, docker_id, cpu, memory, url in rows:
            tasks.setdefault(task_pk, (cpu, memory, url or "", []))[3].append(docker_id)
        read = read_all([(url, docker_id) for _, _, url, containers in tasks.values() for docker_id in containers])
        fresh, now = {}, time.time()
        for task_pk, (cpu, memory, url, containers) in tasks.items():
            pairs = []
            for docker_id in containers:
                current = read.get(docker_id)
                if current is None:
                    continue
                with self._lock:
                    previous = (self._samples.get(docker_id) or (None, None))[1]
                    self._samples[docker_id] = (previous, current)
                if previous is not None:
                    pairs.append((previous, current))
            usage = usage_of(pairs, cpu, memory, now)
            if usage is not None:
                fresh[task_pk] = usage
        self._keep(fresh, set(tasks), {d for *_, containers in tasks.values() for d in containers}, now)
        self.passes += 1
        return len(fresh)

    def _keep(self, fresh, live_tasks, live_containers, now):
        """Append the new usages, forget tasks and containers no longer running, publish the newest."""
        gone = []
        with self._lock:
            for task_pk, usage in fresh.items():
                self._history.setdefault(task_pk, deque()).append(usage)
            for task_pk in list(self._history):
                if task_pk not in live_tasks:
                    del self._history[task_pk]
                    gone.append(f"{CACHE_PREFIX}{task_pk}")
                    continue
                kept = self._history[task_pk]
                while kept and kept[0].at < now - HISTORY_SECONDS:
                    kept.popleft()
            for docker_id in list(self._samples):
                if docker_id not in live_containers:
                    del self._samples[docker_id]
        if gone:  # a stopped task has no utilisation now
            cache.delete_many(gone)
        if fresh:
            cache.set_many({f"{CACHE_PREFIX}{pk}": usage for pk, usage in fresh.items()},
                           timeout=max(30, int(self.interval() * 4)))

    def history(self, task_pk):
        """The task's recent usages, oldest first."""
        with self._lock:
            return list(self._history.get(task_pk, ()))

    def average(self, task_pks, seconds, now=None):
        """(mean Usage of each task over the last ``seconds``, averaged over the tasks that have one,
        how many tasks had one): what ECSServiceAverageCPUUtilization is to a service."""
        now = time.time() if now is None else now
        per_task = []
        with self._lock:
            for pk in task_pks:
                recent = [u for u in self._history.get(pk, ()) if u.at >= now - seconds]
                if recent:
                    per_task.append(mean(recent))
        return mean(per_task), len(per_task)

    def covered(self, task_pks, now=None):
        """Seconds of history the tasks have between them: from the oldest sample of any to ``now``
        (0 for none), so that a window's average is only trusted once data spans the window."""
        now = time.time() if now is None else now
        with self._lock:
            oldest = [self._history[pk][0].at for pk in task_pks if self._history.get(pk)]
        return now - min(oldest) if oldest else 0.0

    def container_stats(self, docker_id):
        """(previous, latest) raw Docker samples of a container (either None if not sampled)."""
        with self._lock:
            return self._samples.get(docker_id) or (None, None)

    def run(self, stop, should_sample=lambda: True, on_pass=None):
        """Sample every ``interval()`` seconds until ``stop`` (an Event) is set, while
        ``should_sample()`` (the leader's lease); ``on_pass()`` after each pass."""
        while not stop.wait(self.interval()):
            if not should_sample():
                continue
            try:
                self.sample_once()
                if on_pass is not None:
                    on_pass()
            except Exception:  # a bad pass must not end sampling; the next one starts afresh
                log.exception("task metrics: sampling failed")
                connection.close()


_sampler = Sampler()


def sampler():
    """The process's sampler (the leader's control plane runs it)."""
    return _sampler


def latest(task_pks):
    """{task pk: its newest Usage} for the tasks sampled lately (any process of the lab)."""
    found = cache.get_many([f"{CACHE_PREFIX}{pk}" for pk in task_pks])
    return {int(key.removeprefix(CACHE_PREFIX)): usage for key, usage in found.items()}
