"""What the dashboard reads from the state database: one function per thing shown.

Pages and pushed fragments read through these functions only, so a page and its live update
never disagree. Capacity in use is derived from the tasks placed on an instance (as the
capacity manager derives it), never read from a counter.
"""
import contextvars
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db.models import Case, Count, FloatField, Func, IntegerField, Prefetch, Q, Sum, Value, When
from django.db.models.functions import Coalesce, Floor
from django.utils import timezone

from dashboard import broadcast, twins
from orchestrator import cluster_manager, network
from orchestrator.frontend import wire
from orchestrator.models import (
    Activity, Cluster, ContainerInstance, Service, Task, TaskContainer, TaskDefinition, region,
)

CARD_ROWS = 8
TABLE_ROWS = 50
PLOT_WINDOW = timedelta(minutes=15)
PLOT_WIDTH, PLOT_HEIGHT = 600, 120

_TASK_RELATED = ("account", "cluster", "task_definition", "service", "container_instance")


def _activities(component, limit=CARD_ROWS, viewer=None):
    """The component's last steps; those of other accounts than the viewer's say only their action."""
    rows = list(Activity.objects.filter(component=component)[:limit])
    return rows if viewer is None else mask_others(rows, viewer)


def _live_tasks():
    return Task.objects.exclude(last_status=Task.STOPPED)


# --- The component map's cards -----------------------------------------------------------

def frontend_card(viewer=None):
    """The last API calls (operation, caller, status, latency) and the error rate of the last minute."""
    minute_ago = timezone.now() - timedelta(minutes=1)
    recent = Activity.objects.filter(component="frontend", created_at__gte=minute_ago)
    return {
        "calls": _activities("frontend", viewer=viewer),
        "calls_last_minute": recent.count(),
        "errors_last_minute": recent.filter(status_code__gte=400).count(),
    }


def statedb_card(viewer=None):
    """Object counts per kind of the region shown and the latest writes the bus carried (other
    accounts' unnamed)."""
    tasks = Task.objects.filter(cluster__region=region()).aggregate(
        live=Count("pk", filter=~Q(last_status=Task.STOPPED)),
        running=Count("pk", filter=Q(last_status=Task.RUNNING)),
        stopped=Count("pk", filter=Q(last_status=Task.STOPPED)),
    )
    return {
        "counts": [
            ("Clusters", Cluster.objects.filter(region=region(), status=Cluster.ACTIVE).count(), "clusters"),
            ("Task definitions", TaskDefinition.objects.filter(region=region(), status=TaskDefinition.ACTIVE).count(),
             "Pod specs"),
            ("Services", Service.objects.filter(cluster__region=region()).exclude(status=Service.INACTIVE).count(),
             "Deployments"),
            ("Tasks running", tasks["running"], "Pods Running"),
            ("Tasks not stopped", tasks["live"], "Pods"),
            ("Tasks stopped", tasks["stopped"], "Pods Succeeded / Failed"),
            ("Instances", ContainerInstance.objects.exclude(status=ContainerInstance.INACTIVE).count(), "Nodes"),
        ],
        "writes": _writes_seen_by(broadcast.recent_writes(CARD_ROWS), viewer),
        "writes_last_minute": broadcast.writes_since(60),
    }


def _writes_seen_by(writes, viewer):
    """The state database's writes as ``viewer`` may see them: another account's object unnamed."""
    if viewer is None or viewer == ALL:
        return writes
    return [write if write.get("account") in (None, viewer) else {**write, "label": "another account's", "changes": ()}
            for write in writes]


def cluster_manager_card(viewer=None):
    """Reconcile actions of the cluster manager and each live service's desired / running /
    pending (the viewer's services; others' counted)."""
    live = Service.objects.filter(status__in=[Service.ACTIVE, Service.DRAINING])
    own, others = _own_and_others(live, viewer)
    services = own.select_related("cluster").order_by("cluster__name", "name")[:CARD_ROWS]
    return {"actions": _activities("cluster_manager", viewer=viewer), "services": list(services),
            "others": others}


def capacity_manager_card(viewer=None):
    """Placement decisions (which instance, and why), tasks waiting for room, free capacity."""
    fleet = instances(task_limit=0)
    waiting = Task.objects.filter(last_status=Task.PROVISIONING, desired_status=Task.RUNNING)
    return {
        "decisions": _activities("capacity_manager", viewer=viewer),
        "waiting": waiting.count(),
        "waiting_reason": waiting.exclude(pending_reason="").values_list("pending_reason", flat=True).first(),
        "cpu_free": sum(i.cpu_free for i in fleet),
        "memory_free": sum(i.memory_free for i in fleet),
        "instances": len(fleet),
    }


def agents_card(viewer=None):
    """Per instance: CPU and memory in use, its tasks; and the agents' last reports."""
    return {"instances": instances(viewer=viewer), "reports": _activities("agent", 6, viewer)}


def docker_card(viewer=None):
    """Containers the runtime runs now and the last Docker operations."""
    return {
        "operations": _activities("docker", viewer=viewer),
        "containers": TaskContainer.objects.filter(last_status="RUNNING").count(),
        "engine": settings.FARGATE_LAB["DOCKER_URL"] or "local engine (DOCKER_HOST or /var/run/docker.sock)",
        "lab_id": settings.FARGATE_LAB["LAB_ID"],
    }


# --- Instances (nodes) -------------------------------------------------------------------

@dataclass
class InstanceUsage:
    """An instance with the capacity its placed, not-yet-stopped tasks use."""

    instance: ContainerInstance
    cpu_used: int = 0
    memory_used: int = 0
    tasks: list = field(default_factory=list)
    task_count: int = 0

    @property
    def cpu_free(self):
        return max(self.instance.cpu_registered - self.cpu_used, 0)

    @property
    def memory_free(self):
        return max(self.instance.memory_registered - self.memory_used, 0)

    @property
    def cpu_percent(self):
        return _percent(self.cpu_used, self.instance.cpu_registered)

    @property
    def memory_percent(self):
        return _percent(self.memory_used, self.instance.memory_registered)


def _percent(used, total):
    return min(100, round(100 * used / total)) if total else 0


def instances(task_limit=24, viewer=None):
    """Every instance of the fleet with its usage and (up to ``task_limit``) tasks: the viewer's
    own tasks only, when a viewer is given (``task_count`` counts everyone's)."""
    memo = REQUEST_MEMO.get()
    if memo is None or task_limit:
        return _instances(task_limit, viewer)
    if "fleet" not in memo:  # the map's boxes each ask for the fleet's usage
        memo["fleet"] = _instances(0, viewer)
    return memo["fleet"]


def _instances(task_limit, viewer):
    # Recycled (INACTIVE) instances have left the fleet; their history is on the instances page.
    fleet = {i.pk: InstanceUsage(i) for i in ContainerInstance.objects.exclude(status=ContainerInstance.INACTIVE)}
    sums = (
        _live_tasks().filter(container_instance__isnull=False).values("container_instance")
        .annotate(cpu=Sum("cpu"), memory=Sum("memory"), n=Count("pk"))
    )
    for row in sums:
        usage = fleet.get(row["container_instance"])
        if usage:
            usage.cpu_used, usage.memory_used, usage.task_count = row["cpu"], row["memory"], row["n"]
    for usage in fleet.values():
        if task_limit and usage.task_count:
            usage.tasks = list(
                _seen_by(_live_tasks().filter(container_instance=usage.instance), viewer).order_by("created_at", "id")
                .only("pk", "task_id", "last_status", "cpu", "memory", "task_definition_id")[:task_limit]
            )
    return sorted(fleet.values(), key=lambda usage: natural_key(usage.instance.name))


def natural_key(name):
    """A sort key that orders the numbers inside a name as numbers: fleet-2 before fleet-10."""
    return [(0, int(part), "") if wire.ascii_int(part, max_digits=30) is not None else (1, 0, part)
            for part in re.split(r"([0-9]+)", name) if part]


def instance_or_none(pk):
    return ContainerInstance.objects.filter(pk=pk).first()


def instance_usage(instance, viewer=None):
    """One instance with its usage and all its tasks that are not stopped (the viewer's own,
    when a viewer is given; ``others`` counts the rest)."""
    usage = next(u for u in instances(task_limit=0) if u.instance.pk == instance.pk)
    usage.tasks = list(
        _seen_by(_live_tasks().filter(container_instance=instance), viewer)
        .select_related("task_definition").order_by("created_at", "id")
    )
    usage.others = usage.task_count - len(usage.tasks)
    return usage


# --- Clusters, services, tasks -----------------------------------------------------------

def clusters(account_pk=None):
    """Clusters of the region shown (of one account, or all) with their live services and tasks counted."""
    rows = Cluster.objects.filter(region=region())
    rows = rows.filter(account_id=account_pk) if account_pk is not None else rows
    return list(
        rows.select_related("account").annotate(
            services_live=Count("services", filter=~Q(services__status=Service.INACTIVE), distinct=True),
            tasks_running=Count("tasks", filter=Q(tasks__last_status=Task.RUNNING), distinct=True),
            tasks_pending=Count(
                "tasks", filter=~Q(tasks__last_status__in=[Task.RUNNING, Task.STOPPED]), distinct=True
            ),
        ).order_by("status", "name")
    )


def cluster_or_none(pk):
    return Cluster.objects.select_related("account").filter(pk=pk).first()


def cluster_counts(cluster):
    """Counts shown in a cluster's header, as DescribeClusters reports them."""
    tasks = cluster.tasks.aggregate(
        running=Count("pk", filter=Q(last_status=Task.RUNNING)),
        pending=Count("pk", filter=~Q(last_status__in=[Task.RUNNING, Task.STOPPED])),
        stopped=Count("pk", filter=Q(last_status=Task.STOPPED)),
    )
    tasks["services"] = cluster.services.exclude(status=Service.INACTIVE).count()
    return tasks


def services_of(cluster):
    return list(
        cluster.services.exclude(status=Service.INACTIVE)
        .select_related("account", "cluster", "task_definition").order_by("name")
    )


def ready_replicas(service):
    """How many of a service's tasks are healthy, as the rollout judges them (Kubernetes' ready
    replicas): RUNNING is not enough until the load balancer or the grace period says so."""
    return cluster_manager.healthy_count(service)


def service_or_none(pk):
    return Service.objects.select_related("account", "cluster", "task_definition").filter(pk=pk).first()


def _task_rows():
    """Tasks with just what a task row shows."""
    return (
        Task.objects.select_related("task_definition", "container_instance")
        .prefetch_related(Prefetch("containers", TaskContainer.objects.only(
            "task_id", "last_status", "exit_code", "network_bindings", "essential", "reason")))
        .only(
            "pk", "task_id", "group", "last_status", "desired_status", "pending_reason", "started_at",
            "stop_code", "stopped_reason",
            "cluster_id", "service_id", "created_at",
            "task_definition__family", "task_definition__revision", "container_instance__name",
        )
    )


def _table_order(tasks):
    """Tasks as a table lists them: those not stopped first, then the newest first; so the
    stopped ones (hidden by default) never crowd live ones out of the table's rows."""
    stopped = Case(When(last_status=Task.STOPPED, then=Value(1)), default=Value(0), output_field=IntegerField())
    return tasks.annotate(is_stopped=stopped).order_by("is_stopped", "-created_at", "-id")


def tasks_of(cluster=None, service=None, limit=TABLE_ROWS):
    """A cluster's or a service's tasks as its table shows them (see ``_table_order``), with their
    containers; and whether there are more."""
    tasks = _task_rows().filter(cluster=cluster) if cluster is not None else _task_rows().filter(service=service)
    rows = list(_table_order(tasks)[: limit + 1])
    _mark_restart_backoff(rows[:limit])
    return rows[:limit], len(rows) > limit


def _mark_restart_backoff(tasks):
    """Set each failed start's ``in_restart_backoff`` with one look per service (CrashLoopBackOff)."""
    services = {}
    for task in tasks:
        if task.service_id and task.failed_to_start:
            if task.service_id not in services:
                service = Service.objects.filter(pk=task.service_id).first()
                services[task.service_id] = bool(service and service.restart_backoff())
            task.in_restart_backoff = services[task.service_id]


# Rows per page of a cluster's or a service's full task list (``task_page``).
PAGE_ROWS = 100
# What the full task list can be filtered to (``?status=``): the live tasks, the stopped, all.
TASK_FILTERS = {"live": ~Q(last_status=Task.STOPPED), "stopped": Q(last_status=Task.STOPPED), "all": Q()}


def task_page(number, cluster=None, service=None, status="all", per_page=PAGE_ROWS):
    """One page of a cluster's or a service's tasks, in the table's order: a Django ``Page``
    (an out-of-range or malformed number gives the nearest page, as ``Paginator.get_page`` does)."""
    from django.core.paginator import Paginator

    tasks = _task_rows().filter(cluster=cluster) if cluster is not None else _task_rows().filter(service=service)
    page = Paginator(_table_order(tasks.filter(TASK_FILTERS[status])), per_page).get_page(number)
    page.object_list = list(page.object_list)  # one query (and one prefetch) for the rows
    _mark_restart_backoff(page.object_list)
    return page


def table_task_pks(cluster_id=None, service_id=None, limit=TABLE_ROWS):
    """The pks of the rows ``tasks_of`` shows (so a change to one of them can update just its row)."""
    tasks = Task.objects.filter(cluster_id=cluster_id) if cluster_id is not None else Task.objects.filter(service_id=service_id)
    return set(_table_order(tasks).values_list("pk", flat=True)[:limit])


def task_row_or_none(pk):
    return _task_rows().filter(pk=pk).first()


def task_or_none(pk):
    return Task.objects.select_related(*_TASK_RELATED).filter(pk=pk).first()


def containers_of(task):
    """The task's containers, each with ``depends_on``: its definition's dependsOn as
    "db HEALTHY, init SUCCESS" ("" without any), for the lifecycle table."""
    definitions = {c.get("name"): c for c in task.task_definition.container_definitions}
    containers = list(task.containers.all())
    for container in containers:
        container.depends_on = ", ".join(
            f"{d.get('containerName')} {d.get('condition')}"
            for d in definitions.get(container.name, {}).get("dependsOn") or [])
    return containers


def published_urls(container):
    """Links to a running container's published ports (http://<address>:<hostPort>, a port bound
    on every address at the one the lab advertises); none once
    it stopped, since nothing answers on them any more."""
    if container.last_status != "RUNNING":
        return []
    urls = []
    for binding in container.network_bindings or []:
        host_port = binding.get("hostPort")
        if host_port:
            address = network.advertised_host(binding.get("bindIP") or "127.0.0.1")
            urls.append({"url": f"http://{network.url_host(address)}:{host_port}",
                         "container_port": binding.get("containerPort")})
    return urls


# When each lifecycle state was entered, as far as the task's timestamps tell.
_STATE_TIMESTAMP = {
    Task.PROVISIONING: "created_at",
    Task.PENDING: "pull_started_at",
    Task.ACTIVATING: "pull_stopped_at",
    Task.RUNNING: "started_at",
    Task.DEACTIVATING: "stopping_at",
    Task.STOPPING: "stopping_at",
    Task.DEPROVISIONING: "execution_stopped_at",
    Task.STOPPED: "stopped_at",
}


def _passed_through(task, status):
    """Whether the task's timestamps show it went through ``status`` (one before its current).

    A task that never started (not placed, or its pull failed) goes straight to STOPPED: it
    never was ACTIVATING, RUNNING or stopping, though its last status is past them."""
    ran = task.connectivity_at is not None or task.started_at is not None
    if status == Task.PROVISIONING:
        return True
    if status == Task.PENDING:
        return task.container_instance_id is not None or task.pull_started_at is not None or ran
    if status == Task.ACTIVATING:
        return ran or task.pull_stopped_at is not None
    if status == Task.RUNNING:
        return task.started_at is not None
    return ran


def timeline(task):
    """The lifecycle PROVISIONING → … → STOPPED with, per state, whether it was reached (or
    skipped: passed without the task entering it) and when."""
    current = Task.LIFECYCLE.index(task.last_status) if task.last_status in Task.LIFECYCLE else -1
    steps = []
    for index, status in enumerate(Task.LIFECYCLE):
        reached = index == current or (index < current and _passed_through(task, status))
        steps.append({
            "status": status,
            "pod_phase": task.pod_phase if status == Task.STOPPED and index == current else Task.POD_PHASE[status],
            "at": getattr(task, _STATE_TIMESTAMP[status]) if reached else None,
            "reached": reached,
            "skipped": index < current and not reached,
            "current": index == current,
        })
    return steps


def step_plot(samples, start, span, top, width=PLOT_WIDTH, height=PLOT_HEIGHT):
    """``samples`` ((time, count) in time order, from ``start`` over ``span`` seconds, counts up
    to ``top``) as the points of an SVG step polyline; returns (points, the y of a count)."""

    def x(at):
        return round((at - start).total_seconds() / span * width, 1)

    def y(count):
        return round(height - count / top * (height - 10), 1)

    points, previous = [], None
    for at, count in samples:
        if previous is not None:
            points.append(f"{x(at)},{y(previous)}")  # a step: hold the old level until the change
        points.append(f"{x(at)},{y(count)}")
        previous = count
    return " ".join(points), y


class _Epoch(Func):
    """Seconds since 1970 of a datetime, as a float (SQLite and PostgreSQL)."""

    output_field = FloatField()
    template = "EXTRACT(EPOCH FROM %(expressions)s)"

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
                           **extra)


def _pixel(expression, start, pixel):
    """Which pixel of a plot from ``start`` (``pixel`` seconds wide) a datetime falls in."""
    return Floor((_Epoch(expression) - Value(start.timestamp())) / Value(pixel), output_field=FloatField())


def running_plot(service, now=None):
    """Running tasks of a service over the last minutes, as SVG polyline points.

    Derived from the tasks' own timestamps (RUNNING from started_at until stopping began), so
    the plot survives restarts and can never drift from what the tasks say.
    """
    now = now or timezone.now()
    start = max(now - PLOT_WINDOW, service.created_at)
    span = max((now - start).total_seconds(), 60.0)
    start = now - timedelta(seconds=span)
    pixel = span / PLOT_WIDTH
    live_then = service.tasks.filter(started_at__isnull=False).filter(
        Q(stopping_at__isnull=True, stopped_at__isnull=True) | Q(stopping_at__gte=start) | Q(stopped_at__gte=start))
    # The database counts: those running at the window's start, then the window's starts and
    # ends per pixel (changes within one pixel draw as one step). A service of 5,000 tasks that
    # all started in the window costs three small queries, not 5,000 rows.
    level = live_then.filter(started_at__lte=start).count()
    deltas = {}
    for rows, sign in (
        (live_then.filter(started_at__gt=start).annotate(at=_pixel("started_at", start, pixel)), 1),
        (live_then.exclude(stopping_at__isnull=True, stopped_at__isnull=True)
         .annotate(at=_pixel(Coalesce("stopping_at", "stopped_at"), start, pixel)), -1),
    ):
        for at, n in rows.values("at").annotate(n=Count("pk")).values_list("at", "n").order_by():
            at = max(int(at), 0)  # an end before the window (stopping began, STOPPED in it) is at its start
            deltas[at] = deltas.get(at, 0) + sign * n
    samples = [(start, level)]
    for at in sorted(deltas):
        level += deltas[at]
        samples.append((start + timedelta(seconds=at * pixel), level))
    samples.append((now, level))
    top = max([count for _, count in samples] + [service.desired_count, 1])
    points, y = step_plot(samples, start, span, top)
    return {
        "points": points,
        "desired_y": y(service.desired_count),
        "top": top,
        "top_y": y(top),
        "minutes": round(span / 60),
        "width": PLOT_WIDTH,
        "height": PLOT_HEIGHT,
    }


# --- Task definitions --------------------------------------------------------------------

def families(account_pk=None):
    """Task definition families (of one account, or all) with their latest revision and revision count;
    deleted revisions (DeleteTaskDefinitions, used by nothing live) are gone, as in the API."""
    latest = {}
    counts = {}
    from orchestrator.frontend.deleted_task_definitions import present

    rows = TaskDefinition.objects.filter(region=region())
    rows = rows.filter(account_id=account_pk) if account_pk is not None else rows
    for td in present(rows).select_related("account").order_by("family", "revision"):
        latest[td.family] = td
        counts[td.family] = counts.get(td.family, 0) + 1
    return [{"latest": latest[f], "revisions": counts[f]} for f in sorted(latest)]


# --- Traffic and images: the load balancer (ALB) and the registry (ECR) ------------------

def alb_card(viewer=None):
    """Load balancers with their listeners' URLs, target groups with their targets' health,
    and the load balancer's last steps (the viewer's load balancers; others' counted)."""
    from orchestrator.models import Listener, LoadBalancer, Target, TargetGroup

    listeners = Listener.objects.prefetch_related("target_groups")
    own_lbs, other_lbs = _own_and_others(LoadBalancer.objects.filter(region=region()), viewer)
    own_groups, _ = _own_and_others(TargetGroup.objects.filter(region=region()), viewer)
    load_balancers = own_lbs.select_related("account").prefetch_related(Prefetch("listeners", listeners))[:CARD_ROWS]
    groups = own_groups.select_related("account").prefetch_related(
        Prefetch("targets", Target.objects.select_related("task")), "listeners")[:CARD_ROWS]
    load_balancers, groups = list(load_balancers), list(groups)
    for lb in load_balancers:
        lb.twin = twins.load_balancer_twin(lb)
    for tg in groups:
        tg.twin = twins.target_group_twin(tg)
    return {
        "load_balancers": load_balancers,
        "target_groups": groups,
        "others": other_lbs,
        "steps": _activities("load_balancer", 6, viewer),
    }


def ecr_card(viewer=None):
    """The registry's address, its repositories with their image tags (the viewer's; all are
    counted), and the last ECR calls."""
    from orchestrator import registry
    from orchestrator.models import Repository

    repositories = []
    for repository in _own_and_others(Repository.objects.filter(region=region()), viewer)[0][:CARD_ROWS]:
        repositories.append({"name": repository.name, "uri": registry.repository_uri(repository),
                             "tags": registry.tags(repository)})
    return {
        "registry": registry.registry_host(),
        "repositories": repositories,
        "repository_count": Repository.objects.filter(region=region()).count(),
        "calls": _activities("registry", 6, viewer),
    }


PULL_ACTIONS = ("pull", "pull-progress", "pulled")


def task_pull_and_targets(task):
    """The task's image pull as the agent reported it, and its targets in the load balancer."""
    from orchestrator.models import Target

    pull = Activity.objects.filter(object_arn=task.arn, component="agent", action__in=PULL_ACTIONS).order_by("-id")
    return {
        "pull_lines": list(reversed(pull[:12])),
        "targets": list(Target.objects.filter(task=task).select_related("target_group")),
    }


def service_load_balancing(service):
    """Each load balancer entry of a service: its target group, the listeners (URLs) that
    forward to it, and the health of the group's targets."""
    from orchestrator.models import Target, TargetGroup

    rows = []
    for entry in service.load_balancers or []:
        arn = entry.get("targetGroupArn", "")
        tg_id = arn.rsplit("/", 1)[-1]
        group = (TargetGroup.objects.filter(account=service.account, tg_id=tg_id)
                 .prefetch_related("listeners__load_balancer").first())
        targets = list(Target.objects.filter(target_group=group).select_related("task")) if group else []
        rows.append({
            "entry": entry, "group": group, "listeners": list(group.listeners.all()) if group else [],
            "targets": targets,
            "healthy": sum(1 for t in targets if t.state == Target.HEALTHY),
        })
    return rows


def service_autoscaling(service):
    """The service's scalable target as its HorizontalPodAutoscaler shows it: min and max, each
    policy's metric as the autoscaler last measured it against its target, the scheduled
    actions, the latest decisions (not-scaled ones too) and the HPA twin; {} when it has none."""
    from orchestrator import kubernetes
    from orchestrator.frontend.application_autoscaling import operations as autoscaling
    from orchestrator.kubernetes.autoscaling import horizontal_pod_autoscaler_for
    from orchestrator.models import ScalingActivity

    target = service.scalable_targets.select_related("account").first()
    if target is None:
        return {}
    policies = list(target.policies.all())
    rows = []
    for policy in policies:
        policy.target = target
        config = policy.configuration
        if policy.policy_type == policy.TARGET_TRACKING:
            metric = config["PredefinedMetricSpecification"]["PredefinedMetricType"]
            rows.append({"policy": policy, "metric": metric, "target": config["TargetValue"],
                         "current": target.observed.get(metric), "scale_in": not config.get("DisableScaleIn"),
                         "cooldowns": (config.get("ScaleOutCooldown"), config.get("ScaleInCooldown"))})
        else:
            rows.append({"policy": policy, "metric": "ECSServiceAverageCPUUtilization", "steps": config["StepAdjustments"],
                         "current": target.observed.get("ECSServiceAverageCPUUtilization"),
                         "adjustment": config["AdjustmentType"], "cooldowns": (config.get("Cooldown"),)})
    activities = ScalingActivity.objects.filter(account=target.account, region=target.region,
                                                resource_id=target.resource_id)[:8]
    shown = {m: v for m, v in target.observed.items() if m.startswith("ECSService")}
    twin = horizontal_pod_autoscaler_for(autoscaling.target_shape(target), [autoscaling.policy_shape(p) for p in policies],
                                         shown, service.desired_count)
    return {"target": target, "policies": rows, "scheduled": list(target.scheduled_actions.all()),
            "activities": list(activities), "measured_tasks": target.observed.get("tasks"),
            "yaml": kubernetes.to_yaml(twin), "window": settings.FARGATE_LAB["SCALING_METRIC_WINDOW_SECONDS"],
            "sample": settings.FARGATE_LAB["METRICS_SAMPLE_SECONDS"]}


def service_discovery(service):
    """Each Cloud Map service a service's tasks register in (serviceRegistries, Service Connect):
    how it is found (the DNS names tasks resolve, or DiscoverInstances only), and its instances."""
    from orchestrator import service_discovery as discovery

    rows = []
    for registration in discovery.registrations(service):
        instances = list(registration.registry.instances.select_related("task"))
        rows.append({**registration._asdict(), "namespace": registration.registry.namespace, "instances": instances})
    return rows


# --- The map as a diagram: one small figure set per box ----------------------------------
# Every box shows aggregates only (counts, rates, the name of the last action), never another
# account's ids; the fleet's task chips name only the viewer's own tasks ("all" for staff).

EVENT_ROWS = 30
CHIPS_PER_INSTANCE = 12  # what two rows of a box hold at 1280 px; the box says how many in all
ALL = "all"


def viewer_of(user):
    """Whose ids the diagram may name for ``user``: ``"all"`` for staff, else their account's pk."""
    if user.is_staff or user.is_superuser:
        return ALL
    from orchestrator.models import Account

    return Account.of_user(user).pk


def _sees(viewer, account_pk):
    return viewer == ALL or viewer == account_pk


def _last_action(*components, actions=None):
    rows = Activity.objects.filter(component__in=components)
    if actions:
        rows = rows.filter(action__in=actions)
    return rows.only("action", "component", "status_code", "latency_ms", "created_at").first()


def frontend_box():
    """Calls of the last minute, how many were refused, and the last call (its operation only)."""
    minute_ago = timezone.now() - timedelta(minutes=1)
    figures = Activity.objects.filter(component="frontend", created_at__gte=minute_ago).aggregate(
        calls=Count("pk"), refused=Count("pk", filter=Q(status_code__gte=400)))
    return {**figures, "last": _last_action("frontend")}


def statedb_box(viewer):
    """Objects by kind (of the region shown), the writes of the last minute, and the last write
    (another account's unnamed)."""
    tasks = Task.objects.filter(cluster__region=region()).aggregate(
        live=Count("pk", filter=~Q(last_status=Task.STOPPED)), stopped=Count("pk", filter=Q(last_status=Task.STOPPED)))
    latest = _writes_seen_by(broadcast.recent_writes(1), viewer)
    return {
        "clusters": Cluster.objects.filter(region=region(), status=Cluster.ACTIVE).count(),
        "services": Service.objects.filter(cluster__region=region()).exclude(status=Service.INACTIVE).count(),
        "tasks": tasks["live"],
        "stopped": tasks["stopped"],
        "writes": broadcast.writes_since(60),
        "last_write": latest[0] if latest else None,
    }


def cluster_manager_box():
    """Live services, how many are short of tasks (running below desired) and by how many."""
    from django.db.models import F

    figures = Service.objects.filter(status=Service.ACTIVE).aggregate(
        services=Count("pk"), short=Count("pk", filter=Q(running_count__lt=F("desired_count"))),
        desired=Sum("desired_count"), running=Sum("running_count"))
    figures["missing"] = max((figures["desired"] or 0) - (figures["running"] or 0), 0)
    return {**figures, "last": _last_action("cluster_manager")}


def capacity_manager_box():
    """Tasks waiting for an instance, the fleet's free CPU and memory, the last decision."""
    fleet = instances(task_limit=0)
    return {
        "pending": Task.objects.filter(last_status=Task.PROVISIONING, desired_status=Task.RUNNING).count(),
        "instances": len(fleet),
        "cpu_free": sum(usage.cpu_free for usage in fleet),
        "memory_free": sum(usage.memory_free for usage in fleet),
        "last": _last_action("capacity_manager"),
    }


def fleet_box(viewer):
    """Each instance with its CPU and memory bars and its task chips; chips of other accounts'
    tasks are anonymous (a status, no id)."""
    fleet = instances(task_limit=0)
    for usage in fleet:
        rows = (_live_tasks().filter(container_instance=usage.instance).order_by("created_at", "id")
                .values_list("task_id", "account_id", "last_status")[:CHIPS_PER_INSTANCE])
        usage.chips = [{"task_id": task_id, "short": task_id[:8], "status": status} if _sees(viewer, account_pk)
                       else {"task_id": "", "status": status} for task_id, account_pk, status in rows]
    return {"instances": fleet, "last": _last_action("agent")}


DOCKER_ACTIONS = ("create", "start", "stop", "kill", "remove", "died", "adopt")


def docker_box():
    """Containers running now and the last Docker operation the agents made or heard."""
    last = Activity.objects.filter(Q(component="docker") | Q(component="agent", action__in=DOCKER_ACTIONS))
    return {
        "containers": TaskContainer.objects.filter(last_status="RUNNING").count(),
        "last": last.only("action", "component", "created_at").first(),
    }


def alb_box():
    """Load balancers, listeners, and how many of the targets are healthy."""
    from orchestrator.models import Listener, LoadBalancer, Target

    targets = Target.objects.filter(target_group__region=region()).aggregate(
        total=Count("pk"), healthy=Count("pk", filter=Q(state=Target.HEALTHY)))
    return {"load_balancers": LoadBalancer.objects.filter(region=region()).count(),
            "listeners": Listener.objects.filter(load_balancer__region=region()).count(), **targets}


def ecr_box():
    """The registry's address and how many repositories it holds."""
    from orchestrator import registry
    from orchestrator.models import Repository

    return {"registry": registry.registry_host(), "repositories": Repository.objects.filter(region=region()).count(),
            "last": _last_action("registry")}


def _arn_account(arn):
    """The account id an ARN names ("" when it names none)."""
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 5 else ""


def map_events(rows, viewer):
    """Activity rows as the diagram's events: where each pulse runs, and what it may name."""
    from dashboard import diagram
    from orchestrator.models import Account

    own = None if viewer == ALL else Account.objects.filter(pk=viewer).values_list("account_id", flat=True).first()
    events = []
    for row in rows:
        travel = diagram.travel(row.component, row.action, row.status_code)
        if not travel.lit:
            continue
        account_id = _arn_account(row.object_arn)
        named = viewer == ALL or not account_id or account_id == own
        events.append({
            "seq": row.pk, "at_ms": round(row.created_at.timestamp() * 1000), "component": row.component,
            "action": row.action, "source": travel.source, "target": travel.target or "", "what": travel.what,
            "lit": " ".join(travel.lit), "source_name": diagram.NODES[travel.source].fargate,
            "target_name": diagram.NODES[travel.target].fargate if travel.target else "", "refused": bool(row.status_code and row.status_code >= 400),
            "object": row.object_arn.rsplit("/", 1)[-1][:8] if named and "/" in row.object_arn else "",
            "others": not named, "at": row.created_at,
        })
    return events


_EVENT_FIELDS = ("pk", "component", "action", "object_arn", "status_code", "created_at")


def events_of(pks, viewer):
    """The diagram's events for these activity pks, oldest first."""
    rows = Activity.objects.filter(pk__in=pks).only(*_EVENT_FIELDS).order_by("created_at", "pk")
    return map_events(rows, viewer)


def recent_events(viewer, limit=EVENT_ROWS):
    """The last ``limit`` events, oldest first (what slow motion replays right after a load)."""
    rows = list(Activity.objects.only(*_EVENT_FIELDS).order_by("-created_at", "-pk")[:limit])
    return map_events(reversed(rows), viewer)


# --- What a viewer may see of shared pages -----------------------------------------------
# The map's cards and the instance pages are shared by every user; a student sees their own
# account's ids there and only counts of the rest; staff (viewer ALL) see everything.

def _seen_by(rows, viewer):
    """Rows (of a model with an account) the viewer may name: all for staff or no viewer."""
    return rows if viewer is None or viewer == ALL else rows.filter(account_id=viewer)


def _own_and_others(rows, viewer):
    """(the viewer's rows, how many rows of other accounts there are)."""
    own = _seen_by(rows, viewer)
    return own, (0 if own is rows else rows.exclude(account_id=viewer).count())


# A dict that lives for one page request (set by the ``fragment`` template tag), or None:
# what the page's fragments each need about its viewer is looked up once in it.
REQUEST_MEMO = contextvars.ContextVar("request_memo", default=None)


def _callers_of(viewer):
    """The callers that act as account ``viewer``: its access keys, and its users on the console."""
    memo = REQUEST_MEMO.get()
    if memo is None:
        return _look_up_callers(viewer)
    if ("callers", viewer) not in memo:
        memo[("callers", viewer)] = _look_up_callers(viewer)
    return memo[("callers", viewer)]


def _look_up_callers(viewer):
    from django.contrib.auth import get_user_model

    from orchestrator.models import AccessKey, Account

    account = Account.objects.filter(pk=viewer).first()
    if account is None:
        return "", set()
    callers = set(AccessKey.objects.filter(account=account).values_list("access_key_id", flat=True))
    users = get_user_model().objects.filter(aws_accounts=account)
    if account.account_id == settings.FARGATE_LAB["DEFAULT_ACCOUNT"]:
        users = users | get_user_model().objects.filter(aws_accounts=None)
    callers |= {f"console:{name}" for name in users.values_list("username", flat=True)}
    return account.account_id, callers


def mask_others(rows, viewer):
    """Activity rows as ``viewer`` may see them: another account's step keeps its component,
    action, time and status, but not its message, caller, parameters or object."""
    if viewer is None or viewer == ALL:
        return rows
    own_account, own_callers = _callers_of(viewer)
    for row in rows:
        account = _arn_account(row.object_arn)
        # A task role's calls are named by its assumed-role session, an ARN of the task's account.
        mine = (row.caller in own_callers or bool(own_account) and row.caller.startswith(f"arn:aws:sts::{own_account}:")
                if row.caller else account in ("", own_account))
        if not mine:
            row.message, row.caller, row.object_arn, row.request = "(another account)", "another account", "", {}
            row.trace_id, row.details = "", {}  # no link to a trace the viewer may not open
    return rows


# --- Traces and decisions ------------------------------------------------------------------

PLACEMENT_ACTIONS = ("place", "no-capacity")


def task_traces_and_placement(task):
    """The traces that touched a task (the one that started it first) and its last placement
    decision as the capacity manager recorded it (every instance considered, never recomputed)."""
    from orchestrator import traces

    touched = traces.traces_of(task.arn)
    ordered = ([task.trace_id] if task.trace_id else []) + [t for t in reversed(touched) if t != task.trace_id]
    decision = (Activity.objects.filter(object_arn=task.arn, component="capacity_manager",
                                        action__in=PLACEMENT_ACTIONS).order_by("-id").first())
    return {"trace_ids": ordered, "decision": decision}


def reconcile_passes(service):
    """The cluster manager's last passes over a service (desired, observed, what it chose)."""
    return list(service.reconcile_passes.all()[:settings.FARGATE_LAB["RECONCILE_PASSES_KEPT"]])


# --- The article's steps 1 and 4 on pages of their own: repositories, load balancers -------

def _ecr(account, operation, params):
    """One ECR call for the account's own pages (its API, so names and URIs are the API's);
    ``{"error": message}`` when it fails (the registry down): the page says so instead of failing."""
    from orchestrator import registry

    try:
        return registry.call(account, operation, params)
    except registry.EcrError as exc:
        return {"error": exc.message}


def repositories(account_pk):
    """The account's repositories as DescribeRepositories gives them, each with its images."""
    from orchestrator.models import Account

    account = Account.objects.filter(pk=account_pk).first()
    if account is None:
        return []
    rows = []
    for repo in _ecr(account, "DescribeRepositories", {}).get("repositories", []):
        rows.append({**repo, **repository_images(account, repo["repositoryName"], repo["repositoryUri"])})
    return rows


def repository_images(account, name, uri=None):
    """{"images": DescribeImages' details, newest first, each with its ``uri`` (by its first
    tag) and the query of the next step's link; "error": why there are none}."""
    from urllib.parse import urlencode

    if uri is None:
        described = _ecr(account, "DescribeRepositories", {"repositoryNames": [name]})
        uri = next((r["repositoryUri"] for r in described.get("repositories", [])), name)
    found = _ecr(account, "DescribeImages", {"repositoryName": name})
    images = sorted(found.get("imageDetails", []), key=lambda i: i.get("imagePushedAt") or 0, reverse=True)
    for image in images:
        image["pushed_at"] = datetime.fromtimestamp(image.get("imagePushedAt") or 0, tz=dt_timezone.utc)
        tags = image.get("imageTags") or []
        image["uri"] = f"{uri}:{tags[0]}" if tags else f"{uri}@{image.get('imageDigest', '')}"
        image["next_query"] = urlencode({"image": image["uri"], "family": re.sub(r"[^A-Za-z0-9_-]+", "-", name)})
    return {"images": images, "error": found.get("error", ""), "uri": uri}


def push_commands(account, repository, endpoint):
    """The commands that push an image to ``repository`` (None: to a repository named <repo>)
    as this lab's ECR hands them out: docker login with the API's token, tag, push."""
    auth = _ecr(account, "GetAuthorizationToken", {})
    proxy = ((auth.get("authorizationData") or [{}])[0].get("proxyEndpoint") or "")
    host = proxy.split("://", 1)[-1]
    uri = f"{host}/<repository>"
    if repository is not None:
        described = _ecr(account, "DescribeRepositories", {"repositoryNames": [repository.name]})
        uri = next((r["repositoryUri"] for r in described.get("repositories", [])), uri)
    return {
        "login": f"aws ecr get-login-password --endpoint-url {endpoint} | docker login --username AWS --password-stdin {host}",
        "tag": f"docker tag fargate-lab/demo:latest {uri}:v1",
        "push": f"docker push {uri}:v1",
        "uri": uri,
        "host": host,
        "error": auth.get("error", ""),
    }


def image_suggestions(account):
    """Images an image field may suggest: the account's repository tags, then the images built
    on the engine (none pulled from a registry: those could name other accounts' repositories)."""
    from orchestrator.docker_engine import DockerEngine, EngineError

    suggested = [f"{repo['repositoryUri']}:{tag}" for repo in repositories(account.pk)
                 for image in repo["images"] for tag in image.get("imageTags") or []]
    try:
        suggested += DockerEngine.from_settings().local_image_tags()
    except EngineError:  # no engine: the registry's images are still suggested
        pass
    return list(dict.fromkeys(suggested))


def _rule_rows(listener):
    """A listener's rules as its card lists them: priority, conditions in words, where they send."""
    from orchestrator.elbv2.rules import describe

    names = {tg.arn: tg.name for tg in listener.target_groups.all()}
    rows = []
    for rule in listener.rules.all():
        action = rule.actions[0] if rule.actions else {}
        if action.get("Type") == "forward":
            arns = [action["TargetGroupArn"]] if action.get("TargetGroupArn") else [
                g.get("TargetGroupArn") for g in (action.get("ForwardConfig") or {}).get("TargetGroups") or []]
            to = ", ".join(names.get(arn, "?") for arn in arns)
        else:
            to = f"fixed response {(action.get('FixedResponseConfig') or {}).get('StatusCode', '')}".strip()
        rows.append({"priority": rule.priority, "when": describe(rule.conditions), "to": to})
    return rows


def load_balancing(account_pk):
    """The account's load balancers (listeners with their URLs), and target groups with their
    targets' health, health check and deregistration delay."""
    from orchestrator.models import Listener, LoadBalancer, Target, TargetGroup

    listeners = Listener.objects.prefetch_related("target_groups", "rules").order_by("port")
    lbs = list(LoadBalancer.objects.filter(account_id=account_pk, region=region()).select_related("account")
               .prefetch_related(Prefetch("listeners", listeners)).order_by("name"))
    for lb in lbs:
        for listener in lb.listeners.all():
            listener.rule_rows = _rule_rows(listener)
    groups = (TargetGroup.objects.filter(account_id=account_pk, region=region()).select_related("account")
              .prefetch_related(Prefetch("targets", Target.objects.select_related("task")), "listeners__load_balancer")
              .order_by("name"))
    clusters = Cluster.objects.filter(account_id=account_pk, region=region(), status=Cluster.ACTIVE).order_by("name")
    return {"load_balancers": lbs, "target_groups": list(groups), "clusters": list(clusters)}
