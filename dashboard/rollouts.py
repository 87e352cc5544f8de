"""What the dashboard shows of deployments and of the fleet: a rollout's deployments side by
side with their tasks (a Deployment's ReplicaSets), and the fleet's size and the capacity
manager's decisions over time. Read-only queries; the fragments in ``fragments`` render them."""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from dashboard.state import step_plot
from orchestrator.deployments import circuit_breaker_threshold, rolling_limits
from orchestrator.models import Activity, ContainerInstance, Deployment, Task

FLEET_WINDOW = timedelta(minutes=15)
# The task boxes a deployment's column draws; the rest are counted.
ROLLOUT_BOXES = 100
PLOT_WIDTH, PLOT_HEIGHT = 600, 90
# The capacity manager's fleet decisions (placements are shown on the map's card).
FLEET_ACTIONS = ("launch-instance", "instance-active", "boot-failed", "drain-instance", "recycle-instance")


def task_health(task, now, grace):
    """"healthy", "settling" or "" for a task box, as the scheduler judges it."""
    if task.last_status != Task.RUNNING or task.desired_status != Task.RUNNING or task.started_at is None:
        return ""
    if task.health_status == "HEALTHY":
        return "healthy"
    if task.health_status == "UNHEALTHY":
        return ""
    if task.container_health_status or task.lb_health_status:  # its health checks have not passed yet
        return "settling"
    return "healthy" if (now - task.started_at).total_seconds() >= grace else "settling"


def healthy_filter(now, grace):
    """``task_health(task, now, grace) == "healthy"`` as a query."""
    from django.db.models import Q

    running = Q(last_status=Task.RUNNING, desired_status=Task.RUNNING, started_at__isnull=False)
    unchecked = Q(container_health_status="", lb_health_status="", started_at__lte=now - timedelta(seconds=grace))
    return running & (Q(health_status="HEALTHY") | (~Q(health_status="UNHEALTHY") & unchecked))


def rollout(service, now=None):
    """The service's live deployments (newest first), each with its tasks, and the limits."""
    now = now or timezone.now()
    grace = float(settings.FARGATE_LAB["HEALTH_GRACE_SECONDS"])
    config = service.deployment_configuration or {}
    low, high = rolling_limits(service.desired_count, config.get("minimumHealthyPercent"),
                               config.get("maximumPercent"))
    columns = []
    deployments = service.deployments.exclude(status=Deployment.INACTIVE).select_related("task_definition")
    for deployment in deployments:
        live = deployment.tasks.exclude(last_status=Task.STOPPED)
        # Counted in the database, and only the first boxes drawn: a column of 5,000 tasks
        # costs two counts and ROLLOUT_BOXES rows, not 5,000.
        tasks = list(live.order_by("created_at", "id")
                     .only("pk", "task_id", "deployment_id", "last_status", "desired_status", "started_at",
                           "health_status", "lb_health_status", "container_health_status")[:ROLLOUT_BOXES])
        for task in tasks:
            task.judged = task_health(task, now, grace)
        count = live.count() if len(tasks) == ROLLOUT_BOXES else len(tasks)
        healthy = (live.filter(healthy_filter(now, grace)).count() if count > len(tasks)
                   else sum(1 for t in tasks if t.judged == "healthy"))
        columns.append({"deployment": deployment, "tasks": tasks, "count": count, "more": count - len(tasks),
                        "healthy": healthy})
    breaker = config.get("deploymentCircuitBreaker") or {}
    return {
        "columns": columns,
        "minimum": low, "maximum": high,
        "minimum_percent": config.get("minimumHealthyPercent", 100),
        "maximum_percent": config.get("maximumPercent", 200),
        "breaker": breaker.get("enable"), "rollback": breaker.get("rollback"),
        "threshold": circuit_breaker_threshold(service.desired_count),
        "grace": grace,
        "has_load_balancer": bool(service.load_balancers),
    }


def fleet_history(now=None):
    """The fleet's size over the last minutes (a step plot) and the latest fleet decisions.

    The size is walked back from now through the capacity manager's own records: a launch
    added an instance, a recycle took one away.
    """
    now = now or timezone.now()
    start = now - FLEET_WINDOW
    events = list(Activity.objects.filter(component="capacity_manager", action__in=FLEET_ACTIONS,
                                          created_at__gte=start).order_by("created_at", "id"))
    size = ContainerInstance.objects.exclude(status=ContainerInstance.INACTIVE).count()
    steps = {"launch-instance": 1, "recycle-instance": -1}
    level = size - sum(steps.get(e.action, 0) for e in events)
    samples = [(start, level)]
    for event in events:
        level += steps.get(event.action, 0)
        samples.append((event.created_at, level))
    samples.append((now, level))
    top = max([count for _, count in samples] + [settings.FARGATE_LAB["FLEET_INSTANCES"], 1])
    span = FLEET_WINDOW.total_seconds()
    points, y = step_plot(samples, start, span, top, width=PLOT_WIDTH, height=PLOT_HEIGHT)
    conf = settings.FARGATE_LAB
    return {
        "points": points, "width": PLOT_WIDTH, "height": PLOT_HEIGHT, "top": top,
        "pool_y": y(conf["FLEET_INSTANCES"]), "minutes": round(span / 60),
        "size": size, "warm_pool": conf["FLEET_INSTANCES"], "max_instances": conf.get("MAX_INSTANCES", 16),
        "booting": ContainerInstance.objects.filter(status=ContainerInstance.PROVISIONING).count(),
        "draining": ContainerInstance.objects.filter(status=ContainerInstance.DRAINING).count(),
        "decisions": list(reversed(events))[:12],
    }


def _traffic_share(listener, group_arn):
    """The percentage of a listener's default traffic its forward action sends to a target group."""
    for action in listener.default_actions or []:
        if action.get("Type") != "forward":
            continue
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
        if not groups:
            return 100 if action.get("TargetGroupArn") == group_arn else 0
        total = sum(int(g.get("Weight", 1)) for g in groups)
        mine = sum(int(g.get("Weight", 1)) for g in groups if g.get("TargetGroupArn") == group_arn)
        return round(100 * mine / total) if total else 0
    return 0


def task_sets(service, now=None):
    """An EXTERNAL service's task sets side by side (two Deployments behind one Service, as Argo
    Rollouts' blue/green): each with its scale, counts, stability, tasks, and the share of each
    listener's traffic its target group gets."""
    from orchestrator.frontend.task_sets import LIVE, stability_status
    from orchestrator.models import TargetGroup

    now = now or timezone.now()
    grace = float(settings.FARGATE_LAB["HEALTH_GRACE_SECONDS"])
    rows = []
    for task_set in service.deployments.filter(status__in=LIVE).select_related("task_definition"):
        live = task_set.tasks.exclude(last_status=Task.STOPPED)
        tasks = list(live.order_by("created_at", "id").only(
            "pk", "task_id", "deployment_id", "last_status", "desired_status", "started_at", "health_status",
            "lb_health_status", "container_health_status")[:ROLLOUT_BOXES])
        for task in tasks:
            task.judged = task_health(task, now, grace)
        groups = []
        for entry in task_set.revision.get("loadBalancers", []):
            group = (TargetGroup.objects.filter(account=service.account,
                                                tg_id=entry.get("targetGroupArn", "").rsplit("/", 1)[-1])
                     .prefetch_related("listeners__load_balancer").first())
            if group is not None:
                groups.append({"group": group, "listeners": [
                    {"listener": listener, "share": _traffic_share(listener, group.arn)}
                    for listener in group.listeners.all()]})
        count = live.count() if len(tasks) == ROLLOUT_BOXES else len(tasks)
        rows.append({"task_set": task_set, "tasks": tasks, "more": count - len(tasks), "groups": groups,
                     "stability": stability_status(task_set), "scale": (task_set.scale or {}).get("value", 100.0)})
    return rows
