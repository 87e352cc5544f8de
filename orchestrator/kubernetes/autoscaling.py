"""A scalable target and its policies as the HorizontalPodAutoscaler that would do the same job.

Pure: from DescribeScalableTargets' and DescribeScalingPolicies' shapes (and what the autoscaler
last measured). Target tracking on CPU or memory is an ``autoscaling/v2`` Resource metric with
a Utilization target; its cooldowns are the behavior's stabilization windows; DisableScaleIn is
a scale-down policy of ``Disabled``. Step scaling and scheduled actions have no HPA field (an
HPA only tracks targets): they are named in annotations.
"""
from orchestrator.kubernetes.names import app_label, compact, metadata, namespace_of

RESOURCES = {"ECSServiceAverageCPUUtilization": "cpu", "ECSServiceAverageMemoryUtilization": "memory"}


def horizontal_pod_autoscaler_for(target, policies, current=None, desired=None):
    """The HorizontalPodAutoscaler of ``target`` (a ScalableTarget shape) with ``policies``
    (ScalingPolicy shapes); ``current``: metric type -> percent measured, ``desired``: the
    service's desired count now."""
    cluster, service = target["ResourceId"].split("/")[1:3]
    name = app_label(service)
    tracking = [p for p in policies if p["PolicyType"] == "TargetTrackingScaling"]
    stepping = [p["PolicyName"] for p in policies if p["PolicyType"] == "StepScaling"]
    metrics, current_metrics = [], []
    up, down, scale_in = 0, 0, True
    for policy in tracking:
        config = policy["TargetTrackingScalingPolicyConfiguration"]
        metric = config["PredefinedMetricSpecification"]["PredefinedMetricType"]
        resource = RESOURCES.get(metric, metric)
        metrics.append({"type": "Resource", "resource": {
            "name": resource, "target": {"type": "Utilization", "averageUtilization": round(config["TargetValue"])}}})
        if current and current.get(metric) is not None:
            current_metrics.append({"type": "Resource", "resource": {
                "name": resource, "current": {"averageUtilization": round(current[metric])}}})
        up, down = max(up, config.get("ScaleOutCooldown", 300)), max(down, config.get("ScaleInCooldown", 300))
        scale_in = scale_in and not config.get("DisableScaleIn")
    annotations = {}
    if stepping:
        annotations["fargate-lab/step-scaling-policies"] = ", ".join(stepping)
    behavior = {"scaleUp": {"stabilizationWindowSeconds": int(up)},
                "scaleDown": {"stabilizationWindowSeconds": int(down)} if scale_in else {"selectPolicy": "Disabled"}}
    return compact({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, namespace_of(cluster), target.get("ScalableTargetARN"),
                             annotations=annotations),
        "spec": compact({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": max(1, int(target["MinCapacity"])),
            "maxReplicas": int(target["MaxCapacity"]),
            "metrics": metrics or None,
            "behavior": behavior if tracking else None,
        }),
        "status": compact({"desiredReplicas": desired, "currentMetrics": current_metrics or None}),
    })
