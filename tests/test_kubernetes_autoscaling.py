"""The HorizontalPodAutoscaler twin of a scalable target, on plain data, against Kubernetes' own schema."""
from orchestrator.kubernetes.autoscaling import horizontal_pod_autoscaler_for
from tests.support.kubernetes import validate

TARGET = {"ResourceId": "service/demo/web", "MinCapacity": 1, "MaxCapacity": 4,
          "ScalableTargetARN": "arn:aws:application-autoscaling:us-east-1:000000000000:scalable-target/abc"}


def tracking(metric="ECSServiceAverageCPUUtilization", target=50.0, **config):
    return {"PolicyName": "p", "PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {
        "TargetValue": target, "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
        "ScaleOutCooldown": 60, "ScaleInCooldown": 120, **config}}


def test_target_tracking_is_a_resource_utilization_metric_with_its_cooldowns_as_behavior():
    hpa = validate(horizontal_pod_autoscaler_for(TARGET, [tracking(), tracking("ECSServiceAverageMemoryUtilization", 70)],
                                                 {"ECSServiceAverageCPUUtilization": 91.4}, desired=3))
    assert hpa["metadata"]["namespace"] == "demo" and hpa["spec"]["scaleTargetRef"]["name"] == "web"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert [(m["resource"]["name"], m["resource"]["target"]["averageUtilization"]) for m in hpa["spec"]["metrics"]] == \
        [("cpu", 50), ("memory", 70)]
    assert hpa["spec"]["behavior"] == {"scaleUp": {"stabilizationWindowSeconds": 60},
                                       "scaleDown": {"stabilizationWindowSeconds": 120}}
    assert hpa["status"] == {"desiredReplicas": 3, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 91}}}]}


def test_disable_scale_in_disables_scale_down_and_steps_are_named_only():
    step = {"PolicyName": "steps", "PolicyType": "StepScaling", "StepScalingPolicyConfiguration": {}}
    hpa = validate(horizontal_pod_autoscaler_for({**TARGET, "MinCapacity": 0}, [tracking(DisableScaleIn=True), step]))
    assert hpa["spec"]["behavior"]["scaleDown"] == {"selectPolicy": "Disabled"}
    assert hpa["spec"]["minReplicas"] == 1  # an HPA's minReplicas is at least 1
    assert hpa["metadata"]["annotations"]["fargate-lab/step-scaling-policies"] == "steps"
