"""The control plane: cluster manager, capacity manager and agents on two work queues.

``ControlPlane().start()`` starts threads; ``stop()`` ends them. How work arrives:
1. the change bus (kinds "task", "service", "cluster") enqueues a key at once, for a frontend
   in this process;
2. for a frontend in another process: on a shared bus (REDIS_URL or PostgreSQL), the bus
   itself, as 1.; on SQLite, a database watcher (every ~250 ms) that enqueues tasks and
   services whose desired state changed;
3. each agent enqueues the tasks that Docker events and lists concern;
4. a full resync every RESYNC_SECONDS enqueues everything, because any of those can miss.
Beside them, the leader samples RUNNING tasks' CPU and memory from Docker every
METRICS_SAMPLE_SECONDS (``orchestrator.task_metrics``); after each sampling pass every scalable
target ("scalable-target:<pk>", the scheduler queue) gets a pass of the service autoscaler
(``orchestrator.service_autoscaler``), as do targets Application Auto Scaling's API changes.
Workers take keys from two queues and run one level-triggered pass each, as Kubernetes gives
each controller its own queue and workers:
- the scheduler queue ("service:<pk>", "placement", "cluster:<pk>", "target:<pk>"): the cluster
  and capacity managers' passes, which only read and write the state database, so they are
  quick; SCHEDULER_WORKERS threads take them;
- the agent queue ("task:<pk>", "container:<engine>|<id>", and "agent:<instance pk>": a
  simulated instance's batched pass over its new tasks, ``orchestrator.agent_batch``): the
  agents' passes, which wait on Docker (create, start, stop: up to seconds each); WORKERS
  threads take them.
Apart, a rollout's next step (a service key) never waits behind twenty container starts.

Several processes may each run a control plane: a ``Lease`` row ("controlplane") claimed and
renewed with conditional UPDATEs elects one leader; only the leader reconciles, and only the
leader runs the load balancers' data plane (binds the listener ports and health-checks).
A target's health change (bus kind "target") enqueues "target:<pk>", which enqueues the
service of the target's task: the cluster manager's health step acts on it.

Traces travel with the keys: ``enqueue`` passes the current trace (the API call whose write
the bus reports, the pass that asks for more work) to the queue, and a worker continues the
trace its key was handed out with (``orchestrator.traces``).
"""
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection
from django.db.models import Q
from django.utils import timezone

from orchestrator import (
    activity, agent_batch, awslogs, bus, host_firewall, load_balancer, retention, sandbox_pool, service_autoscaler, spot,
    state_database, task_metadata, task_metrics, traces,
)
from orchestrator.agent import Agent, sync_container, sync_instance, sync_task
from orchestrator.capacity_manager import PLACEMENT_KEY, CapacityManager, ensure_fleet, fleet_engines
from orchestrator.cluster_manager import ClusterManager
from orchestrator.docker_engine import DockerEngine, EngineError, EngineUnavailable, lab_id
from orchestrator.elbv2.operations import forget_unowned_targets
from orchestrator.models import ContainerInstance, Lease, ScalableTarget, Service, Target, Task
from orchestrator.workqueue import WorkQueue

log = logging.getLogger(__name__)
LEASE_NAME = "controlplane"
WATCH_INTERVAL = 0.25
# The watcher re-reads rows changed this long before its cursor: a transaction that commits
# late (or a clock a little behind) must not be missed.
WATCH_OVERLAP = timedelta(seconds=2)
# How often the leader prunes old traces (on its resync loop).
PRUNE_SECONDS = 30.0
# An agent's reports to a service are coalesced into one pass per COALESCE_FACTOR times that
# service's last pass (at most COALESCE_MAX_SECONDS; none below COALESCE_MIN_SECONDS): the
# service passes of a 5,000-task service take a ninth of the control plane, not all of it.
COALESCE_FACTOR = 8.0
COALESCE_MIN_SECONDS = 0.02
COALESCE_MAX_SECONDS = 1.0
# The periodic resync looks at about this many steady tasks each time (beyond that, a slice of
# them in turn: the relist catches their containers' changes), besides every task not steady.
STEADY_PER_RESYNC = 100


class ControlPlane:
    """The in-process control plane. Thread-safe to start once and stop once."""

    def __init__(self, workers=None, identity=None):
        conf = settings.FARGATE_LAB
        self.workers = workers or conf["WORKERS"]
        self.scheduler_workers = conf["SCHEDULER_WORKERS"]
        self.lease_seconds = conf["LEASE_SECONDS"]
        self.resync_seconds = conf["RESYNC_SECONDS"]
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.scheduler_queue = WorkQueue()
        # The agents' keys are served account by account in turn, and one account's tasks hold
        # at most TENANT_WORKERS of the workers: a student's burst never takes them all.
        self._tenants = {}  # "task:<pk>" -> the task's account id
        self.agent_queue = WorkQueue(group_of=lambda key: self._tenants.get(key, ""),
                                     group_limit=conf["TENANT_WORKERS"])
        self.cluster_manager = ClusterManager(self.enqueue)
        self.capacity_manager = CapacityManager(on_placed=self._on_placed, enqueue=self.enqueue)
        self.agents = {}
        self._stop = threading.Event()
        self._lease_until = 0.0  # monotonic time until which we hold the lease
        self._threads = []
        self._unsubscribe = None
        self._seen_tasks = {}
        self._seen_services = {}
        self._cursor = None
        self.data_plane = None  # the load balancers' listeners, served while we lead
        self._guarding = False  # whether this control plane put the host firewall's rules in place
        self.task_endpoint = None  # 169.254.170.2 for the tasks, served with the firewall's rules
        self._pruned_at = 0.0
        self._resync_round = 0
        self._pass_seconds = {}  # "service:<pk>" -> how long its last pass took
        self._coalesced = {}  # "service:<pk>" -> when the coalesced pass asked for is due
        self._coalesce_lock = threading.Lock()
        self._batched = {}  # instance pk -> whether its new tasks start in batched passes

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self):
        """Ensure the fleet, claim the lease, and start the threads."""
        ensure_fleet()
        forgotten = forget_unowned_targets()
        if forgotten:
            log.info("removed %d load balancer target(s) tied to no task of their account", forgotten)
        urls = set(ContainerInstance.objects.filter(status=ContainerInstance.ACTIVE).values_list("engine_url", flat=True))
        urls |= set(fleet_engines())  # instances launched later may land on any configured engine
        for url in sorted(urls):
            self.agents[url] = Agent(url, self.enqueue)
        self._cursor = timezone.now()
        self._prime_watcher()
        self._unsubscribe = bus.subscribe(self._on_bus)
        shared = bus.share() is not None  # other processes' writes arrive on the bus
        for n in range(self.scheduler_workers):
            self._spawn(lambda: self._work(self.scheduler_queue), f"controlplane-scheduler-{n + 1}")
        for n in range(self.workers):
            self._spawn(lambda: self._work(self.agent_queue), f"controlplane-agent-{n + 1}")
        self._renew_lease()
        self._spawn(self._lease_loop, "controlplane-lease")
        if not shared:
            self._spawn(self._watch_loop, "controlplane-db-watch")
        self._spawn(self._resync_loop, "controlplane-resync")
        self._spawn(lambda: task_metrics.sampler().run(self._stop, lambda: self.is_leader, self._after_sampling),
                    "controlplane-metrics")
        for agent in self.agents.values():
            agent.start()
        if self.is_leader:
            self._guard_host()
        log.info("control plane %s started with %d workers", self.identity, self.workers)

    def stop(self):
        """Stop the threads, release the lease, and tidy up this lab's unused networks."""
        self._stop.set()
        if self._unsubscribe:
            self._unsubscribe()
        for queue in self.queues:
            queue.shutdown()
        for agent in self.agents.values():
            agent.stop()
        sandbox_pool.pool().stop()  # its sandboxes stay, for the next leader to adopt
        awslogs.shipper().stop()  # what was read is stored; the next leader resumes each follow
        for thread in self._threads:
            thread.join(timeout=60)
        self._stop_data_plane()
        if self.task_endpoint is not None:
            self.task_endpoint.stop()
            self.task_endpoint = None
        if self._guarding:  # even if the lease ran out while the threads stopped
            host_firewall.stop(lab_id())
        if self.is_leader:
            for url in self.agents:
                try:
                    DockerEngine.for_url(url).remove_unused_networks()
                except EngineError as exc:
                    log.info("could not tidy networks: %s", exc)
        self._release_lease()
        log.info("control plane %s stopped", self.identity)

    def _guard_host(self):
        """Let this lab's tasks reach the host only on listener ports (orchestrator/host_firewall.py),
        and 169.254.170.2 (orchestrator/task_metadata.py): the endpoint needs the firewall's DNAT."""
        try:
            if self.task_endpoint is None and host_firewall.guard(lab_id()).available():
                self.task_endpoint = task_metadata.TaskEndpoint().start()
            self._guarding = host_firewall.start([agent.engine for agent in self.agents.values()]) or self._guarding
        except Exception:  # the firewall is a guard, never a reason for the control plane to stop
            log.exception("host firewall: refresh failed")

    def _spawn(self, target, name):
        thread = threading.Thread(target=self._closing(target), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    @staticmethod
    def _closing(target):
        """Run ``target`` and close the thread's database connection when it returns."""
        def run():
            try:
                target()
            finally:
                connection.close()
        return run

    @property
    def queues(self):
        return (self.scheduler_queue, self.agent_queue)

    def queue_for(self, key):
        """The agents' keys (tasks, containers, a simulated instance's batched pass) go to the
        agent queue, the rest to the scheduler's."""
        return self.agent_queue if key.startswith(("task:", "container:", agent_batch.KEY_PREFIX)) \
            else self.scheduler_queue

    def enqueue(self, key, delay=0, urgent=False, trace=None, coalesce=False):
        """Ask for ``key`` to be processed (after ``delay`` seconds; ``urgent``: before the
        keys already waiting, as for a task to stop) for ``trace`` (default: the current one).

        ``coalesce`` (an agent's report to its service: a task RUNNING or STOPPED): at most one
        such pass per COALESCE_FACTOR times the key's last pass. A service pass reads all its
        tasks, so 5,000 reports one by one would be 5,000 passes of 5,000 rows; a pass of a
        small service takes a few milliseconds, and its reports wait no longer than that."""
        queue = self.queue_for(key)
        trace = traces.current() if trace is None else trace
        if coalesce and not delay and not urgent:
            now = time.monotonic()
            with self._coalesce_lock:
                if self._coalesced.get(key, 0.0) > now:
                    return  # a pass is already due soon: it reads this report too
                delay = min(self._pass_seconds.get(key, 0.0) * COALESCE_FACTOR, COALESCE_MAX_SECONDS)
                if delay >= COALESCE_MIN_SECONDS:
                    self._coalesced[key] = now + delay
                else:
                    delay = 0
        if delay:
            queue.add_after(key, delay, trace=trace)
        else:
            queue.add(key, urgent=urgent, trace=trace)

    def idle(self):
        """True when no key waits in either queue (delayed keys aside)."""
        return all(len(queue) == 0 for queue in self.queues)

    def _on_placed(self, pk, account_id, instance_pk=None):
        """A task was placed (in a scheduler worker): remember its account, then look at it (on a
        simulated instance: with the instance's other new tasks, in its batched pass)."""
        self._tenants[f"task:{pk}"] = account_id
        if instance_pk is not None and self.batched(instance_pk):
            self.enqueue(agent_batch.key(instance_pk))
        else:
            self.enqueue(f"task:{pk}")

    def batched(self, instance_pk):
        """Whether instance ``instance_pk``'s new tasks start in batched passes (``agent_batch``);
        an instance's runtime never changes, so the answer is kept."""
        found = self._batched.get(instance_pk)
        if found is None:
            url = ContainerInstance.objects.filter(pk=instance_pk).values_list("engine_url", flat=True).first()
            found = self._batched[instance_pk] = url is not None and agent_batch.batched(url)
        return found

    # --- leader election ------------------------------------------------------------------------

    @property
    def is_leader(self):
        return time.monotonic() < self._lease_until

    def _renew_lease(self):
        """Claim or renew the lease with a conditional UPDATE; start or stop acting accordingly.
        Its turns at the write lock go ahead of the other background writes (``foreground``):
        under a class's API load those wait up to ``TurnLock.PASSES`` urgent turns each, and a
        renewal late by more than the lease's two thirds would stop the lab acting."""
        now = timezone.now()
        started = time.monotonic()
        with state_database.foreground():
            try:
                Lease.objects.get_or_create(name=LEASE_NAME)
            except IntegrityError:  # another process created it at the same moment
                pass
            claimed = Lease.objects.filter(name=LEASE_NAME).filter(
                Q(holder=self.identity) | Q(holder="") | Q(expires_at__isnull=True) | Q(expires_at__lt=now)
            ).update(holder=self.identity, renewed_at=now, expires_at=now + timedelta(seconds=self.lease_seconds))
        was_leader = self.is_leader
        if claimed:
            self._lease_until = started + self.lease_seconds
            if not was_leader:
                activity.record("cluster_manager", "leader", message=f"control plane {self.identity} holds the lease")
                self._start_data_plane()
                self.resync()
        elif was_leader:
            self._lease_until = 0.0
            self._stop_data_plane()
            activity.record("cluster_manager", "follower",
                            message=f"control plane {self.identity} lost the lease; it stops acting")

    def _start_data_plane(self):
        """Serve the load balancers' listeners (only the leader binds their ports)."""
        if self.data_plane is not None or self._stop.is_set():
            return
        plane = load_balancer.DataPlane()
        try:
            plane.start()
        except Exception:  # the lab still runs tasks; the next lease claim tries again
            log.exception("the load balancer data plane failed to start")
            plane.stop()
            return
        self.data_plane = plane

    def _stop_data_plane(self):
        """Close the listeners (a follower, or a control plane that stops)."""
        plane, self.data_plane = self.data_plane, None
        if plane is not None:
            try:
                plane.stop()
            except Exception:  # closing at shutdown must not keep the process alive
                log.exception("the load balancer data plane failed to stop")

    def _release_lease(self):
        """Give the lease up so that a successor takes over at once."""
        try:
            Lease.objects.filter(name=LEASE_NAME, holder=self.identity).update(holder="", expires_at=timezone.now())
        except Exception:  # the database may be gone at shutdown; the lease then simply expires
            log.exception("could not release the lease")
        self._lease_until = 0.0

    def _lease_loop(self):
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self._renew_lease()
            except Exception:  # the database is busy or gone: the lease lapses on its own
                log.exception("lease renewal failed")
                connection.close()

    # --- sources of keys ------------------------------------------------------------------------

    def _on_bus(self, kind, pk, origin=None, **info):
        """A change in this process: enqueue its key (our own writes need no echo)."""
        if origin == "controlplane":
            return
        if kind in ("task", "service", "cluster"):
            self.enqueue(f"{kind}:{pk}", urgent=bool(info.get("stop")))
        elif kind == "scalable-target":  # Application Auto Scaling's API changed a target or its policies
            self.enqueue(f"scalable-target:{pk}")
        elif kind == "target":  # the data plane wrote a health change: the service looks at it
            self.enqueue(f"target:{pk}")
        elif kind == "instance" and info.get("disconnected"):  # its agent is cut off for a while
            self.enqueue(f"instance:{pk}")

    def _prime_watcher(self):
        self._seen_tasks = dict(Task.objects.exclude(last_status=Task.STOPPED).values_list("pk", "desired_status"))
        # The control plane writes a service's counts without touching updated_at, so a new
        # updated_at means the frontend changed it (e.g. a forced new deployment).
        self._seen_services = dict(Service.objects.values_list("pk", "updated_at"))

    def watch_once(self):
        """Enqueue tasks and services whose desired state changed since the last look."""
        since = self._cursor - WATCH_OVERLAP
        newest = self._cursor
        for pk, desired, last, placed, updated in Task.objects.filter(updated_at__gte=since).values_list(
                "pk", "desired_status", "last_status", "container_instance_id", "updated_at"):
            newest = max(newest, updated)
            if self._seen_tasks.get(pk) != desired:
                first = pk not in self._seen_tasks
                self._seen_tasks[pk] = desired
                if first and desired == Task.RUNNING and placed is not None and self.batched(placed):
                    # New, meant to run and placed already: only the leader places, so this
                    # control plane did, and told the instance's batched pass (``_on_placed``).
                    continue
                if desired == Task.RUNNING and last == Task.PROVISIONING and placed is None:
                    # A new task waits for placement: one placement pass places all (its agent's
                    # pass would only ask for that, once per task).
                    self.enqueue(PLACEMENT_KEY)
                else:
                    self.enqueue(f"task:{pk}", urgent=desired != Task.RUNNING)
        for pk, updated in Service.objects.filter(updated_at__gte=since).values_list("pk", "updated_at"):
            newest = max(newest, updated)
            if self._seen_services.get(pk) != updated:
                self._seen_services[pk] = updated
                self.enqueue(f"service:{pk}")
        self._cursor = newest
        if len(self._seen_tasks) > 100_000:  # forget old tasks; a resync covers the rest
            self._prime_watcher()

    def _watch_loop(self):
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                if self.is_leader:
                    self.watch_once()
            except Exception:
                log.exception("database watch failed")
                connection.close()

    def _after_sampling(self):
        """New utilisation is in: every scalable target of a live service gets an autoscaler pass,
        and the pages that show measured use (the class) hear of it on the bus."""
        for pk in ScalableTarget.objects.values_list("pk", flat=True):
            self.enqueue(f"scalable-target:{pk}")
        bus.publish_now(task_metrics.BUS_KIND, 0)

    def resync(self, full=True):
        """Enqueue every live service and task, a placement pass, and relist every engine.

        Not ``full`` (the periodic resync): of the steady tasks (RUNNING and meant to run) at most
        about STEADY_PER_RESYNC are looked at, a different slice each time, as kubelet syncs each
        Pod once a minute; the others are looked at every time, and each engine's relist enqueues
        the tasks whose containers changed since the last one (or that lost theirs)."""
        for pk in Service.objects.exclude(status=Service.INACTIVE).values_list("pk", flat=True):
            self.enqueue(f"service:{pk}")
        live = list(Task.objects.exclude(last_status=Task.STOPPED).values_list(
            "pk", "account_id", "last_status", "desired_status", "container_instance_id", "updated_at"))
        if len(self._tenants) > 100_000:  # forget old tasks; a key's group is kept while it waits
            self._tenants.clear()
        steady = sum(1 for _, _, last, desired, _, _ in live if last == desired == Task.RUNNING)
        slices = 1 if full else max(1, -(-steady // STEADY_PER_RESYNC))
        self._resync_round += 1
        # An ACTIVATING task on a simulated instance claimed since this is its batched pass's to report.
        reporting = timezone.now() - timedelta(seconds=self.resync_seconds)
        for pk, account_id, last, desired, instance_pk, updated in live:
            self._tenants[f"task:{pk}"] = account_id
            batched = desired == Task.RUNNING and instance_pk and self.batched(instance_pk)
            if last == Task.PENDING and batched:
                # Waiting to start on a simulated instance: its batched pass looks (and hands the
                # tasks it cannot start plainly, e.g. with a container already, to their own pass).
                self.enqueue(agent_batch.key(instance_pk))
            elif last == Task.ACTIVATING and batched and not full and updated > reporting:
                continue  # the next resync looks, should it still be ACTIVATING then
            elif last == Task.PROVISIONING and desired == Task.RUNNING:
                continue  # its pass would only ask for placement: the placement pass below places all
            elif last != Task.RUNNING or desired != Task.RUNNING or pk % slices == self._resync_round % slices:
                self.enqueue(f"task:{pk}")
        self.enqueue(PLACEMENT_KEY)
        for pk in ContainerInstance.objects.filter(agent_disconnected_until__isnull=False).values_list("pk", flat=True):
            self.enqueue(f"instance:{pk}")
        self._guard_host()
        for agent in self.agents.values():
            if agent.connected.is_set():
                try:
                    agent.relist(full=full)
                    # Networks of an older lab's naming (one per cluster name, shared by
                    # accounts) go once their tasks have moved to their own account's networks.
                    agent.engine.remove_unused_networks(legacy_only=True)
                    if agent.engine.is_local:  # adopt, keep or remove the warm pool's Pod sandboxes
                        sandbox_pool.pool().reconcile(agent.engine)
                except EngineUnavailable as exc:
                    log.info("relist failed: %s", exc)

    def _resync_loop(self):
        spot_at = time.monotonic()
        while not self._stop.wait(self.resync_seconds):
            try:
                since, spot_at = spot_at, time.monotonic()
                if self.is_leader:
                    self.resync(full=False)
                    spot.sweep(spot_at - since)  # Fargate Spot's interruptions since the last pass
                    if time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
                        self._pruned_at = time.monotonic()
                        traces.prune()
                        retention.prune()
            except Exception:
                log.exception("resync failed")
                connection.close()

    # --- workers ----------------------------------------------------------------------------------

    def _work(self, queue):
        """Take keys from ``queue`` and process them; errors retry the key with backoff."""
        while True:
            key = queue.get()
            if key is None:
                return
            trace = queue.trace_of(key)
            try:
                if self.is_leader:
                    began = time.monotonic()
                    # The pass's activity rows are written together when it ends.
                    with traces.continuing(trace), activity.batched():
                        self.process(key)
                    if key.startswith("service:"):  # how long its reports are coalesced (``enqueue``)
                        self._pass_seconds[key] = time.monotonic() - began
                queue.forget(key)
            except EngineUnavailable as exc:
                log.info("%s: Docker engine unavailable, retrying: %s", key, exc)
                queue.add_rate_limited(key, trace=trace)
            except Exception:
                log.exception("processing %s failed; retrying", key)
                connection.close()
                queue.add_rate_limited(key, trace=trace)
            finally:
                queue.done(key)

    def process(self, key):
        """One level-triggered pass for ``key``."""
        kind, _, rest = key.partition(":")
        if key == PLACEMENT_KEY:
            self.capacity_manager.run_pass()
        elif kind == "task":
            sync_task(int(rest), self.enqueue)
        elif kind == "agent":
            agent_batch.sync_instance_tasks(int(rest), self.enqueue)
        elif kind == "service":
            self.cluster_manager.sync_service(int(rest))
        elif kind == "cluster":
            for pk in Service.objects.filter(cluster_id=int(rest)).exclude(
                    status=Service.INACTIVE).values_list("pk", flat=True):
                self.enqueue(f"service:{pk}")
        elif kind == "target":
            service_pk = Target.objects.filter(pk=int(rest)).values_list("task__service_id", flat=True).first()
            if service_pk:
                self.enqueue(f"service:{service_pk}")
        elif kind == "scalable-target":
            service_autoscaler.sync_target(int(rest), self.enqueue)
        elif kind == "instance":
            sync_instance(int(rest), self.enqueue)
        elif kind == "container":
            url, _, container_id = rest.rpartition("|")
            sync_container(url, container_id, self.enqueue)
        else:
            log.warning("unknown work key %r", key)
