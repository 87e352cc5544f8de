"""Application Auto Scaling through boto3 against the live lab: scalable targets of ECS services,
target tracking and step policies, scheduled actions, activities, and its own error types for
every operation (never a 500); per account."""
import json

import pytest

from orchestrator.models import AccessKey, Account, ScalingActivity
from tests.support.api import error_of as api_error_of
from tests.support.api import assert_model_shape, fargate_task_definition, lab_client

TARGET = {"ServiceNamespace": "ecs", "ResourceId": "service/default/web",
          "ScalableDimension": "ecs:service:DesiredCount"}
CPU50 = {"TargetValue": 50.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
         "ScaleOutCooldown": 10, "ScaleInCooldown": 20}


def error_of(call, **params):
    return api_error_of(call, **params)[0]


@pytest.fixture
def aas(live_server, default_account):
    return lab_client(live_server, "application-autoscaling")


@pytest.fixture
def web(ecs):
    """A service "web" of one task in the default cluster."""
    ecs.create_cluster(clusterName="default")
    ecs.register_task_definition(**fargate_task_definition("web"))
    return ecs.create_service(cluster="default", serviceName="web", taskDefinition="web", desiredCount=1,
                              launchType="FARGATE",
                              networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-a"]}})["service"]


def test_it_registers_describes_updates_and_deregisters_a_target(aas, web):
    arn = aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)["ScalableTargetARN"]
    assert arn.startswith("arn:aws:application-autoscaling:us-east-1:000000000000:scalable-target/")
    aas.register_scalable_target(**TARGET, MaxCapacity=6, SuspendedState={"DynamicScalingInSuspended": True})
    [target] = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"], target["ScalableTargetARN"]) == (1, 6, arn)
    assert target["SuspendedState"] == {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": False,
                                        "ScheduledScalingSuspended": False}
    assert target["RoleARN"].endswith("AWSServiceRoleForApplicationAutoScaling_ECSService")
    assert aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=["service/default/other"])[
        "ScalableTargets"] == []
    aas.put_scaling_policy(PolicyName="cpu50", PolicyType="TargetTrackingScaling", **TARGET,
                           TargetTrackingScalingPolicyConfiguration=CPU50)
    aas.deregister_scalable_target(**TARGET)
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"] == []  # gone with the target
    assert error_of(aas.deregister_scalable_target, **TARGET) == "ObjectNotFoundException"


def test_it_puts_a_target_tracking_policy_with_aws_alarms(aas, web):
    aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    put = aas.put_scaling_policy(PolicyName="cpu50", PolicyType="TargetTrackingScaling", **TARGET,
                                 TargetTrackingScalingPolicyConfiguration=CPU50)
    assert put["PolicyARN"].startswith("arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:")
    assert put["PolicyARN"].endswith(":resource/ecs/service/default/web:policyName/cpu50")
    assert [a["AlarmName"].split("-Alarm")[1][:4] for a in put["Alarms"]] == ["High", "Low-"]
    aas.put_scaling_policy(PolicyName="cpu50", PolicyType="TargetTrackingScaling", **TARGET,
                           TargetTrackingScalingPolicyConfiguration={**CPU50, "DisableScaleIn": True})
    [policy] = aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId="service/default/web")["ScalingPolicies"]
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert (config["TargetValue"], config["ScaleOutCooldown"], config["DisableScaleIn"]) == (50.0, 10, True)
    assert len(policy["Alarms"]) == 1 and policy["PolicyARN"] == put["PolicyARN"]
    aas.delete_scaling_policy(PolicyName="cpu50", **TARGET)
    assert error_of(aas.delete_scaling_policy, PolicyName="cpu50", **TARGET) == "ObjectNotFoundException"


def test_it_puts_a_step_policy_with_its_steps_in_order(aas, web):
    aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    steps = [{"MetricIntervalLowerBound": 90, "ScalingAdjustment": 2},
             {"MetricIntervalLowerBound": 70, "MetricIntervalUpperBound": 90, "ScalingAdjustment": 1}]
    aas.put_scaling_policy(PolicyName="out", PolicyType="StepScaling", **TARGET, StepScalingPolicyConfiguration={
        "AdjustmentType": "ChangeInCapacity", "StepAdjustments": steps, "Cooldown": 30})
    [policy] = aas.describe_scaling_policies(ServiceNamespace="ecs", PolicyNames=["out"])["ScalingPolicies"]
    config = policy["StepScalingPolicyConfiguration"]
    assert [s["ScalingAdjustment"] for s in config["StepAdjustments"]] == [1, 2]
    assert (config["Cooldown"], config["MetricAggregationType"], policy["Alarms"]) == (30, "Average", [])


def test_it_keeps_scheduled_actions(aas, web):
    aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    aas.put_scheduled_action(ScheduledActionName="mornings", Schedule="cron(0 8 ? * MON-FRI *)",
                             Timezone="Europe/Paris", **TARGET, ScalableTargetAction={"MinCapacity": 2, "MaxCapacity": 5})
    aas.put_scheduled_action(ScheduledActionName="mornings", **TARGET, Schedule="rate(2 hours)")
    [action] = aas.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"]
    assert action["ScheduledActionARN"].endswith(":resource/ecs/service/default/web:scheduledActionName/mornings")
    assert (action["Schedule"], action["Timezone"], action["ScalableTargetAction"]) == (
        "rate(2 hours)", "Europe/Paris", {"MinCapacity": 2, "MaxCapacity": 5})
    aas.delete_scheduled_action(ScheduledActionName="mornings", **TARGET)
    assert aas.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"] == []
    assert error_of(aas.delete_scheduled_action, ScheduledActionName="mornings", **TARGET) == "ObjectNotFoundException"


def test_it_describes_activities_and_hides_not_scaled_ones_unless_asked(aas, web, default_account):
    aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=1)
    ScalingActivity.objects.create(account=default_account, resource_id=TARGET["ResourceId"],
                                   description="Setting desired count to 2.", cause="monitor alarm x")
    ScalingActivity.objects.create(account=default_account, resource_id=TARGET["ResourceId"],
                                   description="Not scaling out", cause="monitor alarm x", status_code="Failed",
                                   not_scaled_reasons=[{"Code": "AlreadyAtMaxCapacity", "MaxCapacity": 1}])
    shown = aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId="service/default/web")
    assert [a["Description"] for a in shown["ScalingActivities"]] == ["Setting desired count to 2."]
    every = aas.describe_scaling_activities(ServiceNamespace="ecs", IncludeNotScaledActivities=True)
    assert every["ScalingActivities"][0]["NotScaledReasons"][0]["Code"] == "AlreadyAtMaxCapacity"
    pages = aas.get_paginator("describe_scaling_activities").paginate(
        ServiceNamespace="ecs", IncludeNotScaledActivities=True, PaginationConfig={"PageSize": 1})
    assert sum(len(p["ScalingActivities"]) for p in pages) == 2


REGISTER_ERRORS = [
    ({**TARGET, "ServiceNamespace": "dynamodb", "MinCapacity": 1, "MaxCapacity": 2}, "ValidationException"),
    ({**TARGET, "ScalableDimension": "dynamodb:table:ReadCapacityUnits", "MinCapacity": 1, "MaxCapacity": 2},
     "ValidationException"),
    ({**TARGET, "ServiceNamespace": "kubernetes", "MinCapacity": 1, "MaxCapacity": 2}, "ValidationException"),
    ({**TARGET, "ResourceId": "service/web", "MinCapacity": 1, "MaxCapacity": 2}, "ValidationException"),
    ({**TARGET, "ResourceId": "service/default/nope", "MinCapacity": 1, "MaxCapacity": 2}, "ValidationException"),
    ({**TARGET, "MinCapacity": 1}, "ValidationException"),
    ({**TARGET, "MinCapacity": 3, "MaxCapacity": 2}, "ValidationException"),
    ({**TARGET, "MinCapacity": -1, "MaxCapacity": 2}, "ValidationException"),
    ({**TARGET, "MinCapacity": 1, "MaxCapacity": 5001}, "ValidationException"),
    ({**TARGET, "MinCapacity": 1, "MaxCapacity": 2, "RoleARN": "me"}, "ValidationException"),
]


@pytest.mark.parametrize("params, code", REGISTER_ERRORS)
def test_it_refuses_bad_registrations_in_its_own_words(aas, web, params, code):
    assert error_of(aas.register_scalable_target, **params) == code
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []


STEP = {"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [{"MetricIntervalLowerBound": 70,
                                                                   "ScalingAdjustment": 1}]}
POLICY_ERRORS = [
    ({"PolicyType": "TargetTrackingScaling"}, "ValidationException"),
    ({"PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {
        **CPU50, "PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget"}}},
     "ValidationException"),
    ({"PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {
        "TargetValue": 50.0, "CustomizedMetricSpecification": {"MetricName": "x", "Namespace": "y",
                                                               "Statistic": "Average"}}}, "ValidationException"),
    ({"PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {**CPU50, "TargetValue": 0}},
     "ValidationException"),
    ({"PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {
        **CPU50, "ScaleInCooldown": -5}}, "ValidationException"),
    ({"PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": CPU50,
      "StepScalingPolicyConfiguration": STEP}, "ValidationException"),
    ({"PolicyType": "PredictiveScaling"}, "ValidationException"),
    ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {"AdjustmentType": "ChangeInCapacity"}},
     "ValidationException"),
    ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {"StepAdjustments": STEP["StepAdjustments"]}},
     "ValidationException"),
    ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {**STEP, "StepAdjustments": [
        {"MetricIntervalLowerBound": 70, "MetricIntervalUpperBound": 80, "ScalingAdjustment": 1},
        {"MetricIntervalLowerBound": 90, "ScalingAdjustment": 2}]}}, "ValidationException"),
    ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {**STEP, "StepAdjustments": [
        {"MetricIntervalLowerBound": 80, "MetricIntervalUpperBound": 70, "ScalingAdjustment": 1}]}},
     "ValidationException"),
    ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {**STEP, "MinAdjustmentMagnitude": 2}},
     "ValidationException"),
    ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {**STEP, "AdjustmentType": "Sometimes"}},
     "ValidationException"),
    ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": STEP, "ResourceId": "service/default/nope"},
     "ObjectNotFoundException"),
    ({"PolicyType": "StepScaling", "StepScalingPolicyConfiguration": STEP, "PolicyName": "x" * 257},
     "ValidationException"),
]


@pytest.mark.parametrize("params, code", POLICY_ERRORS)
def test_it_refuses_bad_policies_in_its_own_words(aas, web, params, code):
    aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    assert error_of(aas.put_scaling_policy, **{"PolicyName": "p", **TARGET, **params}) == code
    assert aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"] == []


def test_a_policy_keeps_its_type_and_a_target_its_limit(aas, web, monkeypatch):
    from orchestrator.frontend.application_autoscaling import operations

    aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    aas.put_scaling_policy(PolicyName="p", PolicyType="StepScaling", **TARGET, StepScalingPolicyConfiguration=STEP)
    assert error_of(aas.put_scaling_policy, PolicyName="p", PolicyType="TargetTrackingScaling", **TARGET,
                    TargetTrackingScalingPolicyConfiguration=CPU50) == "ValidationException"
    monkeypatch.setattr(operations, "MAX_POLICIES", 1)
    assert error_of(aas.put_scaling_policy, PolicyName="q", PolicyType="StepScaling", **TARGET,
                    StepScalingPolicyConfiguration=STEP) == "LimitExceededException"
    monkeypatch.setattr(operations, "MAX_SCHEDULED_ACTIONS", 0)
    assert error_of(aas.put_scheduled_action, ScheduledActionName="s", Schedule="rate(1 hour)", **TARGET,
                    ScalableTargetAction={"MinCapacity": 1}) == "LimitExceededException"


@pytest.mark.parametrize("params, code", [
    ({"Schedule": "every day"}, "ValidationException"),
    ({"Schedule": "cron(0 8 * * *)"}, "ValidationException"),
    ({"Schedule": "cron(0 25 * * ? *)"}, "ValidationException"),
    ({"Schedule": "cron(0 8 L * ? *)"}, "ValidationException"),
    ({"Schedule": "rate(1 hours)"}, "ValidationException"),
    ({"Schedule": "at(2026-02-30T10:00:00)"}, "ValidationException"),
    ({"Timezone": "Mars/Olympus"}, "ValidationException"),
    ({"ScalableTargetAction": {}}, "ValidationException"),
    ({"ScalableTargetAction": {"MinCapacity": 5, "MaxCapacity": 2}}, "ValidationException"),
    ({"StartTime": 2000000000, "EndTime": 1900000000}, "ValidationException"),
    ({"ScheduledActionName": "a/b"}, "ValidationException"),
    ({"ResourceId": "service/default/other"}, "ObjectNotFoundException"),
    ({"ServiceNamespace": "ec2"}, "ValidationException"),
])
def test_it_refuses_bad_scheduled_actions_in_its_own_words(aas, web, params, code):
    aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    request = {"ScheduledActionName": "s", **TARGET, "Schedule": "rate(1 hour)",
               "ScalableTargetAction": {"MinCapacity": 2}, **params}
    assert error_of(aas.put_scheduled_action, **request) == code
    assert aas.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"] == []


def test_listings_refuse_other_namespaces_bad_tokens_and_sizes(aas, web):
    assert error_of(aas.describe_scalable_targets, ServiceNamespace="rds") == "ValidationException"
    assert error_of(aas.describe_scaling_policies, ServiceNamespace="ecs", NextToken="garbage") == \
        "InvalidNextTokenException"
    assert error_of(aas.describe_scaling_policies, ServiceNamespace="ecs", MaxResults=11) == "ValidationException"
    assert error_of(aas.describe_scaling_activities, ServiceNamespace="ecs", MaxResults=0) == "ValidationException"
    assert error_of(aas.describe_scheduled_actions, ServiceNamespace="ecs",
                    ScalableDimension="ecs:service:Nope") == "ValidationException"


@pytest.mark.parametrize("operation, params", [
    ("RegisterScalableTarget", {**TARGET, "MinCapacity": "1", "MaxCapacity": 2}),
    ("RegisterScalableTarget", {**TARGET, "MinCapacity": 1.5, "MaxCapacity": 2}),
    ("PutScalingPolicy", {**TARGET, "PolicyName": "p", "PolicyType": "TargetTrackingScaling",
                          "TargetTrackingScalingPolicyConfiguration": {**CPU50, "TargetValue": "fifty"}}),
    ("PutScheduledAction", {**TARGET, "ScheduledActionName": "s", "Schedule": "rate(1 hour)",
                            "ScalableTargetAction": [1, 2]}),
    ("DescribeScalableTargets", {"ServiceNamespace": "ecs", "ResourceIds": "service/default/web"}),
    ("DescribeScalingActivities", {"ServiceNamespace": "ecs", "IncludeNotScaledActivities": "yes"}),
])
def test_wrong_types_are_validation_exceptions(web, operation, params):
    from django.test import Client

    from tests.support import fuzz

    api = fuzz.ServedApi("application-autoscaling", lambda: ())
    response = fuzz.send(Client(), fuzz.Fuzzer(0, [api]).build(api, operation, params, "signed"))
    assert response.status_code == 400 and json.loads(response.content)["__type"] == "ValidationException"


def test_one_account_never_sees_anothers_targets(aas, web, live_server):
    other = Account.objects.create(account_id="111111111111", name="bob")
    AccessKey.objects.create(account=other, access_key_id="bobkey", secret_access_key="bobsecret")
    bob = lab_client(live_server, "application-autoscaling", "bobkey", "bobsecret")
    aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    assert bob.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []
    assert error_of(bob.register_scalable_target, **TARGET, MinCapacity=1, MaxCapacity=9) == "ValidationException"
    assert error_of(bob.deregister_scalable_target, **TARGET) == "ObjectNotFoundException"
    assert aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"][0]["MaxCapacity"] == 4


def test_a_wrong_signature_is_refused(live_server, default_account):
    bad = lab_client(live_server, "application-autoscaling", "test", "wrong")
    assert error_of(bad.describe_scalable_targets, ServiceNamespace="ecs") == "InvalidSignatureException"


def test_it_tags_untags_and_lists_a_targets_tags(aas, web, live_server):
    arn = aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4,
                                       Tags={"team": "blue"})["ScalableTargetARN"]
    assert_model_shape("TagResource", aas.tag_resource(ResourceARN=arn, Tags={"env": "lab", "team": "green"}),
                       "application-autoscaling")
    listed = aas.list_tags_for_resource(ResourceARN=arn)
    assert_model_shape("ListTagsForResource", listed, "application-autoscaling")
    assert listed["Tags"] == {"team": "green", "env": "lab"}
    aas.untag_resource(ResourceARN=arn, TagKeys=["team", "absent"])
    assert aas.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"env": "lab"}
    assert error_of(aas.tag_resource, ResourceARN=arn, Tags={"aws:x": "1"}) == "ValidationException"
    assert error_of(aas.tag_resource, ResourceARN=arn, Tags={f"k{n}": "v" for n in range(50)}) == "TooManyTagsException"
    assert aas.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"env": "lab"}
    unknown = arn.rsplit("/", 1)[0] + "/0123456789abcdef"
    for call, params in ((aas.list_tags_for_resource, {}), (aas.tag_resource, {"Tags": {"a": "b"}}),
                         (aas.untag_resource, {"TagKeys": ["a"]})):
        assert error_of(call, ResourceARN=unknown, **params) == "ResourceNotFoundException"
    # Another account cannot read or change this target's tags by its ARN.
    other = Account.objects.create(account_id="111111111111", name="bob")
    AccessKey.objects.create(account=other, access_key_id="bobkey", secret_access_key="bobsecret")
    bob = lab_client(live_server, "application-autoscaling", "bobkey", "bobsecret")
    assert error_of(bob.list_tags_for_resource, ResourceARN=arn) == "ResourceNotFoundException"
    assert error_of(bob.untag_resource, ResourceARN=arn, TagKeys=["env"]) == "ResourceNotFoundException"
    assert aas.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"env": "lab"}


def test_a_predictive_scaling_forecast_is_refused_clearly(aas, web):
    window = {"StartTime": 1_700_000_000, "EndTime": 1_700_086_400}
    assert error_of(aas.get_predictive_scaling_forecast, **TARGET, PolicyName="p", **window) == "ValidationException"
    aas.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    aas.put_scaling_policy(PolicyName="cpu50", PolicyType="TargetTrackingScaling", **TARGET,
                           TargetTrackingScalingPolicyConfiguration=CPU50)
    code, message, _ = api_error_of(aas.get_predictive_scaling_forecast, **TARGET, PolicyName="cpu50", **window)
    assert (code, message) == ("ValidationException", "Policy cpu50 is not a PredictiveScaling policy: only a "
                                                      "PredictiveScaling policy has a forecast.")
    code, message, _ = api_error_of(aas.get_predictive_scaling_forecast, **TARGET, PolicyName="p", **window)
    assert code == "ValidationException" and "does not support PredictiveScaling" in message
