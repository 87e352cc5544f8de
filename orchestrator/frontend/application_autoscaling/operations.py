"""Application Auto Scaling's operations, one function each, named as in the API reference.

The lab scales one kind of resource: an ECS service's desired count (ServiceNamespace ``ecs``,
ScalableDimension ``ecs:service:DesiredCount``, ResourceId ``service/<cluster>/<service>``);
any other namespace or dimension is a ValidationException that says so. Every target, policy,
scheduled action and activity belongs to one account in one region. The decisions themselves
are the control plane's (``orchestrator/service_autoscaler.py``).
"""
import math
from datetime import datetime
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, transaction

from orchestrator import bus
from orchestrator.frontend.json_service import ServiceError, page
from orchestrator.frontend.services import MAX_DESIRED_COUNT
from orchestrator.models import (Cluster, ScalableTarget, ScalingActivity, ScalingPolicy, ScheduledAction, Service,
                                 region, service_linked_role)
from orchestrator.service_autoscaler import METRICS, BadSchedule, parse_schedule

SAFE_PARAMS = ("ServiceNamespace", "ResourceId", "ScalableDimension", "MinCapacity", "MaxCapacity", "PolicyName",
               "PolicyType", "ScheduledActionName", "Schedule", "Timezone", "MaxResults",
               "IncludeNotScaledActivities")
# Application Auto Scaling's quotas (per account and region, and per scalable target).
MAX_TARGETS = 3000
MAX_POLICIES = 50
MAX_SCHEDULED_ACTIONS = 200
MAX_COOLDOWN = 31536000
# What each listing pages by at most (and by default).
PAGE_LIMITS = {"targets": 50, "policies": 10, "activities": 50, "scheduled": 50}


def invalid(message):
    return ServiceError("ValidationException", message)


def _check_scope(params):
    """Refuse any namespace and dimension but ECS services' desired count."""
    namespace = params["ServiceNamespace"]
    if namespace != ScalableTarget.NAMESPACE:
        raise invalid(f"Unsupported service namespace {namespace[:64]}: Fargate Lab scales ECS services only "
                      f"(ServiceNamespace ecs, ScalableDimension {ScalableTarget.DIMENSION}).")
    dimension = params.get("ScalableDimension")
    if dimension is not None and dimension != ScalableTarget.DIMENSION:
        raise invalid(f"Unsupported scalable dimension {dimension[:64]} for service namespace ecs: ECS services "
                      f"scale by {ScalableTarget.DIMENSION}.")


def _check_resource_id(resource_id):
    """(cluster name, service name) of an ECS ResourceId; ValidationException otherwise."""
    parts = resource_id.split("/")
    if len(parts) != 3 or parts[0] != "service" or not parts[1] or not parts[2]:
        raise invalid(f"Unsupported resource ID {resource_id[:256]} for service namespace ecs: an ECS service is "
                      "service/<cluster-name>/<service-name>.")
    return parts[1], parts[2]


def _not_registered(params):
    return ServiceError("ObjectNotFoundException", f"No scalable target registered for service namespace: ecs, "
                                                   f"resource ID: {params['ResourceId'][:256]}, scalable dimension: "
                                                   f"{ScalableTarget.DIMENSION}")


def _targets(account):
    return ScalableTarget.objects.filter(account=account, region=region()).select_related("account")


def _target(account, params, for_update=False):
    """The registered target a call names (ObjectNotFoundException if none)."""
    _check_scope(params)
    _check_resource_id(params["ResourceId"])
    rows = _targets(account)
    found = (rows.select_for_update() if for_update else rows).filter(resource_id=params["ResourceId"]).first()
    if found is None:
        raise _not_registered(params)
    return found


def _capacity(params, name):
    value = params.get(name)
    if value is not None and not 0 <= value <= MAX_DESIRED_COUNT:
        raise invalid(f"{name} must be between 0 and {MAX_DESIRED_COUNT} for an ECS service (its desired count).")
    return value


def _epoch(moment):
    return moment.timestamp() if moment else None


def target_shape(target):
    return {"ServiceNamespace": "ecs", "ResourceId": target.resource_id, "ScalableDimension": ScalableTarget.DIMENSION,
            "MinCapacity": target.min_capacity, "MaxCapacity": target.max_capacity, "RoleARN": target.role_arn,
            "CreationTime": _epoch(target.created_at), "ScalableTargetARN": target.arn,
            "SuspendedState": {key: bool(target.suspended_state.get(key)) for key in
                               ("DynamicScalingInSuspended", "DynamicScalingOutSuspended",
                                "ScheduledScalingSuspended")}}


def _alarms(policy):
    account, where = policy.target.account.account_id, policy.target.region
    return [{"AlarmName": name, "AlarmARN": f"arn:aws:cloudwatch:{where}:{account}:alarm:{name}"}
            for name in policy.alarm_names()]


def policy_shape(policy):
    shape = {"PolicyARN": policy.arn, "PolicyName": policy.name, "ServiceNamespace": "ecs",
             "ResourceId": policy.target.resource_id, "ScalableDimension": ScalableTarget.DIMENSION,
             "PolicyType": policy.policy_type, "Alarms": _alarms(policy), "CreationTime": _epoch(policy.created_at)}
    key = ("TargetTrackingScalingPolicyConfiguration" if policy.policy_type == ScalingPolicy.TARGET_TRACKING
           else "StepScalingPolicyConfiguration")
    shape[key] = policy.configuration
    return shape


def _scheduled_shape(action):
    shape = {"ScheduledActionName": action.name, "ScheduledActionARN": action.arn, "ServiceNamespace": "ecs",
             "Schedule": action.schedule, "Timezone": action.time_zone, "ResourceId": action.target.resource_id,
             "ScalableDimension": ScalableTarget.DIMENSION, "CreationTime": _epoch(action.created_at),
             "ScalableTargetAction": {k: v for k, v in (("MinCapacity", action.min_capacity),
                                                         ("MaxCapacity", action.max_capacity)) if v is not None}}
    for key, value in (("StartTime", action.start_time), ("EndTime", action.end_time)):
        if value:
            shape[key] = _epoch(value)
    return shape


def _activity_shape(row):
    shape = {"ActivityId": row.activity_id, "ServiceNamespace": "ecs", "ResourceId": row.resource_id,
             "ScalableDimension": ScalableTarget.DIMENSION, "Description": row.description, "Cause": row.cause,
             "StartTime": _epoch(row.start_time), "StatusCode": row.status_code,
             "StatusMessage": row.status_message}
    if row.end_time:
        shape["EndTime"] = _epoch(row.end_time)
    if row.details:
        shape["Details"] = row.details
    if row.not_scaled_reasons:
        shape["NotScaledReasons"] = row.not_scaled_reasons
    return shape


def _paged(rows, params, kind):
    limit = PAGE_LIMITS[kind]
    if params.get("MaxResults") is not None and not 1 <= params["MaxResults"] <= limit:
        raise invalid(f"1 validation error detected: Value '{params['MaxResults']}' at 'maxResults' failed to "
                      f"satisfy constraint: Member must have value between 1 and {limit}")
    shown, token = page(list(rows), params, limit, limit,
                        ServiceError("InvalidNextTokenException", "The NextToken value is not valid."))
    return shown, token


def _answer(key, items, token):
    answer = {key: items}
    if token:
        answer["NextToken"] = token
    return answer


# --- scalable targets -----------------------------------------------------------------------------

def register_scalable_target(account, params, caller):
    _check_scope(params)
    if "ScalableDimension" not in params:
        raise invalid("ScalableDimension is required.")
    cluster_name, service_name = _check_resource_id(params["ResourceId"])
    low, high = _capacity(params, "MinCapacity"), _capacity(params, "MaxCapacity")
    role = params.get("RoleARN")
    if role is not None and not role.startswith("arn:aws:iam::"):
        raise invalid(f"RoleARN {role[:256]} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>).")
    with transaction.atomic():
        target = _targets(account).select_for_update().filter(resource_id=params["ResourceId"]).first()
        service = Service.objects.filter(account=account, cluster__region=region(), cluster__name=cluster_name,
                                         name=service_name,
                                         status=Service.ACTIVE, cluster__status=Cluster.ACTIVE).first()
        if service is None:
            raise invalid(f"ECS service doesn't exist: {params['ResourceId'][:256]}")
        if target is None and (low is None or high is None):
            raise invalid("MinCapacity and MaxCapacity are required when registering a new scalable target.")
        low = target.min_capacity if low is None else low
        high = target.max_capacity if high is None else high
        if low > high:
            raise invalid(f"Minimum capacity {low} cannot be greater than maximum capacity {high}.")
        suspended = {**(target.suspended_state if target else {}), **(params.get("SuspendedState") or {})}
        if target is None:
            if _targets(account).count() >= MAX_TARGETS:
                raise ServiceError("LimitExceededException", f"An account may register at most {MAX_TARGETS} "
                                                             "scalable targets for ECS in a region.")
            try:
                target = ScalableTarget.objects.create(
                    account=account, region=region(), resource_id=params["ResourceId"], service=service,
                    min_capacity=low, max_capacity=high, role_arn=role or service_linked_role(account.account_id),
                    suspended_state=suspended, tags=dict(params.get("Tags") or {}))
            except IntegrityError:  # registered by a concurrent call between our read and this insert
                raise ServiceError("ConcurrentUpdateException", "Concurrent update on the scalable target; "
                                                                "try again.") from None
        else:
            target.min_capacity, target.max_capacity, target.suspended_state = low, high, suspended
            target.service = service
            target.tags = {**target.tags, **(params.get("Tags") or {})}
            if role:
                target.role_arn = role
            target.save(update_fields=("min_capacity", "max_capacity", "suspended_state", "service", "tags",
                                       "role_arn"))
    bus.publish("scalable-target", target.pk, service=service.pk)
    return {"ScalableTargetARN": target.arn}


def describe_scalable_targets(account, params, caller):
    _check_scope(params)
    rows = _targets(account)
    if params.get("ResourceIds"):
        rows = rows.filter(resource_id__in=params["ResourceIds"])
    shown, token = _paged(rows, params, "targets")
    return _answer("ScalableTargets", [target_shape(t) for t in shown], token)


def deregister_scalable_target(account, params, caller):
    with transaction.atomic():
        target = _target(account, params, for_update=True)
        pk, service_pk = target.pk, target.service_id
        target.delete()  # its policies and scheduled actions go with it, as on AWS
    bus.publish("scalable-target", pk, service=service_pk)
    if service_pk:  # the row is gone: the service's page hears of it as a change of the service
        bus.publish("service", service_pk)
    return {}


# --- scaling policies -------------------------------------------------------------------------------

def _cooldown(config, name, default=None):
    value = config.get(name, default)
    if value is not None and not 0 <= value <= MAX_COOLDOWN:
        raise invalid(f"{name} must be between 0 and {MAX_COOLDOWN} seconds.")
    return value


def _target_tracking_configuration(config):
    """The configuration as stored and shown, defaults filled in; ValidationException for what the
    lab cannot track."""
    if config.get("CustomizedMetricSpecification") is not None:
        raise invalid("CustomizedMetricSpecification is not supported by Fargate Lab: it measures ECS services' "
                      "CPU and memory only (PredefinedMetricType ECSServiceAverageCPUUtilization or "
                      "ECSServiceAverageMemoryUtilization).")
    predefined = config.get("PredefinedMetricSpecification")
    if predefined is None:
        raise invalid("A target tracking policy needs a PredefinedMetricSpecification (or a "
                      "CustomizedMetricSpecification, which the lab does not serve).")
    metric = predefined["PredefinedMetricType"]
    if metric not in METRICS:
        raise invalid(f"Unsupported predefined metric type {metric[:64]} for service namespace ecs in Fargate Lab: "
                      f"{' or '.join(METRICS)}.")
    if predefined.get("ResourceLabel"):
        raise invalid("ResourceLabel is only for ALBRequestCountPerTarget, which Fargate Lab does not serve.")
    target = config["TargetValue"]
    if not (isinstance(target, (int, float)) and math.isfinite(target)) or not 8.515920e-109 <= target <= 1.174271e+108:
        raise invalid("TargetValue must be between 8.515920e-109 and 1.174271e+108.")
    return {"TargetValue": float(target), "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
            "ScaleOutCooldown": _cooldown(config, "ScaleOutCooldown", 300),
            "ScaleInCooldown": _cooldown(config, "ScaleInCooldown", 300),
            "DisableScaleIn": bool(config.get("DisableScaleIn", False))}


def _step_configuration(config):
    """The configuration as stored and shown; ValidationException for steps AWS refuses."""
    kind = config.get("AdjustmentType")
    if kind is None:
        raise invalid("AdjustmentType is required for a step scaling policy: ChangeInCapacity, "
                      "PercentChangeInCapacity or ExactCapacity.")
    steps = config.get("StepAdjustments") or []
    if not steps:
        raise invalid("A step scaling policy needs at least one StepAdjustment.")
    for step in steps:
        for bound in ("MetricIntervalLowerBound", "MetricIntervalUpperBound"):
            if bound in step and not math.isfinite(step[bound]):
                raise invalid(f"{bound} must be a finite number.")
    ordered = sorted(steps, key=lambda s: -math.inf if s.get("MetricIntervalLowerBound") is None
                     else s["MetricIntervalLowerBound"])
    for step in ordered:
        lower, upper = step.get("MetricIntervalLowerBound"), step.get("MetricIntervalUpperBound")
        if lower is None and upper is None and len(steps) > 1:
            raise invalid("Only one step adjustment may leave both bounds unset, and then it must be the only one.")
        if lower is not None and upper is not None and lower >= upper:
            raise invalid("A step's MetricIntervalUpperBound must be greater than its MetricIntervalLowerBound.")
        if kind == "ExactCapacity" and step["ScalingAdjustment"] < 0:
            raise invalid("An ExactCapacity step's ScalingAdjustment cannot be negative.")
    for before, after in zip(ordered, ordered[1:]):
        if before.get("MetricIntervalUpperBound") is None or after.get("MetricIntervalLowerBound") is None:
            raise invalid("Only the first step may have no lower bound and only the last no upper bound.")
        if before["MetricIntervalUpperBound"] != after["MetricIntervalLowerBound"]:
            raise invalid("Step adjustments must not overlap nor leave gaps: each step's upper bound is the next "
                          "step's lower bound.")
    magnitude = config.get("MinAdjustmentMagnitude")
    if magnitude is not None and kind != "PercentChangeInCapacity":
        raise invalid("MinAdjustmentMagnitude is only for the PercentChangeInCapacity adjustment type.")
    if magnitude is not None and magnitude < 1:
        raise invalid("MinAdjustmentMagnitude must be at least 1.")
    shape = {"AdjustmentType": kind, "StepAdjustments": ordered, "Cooldown": _cooldown(config, "Cooldown", 0),
             "MetricAggregationType": config.get("MetricAggregationType", "Average")}
    if magnitude is not None:
        shape["MinAdjustmentMagnitude"] = magnitude
    return shape


def put_scaling_policy(account, params, caller):
    kind = params.get("PolicyType", ScalingPolicy.STEP)
    tracking = params.get("TargetTrackingScalingPolicyConfiguration")
    stepping = params.get("StepScalingPolicyConfiguration")
    if kind == "PredictiveScaling" or params.get("PredictiveScalingPolicyConfiguration") is not None:
        raise invalid("PredictiveScaling is not supported by Fargate Lab (it forecasts from CloudWatch history the "
                      "lab does not keep): use TargetTrackingScaling or StepScaling.")
    if kind == ScalingPolicy.TARGET_TRACKING:
        if tracking is None or stepping is not None:
            raise invalid("A TargetTrackingScaling policy takes a TargetTrackingScalingPolicyConfiguration (and no "
                          "StepScalingPolicyConfiguration).")
        configuration = _target_tracking_configuration(tracking)
    else:
        if stepping is None or tracking is not None:
            raise invalid("A StepScaling policy takes a StepScalingPolicyConfiguration (and no "
                          "TargetTrackingScalingPolicyConfiguration).")
        configuration = _step_configuration(stepping)
    name = params["PolicyName"]
    with transaction.atomic():
        target = _target(account, params, for_update=True)
        policy = target.policies.filter(name=name).first()
        if policy is not None and policy.policy_type != kind:
            raise invalid(f"Policy {name[:256]} is a {policy.policy_type} policy: its type cannot be changed.")
        if policy is None:
            if target.policies.count() >= MAX_POLICIES:
                raise ServiceError("LimitExceededException", f"A scalable target may have at most {MAX_POLICIES} "
                                                             "scaling policies.")
            policy = ScalingPolicy.objects.create(target=target, name=name, policy_type=kind,
                                                  configuration=configuration)
        else:
            policy.configuration = configuration
            policy.save(update_fields=("configuration",))
    policy.target = target
    bus.publish("scalable-target", target.pk, service=target.service_id)
    return {"PolicyARN": policy.arn, "Alarms": _alarms(policy)}


def _of_targets(model, account, params, names):
    """The account's policies or scheduled actions (``model``), filtered by ResourceId and the
    names a Describe call lists (``names``: the member that holds them)."""
    _check_scope(params)
    rows = model.objects.filter(target__account=account, target__region=region()).select_related(
        "target", "target__account").order_by("target__resource_id", "name")
    if params.get("ResourceId"):
        rows = rows.filter(target__resource_id=params["ResourceId"])
    if params.get(names):
        rows = rows.filter(name__in=params[names])
    return rows


def describe_scaling_policies(account, params, caller):
    rows = _of_targets(ScalingPolicy, account, params, "PolicyNames")
    shown, token = _paged(rows, params, "policies")
    return _answer("ScalingPolicies", [policy_shape(p) for p in shown], token)


def delete_scaling_policy(account, params, caller):
    target = _target(account, params)
    deleted, _ = target.policies.filter(name=params["PolicyName"]).delete()
    if not deleted:
        raise ServiceError("ObjectNotFoundException", f"No scaling policy found for service namespace: ecs, resource "
                                                      f"ID: {target.resource_id}, scalable dimension: "
                                                      f"{ScalableTarget.DIMENSION}, policy name: "
                                                      f"{params['PolicyName'][:256]}")
    bus.publish("scalable-target", target.pk, service=target.service_id)
    return {}


# --- scaling activities -----------------------------------------------------------------------------

def describe_scaling_activities(account, params, caller):
    _check_scope(params)
    rows = ScalingActivity.objects.filter(account=account, region=region())
    if params.get("ResourceId"):
        rows = rows.filter(resource_id=params["ResourceId"])
    if not params.get("IncludeNotScaledActivities"):
        rows = rows.filter(not_scaled_reasons=[])
    shown, token = _paged(rows, params, "activities")
    return _answer("ScalingActivities", [_activity_shape(a) for a in shown], token)


# --- scheduled actions ------------------------------------------------------------------------------

def _moment(value):
    """A request's timestamp (epoch seconds, or an ISO 8601 text) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt_timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=dt_timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{str(value)[:64]} is not a timestamp.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)


def put_scheduled_action(account, params, caller):
    name = params["ScheduledActionName"]
    if not name.strip() or name != name.strip() or any(ch in name for ch in ":/|") or not name.isprintable():
        raise invalid(f"Scheduled action name {name[:256]!r} is not valid: no leading or trailing spaces, no ':', "
                      "'/' or '|', no control characters.")
    zone = params.get("Timezone")
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid(f"Timezone {zone[:64]} is not an IANA time zone (like UTC or Europe/Paris).") from None
    if params.get("Schedule") is not None:
        try:
            parse_schedule(params["Schedule"])
        except BadSchedule as exc:
            raise invalid(f"Schedule {params['Schedule'][:256]} is not valid: {exc}.") from None
    start = _moment(params["StartTime"]) if params.get("StartTime") is not None else None
    end = _moment(params["EndTime"]) if params.get("EndTime") is not None else None
    if start and end and end <= start:
        raise invalid("EndTime must be after StartTime.")
    action = params.get("ScalableTargetAction")
    low, high = (_capacity(action, "MinCapacity"), _capacity(action, "MaxCapacity")) if action else (None, None)
    if low is not None and high is not None and low > high:
        raise invalid(f"Minimum capacity {low} cannot be greater than maximum capacity {high}.")
    with transaction.atomic():
        target = _target(account, params, for_update=True)
        found = target.scheduled_actions.filter(name=name).first()
        if found is None:
            if params.get("Schedule") is None:
                raise invalid("Schedule is required when creating a scheduled action.")
            if action is None or (low is None and high is None):
                raise invalid("ScalableTargetAction with MinCapacity, MaxCapacity or both is required when creating "
                              "a scheduled action.")
            if target.scheduled_actions.count() >= MAX_SCHEDULED_ACTIONS:
                raise ServiceError("LimitExceededException", f"A scalable target may have at most "
                                                             f"{MAX_SCHEDULED_ACTIONS} scheduled actions.")
            found = ScheduledAction(target=target, name=name)
        for given, column, value in (("Schedule", "schedule", params.get("Schedule")),
                                     ("Timezone", "time_zone", zone), ("StartTime", "start_time", start),
                                     ("EndTime", "end_time", end)):
            if given in params:
                setattr(found, column, value)
        if action is not None:
            found.min_capacity, found.max_capacity = low, high
        found.last_run_at = None  # a changed schedule runs at its next time
        found.save()
    bus.publish("scalable-target", target.pk, service=target.service_id)
    return {}


def describe_scheduled_actions(account, params, caller):
    rows = _of_targets(ScheduledAction, account, params, "ScheduledActionNames")
    shown, token = _paged(rows, params, "scheduled")
    return _answer("ScheduledActions", [_scheduled_shape(a) for a in shown], token)


def delete_scheduled_action(account, params, caller):
    target = _target(account, params)
    deleted, _ = target.scheduled_actions.filter(name=params["ScheduledActionName"]).delete()
    if not deleted:
        raise ServiceError("ObjectNotFoundException", f"No scheduled action found for service namespace: ecs, "
                                                      f"resource ID: {target.resource_id}, scalable dimension: "
                                                      f"{ScalableTarget.DIMENSION}, scheduled action name: "
                                                      f"{params['ScheduledActionName'][:256]}")
    bus.publish("scalable-target", target.pk, service=target.service_id)
    return {}


# --- tags (scalable targets are Application Auto Scaling's only taggable resource) ------------------

MAX_TAGS = 50


def _tagged(account, params, for_update=False):
    """The scalable target a ResourceARN names (ResourceNotFoundException if none of this account's)."""
    arn = params["ResourceARN"]
    prefix = f"arn:aws:application-autoscaling:{region()}:{account.account_id}:scalable-target/"
    rows = _targets(account)
    found = (rows.select_for_update() if for_update else rows).filter(
        target_id=arn[len(prefix):]).first() if arn.startswith(prefix) else None
    if found is None:
        raise ServiceError("ResourceNotFoundException", f"No scalable target found for ARN {arn[:1600]}.")
    return found


def tag_resource(account, params, caller):
    tags = params["Tags"]
    for key in tags:
        if key.lower().startswith("aws:"):
            raise invalid(f"Tag key {key[:128]} is reserved: keys beginning with aws: are AWS's.")
    with transaction.atomic():
        target = _tagged(account, params, for_update=True)
        merged = {**target.tags, **tags}
        if len(merged) > MAX_TAGS:
            raise ServiceError("TooManyTagsException", f"A scalable target can have at most {MAX_TAGS} tags.")
        target.tags = merged
        target.save(update_fields=("tags",))
    return {}


def untag_resource(account, params, caller):
    with transaction.atomic():
        target = _tagged(account, params, for_update=True)
        target.tags = {k: v for k, v in target.tags.items() if k not in set(params["TagKeys"])}
        target.save(update_fields=("tags",))
    return {}


def list_tags_for_resource(account, params, caller):
    return {"Tags": dict(_tagged(account, params).tags)}


def get_predictive_scaling_forecast(account, params, caller):
    """Refused as PutScalingPolicy refuses PredictiveScaling: no such policy can exist here (its
    errors are ValidationExceptions only, an unregistered target's too)."""
    _check_scope(params)
    target = _targets(account).filter(resource_id=params["ResourceId"]).first()
    if target is None:
        raise invalid(f"No scalable target registered for service namespace: ecs, resource ID: "
                      f"{params['ResourceId'][:256]}, scalable dimension: {ScalableTarget.DIMENSION}")
    name = params["PolicyName"]
    if target.policies.filter(name=name).exists():
        raise invalid(f"Policy {name[:256]} is not a PredictiveScaling policy: only a PredictiveScaling policy "
                      "has a forecast.")
    raise invalid(f"No PredictiveScaling policy {name[:256]} for resource ID {target.resource_id}: Fargate Lab does "
                  "not support PredictiveScaling (it forecasts from CloudWatch history the lab does not keep).")


OPERATIONS = {
    "RegisterScalableTarget": register_scalable_target,
    "DescribeScalableTargets": describe_scalable_targets,
    "DeregisterScalableTarget": deregister_scalable_target,
    "PutScalingPolicy": put_scaling_policy,
    "DescribeScalingPolicies": describe_scaling_policies,
    "DeleteScalingPolicy": delete_scaling_policy,
    "DescribeScalingActivities": describe_scaling_activities,
    "PutScheduledAction": put_scheduled_action,
    "DescribeScheduledActions": describe_scheduled_actions,
    "DeleteScheduledAction": delete_scheduled_action,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
    "GetPredictiveScalingForecast": get_predictive_scaling_forecast,
}
