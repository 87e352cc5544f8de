"""The cluster's own objects: a cluster as a Namespace, an instance of the fleet as a Node."""
from orchestrator.kubernetes.names import compact, cpu_quantity, dns_label, memory_quantity, metadata, namespace_of, timestamp

def namespace_for(cluster):
    """A cluster (as DescribeClusters returns it) as a Namespace."""
    name = namespace_of(cluster.get("clusterName"))
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(name, arn=cluster.get("clusterArn"), labels={"kubernetes.io/metadata.name": name}),
        "status": {"phase": "Active" if cluster.get("status") == "ACTIVE" else "Terminating"},
    }


def node_for(instance):
    """An instance of the fleet as a Node. ``instance`` is plain data: name, instance_id, status,
    cpu and memory (registered), cpu_used and memory_used, agent_connected, last_heartbeat,
    availability_zone. Capacity and allocatable are the registered CPU and memory (the lab keeps
    none back for itself); what its tasks hold is said in annotations, as kubectl describe adds up."""
    name = dns_label(instance["name"], 253)
    draining = instance.get("status") != "ACTIVE"
    resources = {"cpu": cpu_quantity(instance["cpu"]), "memory": memory_quantity(instance["memory"])}
    heartbeat = timestamp(instance.get("last_heartbeat"))
    ready = instance.get("status") == "ACTIVE" and bool(instance.get("agent_connected"))
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "fargate-lab"}
    if instance.get("availability_zone"):
        labels["topology.kubernetes.io/zone"] = instance["availability_zone"]
    spec = {"providerID": f"fargate-lab:///{instance.get('instance_id', '')}"}
    if draining:
        spec["unschedulable"] = True
        spec["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata(name, labels=labels, annotations={
            "fargate-lab/ecs-status": instance.get("status", ""),
            "fargate-lab/cpu-units-in-use": str(instance.get("cpu_used", 0)),
            "fargate-lab/memory-mib-in-use": str(instance.get("memory_used", 0)),
        }, creationTimestamp=timestamp(instance.get("registered_at"))),
        "spec": spec,
        "status": {
            "capacity": resources,
            "allocatable": dict(resources),
            "conditions": [compact({
                "type": "Ready", "status": "True" if ready else ("False" if instance.get("agent_connected") else "Unknown"),
                "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                "lastHeartbeatTime": heartbeat,
            })],
            "addresses": [{"type": "Hostname", "address": name}],
        },
    }
