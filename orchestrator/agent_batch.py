"""The agent's batched pass on a simulated instance (key "agent:<instance pk>"): the tasks placed
there started together, as an instance's agent starts its tasks side by side.

On a sim:// runtime (``orchestrator.simulated_engine``) nothing waits on Docker, so the
per-task pass (``agent.TaskSync``: its load, its statements, its bus events and rows, one task at
a time) was the control plane's cost at 5,000 tasks. A batched pass takes up to BATCH of the
instance's tasks waiting to start (PENDING, meant to run) and carries out their plan together:
1. one SELECT of the tasks and one of their containers; the pure ``plan_task`` says what each
   needs. A task whose plan is anything but the plain start (pull, create, start, ACTIVATING,
   RUNNING: so no dependsOn wait, awslogs, load balancer, Pod sandbox, Cloud Map, secrets or
   volumes),
   or that has a container already, goes to its own pass (key "task:<pk>"), as does every task
   a step below leaves behind: the per-task pass is the one that knows every other case;
2. each image pulled once per account (the runtime's ``pull`` latency per pull), each cluster
   network ensured once, every container created in one call and started in another: the
   runtime's ``eni`` and ``start`` latencies are paid once per pass, as by tasks started in
   parallel, so each task still waits for its pull, ENI and start;
3. PENDING → ACTIVATING in one transaction: the rows still PENDING are read under the write
   lock (FOR UPDATE on PostgreSQL), then one UPDATE on the same condition. The claim stays
   conditional: a task another worker moved first is left to its own pass;
4. the containers inspected, then ACTIVATING → RUNNING the same way (each task's IP and each
   container's id written by one statement run for all rows), with the containers' rows in one
   UPDATE per shape of report;
5. the bus hears each task's change (one callback per transaction), each task's trace gets its
   sync and running steps (written with the pass's other rows in one INSERT), and each service
   one coalesced pass.
With more than BATCH waiting the key is enqueued again, so that other keys interleave.
Real (Docker) instances keep the per-task pass: there each step waits on the daemon.
"""
import logging
import time
from collections import defaultdict

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from orchestrator import activity, bus, registry, service_discovery, simulated_engine, task_health, traces
from orchestrator.agent import (
    Advance, CreateContainers, EnsureImages, ReportRunning, StartContainers, TaskWanted, container_spec,
    container_wanted, network_labels, network_name, observe, plan_task,
)
from orchestrator.docker_engine import ContainerNotFound, DockerEngine, EngineError, EngineUnavailable, summarize
from orchestrator.models import ContainerInstance, Service, Task, TaskContainer, TaskDefinition
from orchestrator.registry_auth import pull_credentials

log = logging.getLogger(__name__)
KEY_PREFIX = "agent:"
# The tasks one pass starts: one transaction each for their claim and their report.
BATCH = 250
PLAIN_START = [EnsureImages, CreateContainers, StartContainers, Advance, ReportRunning]


def key(instance_pk):
    """The work key of the batched pass over instance ``instance_pk``."""
    return f"{KEY_PREFIX}{instance_pk}"


def batched(engine_url):
    """Whether the tasks of an instance on ``engine_url`` start in batched passes (a simulated runtime's)."""
    return simulated_engine.is_simulated(engine_url)


def plain_start(actions, names):
    """Whether ``actions`` (a plan) are the plain start of a task with containers ``names``: the
    one shape a batched pass carries out."""
    return ([type(a) for a in actions] == PLAIN_START and set(actions[1].names) == set(names)
            and set(actions[2].names) == set(names) and actions[3] == Advance(Task.PENDING, Task.ACTIVATING)
            and not actions[4].register_targets)


class _Starting:
    """One task of the pass and what the pass learnt of it."""

    def __init__(self, task, containers, network):
        self.task = task
        self.containers = containers  # TaskContainer rows, in id order
        self.network = network
        self.ids = {}  # container name -> Docker id
        self.private_ip = ""
        self.reports = {}  # container name -> summarize() of its inspect


def sync_instance_tasks(instance_pk, enqueue, now=None):
    """One batched pass over the tasks waiting to start on instance ``instance_pk``; returns how
    many it reported RUNNING (the others were handed to their own passes, or left)."""
    instance = ContainerInstance.objects.filter(pk=instance_pk).first()
    if instance is None or instance.agent_disconnected_until is not None:
        return 0  # gone, or cut off: nobody there acts until it reconnects (``agent.sync_instance``)
    began = timezone.now(), time.perf_counter()
    waiting = list(Task.objects.filter(container_instance_id=instance_pk, last_status=Task.PENDING,
                                       desired_status=Task.RUNNING)
                   .select_related("account", "cluster").order_by("pk")[:BATCH + 1])
    if len(waiting) > BATCH:
        waiting = waiting[:BATCH]
        enqueue(key(instance_pk))  # the rest in the next pass, after the keys waiting now
    if not waiting:
        return 0
    # A service's tasks share one definition and one service: each read (and its JSON decoded) once.
    definitions = TaskDefinition.objects.in_bulk({t.task_definition_id for t in waiting})
    services = Service.objects.in_bulk({t.service_id for t in waiting if t.service_id})
    for task in waiting:
        task.task_definition = definitions[task.task_definition_id]
        task.service = services.get(task.service_id)
    engine = DockerEngine.for_url(instance.engine_url)
    containers = defaultdict(list)
    for row in TaskContainer.objects.filter(task_id__in=[t.pk for t in waiting]).order_by("id"):
        containers[row.task_id].append(row)
    handed = []  # tasks left to their own pass
    starting = []
    now = time.time() if now is None else now
    for task in waiting:
        task.container_instance = instance
        one = _Starting(task, containers[task.pk], network_name(engine.lab, task.account.account_id,
                                                                task.cluster.name, task.cluster.region))
        (starting if _plain(one, engine, now) else handed).append(one)
    try:
        starting = _pull(engine, instance, starting, handed)
        starting = _create(engine, starting, handed)
        starting = _start(engine, starting, handed)
        starting = _claim(starting, handed, began)
        running = _report(engine, starting, handed)
        _record(instance, running, len(waiting), began)
    finally:
        for one in handed:
            with traces.continuing(one.task.trace_id):
                enqueue(f"task:{one.task.pk}")
    for service_pk in sorted({one.task.service_id for one in running if one.task.service_id}):
        enqueue(f"service:{service_pk}", coalesce=True)
    return len(running)


def _plain(one, engine, now):
    """Whether the task's pass would be the plain start (see the module's step 1)."""
    task = one.task
    if task.sandbox_id or not one.containers:
        return False
    definitions = {c.get("name"): c for c in task.task_definition.container_definitions}
    if any(definitions.get(c.name, {}).get("secrets") for c in one.containers):
        return False
    if task.task_definition.body.get("volumes") or any(
            d.get("mountPoints") or d.get("volumesFrom") for d in definitions.values()):
        return False  # its volumes are made ready by its own pass (bind mounts, EFS)
    if task.service_id and service_discovery.registrations(task.service):
        return False
    wanted = TaskWanted(
        task.desired_status, task.last_status,
        [container_wanted(c, definitions.get(c.name, {})) for c in one.containers],
        has_instance=True, load_balanced=bool(task.service_id and task.load_balancers), network=one.network)
    if wanted.load_balanced or any(c.ships_logs for c in wanted.containers):
        return False
    return plain_start(plan_task(wanted, observe(engine, task), now=now), [c.name for c in one.containers])


def _pull(engine, instance, starting, handed):
    """Each image the tasks need, once per account (see ``TaskSync.do_EnsureImages``: a
    registry's image is pulled for every task on Fargate, here once per pass and account); the
    tasks whose image fails go to their own pass, which fails them with ECS's reason."""
    needed = defaultdict(list)  # (account id, image) -> tasks
    for one in starting:
        for image in sorted({c.image for c in one.containers}):
            needed[one.task.account.account_id, image].append(one)
    failed = set()
    pulled = set()  # images pulled in this pass (a second account's pull of a local image is not needed)
    for (account_id, image), tasks in needed.items():
        ours = registry.is_registry_image(image)
        began = timezone.now(), time.perf_counter()
        try:
            if not ours and (image in pulled or engine.image_present(image)):
                continue
            if ours:
                engine.pull(registry.local_reference(image), auth=pull_credentials(account_id), as_name=image)
            else:
                engine.pull(image)
        except EngineUnavailable:
            raise
        except EngineError as exc:  # ImageNotFound, InvalidReference: the task's own pass says so
            log.info("batched pass on %s: pulling %s failed (%s); its tasks go to their own pass", instance.name,
                     image, exc)
            failed.update(id(one) for one in tasks)
            continue
        pulled.add(image)
        timing = {"started_at": began[0], "duration_ms": round((time.perf_counter() - began[1]) * 1000, 3)}
        activity.record("docker", "pull", "", f"image {image} for {len(tasks)} task(s) on {instance.name} "
                                              f"(one pull for a batched pass)", trace_id="", **timing)
    return _keep(starting, handed, failed)


def _keep(starting, handed, dropped):
    """``starting`` without the tasks in ``dropped`` (ids), which are handed to their own pass."""
    handed.extend(one for one in starting if id(one) in dropped)
    return [one for one in starting if id(one) not in dropped]


def _create(engine, starting, handed):
    """Every container of the tasks in one call (their networks ensured first)."""
    failed = set()
    for network in sorted({one.network for one in starting}):
        sample = next(one for one in starting if one.network == network).task
        try:
            engine.ensure_network(network, labels=network_labels(sample.account.account_id, sample.cluster.name))
        except EngineUnavailable:
            raise
        except EngineError:  # the task's own pass fails it with ResourceInitializationError
            failed.update(id(one) for one in starting if one.network == network)
    starting = _keep(starting, handed, failed)
    specs, owners = [], []
    for one in starting:
        for c in one.containers:
            specs.append(container_spec(one.task, c, engine.lab, one.network))
            owners.append((one, c.name))
    failed = set()
    for (one, name), created in zip(owners, engine.create_containers(specs)):
        if isinstance(created, Exception):  # a container of that name exists: its own pass adopts it
            failed.add(id(one))
        else:
            one.ids[name] = created
    return _keep(starting, handed, failed)


def _start(engine, starting, handed):
    """Every container of the tasks in one call."""
    owners = [(one, one.ids[c.name]) for one in starting for c in one.containers]
    failed = {id(one) for (one, _), error in zip(owners, engine.start_containers([i for _, i in owners])) if error}
    return _keep(starting, handed, failed)


def _claim(starting, handed, began):
    """PENDING → ACTIVATING for the tasks still PENDING (the conditional claim, in bulk)."""
    by_pk = {one.task.pk: one for one in starting}
    now = timezone.now()
    with transaction.atomic():
        claimed = set(Task.objects.select_for_update().filter(pk__in=by_pk, last_status=Task.PENDING)
                      .values_list("pk", flat=True))
        if claimed:
            Task.objects.filter(pk__in=claimed, last_status=Task.PENDING).update(
                last_status=Task.ACTIVATING, version=F("version") + 1, updated_at=now, connectivity_at=now,
                pull_started_at=began[0], pull_stopped_at=now)
            TaskContainer.objects.filter(task_id__in=claimed).update(started_at=now, reason="")
            _set_each(TaskContainer, "docker_id", {c.pk: by_pk[pk].ids[c.name] for pk in claimed
                                                   for c in by_pk[pk].containers})
        bus.publish_many("task", sorted(claimed), origin="controlplane")
    for pk in claimed:
        task = by_pk[pk].task
        task.last_status, task.version = Task.ACTIVATING, task.version + 1
    # Moved by another worker first (a stop): their own pass carries on from where they are.
    handed.extend(one for pk, one in by_pk.items() if pk not in claimed)
    return [one for pk, one in by_pk.items() if pk in claimed]


def _set_each(model, field, values):
    """Give each row (pk -> text) its own value of one text column: one statement run for all the
    rows (executemany), in the caller's transaction, right after the conditional UPDATE that moved
    them. (A CASE of 250 WHENs cost the ORM more than the rest of the pass.)"""
    if not values:
        return
    quote = connection.ops.quote_name
    meta = model._meta
    table, column, pk_column = quote(meta.db_table), quote(meta.get_field(field).column), quote(meta.pk.column)
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {column} = %s WHERE {pk_column} = %s",
                           [(value, pk) for pk, value in values.items()])


def _report(engine, starting, handed):
    """Inspect the containers, then ACTIVATING → RUNNING with each task's IP (see
    ``TaskSync.do_ReportRunning``); the tasks whose essential container already died are their
    own pass's to report."""
    reported, failed = [], set()
    for one in starting:
        for c in one.containers:
            try:
                report = summarize(engine.inspect(one.ids[c.name]))
            except ContainerNotFound:
                failed.add(id(one))
                break
            if c.essential and not report["running"]:
                failed.add(id(one))
                break
            one.reports[c.name] = report
            one.private_ip = one.private_ip or report["private_ip"]
        else:
            reported.append(one)
    handed.extend(one for one in starting if id(one) in failed)
    for one in reported:  # only a task with health checks: judged by them from the start
        health = _containers_health(one)
        if health != one.task.container_health_status:
            task_health.write_part(one.task.pk, container_health_status=health)
    by_pk = {one.task.pk: one for one in reported}
    now = timezone.now()
    with transaction.atomic():
        running = set(Task.objects.select_for_update().filter(pk__in=by_pk, last_status=Task.ACTIVATING)
                      .values_list("pk", flat=True))
        shapes = defaultdict(list)  # (running, exit code, bindings) -> container pks
        for pk in running:
            for c in by_pk[pk].containers:
                report = by_pk[pk].reports[c.name]
                shapes[report["running"], None if report["running"] else report["exit_code"],
                       repr(report["network_bindings"])].append((c.pk, report["network_bindings"]))
        for (is_running, exit_code, _), rows in shapes.items():
            TaskContainer.objects.filter(pk__in=[pk for pk, _ in rows]).update(
                last_status="RUNNING" if is_running else "STOPPED", exit_code=exit_code, network_bindings=rows[0][1])
        if running:
            Task.objects.filter(pk__in=running, last_status=Task.ACTIVATING).update(
                last_status=Task.RUNNING, version=F("version") + 1, updated_at=now, started_at=now)
            _set_each(Task, "private_ip", {pk: by_pk[pk].private_ip for pk in running})
        bus.publish_many("task", sorted(running), origin="controlplane")
    handed.extend(one for pk, one in by_pk.items() if pk not in running)
    return [one for pk, one in by_pk.items() if pk in running]


def _containers_health(one):
    definitions = {c.get("name"): c for c in one.task.task_definition.container_definitions}
    return task_health.containers_health([
        (c.essential, task_health.has_check(definitions.get(c.name, {})), c.health_status) for c in one.containers])


def _record(instance, running, size, began):
    """Each task's steps in its own trace: the pass (kubelet's SyncPod) and its report."""
    duration = round((time.perf_counter() - began[1]) * 1000, 3)
    for one in running:
        task = one.task
        activity.record("agent", "sync", task.arn, (
            f"task {task.task_id} (PENDING): EnsureImages, CreateContainers, StartContainers, "
            f"Advance PENDING→ACTIVATING, ReportRunning (a batched pass over {size} task(s) on {instance.name})"),
            trace_id=task.trace_id, started_at=began[0], duration_ms=duration)
        activity.record("agent", "running", task.arn, f"task {task.task_id} is RUNNING at {one.private_ip or 'no IP'}",
                        trace_id=task.trace_id, started_at=began[0], duration_ms=duration)
