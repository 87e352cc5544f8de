"""A task's container dependencies (``dependsOn``), as the ECS agent resolves them: pure
functions over plain data, used by the agent's ``plan_task``.

Starting: a container starts once each of its dependencies meets its condition: START (it
has started), COMPLETE (it has exited), SUCCESS (it has exited with code 0) or HEALTHY (its
health check passes). A dependency that can no longer meet it (a SUCCESS one exited non-zero,
a HEALTHY one exited) or does not within its ``startTimeout`` gives the dependent up. Nothing
waits in a worker: the plan starts what is ready, in waves (a START dependency started in this
pass frees its dependents in the next wave), and says when to look again; Docker's "die" and
"health_status" events bring the task back sooner.

Stopping is the reverse: a container is sent its stop signal only once every container that
depends on it has exited, so an app stops before the database or proxy it needs.
"""
from dataclasses import dataclass, field

START, COMPLETE, SUCCESS, HEALTHY = "START", "COMPLETE", "SUCCESS", "HEALTHY"
CONDITIONS = (START, COMPLETE, SUCCESS, HEALTHY)
# What a dependency must be, in the words the task page shows while a container waits.
_WANTED = {START: "started", COMPLETE: "complete (exited)", SUCCESS: "exited with code 0", HEALTHY: "HEALTHY"}
# Seconds a dependency has to meet a condition when its definition gives no startTimeout
# (Fargate's largest).
DEFAULT_START_TIMEOUT = 120
MAX_START_TIMEOUT = 120
DEAD = ("exited", "dead")


@dataclass(frozen=True)
class Member:
    """One container of the task, as the start plan sees it."""

    name: str
    depends_on: tuple = ()  # (container name, condition)
    start_timeout: int = DEFAULT_START_TIMEOUT  # for those depending on it
    started_at: float = None  # when the agent started it (epoch seconds)
    state: str = "created"  # Docker's: created, running, exited…
    exit_code: int = None
    health: str = ""  # Docker's: starting, healthy, unhealthy, or ""
    given_up: bool = False  # its dependencies failed it: it is never started


@dataclass
class StartPlan:
    """What a pass does about starting: waves of names to start in order, the containers still
    waiting (name -> why), those given up (name -> why), and when to look again (or None)."""

    waves: list = field(default_factory=list)
    waiting: dict = field(default_factory=dict)
    given_up: dict = field(default_factory=dict)
    wake: float = None


def _verdict(dependency, condition, starting, now):
    """(met, failure) of one condition on one dependency ("starting" ones start in this pass)."""
    started = dependency.state not in ("created",) or dependency.name in starting
    if condition == START:
        return started, None
    if condition in (COMPLETE, SUCCESS) and dependency.state in DEAD:
        if condition == SUCCESS and dependency.exit_code not in (0, None):
            return False, f"dependency {dependency.name} exited with code {dependency.exit_code} (SUCCESS needed)"
        return True, None
    if condition == HEALTHY:
        if dependency.health == "healthy":
            return True, None
        if dependency.state in DEAD:
            return False, f"dependency {dependency.name} exited before it was HEALTHY"
    if dependency.given_up:
        return False, f"dependency {dependency.name} was never started"
    since = dependency.started_at if dependency.started_at is not None else now
    if started and now >= since + dependency.start_timeout:
        return False, (f"dependency {dependency.name} was not {_WANTED[condition]} within its startTimeout of "
                       f"{dependency.start_timeout} s")
    return False, None


def start_plan(members, now):
    """The StartPlan for ``members`` (every container of the task) at ``now``."""
    by_name = {m.name: m for m in members}
    plan, starting = StartPlan(), set()
    pending = [m for m in members if m.state == "created" and not m.given_up]
    while pending:
        wave, still = [], []
        for member in pending:
            verdicts = [(_verdict(by_name[dep], condition, starting, now), dep, condition)
                        for dep, condition in member.depends_on if dep in by_name]
            failure = next((why for (met, why), _, _ in verdicts if why), None)
            if failure:
                plan.given_up[member.name] = f"{member.name} was not started: {failure}"
            elif all(met for (met, _), _, _ in verdicts):
                wave.append(member.name)
            else:
                still.append((member, [(dep, condition) for (met, _), dep, condition in verdicts if not met]))
        if not wave:
            break
        plan.waves.append(wave)
        starting.update(wave)
        pending = [member for member, _ in still]
    for member in pending:
        if member.name in plan.given_up:
            continue
        unmet = [(dep, condition) for dep, condition in member.depends_on
                 if dep in by_name and not _verdict(by_name[dep], condition, starting, now)[0]]
        plan.waiting[member.name] = "Waiting for " + ", ".join(f"{dep} to be {_WANTED[c]}" for dep, c in unmet)
        for dep, _ in unmet:
            since = by_name[dep].started_at if by_name[dep].started_at is not None else now
            deadline = since + by_name[dep].start_timeout
            plan.wake = deadline if plan.wake is None else min(plan.wake, deadline)
    return plan


def stoppable(depends_on, running):
    """Of the ``running`` container names, those to signal now: none that a running container
    depends on (``depends_on``: name -> names it depends on), so dependents stop first; all of
    them if a cycle would leave none."""
    blocked = {dep for name in running for dep in depends_on.get(name, ()) if dep != name}
    free = [name for name in running if name not in blocked]
    return free or list(running)


def problems(containers):
    """Why the ``dependsOn`` and ``startTimeout`` of a task definition's container definitions
    cannot work (as ECS refuses them at registration), or None."""
    by_name = {c.get("name"): c for c in containers}
    for container in containers:
        name = container.get("name")
        timeout = container.get("startTimeout")
        if timeout is not None and not 2 <= timeout <= MAX_START_TIMEOUT:
            return f"Container '{name}': startTimeout must be between 2 and {MAX_START_TIMEOUT} seconds on Fargate."
        for dependency in container.get("dependsOn") or []:
            target, condition = dependency.get("containerName"), dependency.get("condition")
            if target not in by_name or target == name:
                return f"Container '{name}': dependsOn names '{target}', which must be another container of the task."
            if condition not in CONDITIONS:
                return f"Container '{name}': dependsOn condition must be one of {', '.join(CONDITIONS)}."
            if condition in (COMPLETE, SUCCESS) and by_name[target].get("essential", True):
                return (f"Container '{name}': a dependsOn {condition} dependency must not be an essential container "
                        f"('{target}' is essential: it would stop the task when it exits).")
            if condition == HEALTHY and not by_name[target].get("healthCheck"):
                return (f"Container '{name}': a dependsOn HEALTHY dependency must have a healthCheck ('{target}' has "
                        "none).")
    graph = {c.get("name"): [d.get("containerName") for d in c.get("dependsOn") or []] for c in containers}
    if has_cycle(graph):
        return "The containers' dependsOn must not form a cycle (each would wait for the other)."
    return None


def has_cycle(graph):
    """Whether the dependency graph (name -> names it depends on) has a cycle."""
    state = {}

    def visit(node):
        state[node] = "visiting"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "visiting" or (nxt not in state and visit(nxt)):
                return True
        state[node] = "done"
        return False

    return any(visit(node) for node in graph if node not in state)
