"""The Fargate agent (kubelet): runs the tasks placed on an instance as Docker containers.

Two halves, as in kubelet and the ECS agent:

* Watching (``Agent``, one per Docker engine): subscribe to the engine's event stream first,
  then list the lab's containers, and enqueue the key of every task they belong to; reopen
  the stream when it ends (a daemon restart ends it silently), retrying with backoff while
  the engine is down; ``relist`` again on every resync, because events can be missed.
* Syncing (``sync_task``, on the control plane's workers, key "task:<pk>"): level-triggered.
  Re-read the task from the database and its containers from Docker, ask the pure
  ``plan_task`` what to do, and carry the actions out through the Docker adapter. Every
  status change is a conditional update (``Task.advance``), published on the bus.

A service task behind a load balancer is registered in its target groups while ACTIVATING
(once its address is known), and drained while DEACTIVATING: the agent deregisters it and
looks again after the deregistration delay (a requeue, never a worker kept waiting) before it
stops the containers. Stopping is the same: the agent sends each container its stop signal,
records in the state database when it is to be killed (stopTimeout later), and ends the pass;
the container's "die" event or the deadline (a delayed requeue) brings the task back, and a
container still running then is SIGKILLed. So a tenant whose tasks ignore SIGTERM holds no
worker another tenant's tasks need, and a restarted lab keeps the deadlines. Image pulls report
their progress on the task (Activity rows).

A task's containers start in their ``dependsOn`` order and stop in reverse
(``container_dependencies``): a pass starts what is ready and ends, to look again on the next
Docker event or startTimeout, as stopping does.

A container definition's healthCheck is the container's Docker health check. Docker's
``health_status`` event brings the task back, and each pass over a RUNNING task compares the
health a list shows with what was recorded (so a relist catches a missed event): the
container's healthStatus and the task's container part of its health (``task_health``).
"""
import contextlib
import hashlib
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from orchestrator import (
    activity, awslogs, bind_mounts, bus, container_dependencies, docker_gate, efs, load_balancer, paced_logs,
    port_forwarder, registry, sandbox_pool, service_discovery, spot, task_health, task_metadata, task_secrets, traces,
    volumes_from,
)
from orchestrator import network as lab_network
from orchestrator.docker_engine import (
    LABEL_ACCOUNT, LABEL_CLUSTER, LABEL_CONTAINER_NAME, LABEL_INSTANCE, LABEL_TASK_ARN, LABEL_TASK_ID,
    Conflict, ContainerNotFound, DockerEngine, EngineError, EngineUnavailable, ImageNotFound, InvalidReference,
    summarize,
)
from orchestrator.models import ContainerInstance, Target, Task, TaskContainer, TaskDefinition, acting_in, region
from orchestrator.registry_auth import pull_credentials
from orchestrator.simulated_engine import is_simulated

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 200
DEAD_STATES = ("exited", "dead")
STOPPING_STATES = (Task.DEACTIVATING, Task.STOPPING, Task.DEPROVISIONING)

# Docker sends a container's "die" event a moment before its state reads "exited": a list
# right after the event may still say "running". The event is the truth: keep the exit code
# it carries, by container id, until the container is removed.
_died = {}
_died_lock = threading.Lock()


def note_died(container_id, exit_code):
    """Remember that Docker said this container died (with this exit code)."""
    with _died_lock:
        if len(_died) > 10_000:
            _died.clear()
        _died[container_id] = exit_code


def died(container_id):
    """The exit code Docker's "die" event gave for the container, or None if none was seen."""
    with _died_lock:
        return _died.get(container_id)


def forget_died(container_id):
    with _died_lock:
        _died.pop(container_id, None)


# --- plain data the plan works on ---------------------------------------------------------

@dataclass
class ContainerWanted:
    """One container of the task as the database knows it."""

    name: str
    essential: bool = True
    stop_timeout: int = 30  # seconds from its stop signal to SIGKILL
    stop_deadline: float = None  # when it is to be SIGKILLed (epoch seconds), once signalled
    health_check: bool = False  # its definition has a healthCheck
    health_status: str = "UNKNOWN"  # what was last recorded of it
    ships_logs: bool = False  # its definition has logConfiguration awslogs
    depends_on: tuple = ()  # (container name, condition) of its dependsOn
    start_timeout: int = container_dependencies.DEFAULT_START_TIMEOUT  # for its dependents
    started_at: float = None  # when the agent started it (epoch seconds)
    reason: str = ""  # what was last recorded of why it waits or was given up
    given_up: bool = False  # its dependencies failed it: it is never started


@dataclass
class TaskWanted:
    """What ``plan_task`` needs to know of a task from the database."""

    desired_status: str
    last_status: str
    containers: list = field(default_factory=list)
    has_instance: bool = False
    # In a target group (its service has loadBalancers, or it still has targets).
    load_balanced: bool = False
    # The Docker network of the task's cluster (its account's, in this region).
    network: str = ""
    # The ids of the containers whose output the awslogs shipper follows now.
    followed: frozenset = frozenset()
    # When the task must be gone whatever its stopTimeout and draining (epoch seconds): the end of
    # a Spot interruption's warning (``orchestrator.spot``); None for any other stop.
    stop_by: float = None
    # In a Pod sandbox whose published ports no listener of this process forwards (a restart).
    unforwarded: bool = False


@dataclass
class ContainerSeen:
    """One of the task's containers as Docker reports it."""

    id: str
    name: str  # the task container's name (the fargatelab.container-name label)
    state: str  # created, running, paused, restarting, removing, exited, dead
    networks: tuple = ()  # the Docker networks it is attached to
    health: str = ""  # Docker's health: starting, healthy, unhealthy, or "" without a check
    exit_code: int = None  # once exited


# --- actions ------------------------------------------------------------------------------

@dataclass
class RequestPlacement:
    """Ask the capacity manager for a placement pass."""


@dataclass
class Advance:
    old: str
    new: str


@dataclass
class MarkStopping:
    """Set desired STOPPED (if still RUNNING) with why: the task is to stop."""

    stop_code: str
    reason: str


@dataclass
class EnsureImages:
    """Pull the images that the engine lacks."""


@dataclass
class CreateContainers:
    names: list


@dataclass
class StartContainers:
    names: list


@dataclass
class RecordWaiting:
    """Record why containers wait for their dependencies (name -> why), and which are given up."""

    waiting: dict
    given_up: dict


@dataclass
class AwaitDependencies:
    """End the pass without holding a worker: look again at ``until`` (a dependency's
    startTimeout), or as soon as a Docker event about one of the task's containers arrives."""

    until: float


@dataclass
class ReportRunning:
    """Inspect the containers and report the task RUNNING with its IP and port bindings
    (registered in its service's target groups first, when ``register_targets``)."""

    register_targets: bool = False


@dataclass
class ForwardPorts:
    """Open the lab's forwarders of a sandboxed task's published ports again (on the host ports
    its networkBindings name, when they are free)."""


@dataclass
class MoveToNetwork:
    """Move running containers onto the task's own cluster network (they run on another, e.g.
    a network an older lab shared between accounts), then report the new address."""

    ids: list


@dataclass
class DrainTargets:
    """Deregister the task from its target groups; look again until draining is over (or
    ``until``, epoch seconds, has come: a Spot interruption's warning waits for no draining)."""

    until: float = None


@dataclass
class SignalStop:
    """Send containers their stop signal (SIGTERM) and record when each is to be killed."""

    deadlines: dict  # container id -> deadline (epoch seconds)


@dataclass
class KillContainers:
    """SIGKILL containers whose stopTimeout is over."""

    ids: list


@dataclass
class AwaitExit:
    """End the pass without holding a worker: look again at ``until`` (epoch seconds), or as
    soon as Docker's "die" event for a container arrives."""

    until: float


@dataclass
class RecordExits:
    """Record exit codes and the last lines of output of the task's containers."""


@dataclass
class RemoveContainers:
    ids: list


@dataclass
class RecordHealth:
    """Record the containers' health (name -> HEALTHY / UNHEALTHY / UNKNOWN) and the task's."""

    statuses: dict


@dataclass
class ShipLogs:
    """Follow these containers' output into their awslogs streams (the agent's awslogs driver)."""

    names: list


@dataclass
class EnqueueService:
    """Tell the cluster manager to look at the task's service."""


# After a SIGKILL, look again this soon if Docker's "die" event does not come first.
KILL_RECHECK_SECONDS = 1.0


def stop_containers(task, running, now):
    """The steps that stop ``running`` containers, as the ECS agent does: the stop signal with a
    deadline of stopTimeout, SIGKILL once the deadline has passed, and no waiting in between
    (the pass ends; the deadline or the container's "die" event brings the task back)."""
    wanted = {c.name: c for c in task.containers}
    signal, kill, wake = {}, [], []
    # Reverse dependency order: a container is signalled once no running one depends on it.
    free = set(container_dependencies.stoppable(
        {c.name: [dep for dep, _ in c.depends_on] for c in task.containers}, [c.name for c in running]))
    for container in running:
        if container.name not in free and wanted.get(container.name) and wanted[container.name].stop_deadline is None:
            continue  # its dependents' "die" events bring the task back
        want = wanted.get(container.name) or ContainerWanted(container.name, stop_timeout=0)
        deadline = want.stop_deadline
        if deadline is None:
            deadline = signal[container.id] = min(now + want.stop_timeout, task.stop_by or math.inf)
        if deadline <= now:
            kill.append(container.id)
            wake.append(now + KILL_RECHECK_SECONDS)
        else:
            wake.append(deadline)
    return ([SignalStop(signal)] if signal else []) + ([KillContainers(kill)] if kill else []) + (
        [AwaitExit(min(wake))] if wake else [AwaitExit(now + KILL_RECHECK_SECONDS)])


def stop_sequence(task, seen, now=0.0):
    """The steps from the task's last status to STOPPED for a task that is to stop (a
    load-balanced one drains while DEACTIVATING, before its containers are stopped); while
    containers still run, the steps end with ``AwaitExit``."""
    last_status, load_balanced = task.last_status, task.load_balanced
    ids = [c.id for c in seen]
    if last_status == Task.PROVISIONING or (last_status == Task.PENDING and not seen):
        # Never started (not placed, or its pull failed): its containers stop with it, as on ECS,
        # rather than staying PENDING on a STOPPED task.
        return [RecordExits(), Advance(last_status, Task.STOPPED), RequestPlacement(), EnqueueService()]
    steps = []
    if last_status in (Task.PENDING, Task.ACTIVATING, Task.RUNNING):
        steps.append(Advance(last_status, Task.DEACTIVATING))
        last_status = Task.DEACTIVATING
    if last_status == Task.DEACTIVATING:
        if load_balanced:
            steps.append(DrainTargets(task.stop_by))
        steps.append(Advance(Task.DEACTIVATING, Task.STOPPING))
        last_status = Task.STOPPING
    if last_status == Task.STOPPING:
        running = [c for c in seen if c.state not in DEAD_STATES + ("created",)]
        if running:
            return steps + stop_containers(task, running, now)
        steps.append(Advance(Task.STOPPING, Task.DEPROVISIONING))
    steps.append(RecordExits())
    if ids:  # removed before STOPPED is reported, so a STOPPED task never has a container
        steps.append(RemoveContainers(ids))
    return steps + [Advance(Task.DEPROVISIONING, Task.STOPPED), RequestPlacement(), EnqueueService()]


def plan_task(task, seen, now=0.0):
    """The actions that bring the task (TaskWanted) and its containers (ContainerSeen) together
    at time ``now`` (epoch seconds: stop deadlines are compared with it).

    Pure: no database, no Docker. The executor applies the actions in order and stops at the
    first conditional update that fails (someone else moved the task first).
    """
    by_name = {c.name: c for c in seen}
    if task.last_status == Task.STOPPED:
        return [RemoveContainers([c.id for c in seen])] if seen else []
    if task.desired_status != Task.RUNNING:
        return stop_sequence(task, seen, now)
    if task.last_status == Task.PROVISIONING or not task.has_instance:
        return [RequestPlacement()]
    if task.last_status in STOPPING_STATES:
        return stop_sequence(task, seen, now)

    essentials = [c for c in task.containers if c.essential]
    exited = [c for c in essentials if c.name in by_name and by_name[c.name].state in DEAD_STATES]
    if exited:
        return [MarkStopping("EssentialContainerExited", "Essential container in task exited")] + stop_sequence(
            task, seen, now)
    missing = [c.name for c in task.containers if c.name not in by_name]
    if task.last_status == Task.PENDING:
        steps = [EnsureImages(), CreateContainers(missing)] if missing else []
        return steps + start_steps(task, by_name, now, _ship_logs(task, by_name, starting=True),
                                   [Advance(Task.PENDING, Task.ACTIVATING), ReportRunning(task.load_balanced)],
                                   creating=missing)
    lost = [c for c in essentials if c.name not in by_name]
    if lost:
        return [MarkStopping("EssentialContainerExited", "Task stopped: its container was lost")] + stop_sequence(
            task, seen, now)
    if task.last_status == Task.ACTIVATING:
        return start_steps(task, by_name, now, _ship_logs(task, by_name, starting=True),
                           [ReportRunning(task.load_balanced)])
    stray = [c.id for c in seen if c.state == "running" and c.networks and task.network
             and tuple(c.networks) != (task.network,)]
    return ([MoveToNetwork(stray)] if stray else []) + ([ForwardPorts()] if task.unforwarded else []) + _ship_logs(
        task, by_name) + health_changes(task, by_name)


def _ship_logs(task, by_name, starting=False):
    """A ShipLogs of the awslogs containers whose output nobody follows (those being started
    included when ``starting``), or none."""
    names = [c.name for c in task.containers if c.ships_logs and (
        (c.name in by_name and by_name[c.name].id not in task.followed
         and (starting or by_name[c.name].state == "running"))
        or (starting and c.name not in by_name))]
    return [ShipLogs(names)] if names else []


def start_steps(task, by_name, now, after_start, then, creating=()):
    """Start the created containers whose dependencies are met, in waves (see
    ``container_dependencies``), then ``after_start``, then ``then``; while some still wait,
    record why and end the pass until the next event or startTimeout instead. A given-up
    essential container fails the task. Containers being created in this pass are ``creating``;
    any other one Docker does not have was lost, and is never started again."""
    members = [container_dependencies.Member(
        c.name, c.depends_on, c.start_timeout, c.started_at,
        by_name[c.name].state if c.name in by_name else "created" if c.name in creating else "dead",
        by_name[c.name].exit_code if c.name in by_name else None,
        by_name[c.name].health if c.name in by_name else "", c.given_up) for c in task.containers]
    plan = container_dependencies.start_plan(members, now)
    steps = [StartContainers(wave) for wave in plan.waves] + after_start
    wanted = {c.name: c for c in task.containers}
    changed = {n: why for n, why in plan.waiting.items() if wanted[n].reason != why}
    if changed or plan.given_up:
        steps.append(RecordWaiting(changed, plan.given_up))
    failed = [n for n in plan.given_up if wanted[n].essential]
    if failed:
        return steps + [MarkStopping("TaskFailedToStart", plan.given_up[failed[0]])]
    if plan.waiting:
        return steps + [AwaitDependencies(plan.wake)]
    return steps + then


def health_changes(task, by_name):
    """A RecordHealth of the containers whose health Docker reports other than recorded, or none."""
    changed = {}
    for container in task.containers:
        seen = by_name.get(container.name)
        status = task_health.container_health(seen.health if seen else "", container.health_check)
        if status != container.health_status:
            changed[container.name] = status
    return [RecordHealth(changed)] if changed else []


# --- what Docker is told --------------------------------------------------------------------

def _sanitize(text):
    """A string Docker accepts in a container or network name."""
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.") or "x"


def container_name(lab, task_id, name):
    """The deterministic container name: a create after a crash conflicts and adopts."""
    return _sanitize(f"fargatelab-{lab}-{task_id}-{name}")


# Docker sets no short limit on network names, but tools print them in columns: keep them short.
NETWORK_NAME_MAX = 96


def network_name(lab, account_id, cluster_name, region_name=None):
    """The bridge network of one account's cluster in one region (the cluster's VPC subnet).

    Two accounts' clusters of one name never share a network; a name too long for
    ``NETWORK_NAME_MAX`` is cut and ends with a digest of the whole, so it stays unique and
    deterministic."""
    name = _sanitize(f"fargatelab-{lab}-{account_id}-{region_name or region()}-{cluster_name}")
    if len(name) > NETWORK_NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = f"{name[:NETWORK_NAME_MAX - 13]}-{digest}"
    return name


def forward_key(task, container_name, binding):
    """The lab's forwarder's key of one published port of a sandboxed task."""
    return f"{task.arn}|{container_name}|{binding['containerPort']}/{binding.get('protocol') or 'tcp'}"


def network_labels(account_id, cluster_name):
    """The labels of a cluster network (the lab's own label is added by the engine)."""
    return {LABEL_CLUSTER: cluster_name, LABEL_ACCOUNT: account_id}


def container_spec(task, task_container, lab, network, secret_env=None, log_address=None):
    """The container to create for one container of a task (a Pod spec's container);
    ``secret_env`` is its ``secrets`` as read from their stores (see ``task_secrets``);
    ``log_address`` the paced log reader's, None for json-file (``paced_logs``)."""
    definition = next((c for c in task.task_definition.container_definitions if c.get("name") == task_container.name), {})
    override = next(
        (o for o in (task.overrides or {}).get("containerOverrides", []) if o.get("name") == task_container.name), {}
    )
    env = {e["name"]: str(e.get("value", "")) for e in definition.get("environment", []) if e.get("name")}
    env.update({e["name"]: str(e.get("value", "")) for e in override.get("environment", []) if e.get("name")})
    env.update(secret_env or {})
    region = task.cluster.region  # the task's region: its SDK calls act there
    env.update({
        "FARGATE_LAB_TASK_ARN": task.arn, "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
        "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
        **task_metadata.environment(task, task_container.name),
    })
    env.setdefault("AWS_ENDPOINT_URL", task_metadata.ENDPOINT)  # an SDK in the task reaches the lab's APIs
    cpu = int(override.get("cpu") or task_container.cpu or definition.get("cpu") or 0) or task.cpu
    # The hard limit: the container's ``memory`` if given, else the task's (a memoryReservation
    # alone is a soft limit, as on ECS).
    memory = int(override.get("memory") or definition.get("memory") or task.memory)
    reservation = override.get("memoryReservation") or definition.get("memoryReservation")
    ports = [
        (int(p["containerPort"]), (p.get("protocol") or "tcp").lower())
        for p in definition.get("portMappings", []) if p.get("containerPort")
    ]
    return {
        "name": container_name(lab, task.task_id, task_container.name),
        "image": task_container.image or definition.get("image", ""),
        "labels": {
            LABEL_TASK_ARN: task.arn, LABEL_TASK_ID: task.task_id, LABEL_CLUSTER: task.cluster.name,
            LABEL_INSTANCE: task.container_instance.name if task.container_instance else "",
            LABEL_CONTAINER_NAME: task_container.name,
        },
        "env": env,
        "entrypoint": definition.get("entryPoint") or None,
        "command": override.get("command") or definition.get("command") or None,
        "working_dir": definition.get("workingDirectory") or None,
        "user": definition.get("user") or None,
        "nano_cpus": int(cpu * 1e9 / 1024),
        "memory": memory * 1024 * 1024,
        "memory_reservation": int(reservation) * 1024 * 1024 if reservation else None,
        "ports": ports,
        "publish_address": lab_network.publish_address(),
        "network": network,
        "aliases": service_discovery.aliases_for(task, task_container.name),
        "stop_timeout": stop_timeout(definition),
        "healthcheck": definition.get("healthCheck") if task_health.has_check(definition) else None,
        **hardening(definition),
        "pids_limit": settings.FARGATE_LAB["TASK_PIDS_LIMIT"],
        "log_max_size": settings.FARGATE_LAB["TASK_LOG_MAX_SIZE"],
        "log_max_file": settings.FARGATE_LAB["TASK_LOG_MAX_FILE"],
        "log_address": log_address,
    }


def container_wanted(task_container, definition):
    """What the plan needs of one TaskContainer and its container definition."""
    c = task_container
    return ContainerWanted(
        c.name, c.essential, stop_timeout(definition), c.stop_deadline.timestamp() if c.stop_deadline else None,
        task_health.has_check(definition), c.health_status,
        depends_on=tuple((d.get("containerName"), d.get("condition")) for d in definition.get("dependsOn") or []),
        start_timeout=definition.get("startTimeout") or container_dependencies.DEFAULT_START_TIMEOUT,
        started_at=c.started_at.timestamp() if c.started_at else None, reason=c.reason,
        given_up=c.last_status == "STOPPED" and c.started_at is None,
        ships_logs=awslogs.options_of(definition) is not None,
    )


def hardening(definition):
    """The spec keys of the Linux settings a definition asks for (see task_definition_fields)."""
    linux = definition.get("linuxParameters") or {}
    capabilities = linux.get("capabilities") or {}
    return {
        "read_only": bool(definition.get("readonlyRootFilesystem")),
        "cap_add": list(capabilities.get("add") or []),
        "cap_drop": list(capabilities.get("drop") or []),
        "init": bool(linux.get("initProcessEnabled")),
        "ulimits": [(u["name"], u["softLimit"], u["hardLimit"]) for u in definition.get("ulimits") or []],
        "sysctls": {c["namespace"]: str(c.get("value", "")) for c in definition.get("systemControls") or []},
        "interactive": bool(definition.get("interactive")),
        "tty": bool(definition.get("pseudoTerminal")),
        "docker_labels": dict(definition.get("dockerLabels") or {}),
    }


def stop_timeout(definition):
    """Seconds between SIGTERM and SIGKILL for a container definition (at most Fargate's 120,
    also for a definition an older lab registered with more)."""
    timeout = definition.get("stopTimeout")
    if timeout is None:
        timeout = settings.FARGATE_LAB["STOP_TIMEOUT_SECONDS"]
    return min(max(int(timeout), 0), TaskDefinition.MAX_STOP_TIMEOUT)


def docker_time(text):
    """A datetime of Docker's RFC 3339 time (nanoseconds cut to microseconds), or None for its
    zero time or anything else."""
    found = re.fullmatch(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?Z", text or "")
    if not found or found.group(1).startswith("0001"):
        return None
    micros = (found.group(2) or "0")[:6].ljust(6, "0")
    return datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S").replace(
        microsecond=int(micros), tzinfo=dt_timezone.utc)


# --- the executor -----------------------------------------------------------------------------

class TaskFailed(Exception):
    """The task cannot start (image missing, bad configuration): stop it with this code/reason."""

    def __init__(self, stop_code, reason, containers=()):
        super().__init__(reason)
        self.stop_code = stop_code
        self.reason = reason
        # The task's containers the reason is about (their own ``reason`` says it too, as on ECS).
        self.containers = tuple(containers)


class Interrupted(Exception):
    """A conditional update lost: somebody else moved the task; look again."""


class Requeued(Exception):
    """The task waits for time to pass (draining): its key was requeued with a delay."""


def engine_for(task):
    """The Docker engine of the instance the task is placed on."""
    url = task.container_instance.engine_url if task.container_instance else settings.FARGATE_LAB["DOCKER_URL"]
    return DockerEngine.for_url(url)


def load_task(pk):
    """The task with what the executor needs, or None if it is gone."""
    # Unordered (the pk is unique): the model's ordering would cost its compilation on every pass.
    rows = Task.objects.select_related("account", "cluster", "task_definition", "container_instance", "service")
    return next(iter(rows.filter(pk=pk).order_by()), None)


def observe(engine, task):
    """The task's containers as Docker reports them."""
    return [
        ContainerSeen(c["id"], c["labels"].get(LABEL_CONTAINER_NAME, ""),
                      "exited" if c["state"] == "running" and died(c["id"]) is not None else c["state"],
                      tuple(c.get("networks") or ()), c.get("health", ""),
                      died(c["id"]) if died(c["id"]) is not None else c.get("exit_code"))
        for c in engine.list_containers(labels={LABEL_TASK_ID: task.task_id})
    ]


class TaskSync:
    """One level-triggered pass over one task (key "task:<pk>")."""

    def __init__(self, task, enqueue):
        self.task = task
        self.enqueue = enqueue
        self.engine = engine_for(task)
        self.containers = {c.name: c for c in task.containers.all()}
        self.pull_times = {}
        self.network = network_name(self.engine.lab, task.account.account_id, task.cluster.name, task.cluster.region)
        self.network_labels = network_labels(task.account.account_id, task.cluster.name)
        # This engine's fair share of container operations among accounts (docker_gate).
        self.gate = docker_gate.gate(self.engine.url or "")

    def wanted(self):
        task, service = self.task, self.task.service
        load_balanced = bool(service and task.load_balancers)  # its task set's, or its service's
        if not load_balanced and (task.desired_status != Task.RUNNING or task.last_status in STOPPING_STATES):
            # Stopping: targets registered by hand (RegisterTargets) drain too.
            load_balanced = Target.objects.filter(task=task).exists()
        definitions = {c.get("name"): c for c in task.task_definition.container_definitions}
        return TaskWanted(
            task.desired_status, task.last_status,
            [container_wanted(c, definitions.get(c.name, {})) for c in self.containers.values()],
            has_instance=task.container_instance_id is not None, load_balanced=load_balanced,
            network=self.network, followed=frozenset(awslogs.shipper().following()), stop_by=spot.stop_by(task),
            unforwarded=bool(task.sandbox_id) and task.last_status == Task.RUNNING and not self.forwarded(),
        )

    def forwarded(self):
        """Whether this process forwards every published port of the (sandboxed) task."""
        forwarder = port_forwarder.forwarder()
        return all(forwarder.port_of(forward_key(self.task, name, b)) == b["hostPort"]
                   for name, c in self.containers.items() for b in c.network_bindings or [])

    def run(self):
        """Plan and act until the plan is carried out (a failed start re-plans the stop)."""
        for _ in range(3):
            # A STOPPED task's containers were removed before it was reported STOPPED; one left
            # behind (a crash at the wrong moment) is the relist's to remove (a container key),
            # so the Docker events that follow a stop cost no Docker call here.
            needs_docker = self.task.container_instance_id is not None and self.task.last_status != Task.STOPPED
            seen = observe(self.engine, self.task) if needs_docker else []
            actions = plan_task(self.wanted(), seen, now=time.time())
            starting = any(isinstance(a, (CreateContainers, StartContainers)) for a in actions)
            try:
                with self.sync_step(actions), \
                        self.gate.presence(self.task.account_id) if starting else contextlib.nullcontext():
                    for action in actions:
                        getattr(self, f"do_{type(action).__name__}")(action, seen)
                return
            except TaskFailed as failure:
                if failure.containers:
                    TaskContainer.objects.filter(task=self.task, name__in=failure.containers).update(
                        reason=failure.reason[:1000])
                self.fail(failure.stop_code, failure.reason)
            except Interrupted:
                self.enqueue(f"task:{self.task.pk}")
                return
            except Requeued:
                return

    # -- helpers
    def advance(self, old, new, **fields):
        """Conditional status change; publishes it; raises Interrupted if someone got there first."""
        now = timezone.now()
        if new == Task.STOPPED:
            fields.setdefault("stopped_at", now)
            fields.setdefault("execution_stopped_at", now)
            fields.setdefault("pending_reason", "")
        if new == Task.DEACTIVATING and not self.task.stopping_at:
            fields.setdefault("stopping_at", now)
        if new == Task.DEACTIVATING and not self.task.stop_trace_id:
            fields.setdefault("stop_trace_id", self.trace)
        if not self.task.advance(old, new, **fields):
            raise Interrupted()
        bus.publish("task", self.task.pk, origin="controlplane")

    @property
    def trace(self):
        """The trace this pass works for: its key's, else the one that stopped the task, else the
        one that created it."""
        return traces.current() or self.task.stop_trace_id or self.task.trace_id

    def record(self, action, message, since=None):
        """Record a step of this pass in its trace; ``since`` (from ``clock()``) times it."""
        timing = {}
        if since is not None:
            timing = {"started_at": since[0], "duration_ms": round((time.perf_counter() - since[1]) * 1000, 3)}
        activity.record("agent", action, self.task.arn, message, trace_id=self.trace, **timing)

    @staticmethod
    def clock():
        """When a step begins, for ``record(…, since=…)``."""
        return timezone.now(), time.perf_counter()

    def sync_step(self, actions):
        """The whole pass as one step (kubelet's SyncPod), when it has work beyond asking others."""
        work = [a for a in actions if not isinstance(a, (RequestPlacement, EnqueueService))]
        if not work:
            return contextlib.nullcontext()
        words = ", ".join(
            f"{type(a).__name__} {a.old}→{a.new}" if isinstance(a, Advance) else type(a).__name__ for a in work)
        return traces.step("agent", "sync", self.task, f"task {self.task.task_id} ({self.task.last_status}): {words}",
                           trace_id=self.trace)

    def fail(self, stop_code, reason):
        """Mark the task to stop with a code and reason (if it is still meant to run)."""
        now = timezone.now()
        changed = Task.objects.filter(pk=self.task.pk, desired_status=Task.RUNNING).update(
            desired_status=Task.STOPPED, stop_code=stop_code, stopped_reason=reason[:4000],
            stopping_at=now, updated_at=now, stop_trace_id=self.trace,
        )
        # Only what the UPDATE may have changed: the loaded account and cluster stay cached.
        self.task.refresh_from_db(fields=["desired_status", "stop_code", "stopped_reason", "stopping_at", "updated_at",
                                          "stop_trace_id"])
        if changed:
            self.record("failed", f"task {self.task.task_id}: {reason}")
            bus.publish("task", self.task.pk, origin="controlplane")
            if self.task.service_id:  # the scheduler may start the replacement while this one stops
                self.enqueue(f"service:{self.task.service_id}")

    # -- actions
    def do_RequestPlacement(self, action, seen):
        self.enqueue("placement")

    def do_EnqueueService(self, action, seen):
        if self.task.service_id:
            self.enqueue(f"service:{self.task.service_id}", coalesce=True)

    def do_Advance(self, action, seen):
        fields = {}
        if action.new == Task.ACTIVATING:
            fields.update(self.pull_times, connectivity_at=timezone.now())
        if action.new == Task.STOPPED and self.task.sandbox_id:  # its containers are gone: so goes its sandbox
            sandbox_pool.pool().release(self.engine, self.task)
            self.record("sandbox", f"removed the Pod sandbox {self.task.sandbox_id[:12]} of task {self.task.task_id}")
        if action.new == Task.STOPPED and self.task.container_instance_id is not None \
                and (bind_mounts.mounted(self.task.task_definition.body)
                     or volumes_from.sources(self.task.task_definition.body)):
            # Its bind mounts' data goes with its containers (removed just before), as on Fargate;
            # an engine that fails here leaves them to the account's reset, not the task RUNNING.
            try:
                volumes = self.engine.remove_volumes({LABEL_TASK_ID: self.task.task_id})
                self.record("volumes", f"removed {len(volumes)} bind mount volume(s) of task {self.task.task_id}")
            except EngineError as exc:
                self.record("volumes", f"the bind mount volumes of task {self.task.task_id} stay: {exc}")
        self.advance(action.old, action.new, **fields)
        if action.new in (Task.DEACTIVATING, Task.STOPPED) and service_discovery.deregister_task(self.task):
            self.record("deregister", f"task {self.task.task_id} is {action.new}: deregistered from Cloud Map")

    def do_MarkStopping(self, action, seen):
        self.fail(action.stop_code, action.reason)
        if self.task.stop_code == "EssentialContainerExited":
            self.record("died", f"task {self.task.task_id}: {self.task.stopped_reason}")

    def do_EnsureImages(self, action, seen):
        started = timezone.now()
        for image in sorted({c.image for c in self.containers.values()}):
            if registry.is_registry_image(image):
                # Fargate keeps no image cache between tasks: every task pulls its image, with
                # its own account's credentials (layers already on the instance keep it quick).
                self.pull(image)
                continue
            try:
                present = self.engine.image_present(image)
            except InvalidReference as exc:  # no pull could ever find it: fail now, never retry
                raise TaskFailed("TaskFailedToStart", f"CannotPullContainerError: {exc}", self.using(image))
            if present:
                self.record("pull", f"{image} is not from a registry: the instance's local copy is used "
                                    "(only images of the lab's registry are pulled for every task)")
            else:
                self.pull(image)
        self.pull_times = {"pull_started_at": started, "pull_stopped_at": timezone.now()}

    def pull(self, image):
        """Pull an image (a registry's with the task's account's credentials); a failed pull
        fails the task (CannotPullContainerError).

        The pull's progress is recorded on the task as it streams (see ``PullProgress``)."""
        self.record("pull", f"pulling {image} for task {self.task.task_id}")
        began = self.clock()
        progress = PullProgress(image, self.report_pull)
        ours = registry.is_registry_image(image)
        auth = pull_credentials(self.task.account.account_id) if ours else None
        try:
            if ours:  # through 127.0.0.1 (plain HTTP there), tagged with the name the task gives
                self.engine.pull(registry.local_reference(image), progress=progress, auth=auth, as_name=image)
            else:
                self.engine.pull(image, progress=progress, auth=auth)
        except ImageNotFound as exc:
            raise TaskFailed("TaskFailedToStart", f"CannotPullContainerError: pull image {image}: {exc}",
                             self.using(image))
        self.record("pulled", f"pulled {image}" + (f" ({progress.digest})" if progress.digest else "") + ": "
                    + (progress.summary() if progress.layers else "every layer was already on the instance"), since=began)
        activity.record("docker", "pull", self.task.arn, f"image {image} for task {self.task.task_id[:8]}",
                        trace_id=self.trace, started_at=began[0],
                        duration_ms=round((time.perf_counter() - began[1]) * 1000, 3))
        bus.publish("task", self.task.pk, origin="controlplane")

    def using(self, image):
        """The names of the task's containers made from ``image``."""
        return [name for name, c in self.containers.items() if c.image == image]

    def report_pull(self, message):
        """Record one line of pull progress and tell the task's page."""
        self.record("pull-progress", message)
        bus.publish("task", self.task.pk, origin="controlplane")

    def do_CreateContainers(self, action, seen):
        lab, network = self.engine.lab, self.network
        secret_env = self.read_secrets(action.names)
        sandbox = self.claim_sandbox(action.names)
        try:
            if sandbox is None:
                self.engine.ensure_network(network, labels=self.network_labels)
        except EngineUnavailable:
            raise
        except EngineError as exc:
            raise TaskFailed("TaskFailedToStart", f"ResourceInitializationError: network {network}: {exc}")
        definitions = {c.get("name"): c for c in self.task.task_definition.container_definitions}
        for name in action.names:  # as ECS's agent does, the log driver's arguments first
            try:
                stream = awslogs.prepare(self.task, name, definitions.get(name, {}))
            except awslogs.LoggerArgsInvalid as exc:
                raise TaskFailed("TaskFailedToStart", str(exc), [name])
            if stream is not None:
                self.record("awslogs", f"container {name} of task {self.task.task_id} ships its output to log group "
                                       f"{stream.group.name}, stream {stream.name}")
        log_address = self.paced_log_address()
        mounts = self.volume_mounts(definitions)
        for name in action.names:
            began = self.clock()
            task_container = self.containers[name]
            spec = container_spec(self.task, task_container, lab, network, secret_env.get(name), log_address)
            spec["mounts"] = mounts(definitions.get(name, {}))
            if sandbox is not None:  # its network is the sandbox's; the forwarder publishes its ports
                spec.update(network=f"container:{sandbox}", ports=[], aliases=None)
            try:
                try:
                    docker_id = self.create(spec)
                except ImageNotFound:  # removed since we last looked: pull it again, once
                    self.engine.forget_image(spec["image"])
                    self.pull(spec["image"])
                    docker_id = self.create(spec)
            except ImageNotFound as exc:
                raise TaskFailed("TaskFailedToStart", f"CannotPullContainerError: {exc}")
            except EngineUnavailable:
                raise
            except EngineError as exc:
                raise TaskFailed("TaskFailedToStart", f"CannotCreateContainerError: {exc}")
            TaskContainer.objects.filter(pk=task_container.pk).update(docker_id=docker_id)
            task_container.docker_id = docker_id
            seen.append(ContainerSeen(docker_id, name, "created"))
            self.record("create", f"created container {spec['name']} ({docker_id[:12]}) from {spec['image']}: "
                                  f"{spec['nano_cpus'] / 1e9:g} CPU, {spec['memory'] // 1048576} MiB", since=began)

    def volume_mounts(self, definitions):
        """The volumes the task mounts, made ready: its bind mounts' own volumes and the EFS file
        systems' (``efs.prepare``); returns a function from a container definition to its mounts.
        A volume that cannot be made ready fails the task (ResourceInitializationError, as on ECS)."""
        body = self.task.task_definition.body
        efs_mounts, bind_mounts_of = self.efs_mounts(body), self.bind_mounts(body, definitions)

        def own(definition):
            return efs_mounts(definition) + bind_mounts_of(definition)
        if not volumes_from.sources(body):
            return own
        return volumes_from.resolver(definitions, own)

    def efs_mounts(self, body):
        """The mounts of the EFS file systems the task mounts (see ``volume_mounts``)."""
        volumes = efs.efs_volumes(body)
        if not efs.mounted_roots(body):
            return lambda definition: []
        began = self.clock()
        try:
            name_of, roots = efs.prepare(self.engine, self.task)
        except efs.EfsUnavailable as exc:
            raise TaskFailed("TaskFailedToStart", str(exc)) from None
        self.record("efs", "EFS file system(s) " + ", ".join(
            f"{file_system} (volume {name_of(file_system, '/')})" for file_system in sorted(roots))
            + f" of account {self.task.account.account_id} ready", since=began)
        return lambda definition: efs.mounts_for(definition, volumes, name_of, roots)

    def bind_mounts(self, body, definitions):
        """The mounts of the task's bind mount volumes, each created (see ``volume_mounts``); and
        of the task's own volumes for the image VOLUMEs of containers another one's volumesFrom
        names (``volumes_from``), which the source mounts with the image's files copied in."""
        wanted, task_id = bind_mounts.mounted(body), self.task.task_id

        def name_of(name):
            return bind_mounts.volume_name(self.engine.lab, task_id, name)

        def image_of(definition):
            task_container = self.containers.get(definition.get("name"))
            return (task_container.image if task_container else "") or definition.get("image", "")

        image_paths = {}  # source container -> its image's VOLUME paths no mount point covers
        for source in sorted(volumes_from.sources(body) & set(definitions)):
            paths = volumes_from.uncovered(definitions[source], self.engine.image_volumes(
                image_of(definitions[source])))
            if paths:
                image_paths[source] = paths
        made = wanted | {volumes_from.image_volume(source, path)
                         for source, paths in image_paths.items() for path in paths}
        if not made:
            return lambda definition: []
        try:
            for name in sorted(made):
                self.engine.ensure_volume(name_of(name), bind_mounts.volume_labels(
                    self.task.account.account_id, task_id, name))
        except EngineUnavailable:
            raise
        except EngineError as exc:
            raise TaskFailed("TaskFailedToStart", f"ResourceInitializationError: failed to create volume: {exc}")
        self.record("volumes", f"bind mount volume(s) {', '.join(sorted(made))} of task {task_id} ready")

        def mounts(definition):
            paths = self.engine.image_volumes(image_of(definition)) if definition.get("mountPoints") else set()
            image = [(name_of(volumes_from.image_volume(definition.get("name"), path)), path, False, True)
                     for path in image_paths.get(definition.get("name"), ())]
            return bind_mounts.mounts_for(definition, wanted, name_of, paths) + image
        return mounts

    def claim_sandbox(self, names):
        """The id of the Pod sandbox the task's containers join: its own (claimed in an earlier
        pass), else one of the warm pool's when all its containers are yet to be made and the
        task can use one; None to start them on the cluster network as Docker sets it up."""
        if self.task.sandbox_id:
            return self.task.sandbox_id
        definitions = self.task.task_definition.container_definitions
        if set(names) != set(self.containers) or not sandbox_pool.eligible(self.task, self.engine, definitions):
            return None
        sandbox = sandbox_pool.pool().claim(self.engine, self.network, self.network_labels, self.task)
        if sandbox is not None and not sandbox_pool.pool().claim_holds(self.engine, self.task, sandbox):
            self.record("sandbox", f"Pod sandbox {sandbox.name} had stopped (a Docker restart?): removed")
            sandbox = None
        if sandbox is None:
            self.record("sandbox", f"no Pod sandbox was ready for task {self.task.task_id}: Docker sets up its network")
            return None
        self.record("sandbox", f"task {self.task.task_id} joins the warm pool's Pod sandbox {sandbox.name} "
                               f"({sandbox.id[:12]}) at {sandbox.ip or 'no IP'}")
        return sandbox.id

    def read_secrets(self, names):
        """Each container's ``secrets`` read from their stores (name -> env), before any is created;
        a missing one fails the task (ResourceInitializationError, as on ECS)."""
        definitions = {c.get("name"): c for c in self.task.task_definition.container_definitions}
        wanted = {name: definitions.get(name, {}).get("secrets") for name in names}
        wanted = {name: secrets for name, secrets in wanted.items() if secrets}
        if not wanted:
            return {}
        began = self.clock()
        try:
            with acting_in(self.task.cluster.region):  # the task's region's parameters and secrets
                env = {name: task_secrets.environment(self.task.account, secrets) for name, secrets in wanted.items()}
        except task_secrets.SecretsUnavailable as exc:
            raise TaskFailed("TaskFailedToStart", str(exc)) from None
        self.record("secrets", "read " + "; ".join(f"{', '.join(values)} for container {name}"
                                                   for name, values in env.items()) + " (values not shown)",
                    since=began)
        return env

    def paced_log_address(self):
        """The paced log reader's address for this task's containers (started if need be), or
        None: a remote engine's dockerd cannot reach this host's socket, and without a reader
        the containers get json-file (see ``paced_logs``)."""
        if not self.engine.is_local:
            return None
        address = paced_logs.ensure_running(self.engine.lab)
        if address is None and paced_logs.pace() > 0:
            log.warning("the paced log reader did not start; task %s's output goes to json-file", self.task.task_id)
        return address

    def create(self, spec):
        """Create the container; if one of that name exists (a crash after create), adopt it."""
        try:
            with self.docker_operation():
                return self.engine.create_container(spec)
        except Conflict:
            for container in self.engine.list_containers(labels={LABEL_TASK_ID: self.task.task_id}):
                if container["name"] == spec["name"]:
                    self.record("adopt", f"adopted existing container {spec['name']}")
                    return container["id"]
            raise
        except EngineError as exc:
            if "network" in str(exc).lower() and "not found" in str(exc).lower():
                self.engine.forget_network(spec["network"])
                self.engine.ensure_network(spec["network"], labels=self.network_labels)
                with self.docker_operation():
                    return self.engine.create_container(spec)
            raise

    def docker_operation(self):
        """One of the task's account's turns at its engine's container operations (docker_gate)."""
        return self.gate.operation(self.task.account_id)

    def do_StartContainers(self, action, seen):
        began = self.clock()
        by_name = {c.name: c for c in seen}
        for name in action.names:
            container = by_name[name]
            try:
                with self.docker_operation():
                    self.engine.start(container.id)
            except EngineUnavailable:
                raise
            except ContainerNotFound:
                raise Interrupted()
            except EngineError as exc:
                raise TaskFailed("TaskFailedToStart", f"CannotStartContainerError: {exc}")
            container.state = "running"
        TaskContainer.objects.filter(task=self.task, name__in=action.names).update(
            started_at=timezone.now(), reason="")
        self.record("start", f"started {', '.join(action.names)} of task {self.task.task_id}", since=began)

    def do_RecordWaiting(self, action, seen):
        for name, why in action.waiting.items():
            TaskContainer.objects.filter(task=self.task, name=name).update(reason=why[:1000])
            self.record("waiting", f"container {name} of task {self.task.task_id}: {why}")
        for name, why in action.given_up.items():
            TaskContainer.objects.filter(task=self.task, name=name).update(last_status="STOPPED", reason=why[:1000])
            self.record("gave-up", f"container {name} of task {self.task.task_id}: {why}")
        bus.publish("task", self.task.pk, origin="controlplane")
        if action.given_up:  # its dependents may now be given up too: look again
            self.enqueue(f"task:{self.task.pk}")

    def do_AwaitDependencies(self, action, seen):
        """Requeue the task for the earliest startTimeout and end the pass (an event may come first)."""
        self.enqueue(f"task:{self.task.pk}", delay=max(action.until - time.time(), 0.0) + 0.05)
        raise Requeued()

    def do_ReportRunning(self, action, seen):
        began = self.clock()
        private_ip = ""
        reports = {}
        for container in seen:
            try:
                report = summarize(self.engine.inspect(container.id))
            except ContainerNotFound:
                raise Interrupted()
            reports[container.name] = report
            task_container = self.containers.get(container.name)
            if task_container and task_container.essential and not report["running"]:
                # It died between start and now: the next pass reports it stopped.
                raise Interrupted()
            if report["private_ip"] and not private_ip:
                private_ip = report["private_ip"]
        if self.task.sandbox_id:  # the sandbox's address; its ports are the lab's forwarder's
            private_ip = sandbox_pool.pool().address(self.engine, self.task.sandbox_id)
            for name, report in reports.items():
                report["network_bindings"] = self.forward_ports(name, private_ip)
        for name, report in reports.items():
            TaskContainer.objects.filter(task=self.task, name=name).update(
                docker_id=report["id"], last_status="RUNNING" if report["running"] else "STOPPED",
                exit_code=None if report["running"] else report["exit_code"],
                network_bindings=report["network_bindings"],
            )
            if name in self.containers:
                self.containers[name].network_bindings = report["network_bindings"]
        if action.register_targets:
            # The target's address is the task's: write it, then register (still ACTIVATING).
            Task.objects.filter(pk=self.task.pk).update(private_ip=private_ip)
            for target in load_balancer.register_task(self.task):
                self.record("register", f"registered task {self.task.task_id} in target group "
                                        f"{target.target_group.name} as {target.target_id}:{target.port}")
        # Before RUNNING: a task with health checks is judged by them from the start (UNKNOWN
        # until they pass), never by the grace period of a task without any.
        health = self.containers_health()
        if health != self.task.container_health_status:  # only the agent writes this part
            task_health.write_part(self.task.pk, container_health_status=health)
        now = timezone.now()
        self.advance(Task.ACTIVATING, Task.RUNNING, started_at=now, private_ip=private_ip)
        self.record("running", f"task {self.task.task_id} is RUNNING at {private_ip or 'no IP'}", since=began)
        for registry in service_discovery.register_task(self.task):
            self.record("register", f"registered task {self.task.task_id} in Cloud Map service {registry} "
                                    f"as {private_ip or 'no IP'}")
        if self.task.service_id:
            self.enqueue(f"service:{self.task.service_id}", coalesce=True)

    def forward_ports(self, name, private_ip, bindings=None):
        """Publish container ``name``'s port mappings through the lab's forwarder to the sandbox's
        ``private_ip``; returns its networkBindings (on the host ports of ``bindings`` if free)."""
        definition = next((c for c in self.task.task_definition.container_definitions if c.get("name") == name), {})
        had = {b["containerPort"]: b["hostPort"] for b in bindings or []}
        address = lab_network.publish_address()
        result = []
        for mapping in definition.get("portMappings") or []:
            port = int(mapping.get("containerPort") or 0)
            if not port:
                continue
            binding = {"bindIP": address, "containerPort": port, "hostPort": 0, "protocol": "tcp"}
            binding["hostPort"] = port_forwarder.forwarder().open(
                forward_key(self.task, name, binding), address, (private_ip, port), port=had.get(port, 0))
            result.append(binding)
        return sorted(result, key=lambda b: b["containerPort"])

    def do_ForwardPorts(self, action, seen):
        """Forward the task's ports again from this process (after a restart or a new leader)."""
        private_ip = sandbox_pool.pool().address(self.engine, self.task.sandbox_id) or self.task.private_ip
        for name, container in self.containers.items():
            bindings = self.forward_ports(name, private_ip, container.network_bindings)
            if bindings != container.network_bindings:
                TaskContainer.objects.filter(pk=container.pk).update(network_bindings=bindings)
                container.network_bindings = bindings
                bus.publish("task", self.task.pk, origin="controlplane")
                if self.task.service_id and self.task.load_balancers:
                    load_balancer.register_task(self.task)  # its targets connect to the new host port
        self.record("forward", f"forwarding the published ports of task {self.task.task_id} to its sandbox at "
                               f"{private_ip or 'no IP'}")

    def do_MoveToNetwork(self, action, seen):
        """Reattach the containers to the account's cluster network; rewrite the task's address,
        port bindings and targets to the new ones; remove the networks left once unused."""
        self.engine.ensure_network(self.network, labels=self.network_labels)
        left = set()
        names = {c.id: c.name for c in seen}
        for container_id in action.ids:
            aliases = service_discovery.aliases_for(self.task, names.get(container_id, ""))
            left.update(self.engine.move_to_network(container_id, self.network, aliases=aliases))
        old_ip, private_ip = self.task.private_ip, ""
        for container in seen:
            try:
                report = summarize(self.engine.inspect(container.id))
            except ContainerNotFound:
                raise Interrupted()
            private_ip = private_ip or report["private_ip"]
            TaskContainer.objects.filter(task=self.task, name=container.name).update(
                network_bindings=report["network_bindings"])
        Task.objects.filter(pk=self.task.pk).update(private_ip=private_ip, updated_at=timezone.now())
        self.task.private_ip = private_ip
        if old_ip and old_ip != private_ip:
            Target.objects.filter(task=self.task, address=old_ip).update(address=private_ip)
            Target.objects.filter(task=self.task, target_id=old_ip).update(target_id=private_ip)
        if self.task.service_id and self.task.load_balancers:
            load_balancer.register_task(self.task)  # the published ports changed with the network
        self.record("network", f"moved task {self.task.task_id} from {', '.join(sorted(left)) or 'no network'} "
                               f"to its cluster's network {self.network}: now at {private_ip or 'no IP'}")
        bus.publish("task", self.task.pk, origin="controlplane")
        for name in left:
            self.engine.remove_network_if_unused(name)

    def do_DrainTargets(self, action, seen):
        """Start draining (once) and requeue the task for when the deregistration delay is over."""
        delay = load_balancer.deregister_task(self.task)
        if delay:
            self.record("deregister", f"task {self.task.task_id} is DEACTIVATING: draining from its target "
                                      f"groups for {delay:g} s before it stops")
        if load_balancer.is_drained(self.task) or (action.until is not None and time.time() >= action.until):
            return
        until = Target.objects.filter(task=self.task, state=Target.DRAINING).order_by("-drain_until") \
            .values_list("drain_until", flat=True).first()
        remaining = (until - timezone.now()).total_seconds() if until else 0.0
        if action.until is not None:
            remaining = min(remaining, action.until - time.time())
        self.enqueue(f"task:{self.task.pk}", delay=min(max(remaining, 0.0), 5.0) + 0.05)
        raise Requeued()

    def do_SignalStop(self, action, seen):
        """Send each container its stop signal, then record its deadline (a restart keeps it)."""
        began = self.clock()
        by_id = {c.id: c for c in seen}
        for container_id, deadline in action.deadlines.items():
            try:
                signal = self.engine.signal_stop(container_id)
            except (ContainerNotFound, Conflict):  # gone or already stopped: the next pass sees it
                signal = "no signal (it had stopped)"
            at = datetime.fromtimestamp(deadline, tz=dt_timezone.utc)
            TaskContainer.objects.filter(task=self.task, name=by_id[container_id].name,
                                         stop_deadline__isnull=True).update(stop_deadline=at)
            self.record("stop", f"stopping container {by_id[container_id].name} of task {self.task.task_id} "
                                f"({self.task.stopped_reason or 'stop requested'}): {signal}, SIGKILL at "
                                f"{timezone.localtime(at):%H:%M:%S} unless it exits first", since=began)

    def do_KillContainers(self, action, seen):
        """SIGKILL the containers whose stopTimeout is over (one that just exited is fine)."""
        for container_id in action.ids:
            try:
                self.engine.kill(container_id, "SIGKILL")
            except (ContainerNotFound, Conflict):
                continue
            self.record("sigkill", f"container {container_id[:12]} of task {self.task.task_id} did not exit within "
                                "its stopTimeout: SIGKILL")

    def do_AwaitExit(self, action, seen):
        """Requeue the task for the earliest deadline and end the pass (the "die" event may come first)."""
        self.enqueue(f"task:{self.task.pk}", delay=max(action.until - time.time(), 0.0) + 0.05)
        raise Requeued()

    def do_RecordExits(self, action, seen):
        by_name = {c.name: c for c in seen}
        for name, task_container in self.containers.items():
            fields = {"last_status": "STOPPED"}
            container = by_name.get(name)
            if container is not None:
                try:
                    report = summarize(self.engine.inspect(container.id))
                    event_code = died(container.id)
                    fields["exit_code"] = event_code if report["running"] and event_code is not None \
                        else report["exit_code"]
                    if report["oom_killed"]:
                        fields["reason"] = "OutOfMemoryError: Container killed due to memory usage"
                    elif report["error"]:
                        fields["reason"] = report["error"][:1000]
                    fields["log_tail"] = "\n".join(self.engine.logs(container.id, tail=LOG_TAIL_LINES))
                    self.finish_logs(name, container.id)
                    fields.update({k: v for k, v in (("started_at", docker_time(report["started_at"])),
                                                     ("stopped_at", docker_time(report["finished_at"]))) if v})
                except ContainerNotFound:
                    pass
            TaskContainer.objects.filter(pk=task_container.pk).update(**fields)
        codes = ", ".join(
            f"{n}={c.exit_code}" for n, c in ((n, TaskContainer.objects.get(pk=tc.pk)) for n, tc in self.containers.items())
        )
        self.record("stopped", f"task {self.task.task_id} stopped: {self.task.stopped_reason} (exit codes {codes})")

    def finish_logs(self, name, container_id):
        """Ship what a stopped awslogs container wrote last, before it is removed."""
        definition = next((c for c in self.task.task_definition.container_definitions if c.get("name") == name), {})
        stream = awslogs.stream_for(self.task, name, definition)
        if stream is not None:
            awslogs.shipper().finish(self.engine, container_id, stream)

    def do_ShipLogs(self, action, seen):
        """Follow each container's output into its stream (settled when it was created)."""
        by_name = {c.name: c for c in seen}
        definitions = {c.get("name"): c for c in self.task.task_definition.container_definitions}
        for name in action.names:
            try:  # the stream again, should the group have been deleted and made anew meanwhile
                stream = awslogs.prepare(self.task, name, definitions.get(name, {}))
            except awslogs.LoggerArgsInvalid as exc:  # deleted while it ran: its output has nowhere to go
                log.info("task %s: container %s cannot ship its output: %s", self.task.task_id, name, exc)
                continue
            if stream is not None and name in by_name:
                awslogs.shipper().follow(self.engine, by_name[name].id, stream)

    def do_RecordHealth(self, action, seen):
        """Write the containers' health and the task's container part of its health."""
        for name, status in action.statuses.items():
            TaskContainer.objects.filter(task=self.task, name=name).update(health_status=status)
            self.containers[name].health_status = status
        verdict = self.containers_health()
        task_health.write_part(self.task.pk, container_health_status=verdict)
        words = ", ".join(f"{name} {status}" for name, status in sorted(action.statuses.items()))
        self.record("health", f"container health of task {self.task.task_id}: {words}"
                              f"{f' (task {verdict})' if verdict else ''}")
        bus.publish("task", self.task.pk, origin="controlplane")
        if self.task.service_id:
            self.enqueue(f"service:{self.task.service_id}")

    def containers_health(self):
        """The task's container part of its health from its containers' recorded health."""
        definitions = {c.get("name"): c for c in self.task.task_definition.container_definitions}
        return task_health.containers_health([
            (c.essential, task_health.has_check(definitions.get(c.name, {})), c.health_status)
            for c in self.containers.values()])

    def do_RemoveContainers(self, action, seen):
        began = self.clock()
        for container_id in action.ids:
            with self.docker_operation():
                self.engine.remove(container_id)
            forget_died(container_id)
        self.record("remove", f"removed {len(action.ids)} container(s) of task {self.task.task_id}", since=began)


class PullProgress:
    """Follows Docker's pull stream and reports it in a few lines: each layer's completion
    and, at most every ``every`` seconds, the bytes downloaded so far."""

    def __init__(self, image, report, every=1.0):
        self.image = image
        self.report = report
        self.every = every
        self.layers = {}  # layer id -> (current bytes, total bytes, status)
        self.digest = ""  # the manifest digest the registry answered with
        self.last_report = time.monotonic()

    def __call__(self, message):
        layer, status = message.get("id"), message.get("status", "")
        if not layer or status.startswith("Pulling from"):
            if status.startswith("Digest: "):
                self.digest = status.removeprefix("Digest: ").strip()
            if status.startswith(("Digest", "Status")):
                return
            self.report(f"{self.image}: {status}" if status else self.image)
            return
        current, total, _ = self.layers.get(layer, (0, 0, ""))
        detail = message.get("progressDetail") or {}
        if status == "Downloading":
            current, total = detail.get("current", current), detail.get("total", total)
        elif status in ("Download complete", "Pull complete", "Already exists"):
            current = total
        self.layers[layer] = (current, total, status)
        if status in ("Pull complete", "Already exists"):
            self.report(f"layer {layer}: {status.lower()} ({self.summary()})")
            self.last_report = time.monotonic()
        elif status == "Downloading" and time.monotonic() - self.last_report >= self.every:
            self.report(f"downloading: {self.summary()}")
            self.last_report = time.monotonic()

    def summary(self):
        """"2/3 layers, 1.2 of 4.0 MB" for what the stream said so far."""
        done = sum(1 for _, _, status in self.layers.values() if status in ("Pull complete", "Already exists"))
        current = sum(c for c, _, _ in self.layers.values())
        total = sum(t for _, t, _ in self.layers.values())
        size = f", {current / 1e6:.1f} of {total / 1e6:.1f} MB" if total else ""
        return f"{done}/{len(self.layers)} layers{size}"


def sync_task(pk, enqueue):
    """One pass over task ``pk`` (a no-op if it is gone, or while its instance's agent is cut
    off: nobody there reports or acts until it reconnects, which looks at every task again)."""
    task = load_task(pk)
    if task is None:
        return
    if task.container_instance is not None and task.container_instance.agent_disconnected_until is not None:
        return
    TaskSync(task, enqueue).run()


def sync_instance(pk, enqueue):
    """An instance whose agent was cut off (key "instance:<pk>"): once its time is up the agent
    reconnects (agentConnected true again) and reconciles: every task placed there is looked at
    (a container that died meanwhile is reported STOPPED now, a stop asked meanwhile is carried
    out), and placement may use the instance again."""
    instance = ContainerInstance.objects.filter(pk=pk).first()
    if instance is None or instance.agent_disconnected_until is None:
        return
    left = (instance.agent_disconnected_until - timezone.now()).total_seconds()
    if left > 0:
        enqueue(f"instance:{pk}", delay=left)
        return
    changed = ContainerInstance.objects.filter(pk=pk, agent_disconnected_until=instance.agent_disconnected_until).update(
        agent_connected=True, agent_disconnected_until=None, last_heartbeat=timezone.now())
    if not changed:  # cut off again meanwhile: that one's own key reconnects it
        return
    tasks = list(Task.objects.filter(container_instance_id=pk).exclude(last_status=Task.STOPPED)
                 .values_list("pk", flat=True))
    activity.record("agent", "connected", message=(
        f"the agent of {instance.name} is back and reconciles its {len(tasks)} task(s) with Docker"))
    bus.publish("instance", pk, origin="controlplane")
    for task_pk in tasks:
        enqueue(f"task:{task_pk}")
    enqueue("placement")


def sync_container(engine_url, container_id, enqueue):
    """Remove a lab container whose task is unknown or STOPPED (key "container:<url>|<id>")."""
    engine = DockerEngine.for_url(engine_url)
    try:
        report = summarize(engine.inspect(container_id))
    except ContainerNotFound:
        return
    if sandbox_pool.LABEL_SANDBOX in report["labels"]:  # the pool's, reconciled by it
        return
    if efs.LABEL_HELPER in report["labels"] and not efs.helper_overdue(report["labels"]):  # its runner removes it
        return
    task = Task.objects.filter(task_id=report["labels"].get(LABEL_TASK_ID, "")).first()
    if task is not None and task.last_status != Task.STOPPED:
        enqueue(f"task:{task.pk}")
        return
    engine.remove(container_id)
    activity.record("agent", "remove-orphan", report["labels"].get(LABEL_TASK_ARN, ""),
                    f"removed container {container_id[:12]}: its task is "
                    f"{'STOPPED' if task else 'unknown to this lab'}")


# --- watching an engine -----------------------------------------------------------------------

class Agent:
    """Watches one Docker engine: events first, then a list; enqueues the keys they concern."""

    # health_status: a container's health check result changed (healthy / unhealthy).
    WATCHED_ACTIONS = ("die", "destroy", "oom", "health_status")
    # The container operations the Docker card lists, as the engine reports them.
    SHOWN_ACTIONS = ("create", "start", "kill", "die", "oom", "stop", "destroy")
    # At most one heartbeat write per engine in this many seconds, however busy the engine is.
    HEARTBEAT_SECONDS = 5.0
    # At most this many events of a simulated runtime's stream handled (and recorded) together.
    EVENT_BURST = 500

    def __init__(self, engine_url, enqueue):
        self.engine_url = engine_url
        self.engine = DockerEngine.for_url(engine_url)
        self.enqueue = enqueue
        self._stop = threading.Event()
        self._stream = None
        self._thread = None
        self.connected = threading.Event()
        self._last_beat = None  # time.monotonic() of the last heartbeat written
        self._listed = None  # container id -> (state, health, networks) at the last relist

    def start(self):
        self._thread = threading.Thread(target=self._watch, name=f"agent-watch-{self.engine_url or 'local'}",
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self._set_connected(False)
        except Exception:  # the database may already be gone at shutdown
            log.exception("could not report the agent disconnected")

    def _watch(self):
        """Subscribe, list, follow the stream; reopen it when it ends, with backoff while down."""
        backoff = 0.1
        try:
            while not self._stop.is_set():
                try:
                    self._stream = self.engine.events()
                    if self._stop.is_set():
                        break
                    self.relist()
                    self._set_connected(True)
                    backoff = 0.1
                    for event in self._stream:
                        if self._stop.is_set():
                            break
                        self.handle_events(event)
                    if not self._stop.is_set():
                        log.info("Docker event stream of %s ended; reopening", self.engine.describe())
                        self._set_connected(False)
                except EngineUnavailable as exc:
                    self._set_connected(False)
                    log.debug("engine %s unavailable: %s", self.engine.describe(), exc)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
                except Exception:  # a bug in one event must not kill the watcher
                    log.exception("agent watcher error")
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
        finally:
            connection.close()

    def _set_connected(self, connected):
        """Report the agent's connection on the instances this engine backs."""
        if connected == self.connected.is_set():
            return
        if connected:
            self.connected.set()
        else:
            self.connected.clear()
        close_old_connections()
        ContainerInstance.objects.filter(engine_url=self.engine_url, agent_disconnected_until__isnull=True).update(
            agent_connected=connected, last_heartbeat=timezone.now()
        )
        activity.record("agent", "connected" if connected else "disconnected",
                        message=f"agent {'connected to' if connected else 'lost'} the Docker engine at "
                                f"{self.engine.describe()}")

    def heartbeat(self):
        """The agent reports: refresh its instances' last heartbeat, at most once per HEARTBEAT_SECONDS."""
        now = time.monotonic()
        if self._last_beat is not None and now - self._last_beat < self.HEARTBEAT_SECONDS:
            return
        self._last_beat = now
        instances = list(ContainerInstance.objects.filter(engine_url=self.engine_url, agent_disconnected_until__isnull=True)
                         .exclude(status=ContainerInstance.INACTIVE).values_list("pk", flat=True))
        ContainerInstance.objects.filter(pk__in=instances).update(last_heartbeat=timezone.now())
        for pk in instances:
            bus.publish("instance", pk, origin="controlplane", heartbeat=True)

    def handle_events(self, event):
        """Handle ``event`` and, from a stream that has them at hand (the simulated runtime's:
        a batched pass's creates and starts come hundreds at a time), the events already
        arrived after it, their Docker-card rows written in one INSERT."""
        burst = getattr(self._stream, "waiting", None)
        if burst is None:
            self.handle_event(event)
            return
        with activity.batched():
            for each in [event] + burst(self.EVENT_BURST - 1):
                self.handle_event(each)

    def handle_event(self, event):
        """Enqueue the task a container event concerns (or the container, if its task is unknown)."""
        action = (event.get("Action") or event.get("status") or "").split(":")[0]
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        container_id = event.get("id") or (event.get("Actor") or {}).get("ID") or ""
        # An unexpected death starts a trace, which the die event itself opens.
        trace = self.died_unexpectedly(attributes.get(LABEL_TASK_ID, "")) if action == "die" else ""
        if action in self.SHOWN_ACTIONS:
            self.record_operation(action, container_id, attributes, trace)
            self.heartbeat()
        if action not in self.WATCHED_ACTIONS:
            return
        if action == "die":
            try:
                note_died(container_id, int(attributes.get("exitCode", "")))
            except ValueError:
                note_died(container_id, -1)
        task_id = attributes.get(LABEL_TASK_ID, "")
        pk = Task.objects.filter(task_id=task_id).values_list("pk", flat=True).first() if task_id else None
        if pk is not None:
            with traces.continuing(trace):
                self.enqueue(f"task:{pk}")
        elif action != "destroy":
            self.enqueue(f"container:{self.engine_url}|{container_id}")

    def record_operation(self, action, container_id, attributes, trace=""):
        """One container operation for the Docker card: what happened to which task's container
        (a step of ``trace`` when it starts one)."""
        task_id = attributes.get(LABEL_TASK_ID, "")
        name = attributes.get(LABEL_CONTAINER_NAME) or attributes.get("name") or container_id[:12]
        detail = f" (exit code {attributes['exitCode']})" if action == "die" and "exitCode" in attributes else ""
        signal = f" with signal {attributes['signal']}" if action == "kill" and attributes.get("signal") else ""
        task = f" of task {task_id[:8]}" if task_id else ""
        step = {"started_at": timezone.now(), "duration_ms": 0} if trace else {}
        activity.record("docker", action, attributes.get(LABEL_TASK_ARN, ""),
                        f"container {name}{task}{signal}{detail} on {self.engine.describe()}", trace_id=trace, **step)

    @staticmethod
    def died_unexpectedly(task_id):
        """Start the trace of a RUNNING task's container that died on its own (a crash, a
        ``docker kill``): the die, STOPPED and the replacement are its steps. "" for a container
        that dies because its task is stopping (that stop's trace goes on)."""
        task = Task.objects.select_related("account", "cluster").filter(task_id=task_id).first() if task_id else None
        if task is None or task.desired_status != Task.RUNNING or task.last_status != Task.RUNNING:
            return ""
        return traces.begin("docker", "die", task.arn, task.account)

    def relist(self, full=True):
        """List the lab's containers and enqueue every task they (or the database) concern;
        restart the paced log reader if it died (Docker drops what its containers write meanwhile).

        Not ``full`` (the periodic resync's), as kubelet's PLEG: only the tasks whose containers
        changed (state, health, networks) since the last list, those RUNNING whose containers
        are gone, and the containers of no live task."""
        if self.engine.is_local:
            paced_logs.ensure_running(self.engine.lab)
        # Read before the list: a task RUNNING then whose container the list lacks was lost.
        # (Not those of an instance whose agent is cut off: nobody there reports them now.)
        running = dict(Task.objects.filter(container_instance__engine_url=self.engine_url, last_status=Task.RUNNING,
                                           desired_status=Task.RUNNING,
                                           container_instance__agent_disconnected_until__isnull=True)
                       .values_list("task_id", "pk"))
        # The warm pool's sandboxes are the pool's own to keep or remove (``sandbox_pool.reconcile``).
        containers = [c for c in self.engine.list_containers() if not sandbox_pool.is_sandbox(c)]
        self.heartbeat()
        task_ids = {c["labels"].get(LABEL_TASK_ID, "") for c in containers}
        for task_id, pk in running.items():
            if task_id not in task_ids:
                with traces.continuing(self.found_lost(pk)):
                    self.enqueue(f"task:{pk}")
        tasks = {task_id: (pk, last) for task_id, pk, last in Task.objects.filter(task_id__in=task_ids).exclude(
            last_status=Task.STOPPED).values_list("task_id", "pk", "last_status")}
        listed = {c["id"]: (c["state"], c.get("health", ""), tuple(c.get("networks") or ())) for c in containers}
        previous, self._listed = self._listed, listed
        simulated = is_simulated(self.engine_url)
        for container in containers:
            pk, last = tasks.get(container["labels"].get(LABEL_TASK_ID, ""), (None, None))
            if pk is None:  # unknown or STOPPED: ``sync_container`` removes it
                self.enqueue(f"container:{self.engine_url}|{container['id']}")
            elif full or previous is None or previous.get(container["id"]) != listed[container["id"]]:
                if simulated and previous is not None and container["id"] not in previous \
                        and container["state"] == "running":
                    # Started since the last list, by a batched pass (hundreds at a time) that
                    # reports it or has: nothing to catch up on. Should that pass have failed, the
                    # resync looks at every task not yet RUNNING; later changes differ from this list.
                    continue
                self.enqueue(f"task:{pk}")
        if full or previous is None:
            # Tasks placed here that Docker may have lost (engine restart): each sync looks.
            for pk in Task.objects.filter(container_instance__engine_url=self.engine_url).exclude(
                    last_status__in=(Task.STOPPED, Task.PROVISIONING)).values_list("pk", flat=True):
                self.enqueue(f"task:{pk}")
        return len(containers)

    def found_lost(self, pk):
        """Start the trace of a RUNNING task whose containers a relist did not find."""
        task = Task.objects.select_related("account", "cluster").filter(pk=pk).first()
        if task is None:
            return ""
        trace = traces.begin("agent", "relist", task.arn, task.account)
        activity.record("agent", "relist", task.arn,
                        f"a relist of {self.engine.describe()} found no container of RUNNING task {task.task_id}",
                        trace_id=trace, started_at=timezone.now(), duration_ms=0)
        return trace


# --- the dashboard's helpers ------------------------------------------------------------------

def kill_task_container(task):
    """SIGKILL the task's essential container (the "kill container" demo); True if one was killed.

    The agent then sees the container die, reports the task STOPPED with exit code 137, and the
    cluster manager replaces it. Only containers carrying this lab's label are touched.
    """
    engine = engine_for(task)
    essential = task.containers.filter(essential=True).order_by("id").first()
    containers = engine.list_containers(labels={LABEL_TASK_ID: task.task_id})
    if essential is not None:
        containers = [c for c in containers if c["labels"].get(LABEL_CONTAINER_NAME) == essential.name] or containers
    for container in containers:
        if container["state"] == "running":
            engine.kill(container["id"], "SIGKILL")
            # No trace of its own: the "die" event that follows starts the self-heal's.
            activity.record("agent", "kill", task.arn, f"container {container['name']} killed with SIGKILL",
                            trace_id="")
            return True
    return False


def stream_logs(task, follow=True, tail=LOG_TAIL_LINES, container_name=None):
    """The task's (essential) container output as text lines: from its CloudWatch Logs stream
    with awslogs, else from the engine, else from ``log_tail`` once the container is gone."""
    containers = task.containers.order_by("-essential", "id")
    task_container = containers.filter(name=container_name).first() if container_name else containers.first()
    if task_container is None:
        return iter(())
    definition = next((c for c in task.task_definition.container_definitions if c.get("name") == task_container.name),
                      {})
    stream = awslogs.stream_for(task, task_container.name, definition)
    if stream is not None:  # CloudWatch Logs is where an awslogs container's output lives
        return awslogs.StreamReader(stream.pk, task.pk, follow=follow, tail=tail)
    if task.last_status != Task.STOPPED and task.container_instance_id:
        try:
            engine = engine_for(task)
            for container in engine.list_containers(labels={LABEL_TASK_ID: task.task_id}):
                if container["labels"].get(LABEL_CONTAINER_NAME) == task_container.name:
                    return engine.logs(container["id"], follow=follow, tail=tail)
        except EngineError as exc:
            log.info("logs of %s from the engine failed (%s); using the kept tail", task.task_id, exc)
    lines = task_container.log_tail.splitlines()
    return iter(lines[-tail:] if tail else lines)

