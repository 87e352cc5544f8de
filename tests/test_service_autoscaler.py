"""The service autoscaler's plan on plain data: target tracking as AWS does it (out fast, in slowly,
bounds, cooldowns, DisableScaleIn, several policies), step scaling, and schedules."""
from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.service_autoscaler import (CPU, MEMORY, BadSchedule, NotScaled, Observed, PolicyView, Reading,
                                             RunScheduledAction, ScheduleView, SetDesiredCount, TargetView, due_time,
                                             parse_schedule, plan)
from tests.support.api import FARGATE

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
TARGET = TargetView("service/default/web", 1, 10)


def tracking(name="cpu50", target=50.0, metric=CPU, **config):
    return PolicyView(name, "TargetTrackingScaling", {
        "TargetValue": target, "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
        "ScaleOutCooldown": 60, "ScaleInCooldown": 120, **config.pop("configuration", {})},
        alarms=(f"TargetTracking-web-AlarmHigh-{name}", f"TargetTracking-web-AlarmLow-{name}"), **config)


def step(name="steps", steps=(), **config):
    return PolicyView(name, "StepScaling", {"AdjustmentType": config.pop("kind", "ChangeInCapacity"),
                                            "StepAdjustments": list(steps), "Cooldown": config.pop("cooldown", 0),
                                            **config.pop("configuration", {})}, **config)


def observed(desired, cpu=None, cpu_long=None, memory=None, memory_long=None, ceiling=5000, **extremes):
    return Observed(desired, {CPU: Reading(cpu, cpu_long, extremes.get("low"), extremes.get("high"), desired),
                              MEMORY: Reading(memory, memory_long, tasks=desired)}, ceiling)


def decided(actions):
    return [(a.count, a.direction) for a in actions if isinstance(a, SetDesiredCount)]


def test_it_scales_out_to_bring_the_metric_to_the_target():
    assert decided(plan(TARGET, [tracking()], [], observed(2, cpu=100.0, cpu_long=90.0), NOW)) == [(4, "out")]
    assert decided(plan(TARGET, [tracking()], [], observed(3, cpu=60.0, cpu_long=60.0), NOW)) == [(4, "out")]


def test_it_holds_near_the_target_and_without_data():
    assert plan(TARGET, [tracking()], [], observed(2, cpu=48.0, cpu_long=47.0), NOW) == []
    assert plan(TARGET, [tracking()], [], observed(2, cpu=None, cpu_long=None), NOW) == []


def test_it_scales_in_only_on_the_long_window_below_nine_tenths_of_the_target():
    assert plan(TARGET, [tracking()], [], observed(4, cpu=10.0, cpu_long=None), NOW) == []  # long window not full
    assert plan(TARGET, [tracking()], [], observed(4, cpu=10.0, cpu_long=46.0), NOW) == []
    assert decided(plan(TARGET, [tracking()], [], observed(4, cpu=10.0, cpu_long=20.0), NOW)) == [(2, "in")]


def test_cooldowns_hold_scaling_back():
    out_recently = tracking(scaled_out_at=NOW - timedelta(seconds=30))
    assert plan(TARGET, [out_recently], [], observed(2, cpu=100.0), NOW) == []
    long_ago = tracking(scaled_out_at=NOW - timedelta(seconds=61))
    assert decided(plan(TARGET, [long_ago], [], observed(2, cpu=100.0), NOW)) == [(4, "out")]
    in_recently = tracking(scaled_in_at=NOW - timedelta(seconds=100))
    assert plan(TARGET, [in_recently], [], observed(4, cpu=1.0, cpu_long=1.0), NOW) == []
    # a scale-out is not held back by the scale-in cooldown
    assert decided(plan(TARGET, [in_recently], [], observed(2, cpu=100.0), NOW)) == [(4, "out")]
    # nor does it scale in right after scaling out
    assert plan(TARGET, [out_recently], [], observed(4, cpu=1.0, cpu_long=1.0), NOW) == []


def test_disable_scale_in_and_suspended_states():
    assert plan(TARGET, [tracking(configuration={"DisableScaleIn": True})], [], observed(4, cpu=1.0, cpu_long=1.0),
                NOW) == []
    suspended = TargetView("service/default/web", 1, 10, {"DynamicScalingOutSuspended": True})
    assert plan(suspended, [tracking()], [], observed(2, cpu=100.0), NOW) == []
    assert decided(plan(suspended, [tracking()], [], observed(4, cpu=1.0, cpu_long=1.0), NOW)) == [(1, "in")]


def test_min_and_max_capacity_bound_it_and_say_so_once():
    actions = plan(TargetView("service/default/web", 1, 3), [tracking()], [], observed(3, cpu=100.0), NOW)
    [not_scaled] = actions
    assert isinstance(not_scaled, NotScaled) and not_scaled.code == "AlreadyAtMaxCapacity"
    assert decided(plan(TargetView("service/default/web", 1, 3), [tracking()], [], observed(2, cpu=100.0), NOW)) == \
        [(3, "out")]
    assert decided(plan(TargetView("service/default/web", 2, 3), [tracking()], [], observed(3, cpu=1.0, cpu_long=1.0),
                        NOW)) == [(2, "in")]
    # a desired count outside the bounds is brought inside them, policies or not
    assert decided(plan(TargetView("service/default/web", 2, 3), [], [], observed(0), NOW)) == [(2, "out")]
    assert decided(plan(TargetView("service/default/web", 1, 3), [], [], observed(7), NOW)) == [(3, "in")]


def test_the_account_quota_caps_a_scale_out():
    [not_scaled] = plan(TARGET, [tracking()], [], observed(5, cpu=100.0, ceiling=5), NOW)
    assert not_scaled.code == "AlreadyAtMaxCapacity" and "quota" in not_scaled.description
    assert decided(plan(TARGET, [tracking()], [], observed(4, cpu=100.0, ceiling=5), NOW)) == [(5, "out")]


def test_the_largest_scale_out_wins_and_scale_in_needs_every_tracker():
    cpu, memory = tracking("cpu"), tracking("memory", 50.0, MEMORY)
    assert decided(plan(TARGET, [cpu, memory], [], observed(2, cpu=100.0, memory=150.0), NOW)) == [(6, "out")]
    assert plan(TARGET, [cpu, memory], [], observed(4, cpu=1.0, cpu_long=1.0, memory=50.0, memory_long=50.0), NOW) == []
    assert decided(plan(TARGET, [cpu, memory], [], observed(4, cpu=1.0, cpu_long=1.0, memory=20.0, memory_long=20.0),
                        NOW)) == [(2, "in")]


def test_a_decision_names_the_alarm_and_policy_as_aws_does():
    [action] = plan(TARGET, [tracking()], [], observed(2, cpu=100.0), NOW)
    assert action.description == "Setting desired count to 4."
    assert action.cause == "monitor alarm TargetTracking-web-AlarmHigh-cpu50 in state ALARM triggered policy cpu50"


STEPS = [{"MetricIntervalLowerBound": 70, "MetricIntervalUpperBound": 90, "ScalingAdjustment": 1},
         {"MetricIntervalLowerBound": 90, "ScalingAdjustment": 3}]


def test_step_scaling_acts_while_the_metric_is_in_a_step():
    assert decided(plan(TARGET, [step(steps=STEPS)], [], observed(2, cpu=75.0), NOW)) == [(3, "out")]
    assert decided(plan(TARGET, [step(steps=STEPS)], [], observed(2, cpu=95.0), NOW)) == [(5, "out")]
    assert plan(TARGET, [step(steps=STEPS)], [], observed(2, cpu=50.0), NOW) == []
    scale_in = step("in", [{"MetricIntervalUpperBound": 20, "ScalingAdjustment": -1}])
    assert decided(plan(TARGET, [scale_in], [], observed(3, cpu=5.0), NOW)) == [(2, "in")]
    cooling = step(steps=STEPS, cooldown=60, scaled_out_at=NOW - timedelta(seconds=10))
    assert plan(TARGET, [cooling], [], observed(2, cpu=95.0), NOW) == []


def test_step_adjustment_types_and_aggregations():
    percent = step(steps=[{"MetricIntervalLowerBound": 70, "ScalingAdjustment": 50}], kind="PercentChangeInCapacity",
                   configuration={"MinAdjustmentMagnitude": 2})
    assert decided(plan(TARGET, [percent], [], observed(2, cpu=80.0), NOW)) == [(4, "out")]  # 1, raised to 2
    assert decided(plan(TARGET, [percent], [], observed(6, cpu=80.0), NOW)) == [(9, "out")]
    exact = step(steps=[{"MetricIntervalLowerBound": 70, "ScalingAdjustment": 7}], kind="ExactCapacity")
    assert decided(plan(TARGET, [exact], [], observed(2, cpu=80.0), NOW)) == [(7, "out")]
    maximum = step(steps=[{"MetricIntervalLowerBound": 70, "ScalingAdjustment": 1}],
                   configuration={"MetricAggregationType": "Maximum"})
    assert decided(plan(TARGET, [maximum], [], observed(2, cpu=50.0, low=20.0, high=80.0), NOW)) == [(3, "out")]


def test_a_due_scheduled_action_sets_the_bounds_then_the_count_follows():
    due = ScheduleView("mornings", NOW - timedelta(seconds=5), min_capacity=4, max_capacity=8)
    actions = plan(TARGET, [tracking()], [due], observed(2, cpu=40.0, cpu_long=40.0), NOW)
    assert isinstance(actions[0], RunScheduledAction) and (actions[0].min_capacity, actions[0].max_capacity) == (4, 8)
    assert actions[0].description == "Setting min capacity to 4 and max capacity to 8"
    assert decided(actions) == [(4, "out")]
    suspended = TargetView("service/default/web", 1, 10, {"ScheduledScalingSuspended": True})
    assert plan(suspended, [], [due], observed(2), NOW) == []
    not_due = ScheduleView("later", None, min_capacity=4)
    assert plan(TARGET, [], [not_due], observed(2), NOW) == []


def test_schedules_parse_as_aws_writes_them():
    assert parse_schedule("rate(5 minutes)") == ("rate", 300)
    assert parse_schedule("rate(1 day)") == ("rate", 86400)
    assert parse_schedule("at(2026-12-02T08:00:00)")[0] == "at"
    assert parse_schedule("cron(0/15 8-17 ? * MON-FRI *)")[1][:2] == [{0, 15, 30, 45}, set(range(8, 18))]
    for bad in ("rate(1 minutes)", "rate(0 hours)", "cron(0 8 * * *)", "cron(0 8 * * ? * *)", "cron(61 * * * ? *)",
                "cron(0 8 1 * MON *)", "cron(0 8 L * ? *)", "at(2026-13-01T00:00:00)", "daily", ""):
        with pytest.raises(BadSchedule):
            parse_schedule(bad)


def test_due_times_follow_each_kind_of_schedule():
    created = NOW - timedelta(hours=3)
    assert due_time("at(2026-12-02T11:59:00)", "UTC", None, None, created, None, NOW) == NOW - timedelta(minutes=1)
    assert due_time("at(2026-12-02T12:59:00)", "Europe/Paris", None, None, created, None, NOW) == \
        NOW - timedelta(minutes=1)  # 12:59 in Paris is 11:59 UTC
    ran = NOW - timedelta(minutes=1)
    assert due_time("at(2026-12-02T11:59:00)", "UTC", None, None, created, ran, NOW) is None  # once only
    assert due_time("rate(1 hour)", "UTC", None, None, created, None, NOW) == NOW
    assert due_time("rate(1 hour)", "UTC", None, None, created, NOW, NOW) is None  # ran at 12:00 already
    assert due_time("rate(1 hour)", "UTC", None, None, created, NOW - timedelta(hours=1), NOW) == NOW
    assert due_time("cron(30 * * * ? *)", "UTC", None, None, created, None, NOW) == NOW - timedelta(minutes=30)
    ran = NOW - timedelta(minutes=90)
    assert due_time("cron(30 * * * ? *)", "UTC", None, NOW - timedelta(hours=1), created, ran, NOW) is None  # ended
    assert due_time("cron(0 12 ? * WED *)", "UTC", None, None, created, None, NOW) == NOW  # 2 Dec 2026 is a Wednesday
    assert due_time("cron(0 12 ? * THU *)", "UTC", None, None, created, None, NOW) is None


def test_a_target_follows_its_service_deleted_and_created_again(db):
    from orchestrator.frontend import call
    from orchestrator.frontend.application_autoscaling import SERVICE as AUTOSCALING
    from orchestrator.models import Account, ScalableTarget, ScalingActivity, Service
    from orchestrator.service_autoscaler import sync_target

    account = Account.default()
    call(account, "CreateCluster", {"clusterName": "demo"})
    call(account, "RegisterTaskDefinition", {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest"}]})
    call(account, "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 0,
                                    **FARGATE})
    AUTOSCALING.call(account, "RegisterScalableTarget", {
        "ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount", "ResourceId": "service/demo/web",
        "MinCapacity": 2, "MaxCapacity": 4})
    call(account, "DeleteService", {"cluster": "demo", "service": "web", "force": True})
    Service.objects.filter(name="web").update(status=Service.INACTIVE)  # what the cluster manager ends with
    call(account, "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 0,
                                    **FARGATE})
    again = Service.objects.get(name="web", status=Service.ACTIVE)
    target = ScalableTarget.objects.get()
    sync_target(target.pk, lambda *args, **kwargs: None)
    assert ScalableTarget.objects.get().service == again
    assert Service.objects.get(pk=again.pk).desired_count == 2  # brought up to the minimum capacity
    assert ScalingActivity.objects.get().description == "Setting desired count to 2."
