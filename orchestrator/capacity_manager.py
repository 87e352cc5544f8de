"""The capacity manager (kube-scheduler + cluster autoscaler): owns the fleet and places tasks.

One pass runs at a time (the single queue key "placement"):
1. Placement: the PROVISIONING tasks that want to run and have no instance, oldest first, go
   each to an ACTIVE instance that fits it and meets the ``placementConstraints`` of its
   service (or of its RunTask), chosen by its ``placementStrategy`` (binpack, spread, random;
   with none, the instance with the most room). Remaining capacity is derived from the tasks placed on an instance and not
   STOPPED — never kept in a counter that could drift. A task that fits nowhere stays
   PROVISIONING with a ``pending_reason``; one bigger than any instance can ever be (see
   ``task_ceiling``: instance sizes, and each engine's own CPUs and memory) is stopped at once.
2. The fleet (``plan_fleet``): when waiting tasks fit nowhere, launch instances (PROVISIONING,
   a short boot: ping the engine, make the cluster networks, then ACTIVE) up to the maximum
   fleet size; instances idle for a while beyond the warm pool are DRAINING, then INACTIVE.
   Instances are spread over the configured Docker engines (``fleet_engines``).
``place`` and ``plan_fleet`` are pure functions of plain data; the executor is thin.
"""
import hashlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Q, Sum
from django.utils import timezone

from orchestrator import activity, bus, traces
from orchestrator.agent import network_labels, network_name
from orchestrator.docker_engine import DockerEngine, EngineError
from orchestrator.models import ContainerInstance, Service, Task

log = logging.getLogger(__name__)
PLACEMENT_KEY = "placement"
NAME_RE = re.compile(r"fleet-([0-9]+)")
# How long an instance just drained stays DRAINING (visible) before the pass that retires it.
DRAIN_SECONDS = 1.0
# How soon a boot that found its engine down is tried again.
BOOT_RETRY_SECONDS = 5.0
# Placement decisions bound per transaction (one commit, one activity INSERT): large enough that
# a 5,000-task service is a few commits, small enough that other writers never wait long.
PLACE_BATCH = 250
# ECS's words when a task asks for the EC2 launch type (its default with no launch type and no
# capacity provider strategy) in a cluster without EC2 container instances: the fleet here is
# Fargate's, hidden, so every cluster is one.
NO_CONTAINER_INSTANCES = "No Container Instances were found in your cluster."


# --- engines ------------------------------------------------------------------------------

def fleet_engines():
    """The Docker engine URLs instances are spread over: DOCKER_URL first, then ENGINES."""
    conf = settings.FARGATE_LAB
    urls = [conf["DOCKER_URL"]] + [u for u in conf.get("ENGINES", []) if u != conf["DOCKER_URL"]]
    return list(dict.fromkeys(urls))


def availability_zone(engine_url, engines=None):
    """The availability zone an engine stands for: one letter per configured engine (a, b, …)."""
    engines = fleet_engines() if engines is None else engines
    index = engines.index(engine_url) if engine_url in engines else len(engines)
    return f"{settings.FARGATE_LAB['REGION']}{chr(ord('a') + index % 26)}"


# --- how big instances are, and the largest task the fleet can ever hold ------------------

def instance_size(engine_url):
    """(CPU units, MiB) of an instance on this engine: the settings if given, else the engine's
    own (raises EngineUnavailable when it is needed and the engine does not answer)."""
    conf = settings.FARGATE_LAB
    cpu, memory = conf.get("INSTANCE_CPU"), conf.get("INSTANCE_MEMORY")
    if cpu and memory:
        return cpu, memory
    engine_cpu, engine_memory = DockerEngine.for_url(engine_url).resources()
    return cpu or engine_cpu, memory or engine_memory


@dataclass(frozen=True)
class Ceiling:
    """The largest task any instance the fleet can launch could hold, and why."""

    cpu: int
    memory: int
    why: str
    complete: bool = True  # every engine answered (else one that did not might hold more)


def _engine_ceiling(url):
    """(cpu, memory, why) of the largest task an instance on one engine can hold."""
    size_cpu, size_memory = instance_size(url)
    engine_cpu, engine_memory = DockerEngine.for_url(url).resources()
    why = (f"instances are {size_cpu} CPU units / {size_memory} MiB, and the Docker engine has "
           f"{engine_cpu // 1024} CPUs / {engine_memory} MiB")
    return min(size_cpu, engine_cpu), min(size_memory, engine_memory), why


def task_ceiling():
    """The Ceiling of the fleet's configured engines, or None if none of them answers."""
    found, complete = [], True
    for url in fleet_engines():
        try:
            found.append(_engine_ceiling(url))
        except EngineError:
            complete = False
    if not found:
        return None
    cpu, _, why = max(found)
    return Ceiling(cpu, max(memory for _, memory, _ in found), why, complete)


def too_big(cpu, memory, ceiling):
    """(ECS's failure reason, detail) if a task of this size fits on no instance ever, else None."""
    if ceiling is None:
        return None
    if cpu > ceiling.cpu:
        return "RESOURCE:CPU", (f"No Fargate Lab instance can hold a task of {cpu} CPU units: the largest holds "
                                f"{ceiling.cpu} ({ceiling.why}).")
    if memory > ceiling.memory:
        return "RESOURCE:MEMORY", (f"No Fargate Lab instance can hold a task of {memory} MiB: the largest holds "
                                   f"{ceiling.memory} MiB ({ceiling.why}).")
    return None


# --- placement on plain data --------------------------------------------------------------

@dataclass
class InstanceRoom:
    """An instance, the CPU units / MiB it has left, its attributes and task groups."""

    pk: int
    name: str
    cpu_free: int
    memory_free: int
    # instanceId, ecs.availability-zone, fargatelab.engine (what constraints and spread read)
    attributes: dict = field(default_factory=dict)
    groups: Counter = field(default_factory=Counter)  # task group -> live tasks of it here
    status: str = ContainerInstance.ACTIVE  # only ACTIVE instances take tasks
    agent_connected: bool = True  # and only those whose agent the control plane reaches


@dataclass
class PendingTask:
    """A task waiting for an instance, what it needs, and where it may go."""

    pk: int
    task_id: str
    cpu: int
    memory: int
    group: str = ""
    strategy: list = field(default_factory=list)  # [{"type": "binpack"|"spread"|"random", "field": …}]
    constraints: list = field(default_factory=list)  # [{"type": "distinctInstance"|"memberOf", …}]


@dataclass
class Placement:
    """The decision for one task: an instance (and why), or none (and why not)."""

    task_pk: int
    instance_pk: int | None
    instance_name: str = ""
    reason: str = ""
    extra: dict = field(default_factory=dict)
    # Every instance considered, as kube-scheduler-simulator shows a decision: each a dict of
    # instance, status, cpu_free, memory_free, verdict (rejected / scored / chosen), reason
    # (why rejected) or score (what the strategy weighed) and rank among the scored.
    considered: list = field(default_factory=list, compare=False)


def no_capacity_reason(cpu, memory):
    """The pending reason of a task that fits on no instance."""
    return f"No Fargate capacity: no instance has {cpu} CPU units and {memory} MiB free"


_EXPRESSION = re.compile(
    r"\s*attribute:(?P<name>[\w.\-]+)\s*(?P<op>==|!=|not_in|in)\s*(?P<value>\[[^\]]*\]|\S+)\s*")


def matches_expression(expression, attributes):
    """Whether instance ``attributes`` meet a memberOf expression of the cluster query language.

    The subset that makes sense for a Fargate fleet: ``attribute:<name> == v``, ``!= v``,
    ``in [a, b]``, ``not_in [a, b]``; ``instanceId`` reads as an attribute too. None if the
    expression is outside that subset.
    """
    found = _EXPRESSION.fullmatch(expression or "")
    if not found:
        return None
    value = attributes.get(found["name"])
    raw = found["value"]
    options = [v.strip() for v in raw.strip("[]").split(",") if v.strip()] if raw.startswith("[") else [raw]
    op = found["op"]
    if op in ("==", "in"):
        return value in options
    return value not in options


def _allowed(task, room):
    """'' if ``room`` meets the task's constraints, else why not."""
    for constraint in task.constraints:
        kind = constraint.get("type")
        if kind == "distinctInstance" and room.groups.get(task.group):
            return "distinctInstance: the instance already runs a task of the group"
        if kind == "memberOf":
            verdict = matches_expression(constraint.get("expression", ""), {**room.attributes,
                                                                            "instanceId": room.attributes.get("instanceId")})
            if verdict is None:
                return f"memberOf: cannot evaluate {constraint.get('expression', '')!r}"
            if not verdict:
                return f"memberOf {constraint.get('expression')}: not a member"
    return ""


def _strategy_key(task, room, rooms):
    """The sort key the task's placementStrategy gives ``room`` (smaller is better)."""
    key = []
    for strategy in task.strategy:
        kind, field_ = strategy.get("type"), strategy.get("field") or ""
        if kind == "binpack":
            key.append(room.memory_free if field_.lower() == "memory" else room.cpu_free)
        elif kind == "spread":
            if field_ in ("instanceId", "host", ""):
                key.append(room.groups.get(task.group, 0))
            else:
                name = field_.removeprefix("attribute:")
                value = room.attributes.get(name)
                key.append(sum(r.groups.get(task.group, 0) for r in rooms if r.attributes.get(name) == value))
        elif kind == "random":
            key.append(hashlib.blake2s(f"{task.pk}:{room.pk}".encode(), digest_size=4).digest())
    return tuple(key)


def _shortfall(task, room):
    """Why ``room`` cannot hold the task ("" when it can): not ACTIVE, CPU or memory short."""
    if room.status != ContainerInstance.ACTIVE:
        return f"not ACTIVE ({room.status})"
    if not room.agent_connected:
        return "its agent is disconnected"
    short = []
    if room.cpu_free < task.cpu:
        short.append(f"CPU short by {task.cpu - room.cpu_free} units (needs {task.cpu}, {room.cpu_free} free)")
    if room.memory_free < task.memory:
        short.append(f"memory short by {task.memory - room.memory_free} MiB "
                     f"(needs {task.memory}, {room.memory_free} free)")
    return "; ".join(short)


def _score_words(task, room, rooms):
    """What the task's strategy weighed for ``room``, in words (smaller numbers are better)."""
    words = []
    for strategy, value in zip(task.strategy, _strategy_key(task, room, rooms)):
        kind, field_ = strategy.get("type"), strategy.get("field") or ""
        if kind == "binpack":
            unit = "MiB" if field_.lower() == "memory" else "CPU units"
            words.append(f"binpack({field_ or 'cpu'}): {value} {unit} left")
        elif kind == "spread":
            words.append(f"spread({field_ or 'instanceId'}): {value} task(s) of the group")
        elif kind == "random":
            words.append(f"random: {value.hex()}")
    words.append(f"most room: {room.cpu_free} CPU units, {room.memory_free} MiB free")
    return "; ".join(words)


def describe_strategy(task):
    """The task's strategy in words, for the placement's reason."""
    if not task.strategy:
        return "most room"
    return ", ".join(f"{s.get('type')}({s.get('field')})" if s.get("field") else str(s.get("type"))
                     for s in task.strategy)


def place(pending, instances):
    """Place ``pending`` tasks (oldest first) on ``instances``: a pure function of plain data.

    For each task: the instances that fit its CPU and memory and meet its constraints, ordered
    by its strategies in turn, then by most CPU left (then memory, then name); the task's
    CPU, memory and group are booked on the chosen one before the next task is placed.
    """
    rooms = {i.pk: InstanceRoom(i.pk, i.name, i.cpu_free, i.memory_free, dict(i.attributes), Counter(i.groups),
                                i.status, getattr(i, "agent_connected", True)) for i in instances}
    active = [r for r in rooms.values() if r.status == ContainerInstance.ACTIVE]
    decisions = []
    for task in pending:
        # Filter: room (and ACTIVE), then the constraints; every verdict is kept with its reason.
        verdicts = {r.pk: _shortfall(task, r) for r in rooms.values()}
        fitting = [r for r in rooms.values() if not verdicts[r.pk]]
        for room in fitting:
            verdicts[room.pk] = _allowed(task, room)
        allowed = [r for r in fitting if not verdicts[r.pk]]
        # Score: the strategy's order, then the most room left, then the name.
        ranked = sorted(allowed, key=lambda r: (_strategy_key(task, r, active), -r.cpu_free, -r.memory_free, r.name))
        considered = [
            {"instance": r.name, "status": r.status, "cpu_free": r.cpu_free, "memory_free": r.memory_free,
             "verdict": "rejected", "reason": verdicts[r.pk]}
            for r in sorted(rooms.values(), key=lambda r: r.name) if verdicts[r.pk]
        ]
        for rank, room in enumerate(ranked, start=1):
            considered.append({"instance": room.name, "status": room.status, "cpu_free": room.cpu_free,
                               "memory_free": room.memory_free, "verdict": "chosen" if rank == 1 else "scored",
                               "score": _score_words(task, room, active), "rank": rank})
        considered.sort(key=lambda c: (c.get("rank") or len(rooms) + 1, c["instance"]))
        if not fitting:
            decisions.append(Placement(task.pk, None, reason=no_capacity_reason(task.cpu, task.memory),
                                       considered=considered))
            continue
        if not allowed:
            why = sorted(set(verdicts[r.pk] for r in fitting))[0]
            decisions.append(Placement(task.pk, None, reason=f"No instance meets the placement constraints ({why})",
                                       considered=considered))
            continue
        best = ranked[0]
        reason = f"{best.name} has {best.cpu_free} CPU / {best.memory_free} MiB free ({describe_strategy(task)})"
        best.cpu_free -= task.cpu
        best.memory_free -= task.memory
        best.groups[task.group] += 1
        decisions.append(Placement(task.pk, best.pk, best.name, reason, considered=considered))
    return decisions


# --- the fleet on plain data --------------------------------------------------------------

@dataclass
class FleetInstance:
    """What the fleet plan needs to know of one instance."""

    pk: int
    name: str
    status: str
    engine_url: str
    live_tasks: int
    since: datetime  # registered, or the last time a task left it: idle since then if empty


@dataclass
class FleetConfig:
    warm_pool: int
    max_instances: int
    instance_cpu: int
    instance_memory: int
    engines: list
    boot_seconds: float
    idle_seconds: float


@dataclass
class LaunchInstance:
    name: str
    engine_url: str
    reason: str


@dataclass
class BootInstance:
    pk: int


@dataclass
class DrainInstance:
    pk: int
    reason: str


@dataclass
class RetireInstance:
    pk: int


@dataclass
class FleetPlan:
    actions: list = field(default_factory=list)
    wake_after: float | None = None  # look again in this many seconds

    def wake(self, seconds):
        seconds = max(seconds, 0.05)
        self.wake_after = seconds if self.wake_after is None else min(self.wake_after, seconds)


def _instances_needed(unplaced, config, empty_rooms):
    """How many empty instances, beyond ``empty_rooms`` already on their way, the unplaced
    tasks (cpu, memory) need: first fit, biggest first; tasks no instance could hold count 0."""
    bins = [[config.instance_cpu, config.instance_memory] for _ in range(empty_rooms)]
    opened = 0
    for cpu, memory in sorted(unplaced, reverse=True):
        if cpu > config.instance_cpu or memory > config.instance_memory:
            continue
        for room in bins:
            if room[0] >= cpu and room[1] >= memory:
                room[0] -= cpu
                room[1] -= memory
                break
        else:
            bins.append([config.instance_cpu - cpu, config.instance_memory - memory])
            opened += 1
    return opened


def _next_names(instances, count):
    """``count`` fresh names fleet-N, numbered after every name used so far."""
    used = [int(m.group(1)) for m in (NAME_RE.fullmatch(i.name) for i in instances) if m]
    top = max(used, default=0)
    return [f"fleet-{top + n}" for n in range(1, count + 1)]


def _least_used_engine(live, engines):
    """The configured engine with the fewest live instances (the first on ties)."""
    load = Counter(i.engine_url for i in live)
    return min(engines, key=lambda url: (load[url], engines.index(url)))


def plan_fleet(instances, unplaced, config, now):
    """What the fleet does next: a pure function of plain data.

    1. Boot PROVISIONING instances whose boot time has passed.
    2. Launch instances for the tasks that fit nowhere (and up to the warm pool), counting
       instances already booting, never beyond ``max_instances`` non-INACTIVE instances.
    3. With no task waiting, drain instances idle for ``idle_seconds`` beyond the warm pool,
       the newest first; retire (on a later pass) DRAINING instances left without tasks.
    """
    result = FleetPlan()
    live = [i for i in instances if i.status in (ContainerInstance.PROVISIONING, ContainerInstance.ACTIVE)]
    booting = [i for i in live if i.status == ContainerInstance.PROVISIONING]
    for instance in booting:
        left = config.boot_seconds - (now - instance.since).total_seconds()
        if left <= 0:
            result.actions.append(BootInstance(instance.pk))
        else:
            result.wake(left)

    want = max(_instances_needed(unplaced, config, len(booting)), config.warm_pool - len(live))
    room = config.max_instances - sum(1 for i in instances if i.status != ContainerInstance.INACTIVE)
    launches = min(max(want, 0), max(room, 0))
    if launches:
        reason = (f"{len(unplaced)} waiting task(s) fit on no instance" if unplaced
                  else f"the warm pool has {len(live)} of {config.warm_pool} instances")
        planned = list(live)
        for name in _next_names(instances, launches):
            engine = _least_used_engine(planned, config.engines)
            result.actions.append(LaunchInstance(name, engine, reason))
            planned.append(FleetInstance(0, name, ContainerInstance.PROVISIONING, engine, 0, now))
        result.wake(config.boot_seconds)

    if not unplaced:
        surplus = len(live) - config.warm_pool
        idle = [i for i in live if i.status == ContainerInstance.ACTIVE and i.live_tasks == 0]
        number = lambda i: int(NAME_RE.fullmatch(i.name).group(1)) if NAME_RE.fullmatch(i.name) else 0  # noqa: E731
        for instance in sorted(idle, key=lambda i: (-number(i), i.name)):
            if surplus <= 0:
                break
            waited = (now - instance.since).total_seconds()
            if waited >= config.idle_seconds:
                result.actions.append(DrainInstance(instance.pk, f"idle for {waited:.0f} s beyond the warm pool "
                                                                  f"of {config.warm_pool}"))
                surplus -= 1
                result.wake(DRAIN_SECONDS)
            else:
                result.wake(config.idle_seconds - waited)
    for instance in instances:
        if instance.status == ContainerInstance.DRAINING and instance.live_tasks == 0:
            result.actions.append(RetireInstance(instance.pk))
    return result


# --- the executor ---------------------------------------------------------------------------

def _decision_fields(decision, began):
    """The timing and the record of a placement decision, for its Activity row."""
    started_at, started = began
    return {
        "started_at": started_at, "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "details": {"chosen": decision.instance_name, "reason": decision.reason, "considered": decision.considered},
    }


def fleet_config():
    """The fleet's settings as a FleetConfig (instances sized as on the first engine)."""
    conf = settings.FARGATE_LAB
    try:
        instance_cpu, instance_memory = instance_size(fleet_engines()[0])
    except EngineError:  # no size to launch by: nothing is launched for waiting tasks; boots retry
        instance_cpu, instance_memory = 0, 0
    return FleetConfig(
        warm_pool=conf["FLEET_INSTANCES"], max_instances=max(conf.get("MAX_INSTANCES", 16), conf["FLEET_INSTANCES"]),
        instance_cpu=instance_cpu, instance_memory=instance_memory, engines=fleet_engines(),
        boot_seconds=conf.get("INSTANCE_BOOT_SECONDS", 2.0), idle_seconds=conf.get("INSTANCE_IDLE_SECONDS", 30.0),
    )


def ensure_fleet():
    """Make sure the warm pool exists: instances fleet-1..N, ACTIVE, spread over the engines,
    each sized by ``instance_size`` (one whose engine does not answer yet is left PROVISIONING:
    its boot sizes it once the engine answers)."""
    conf = settings.FARGATE_LAB
    engines = fleet_engines()
    for n in range(1, conf["FLEET_INSTANCES"] + 1):
        engine_url = engines[(n - 1) % len(engines)]
        try:
            cpu, memory = instance_size(engine_url)
            status = ContainerInstance.ACTIVE
        except EngineError:
            cpu, memory, status = 0, 0, ContainerInstance.PROVISIONING
        instance, created = ContainerInstance.objects.get_or_create(
            name=f"fleet-{n}",
            defaults={"engine_url": engine_url, "cpu_registered": cpu, "memory_registered": memory, "status": status},
        )
        if not created and instance.status == ContainerInstance.INACTIVE:
            ContainerInstance.objects.filter(pk=instance.pk).update(
                status=status, registered_at=timezone.now(), cpu_registered=cpu, memory_registered=memory)
            instance.refresh_from_db()
            created = True
        elif not created and status == ContainerInstance.ACTIVE and (
                instance.cpu_registered, instance.memory_registered) != (cpu, memory):
            # Sized by an older setting or on another machine: an instance is as big as it is now.
            ContainerInstance.objects.filter(pk=instance.pk).update(cpu_registered=cpu, memory_registered=memory)
            activity.record("capacity_manager", "resize-instance", message=(
                f"{instance.name} is now {cpu} CPU units, {memory} MiB (was {instance.cpu_registered}, "
                f"{instance.memory_registered})"))
        if created:
            activity.record("capacity_manager", "launch-instance", message=(
                f"{instance.name} joined the warm pool on {DockerEngine.for_url(instance.engine_url).describe()}: "
                f"{instance.cpu_registered} CPU units, {instance.memory_registered} MiB"))


def _live_tasks():
    return Task.objects.filter(container_instance__isnull=False).exclude(last_status=Task.STOPPED)


def instance_rooms():
    """The ACTIVE instances with their free CPU and memory (derived from the tasks on them),
    their attributes, and how many live tasks of each group they hold."""
    used = {
        row["container_instance"]: row
        for row in _live_tasks().values("container_instance").annotate(cpu=Sum("cpu"), memory=Sum("memory"))
    }
    groups = {}
    for row in _live_tasks().values("container_instance", "group").annotate(n=Count("pk")):
        groups.setdefault(row["container_instance"], Counter())[row["group"]] = row["n"]
    engines = fleet_engines()
    rooms = []
    # Instances not ACTIVE (booting, draining) are listed too: a decision says why they were passed over.
    for instance in ContainerInstance.objects.exclude(status=ContainerInstance.INACTIVE):
        use = used.get(instance.pk, {})
        rooms.append(InstanceRoom(
            instance.pk, instance.name,
            instance.cpu_registered - (use.get("cpu") or 0),
            instance.memory_registered - (use.get("memory") or 0),
            attributes={
                "instanceId": instance.instance_id,
                "ecs.availability-zone": availability_zone(instance.engine_url, engines),
                "fargatelab.engine": instance.engine_url or "local",
                "fargatelab.instance-name": instance.name,
                # "simulated" (a sim:// runtime, orchestrator/simulated_engine.py) or "docker".
                "fargatelab.instance-kind": instance.kind,
            },
            groups=groups.get(instance.pk, Counter()),
            status=instance.status,
            agent_connected=instance.agent_disconnected_until is None,
        ))
    return rooms


def fleet_state():
    """Every non-INACTIVE instance as a FleetInstance."""
    counts = dict(_live_tasks().values("container_instance").annotate(n=Count("pk"))
                  .values_list("container_instance", "n"))
    last_left = dict(Task.objects.filter(container_instance__isnull=False, last_status=Task.STOPPED)
                     .values("container_instance").annotate(at=Max("stopped_at"))
                     .values_list("container_instance", "at"))
    rows = []
    for instance in ContainerInstance.objects.all():
        left = last_left.get(instance.pk)
        since = max(instance.registered_at, left) if left else instance.registered_at
        rows.append(FleetInstance(instance.pk, instance.name, instance.status, instance.engine_url,
                                  counts.get(instance.pk, 0), since))
    return rows


class CapacityManager:
    """Runs placement and fleet passes; ``on_placed(task_pk, account_id, instance_pk=…)`` is told of
    each task it placed (once committed),
    ``enqueue(key, delay=…)`` asks for a later pass."""

    def __init__(self, on_placed=None, enqueue=None):
        self.on_placed = on_placed or (lambda pk, account_id, instance_pk=None: None)
        self.enqueue = enqueue or (lambda key, delay=0: None)

    def run_pass(self):
        """Place what can be placed, then grow or shrink the fleet; returns the tasks placed."""
        placed = self.place_pending()
        if self.manage_fleet():  # an instance turned ACTIVE: place on it at once
            placed += self.place_pending()
        return placed

    def _waiting(self):
        return Task.objects.filter(
            last_status=Task.PROVISIONING, desired_status=Task.RUNNING, container_instance__isnull=True
        )

    def place_pending(self):
        """One placement pass over the waiting tasks; returns the number of tasks placed.

        Each decision is a step of its task's trace, timed from the pass's start to the bind
        (the conditional update), with every instance considered kept as data."""
        began = timezone.now(), time.perf_counter()
        waiting = list(self._waiting().select_related("account", "cluster").order_by("created_at", "id"))
        if not waiting:
            return 0
        waiting = self._refuse_too_big(waiting)
        by_pk = {t.pk: t for t in waiting}
        rules = {
            s["pk"]: s for s in Service.objects.filter(pk__in={t.service_id for t in waiting if t.service_id})
            .values("pk", "placement_strategy", "placement_constraints")
        }
        pending = []
        for t in waiting:
            # A service's tasks follow the service's rules; a RunTask task, its own.
            rule = rules.get(t.service_id) or {"placement_strategy": t.placement_strategy,
                                               "placement_constraints": t.placement_constraints}
            pending.append(PendingTask(t.pk, t.task_id, t.cpu, t.memory, t.group,
                                       list(rule.get("placement_strategy") or []),
                                       list(rule.get("placement_constraints") or [])))
        decisions = place(pending, instance_rooms())
        placed = 0
        # One transaction (one commit) and one activity INSERT per PLACE_BATCH decisions; their
        # claims are conditional UPDATEs inside it, one per instance (``_claim``).
        for first in range(0, len(decisions), PLACE_BATCH):
            bound = []
            chunk = decisions[first:first + PLACE_BATCH]
            with activity.batched(), transaction.atomic():
                claimed = self._claim([d for d in chunk if d.instance_pk is not None])
                for decision in chunk:
                    task = by_pk[decision.task_pk]
                    if self._bind(task, decision, began, claimed):
                        bound.append(task)
                for instance_pk in sorted({t.container_instance_id for t in bound}):
                    bus.publish("instance", instance_pk, origin="controlplane")
            # Once committed, so that the agent's pass finds them placed.
            for task in bound:
                with traces.continuing(task.trace_id):
                    self.on_placed(task.pk, task.account_id, instance_pk=task.container_instance_id)
            placed += len(bound)
        return placed

    @staticmethod
    def _claim(decisions):
        """Bind the decisions' tasks still PROVISIONING to their instances (in the caller's
        transaction); returns {task pk: when} of those bound.

        The claim stays conditional, as ``Task.advance``'s: the rows still PROVISIONING are read
        under the write lock (FOR UPDATE on PostgreSQL), then each instance's are moved by one
        UPDATE on the same condition; a task placed or stopped meanwhile is skipped."""
        if not decisions:
            return {}
        now = timezone.now()
        free = set(Task.objects.select_for_update().filter(
            pk__in=[d.task_pk for d in decisions], last_status=Task.PROVISIONING).values_list("pk", flat=True))
        by_instance = {}
        for decision in decisions:
            if decision.task_pk in free:
                by_instance.setdefault(decision.instance_pk, []).append(decision.task_pk)
        for instance_pk, pks in by_instance.items():
            Task.objects.filter(pk__in=pks, last_status=Task.PROVISIONING).update(
                last_status=Task.PENDING, container_instance_id=instance_pk, pending_reason="",
                version=F("version") + 1, updated_at=now)
        return dict.fromkeys(free, now)

    def _bind(self, task, decision, began, claimed):
        """Carry out one decision: record the task bound (True: ``claimed`` has it) or say why it waits."""
        # The task's own trace (never the pass's: that may be another account's), also for
        # the agent's key that ``on_placed`` enqueues.
        with traces.continuing(task.trace_id):
            if decision.instance_pk is None:
                self._wait(task, decision, began)
                return False
            if task.pk not in claimed:  # already placed or stopped: skipped
                return False
            # What ``_claim`` wrote, as ``Task.advance`` keeps it (a changed foreign key drops its cached object).
            task.last_status, task.version, task.updated_at = Task.PENDING, task.version + 1, claimed[task.pk]
            task.container_instance_id, task.pending_reason = decision.instance_pk, ""
            activity.record(
                "capacity_manager", "place", task.arn,
                f"placed task {task.task_id} ({task.cpu} CPU / {task.memory} MiB) on "
                f"{decision.instance_name}: {decision.reason}",
                **_decision_fields(decision, began),
            )
            bus.publish("task", task.pk, origin="controlplane")
            return True

    def _refuse_too_big(self, waiting):
        """Stop the waiting tasks no instance could ever hold (with ECS's reason); return the others."""
        ceiling = task_ceiling()
        if ceiling is None or not ceiling.complete:  # an engine that does not answer might hold them
            return waiting
        left = []
        for task in waiting:
            refusal = too_big(task.cpu, task.memory, ceiling)
            if refusal is None:
                left.append(task)
                continue
            reason = f"{refusal[0]}: {refusal[1]}"
            changed = Task.objects.filter(pk=task.pk, desired_status=Task.RUNNING).update(
                desired_status=Task.STOPPED, stop_code="TaskFailedToStart", stopped_reason=reason,
                pending_reason=reason, stopping_at=timezone.now(), updated_at=timezone.now())
            if changed:
                activity.record("capacity_manager", "no-capacity", task.arn,
                                f"task {task.task_id} can never be placed: {reason}", trace_id=task.trace_id)
                bus.publish("task", task.pk, origin="controlplane")
                self.enqueue(f"task:{task.pk}")  # its agent pass reports it STOPPED
                if task.service_id:
                    self.enqueue(f"service:{task.service_id}")
        return left

    def _wait(self, task, decision, began):
        """Leave a task PROVISIONING with the reason why (said once, not on every pass)."""
        reason = decision.reason
        if task.pending_reason == reason:
            return
        changed = Task.objects.filter(pk=task.pk, last_status=Task.PROVISIONING).update(
            pending_reason=reason, updated_at=timezone.now()
        )
        if changed:
            activity.record("capacity_manager", "no-capacity", task.arn, f"task {task.task_id} waits: {reason}",
                            **_decision_fields(decision, began))
            bus.publish("task", task.pk, origin="controlplane")

    # -- the fleet
    def manage_fleet(self, now=None):
        """One fleet pass (``plan_fleet`` applied); True if an instance turned ACTIVE."""
        now = now or timezone.now()
        config = fleet_config()
        # Tasks that wait because no instance has room (not those a constraint keeps off them).
        unplaced = list(self._waiting().filter(Q(pending_reason__startswith="No Fargate capacity"))
                        .values_list("cpu", "memory"))
        fleet = plan_fleet(fleet_state(), unplaced, config, now)
        booted = False
        for action in fleet.actions:
            booted |= bool(getattr(self, f"_apply_{type(action).__name__}")(action, config))
        if fleet.wake_after is not None:
            self.enqueue(PLACEMENT_KEY, delay=fleet.wake_after)
        return booted

    def _apply_LaunchInstance(self, action, config):
        instance = ContainerInstance.objects.create(
            name=action.name, engine_url=action.engine_url, status=ContainerInstance.PROVISIONING,
            cpu_registered=config.instance_cpu, memory_registered=config.instance_memory,
        )
        activity.record("capacity_manager", "launch-instance", message=(
            f"launching {instance.name} on {DockerEngine.for_url(instance.engine_url).describe()}: {action.reason}"))
        bus.publish("instance", instance.pk, origin="controlplane")

    def _apply_BootInstance(self, action, config):
        """Boot: the engine answers, the networks of the clusters with waiting tasks exist; ACTIVE."""
        instance = ContainerInstance.objects.filter(pk=action.pk, status=ContainerInstance.PROVISIONING).first()
        if instance is None:
            return False
        engine = DockerEngine.for_url(instance.engine_url)
        try:
            engine.ping()
            cpu, memory = instance_size(instance.engine_url)
            networks = set(self._waiting().values_list("account__account_id", "cluster__name", "cluster__region"))
            for account_id, cluster, where in sorted(networks):
                engine.ensure_network(network_name(engine.lab, account_id, cluster, where),
                                      labels=network_labels(account_id, cluster))
            clusters = {cluster for _, cluster, _ in networks}
        except EngineError as exc:
            activity.record("capacity_manager", "boot-failed", message=f"{instance.name} cannot boot yet: {exc}")
            self.enqueue(PLACEMENT_KEY, delay=BOOT_RETRY_SECONDS)
            return False
        changed = ContainerInstance.objects.filter(pk=instance.pk, status=ContainerInstance.PROVISIONING).update(
            status=ContainerInstance.ACTIVE, agent_connected=True, last_heartbeat=timezone.now(),
            cpu_registered=cpu, memory_registered=memory)
        if changed:
            activity.record("capacity_manager", "instance-active", message=(
                f"{instance.name} booted on {engine.describe()} and is ACTIVE"
                + (f"; networks ready for {', '.join(sorted(clusters))}" if clusters else "")))
            bus.publish("instance", instance.pk, origin="controlplane")
        return bool(changed)

    def _apply_DrainInstance(self, action, config):
        changed = ContainerInstance.objects.filter(pk=action.pk, status=ContainerInstance.ACTIVE).update(
            status=ContainerInstance.DRAINING)
        if changed:
            name = ContainerInstance.objects.filter(pk=action.pk).values_list("name", flat=True).first()
            activity.record("capacity_manager", "drain-instance", message=f"draining {name}: {action.reason}")
            bus.publish("instance", action.pk, origin="controlplane")

    def _apply_RetireInstance(self, action, config):
        if _live_tasks().filter(container_instance_id=action.pk).exists():
            return
        changed = ContainerInstance.objects.filter(pk=action.pk, status=ContainerInstance.DRAINING).update(
            status=ContainerInstance.INACTIVE, agent_connected=False)
        if changed:
            name = ContainerInstance.objects.filter(pk=action.pk).values_list("name", flat=True).first()
            activity.record("capacity_manager", "recycle-instance", message=f"{name} drained and left the fleet")
            bus.publish("instance", action.pk, origin="controlplane")
