"""Kubernetes twins: each ECS object as the Kubernetes manifest that would do the same job, and
each ECS call as the kubectl command beside it.

Pure functions over plain data: the ECS API's own shapes (what DescribeTasks, DescribeServices,
DescribeTaskDefinition, DescribeTargetGroups return; see ``frontend/shapes.py``) and a few plain
dicts, never model rows, so every mapping is tested on plain data and checked against
Kubernetes' own OpenAPI schemas. One naming table (``names``) is used by all: the pages, the
activity log's kubectl commands, the traces.
"""
from orchestrator.kubernetes.cluster import namespace_for, node_for
from orchestrator.kubernetes.kubectl import aws_cli_for, containers_of, kubectl_for, request_summary
from orchestrator.kubernetes.names import (
    KUBERNETES_NAMES, app_label, cpu_quantity, dns_label, family_revision, last_part, memory_quantity,
    namespace_of, pod_name, pod_template_hash, timestamp, to_yaml,
)
from orchestrator.kubernetes.networking import discovery_for, ingress_for, service_for, target_group_for
from orchestrator.kubernetes.pods import pod_for, pod_phase, pod_spec, pod_status, pod_template_for, probe_for
from orchestrator.kubernetes.workloads import (
    deployment_for, replica_set_for, rolling_update, task_set_deployments_for,
)

__all__ = [
    "KUBERNETES_NAMES", "app_label", "aws_cli_for", "containers_of", "cpu_quantity", "deployment_for", "discovery_for",
    "dns_label",
    "family_revision", "ingress_for", "kubectl_for", "last_part", "memory_quantity", "namespace_for", "namespace_of",
    "node_for", "pod_for", "pod_name", "pod_phase", "pod_spec", "pod_status", "pod_template_for", "pod_template_hash",
    "probe_for", "replica_set_for", "request_summary", "rolling_update", "service_for", "target_group_for",
    "task_set_deployments_for", "timestamp", "to_yaml",
]
