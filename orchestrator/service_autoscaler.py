"""The service autoscaler: Application Auto Scaling for ECS services (Kubernetes' HorizontalPodAutoscaler).

After each pass of the task metrics sampler the control plane enqueues every scalable target
("scalable-target:<pk>"); one level-triggered pass per target (``sync_target``):
1. reads the target, its service, policies and scheduled actions, and the service's measured
   utilisation over the metric window (``SCALING_METRIC_WINDOW_SECONDS``) and over the scale-in
   window (five times longer: AWS's target tracking alarms scale out after 3 one-minute
   datapoints above the target and scale in after 15 below 90 % of it);
2. ``plan`` (pure) decides: scheduled actions that are due, a desired count outside [min, max],
   then the policies' proposals: target tracking (desired = ceil(current × metric / target),
   scale out fast, scale in slowly, cooldowns, DisableScaleIn), step scaling;
3. a thin executor writes the decision with a conditional UPDATE of the service's desired count
   (another writer meanwhile: the next pass decides again), records it as a scaling activity
   (DescribeScalingActivities), a step of its own trace and an activity row, and enqueues the
   service for the cluster manager.

Step scaling has no CloudWatch alarm in the lab: a step policy watches the service's average CPU
utilisation over the metric window, its step bounds read as percent (an alarm threshold of 0),
and it acts while the metric lies inside one of its steps.
"""
import calendar
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestrator import bus, quotas, task_metrics, traces
from orchestrator.models import (Deployment, ScalableTarget, ScalingActivity, ScalingPolicy, ScheduledAction, Service,
                                 Task)

log = logging.getLogger(__name__)
CPU, MEMORY = "ECSServiceAverageCPUUtilization", "ECSServiceAverageMemoryUtilization"
METRICS = (CPU, MEMORY)
# AWS's defaults for an ECS target tracking policy, and its scale-in alarm's threshold.
DEFAULT_COOLDOWN = 300
SCALE_IN_THRESHOLD = 0.9
SCALE_IN_WINDOWS = 5


def metric_window():
    return settings.FARGATE_LAB["SCALING_METRIC_WINDOW_SECONDS"]


# --- schedules: at(…), rate(…), cron(…) --------------------------------------------------------

class BadSchedule(ValueError):
    """A schedule expression the lab cannot read (the message says why)."""


_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_RATE = re.compile(r"rate\((\d{1,9}) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\(([^()]*)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name.upper(): n for n, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
# minutes, hours, day of month, month, day of week (1 = Sunday), year: AWS's six cron fields.
_CRON_RANGES = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (1, 7, _DAYS), (1970, 2199, {}))


def _cron_field(text, low, high, names):
    """The set of values one cron field allows (None for * or ?)."""
    if text in ("*", "?"):
        return None
    values = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        if any(ch in re.sub("|".join(names) or "^$", "", base.upper()) for ch in "LW#"):
            raise BadSchedule(f"cron field {text!r}: L, W and # are not supported by Fargate Lab")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _cron_value(first, names), _cron_value(last, names)
        else:
            start = _cron_value(base, names)
            end = high if step else start
        every = _cron_value(step, {}) if step else 1
        if not (low <= start <= high and low <= end <= high) or start > end or every < 1:
            raise BadSchedule(f"cron field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, every))
    return values


def _cron_value(text, names):
    if text.upper() in names:
        return names[text.upper()]
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        raise BadSchedule(f"cron value {text!r} is not a number")
    return int(text)


def parse_schedule(expression):
    """("at", datetime) | ("rate", seconds) | ("cron", [six sets or None]) for a schedule
    expression; raises BadSchedule."""
    found = _AT.fullmatch(expression)
    if found:
        try:
            return "at", datetime.strptime(found[1], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise BadSchedule(f"{found[1]} is not a date and time") from None
    found = _RATE.fullmatch(expression)
    if found:
        value, unit = int(found[1]), found[2].rstrip("s")
        if value < 1 or (value == 1) != (not found[2].endswith("s")):
            raise BadSchedule("a rate is 1 minute|hour|day or N minutes|hours|days (N > 1)")
        return "rate", value * _UNIT_SECONDS[unit]
    found = _CRON.fullmatch(expression)
    if found:
        fields = found[1].split()
        if len(fields) != 6:
            raise BadSchedule("a cron expression has six fields: minutes hours day-of-month month day-of-week year")
        if fields[2] != "?" and fields[4] != "?" and "*" not in (fields[2], fields[4]):
            raise BadSchedule("cron: give day-of-month or day-of-week, and ? for the other")
        return "cron", [_cron_field(text, low, high, names) for text, (low, high, names) in zip(fields, _CRON_RANGES)]
    raise BadSchedule("a schedule is at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(fields)")


def _cron_matches(sets, moment):
    """Whether the minute ``moment`` (local time) is one of the cron expression's."""
    weekday = (moment.isoweekday() % 7) + 1  # 1 = Sunday
    values = (moment.minute, moment.hour, moment.day, moment.month, weekday, moment.year)
    return all(allowed is None or value in allowed for allowed, value in zip(sets, values))


def due_time(schedule, zone, start, end, created_at, last_run_at, now):
    """The latest time the schedule fell due after ``last_run_at`` (or its creation) and up to
    ``now``, within [start, end], or None (pure; datetimes aware, in UTC)."""
    kind, value = parse_schedule(schedule)
    tz = ZoneInfo(zone or "UTC")
    since = max(filter(None, (last_run_at, start, created_at - timedelta(seconds=1))))
    until = min(now, end) if end else now
    if until <= since:
        return None
    if kind == "at":
        moment = value.replace(tzinfo=tz).astimezone(dt_timezone.utc)
        return moment if since < moment <= until else None
    if kind == "rate":
        origin = start or created_at
        periods = math.floor((until - origin).total_seconds() / value)
        moment = origin + timedelta(seconds=periods * value)
        return moment if periods >= 1 and since < moment <= until else None
    minute = until.astimezone(tz).replace(second=0, microsecond=0)
    for _ in range(24 * 60):  # a due time more than a day back is not caught up
        if minute.astimezone(dt_timezone.utc) <= since:
            return None
        if _cron_matches(value, minute):
            return minute.astimezone(dt_timezone.utc)
        minute -= timedelta(minutes=1)
    return None


# --- plan (pure) --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """A metric of the service over the metric window (``short``) and the scale-in window (``long``),
    in percent, each None while the data does not yet cover its window; per-task extremes of
    the short window for step scaling's Minimum and Maximum aggregations."""

    short: float = None
    long: float = None
    short_min: float = None
    short_max: float = None
    tasks: int = 0


@dataclass(frozen=True)
class TargetView:
    resource_id: str
    min_capacity: int
    max_capacity: int
    suspended: dict = field(default_factory=dict)
    not_scaled_code: str = ""


@dataclass(frozen=True)
class PolicyView:
    name: str
    policy_type: str
    configuration: dict
    alarms: tuple = ()
    scaled_out_at: datetime = None
    scaled_in_at: datetime = None


@dataclass(frozen=True)
class ScheduleView:
    name: str
    due_at: datetime  # when it fell due (None: not due)
    min_capacity: int = None
    max_capacity: int = None


@dataclass(frozen=True)
class Observed:
    desired: int
    readings: dict  # metric type -> Reading
    ceiling: int  # the account's Tasks per service quota


@dataclass(frozen=True)
class RunScheduledAction:
    name: str
    min_capacity: int
    max_capacity: int
    due_at: datetime
    description: str
    cause: str


@dataclass(frozen=True)
class SetDesiredCount:
    count: int
    was: int
    policy: str  # "" when the bounds, not a policy, decided
    direction: str  # "out" or "in"
    description: str
    cause: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NotScaled:
    code: str
    description: str
    cause: str
    min_capacity: int
    max_capacity: int
    current: int


def _in_cooldown(at, seconds, now):
    return at is not None and now < at + timedelta(seconds=seconds)


def _target_tracking(policy, desired, reading, now):
    """(proposed desired count or None to abstain, why) of one target tracking policy."""
    config = policy.configuration
    target = float(config["TargetValue"])
    out_cooldown = config.get("ScaleOutCooldown", DEFAULT_COOLDOWN)
    in_cooldown = config.get("ScaleInCooldown", DEFAULT_COOLDOWN)
    if reading.short is None or desired == 0:
        return None, "insufficient data"
    if reading.short > target:
        if _in_cooldown(policy.scaled_out_at, out_cooldown, now):
            return desired, "in its scale-out cooldown"
        return math.ceil(desired * reading.short / target - 1e-9), f"{reading.short:.1f} % > target {target:g} %"
    if config.get("DisableScaleIn"):
        return desired, "scale-in disabled"
    if reading.long is None or reading.long >= target * SCALE_IN_THRESHOLD:
        return desired, "holding"
    if _in_cooldown(policy.scaled_in_at, in_cooldown, now) or _in_cooldown(policy.scaled_out_at, out_cooldown, now):
        return desired, "in its cooldown"
    return max(1, math.ceil(desired * reading.long / target)), \
        f"{reading.long:.1f} % < {SCALE_IN_THRESHOLD * 100:g} % of target {target:g} %"


def _step_value(config, reading):
    return {"Minimum": reading.short_min, "Maximum": reading.short_max}.get(
        config.get("MetricAggregationType", "Average"), reading.short)


def _step(policy, desired, reading, now):
    """(proposed desired count or None when its alarm is not in ALARM or it cools down, why)."""
    config = policy.configuration
    value = _step_value(config, reading)
    if value is None:
        return None, "insufficient data"
    for step in config.get("StepAdjustments", []):
        lower, upper = step.get("MetricIntervalLowerBound"), step.get("MetricIntervalUpperBound")
        if (lower is None or value >= lower) and (upper is None or value < upper):
            break
    else:
        return None, f"{value:.1f} % is in none of its steps"
    last = max(filter(None, (policy.scaled_out_at, policy.scaled_in_at)), default=None)
    if _in_cooldown(last, config.get("Cooldown", 0), now):
        return None, "in its cooldown"
    adjustment, kind = step["ScalingAdjustment"], config.get("AdjustmentType")
    if kind == "ExactCapacity":
        return adjustment, f"{value:.1f} % sets exactly {adjustment}"
    if kind == "PercentChangeInCapacity":
        change = desired * adjustment / 100
        change = math.floor(change) if change > 0 else math.ceil(change)  # AWS rounds toward zero
        least = config.get("MinAdjustmentMagnitude") or 0
        if abs(change) < least:
            change = least if adjustment > 0 else -least
        return desired + change, f"{value:.1f} % changes by {adjustment:g} %"
    return desired + adjustment, f"{value:.1f} % changes by {adjustment:+d}"


def _propose(policy, desired, readings, now):
    """(proposal or None, why) of one policy on the readings of its metric."""
    if policy.policy_type == ScalingPolicy.TARGET_TRACKING:
        metric = policy.configuration["PredefinedMetricSpecification"]["PredefinedMetricType"]
        return _target_tracking(policy, desired, readings.get(metric, Reading()), now)
    return _step(policy, desired, readings.get(CPU, Reading()), now)


def plan(target, policies, schedules, observed, now):
    """The actions for one scalable target: scheduled actions due, then one desired count (or
    why not). Pure: every input is plain data."""
    actions = []
    low, high = target.min_capacity, target.max_capacity
    if not target.suspended.get("ScheduledScalingSuspended"):
        for schedule in sorted((s for s in schedules if s.due_at), key=lambda s: s.due_at):
            low = schedule.min_capacity if schedule.min_capacity is not None else low
            high = schedule.max_capacity if schedule.max_capacity is not None else high
            low = min(low, high) if schedule.min_capacity is None else low
            high = max(low, high)
            said = [f"{name} capacity to {value}" for name, value in (("min", schedule.min_capacity),
                                                                      ("max", schedule.max_capacity))
                    if value is not None]
            actions.append(RunScheduledAction(schedule.name, low, high, schedule.due_at,
                                              f"Setting {' and '.join(said)}",
                                              f"scheduled action name {schedule.name} was triggered"))
    desired = observed.desired
    ceiling = min(high, observed.ceiling)
    if desired < low or desired > high:
        count = max(low, min(desired, high))
        bound = "minimum" if desired < low else "maximum"
        actions.append(SetDesiredCount(count, desired, "", "out" if count > desired else "in",
                                       f"Setting desired count to {count}.",
                                       f"the desired count {desired} was outside the {bound} capacity "
                                       f"({low}–{high})"))
        return actions
    proposals, holding_tracker = [], False
    for policy in policies:
        proposal, why = _propose(policy, desired, observed.readings, now)
        if proposal is None:
            if policy.policy_type == ScalingPolicy.TARGET_TRACKING:
                holding_tracker = True
            continue
        if policy.policy_type == ScalingPolicy.TARGET_TRACKING and proposal >= desired:
            holding_tracker = holding_tracker or proposal == desired
        proposals.append((proposal, policy, why))
    outs = [p for p in proposals if p[0] > desired]
    ins = [p for p in proposals if p[0] < desired and not (
        holding_tracker and p[1].policy_type == ScalingPolicy.TARGET_TRACKING)]
    if outs and not target.suspended.get("DynamicScalingOutSuspended"):
        proposal, policy, why = max(outs, key=lambda p: p[0])
        direction = "out"
    elif ins and not outs and not target.suspended.get("DynamicScalingInSuspended"):
        proposal, policy, why = max(ins, key=lambda p: p[0])  # the gentlest scale-in
        direction = "in"
    else:
        return actions
    count = max(low, min(proposal, ceiling))
    alarm = _alarm_of(policy, direction)
    cause = f"monitor alarm {alarm} in state ALARM triggered policy {policy.name}"
    if count == desired:
        code = "AlreadyAtMaxCapacity" if direction == "out" else "AlreadyAtMinCapacity"
        limit = ("the account's Tasks per service quota" if direction == "out" and observed.ceiling < high
                 else f"{'max' if direction == 'out' else 'min'} capacity")
        actions.append(NotScaled(code, f"Not scaling {direction}: already at the {limit} ({count}).", cause,
                                 low, high, desired))
        return actions
    actions.append(SetDesiredCount(count, desired, policy.name, direction, f"Setting desired count to {count}.",
                                   cause, {"why": why, "proposed": proposal}))
    return actions


def _alarm_of(policy, direction):
    """The name of the alarm that would fire the policy (target tracking's high or low one)."""
    if policy.alarms:
        return policy.alarms[0] if direction == "out" or len(policy.alarms) == 1 else policy.alarms[1]
    return f"{policy.name} (Fargate Lab: average CPU utilisation within one of its steps)"


# --- the executor ---------------------------------------------------------------------------------

def readings(task_pks, window, now=None):
    """{metric type: Reading} of a service's RUNNING tasks from the task metrics sampler."""
    sampler, now = task_metrics.sampler(), time.time() if now is None else now
    covered = sampler.covered(task_pks, now)
    short, tasks = sampler.average(task_pks, window, now)
    long, _ = sampler.average(task_pks, window * SCALE_IN_WINDOWS, now)
    per_task = [sampler.average([pk], window, now)[0] for pk in task_pks]
    per_task = [u for u in per_task if u is not None]
    found = {}
    for metric, attribute in ((CPU, "cpu"), (MEMORY, "memory")):
        values = [getattr(u, attribute) * 100 for u in per_task]
        found[metric] = Reading(
            short=getattr(short, attribute) * 100 if short and covered >= window * 0.9 else None,
            long=getattr(long, attribute) * 100 if long and covered >= window * SCALE_IN_WINDOWS * 0.9 else None,
            short_min=min(values) if values and covered >= window * 0.9 else None,
            short_max=max(values) if values and covered >= window * 0.9 else None, tasks=tasks)
    return found


def _view(target):
    return TargetView(target.resource_id, target.min_capacity, target.max_capacity, target.suspended_state,
                      target.not_scaled_code)


def _policy_view(policy):
    return PolicyView(policy.name, policy.policy_type, policy.configuration, tuple(policy.alarm_names()),
                      policy.scaled_out_at, policy.scaled_in_at)


def _schedule_view(action, now):
    try:
        due = due_time(action.schedule, action.time_zone, action.start_time, action.end_time, action.created_at,
                       action.last_run_at, now)
    except (BadSchedule, ZoneInfoNotFoundError):  # refused by the frontend; an old row is left alone
        due = None
    return ScheduleView(action.name, due, action.min_capacity, action.max_capacity)


def sync_target(pk, enqueue):
    """One pass of the autoscaler over scalable target ``pk`` (see the module docstring)."""
    target = ScalableTarget.objects.select_related("account", "service", "service__cluster").filter(pk=pk).first()
    if target is None:
        return
    if target.service is None or target.service.status != Service.ACTIVE:
        target.service = _rebind(target)
        if target.service is None:  # the service is gone: the target waits for one of its name, as on AWS
            return
    service, now = target.service, timezone.now()
    running = list(service.tasks.filter(last_status=Task.RUNNING, desired_status=Task.RUNNING)
                   .values_list("pk", flat=True))
    found = readings(running, metric_window())
    observed = Observed(service.desired_count, found, int(target.account.quota(quotas.TASKS_PER_SERVICE)))
    policies = list(target.policies.all())
    schedules = list(target.scheduled_actions.all())
    actions = plan(_view(target), [_policy_view(p) for p in policies],
                   [_schedule_view(a, now) for a in schedules], observed, now)
    _observe(target, found, service.desired_count, now)
    for action in actions:
        globals()[f"do_{type(action).__name__}"](target, service, action, policies, schedules, enqueue, now)


def _rebind(target):
    """The ACTIVE service the target's ResourceId names now (one deleted and created again), bound
    to the target; None while there is none."""
    _, cluster, name = target.resource_id.split("/")
    service = Service.objects.select_related("cluster").filter(
        account=target.account, cluster__region=target.region, cluster__name=cluster, name=name,
        status=Service.ACTIVE).first()
    if service is not None:
        ScalableTarget.objects.filter(pk=target.pk).update(service=service)
    return service


def _observe(target, found, desired, now):
    """Keep what the autoscaler saw on the target (the HPA's status), written only when it changes."""
    seen = {metric: (round(r.short, 1) if r.short is not None else None) for metric, r in found.items()}
    seen["tasks"] = found[CPU].tasks
    if {k: v for k, v in target.observed.items() if k != "at"} != seen:
        ScalableTarget.objects.filter(pk=target.pk).update(observed={**seen, "at": now.isoformat()})
        bus.publish("scalable-target", target.pk, service=target.service_id, origin="controlplane")


def _activity(target, action, status, message, trace, now, reasons=()):
    return ScalingActivity.objects.create(
        account=target.account, region=target.region, resource_id=target.resource_id, target=target,
        description=action.description, cause=action.cause, start_time=now, end_time=timezone.now(),
        status_code=status, status_message=message, details=str(getattr(action, "details", "") or ""),
        not_scaled_reasons=list(reasons), trace_id=trace)


def do_RunScheduledAction(target, service, action, policies, schedules, enqueue, now):
    """Set the target's min and max as the scheduled action says, and mark it run (claimed)."""
    scheduled = next(s for s in schedules if s.name == action.name)
    with transaction.atomic():
        claimed = ScheduledAction.objects.filter(pk=scheduled.pk, last_run_at=scheduled.last_run_at).update(
            last_run_at=action.due_at)
        if not claimed:  # another pass ran it first
            return
        ScalableTarget.objects.filter(pk=target.pk).update(min_capacity=action.min_capacity,
                                                           max_capacity=action.max_capacity)
        trace = traces.begin("cluster_manager", "autoscale", service.arn, target.account)
        _activity(target, action, ScalingActivity.SUCCESSFUL,
                  f"Successfully set min capacity to {action.min_capacity} and max capacity to "
                  f"{action.max_capacity}", trace, now)
        with traces.continuing(trace), traces.step("cluster_manager", "autoscale", service,
                                                   f"scheduled action {action.name}: min {action.min_capacity}, "
                                                   f"max {action.max_capacity}"):
            pass
    target.min_capacity, target.max_capacity = action.min_capacity, action.max_capacity
    bus.publish("scalable-target", target.pk, service=service.pk, origin="controlplane")
    enqueue(f"scalable-target:{target.pk}")  # the new bounds may move the desired count at once


def do_SetDesiredCount(target, service, action, policies, schedules, enqueue, now):
    """Write the new desired count if nobody changed it meanwhile; record the decision."""
    with transaction.atomic():
        changed = Service.objects.filter(pk=service.pk, status=Service.ACTIVE, desired_count=action.was).update(
            desired_count=action.count, updated_at=now, steady=False)
        if not changed:  # UpdateService (or another pass) got there first: the next pass decides again
            return
        trace = traces.begin("cluster_manager", "autoscale", service.arn, target.account)
        if service.deployment_controller == "EXTERNAL":  # each task set scales by its percentage
            from orchestrator.frontend import task_sets

            service.desired_count = action.count
            task_sets.rescale(service, now)
        else:
            service.deployments.filter(status=Deployment.PRIMARY).update(desired_count=action.count, updated_at=now)
        stamp = {"scaled_out_at" if action.direction == "out" else "scaled_in_at": now}
        if action.policy:
            ScalingPolicy.objects.filter(target=target, name=action.policy).update(**stamp)
        ScalableTarget.objects.filter(pk=target.pk).update(not_scaled_code="")
        _activity(target, action, ScalingActivity.SUCCESSFUL,
                  f"Successfully set desired count to {action.count}. Change successfully fulfilled by ecs.",
                  trace, now)
        with traces.continuing(trace), traces.step(
                "cluster_manager", "autoscale", service,
                f"scale {action.direction} {service.name}: desired count {action.was} → {action.count} "
                f"({action.cause})") as step:
            step.details = {"policy": action.policy, **action.details}
            service.add_event(f"has been scaled {action.direction} by Application Auto Scaling: desired count "
                              f"{action.was} → {action.count}.", trace_id=trace)
    bus.publish("service", service.pk, origin="controlplane")
    bus.publish("scalable-target", target.pk, service=service.pk, origin="controlplane")
    enqueue(f"service:{service.pk}", trace=trace)


def do_NotScaled(target, service, action, policies, schedules, enqueue, now):
    """Record once why a policy that wanted to scale did not (until something else happens)."""
    if target.not_scaled_code == action.code:
        return
    if not ScalableTarget.objects.filter(pk=target.pk, not_scaled_code=target.not_scaled_code).update(
            not_scaled_code=action.code):
        return
    reason = {"Code": action.code, "MaxCapacity": action.max_capacity, "MinCapacity": action.min_capacity,
              "CurrentCapacity": action.current}
    _activity(target, action, ScalingActivity.FAILED, action.description, traces.current(), now, [reason])
    bus.publish("scalable-target", target.pk, service=service.pk, origin="controlplane")
