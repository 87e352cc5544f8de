"""Traffic: the Service in front of an ECS service's Pods, a target group as a Service with its
EndpointSlice, a listener of a load balancer as an Ingress."""
import json
import re

from orchestrator.kubernetes.names import ANNOTATION_ARN, app_label, compact, dns_label, metadata, namespace_of
from orchestrator.kubernetes.pods import ports_of

def service_for(service, task_definition):
    """The Kubernetes Service in front of an ECS service's Pods: type LoadBalancer when the ECS
    service has a load balancer, else ClusterIP (headless when its containers map no port)."""
    name = app_label(service.get("serviceName"))
    ports = []
    for definition in task_definition.get("containerDefinitions") or []:
        for port in ports_of(definition):
            ports.append(compact({"name": port.get("name") or f"{port['protocol'].lower()}-{port['containerPort']}",
                                  "port": port["containerPort"], "targetPort": port["containerPort"],
                                  "protocol": port["protocol"]}))
    spec = {"selector": {"app": name}}
    if service.get("loadBalancers"):
        spec["type"] = "LoadBalancer"
    elif not ports:
        spec["clusterIP"] = "None"
    else:
        spec["type"] = "ClusterIP"
    if ports:
        spec["ports"] = ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, namespace_of(service.get("clusterArn")), labels={"app": name}),
        "spec": spec,
    }


_ENDPOINT_CONDITIONS = {
    # ELB target state -> (ready, serving, terminating)
    "healthy": (True, True, False),
    "draining": (False, True, True),
}


def target_group_for(target_group, health, namespace="default", pods=None):
    """A target group (as DescribeTargetGroups returns it) as a Service without a selector and
    the EndpointSlice of its registered targets (``health``: DescribeTargetHealth's
    descriptions); an endpoint is ready when its target is healthy. ``pods``: target id -> Pod."""
    name = dns_label(target_group.get("TargetGroupName", "targets"))
    port = int(target_group.get("Port") or 80)
    port_name = str(target_group.get("Protocol") or "http").lower()
    endpoints = []
    ipv4 = all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", str(d["Target"]["Id"])) for d in health) if health else True
    for description in health:
        target = description["Target"]
        ready, serving, terminating = _ENDPOINT_CONDITIONS.get(description["TargetHealth"].get("State"), (False, False, False))
        pod = (pods or {}).get(target["Id"])
        endpoints.append(compact({
            "addresses": [str(target["Id"])],
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
            "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace} if pod else None,
            "zone": target.get("AvailabilityZone"),
        }))
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name, namespace, target_group.get("TargetGroupArn")),
            "spec": {"ports": [{"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": metadata(f"{name}-1", namespace, labels={"kubernetes.io/service-name": name},
                                 annotations={"endpointslice.kubernetes.io/managed-by": "fargate-lab"}),
            "addressType": "IPv4" if ipv4 else "FQDN",
            "endpoints": endpoints,
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        },
    ]


def _rule_backend(actions, target_groups, annotations, name):
    """The Ingress backend of a rule's (or the listener's) first action; a fixed response is an
    action annotation the backend names, as the AWS Load Balancer Controller writes it."""
    for action in actions or []:
        arn = action.get("TargetGroupArn") or next(
            (g.get("TargetGroupArn") for g in (action.get("ForwardConfig") or {}).get("TargetGroups") or []), None)
        if action.get("Type") == "forward" and arn in target_groups:
            group = target_groups[arn]
            return {"service": {"name": dns_label(group.get("TargetGroupName")),
                                "port": {"number": int(group.get("Port") or 80)}}}
        if action.get("Type") == "fixed-response":
            annotations[f"alb.ingress.kubernetes.io/actions.{name}"] = _fixed_response(action)
            return {"service": {"name": name, "port": {"name": "use-annotation"}}}
    return None


def _ingress_path(pattern):
    """An ELBv2 path pattern as an Ingress path: "/api/*" is the Prefix "/api", a pattern with no
    wildcard is Exact, any other is ImplementationSpecific (the controller passes it through)."""
    if pattern.endswith("/*") and not any(c in pattern[:-2] for c in "*?"):
        return {"path": pattern[:-2] or "/", "pathType": "Prefix"}
    if not any(c in pattern for c in "*?"):
        return {"path": pattern, "pathType": "Exact"}
    return {"path": pattern, "pathType": "ImplementationSpecific"}


def _ingress_rules(rules, target_groups, annotations):
    """Listener rules (by priority) as Ingress rules: hosts and paths in the spec; every other
    condition (method, header, query string, source IP) in the controller's conditions annotation."""
    out = []
    for n, rule in enumerate(rules, start=1):
        name = f"rule-{n}"
        backend = _rule_backend(rule.get("Actions"), target_groups, annotations, name)
        if backend is None:
            continue
        hosts, paths, others = [None], [{"path": "/", "pathType": "Prefix"}], []
        for condition in rule.get("Conditions") or []:
            field = condition.get("Field")
            values = (condition.get("HostHeaderConfig") or condition.get("PathPatternConfig") or {}).get("Values") \
                or condition.get("Values") or []
            if field == "host-header" and all(not any(c in v.lstrip("*.") for c in "*?") for v in values):
                hosts = list(values)
            elif field == "path-pattern":
                paths = [_ingress_path(v) for v in values]
            else:
                others.append({k: v for k, v in condition.items() if k != "Values"})
        if others:
            service = backend["service"]["name"]
            annotations[f"alb.ingress.kubernetes.io/conditions.{service}"] = json.dumps(others)
        for host in hosts:
            entry = {"http": {"paths": [{**path, "backend": backend} for path in paths]}}
            if host:
                entry = {"host": host.lower(), **entry}
            out.append(entry)
    return out


def ingress_for(load_balancer, listener, target_groups, namespace="default", rules=()):
    """One listener of a load balancer as an Ingress of the AWS Load Balancer Controller: one
    Ingress per listener port, grouped into one ALB by ``group.name``; its rules (DescribeRules'
    shapes, the default one left out) as the Ingress's rules. ``target_groups``: ARN ->
    DescribeTargetGroups shape."""
    lb_name = dns_label(load_balancer.get("LoadBalancerName", "alb"))
    annotations = {
        "alb.ingress.kubernetes.io/group.name": lb_name,
        "alb.ingress.kubernetes.io/scheme": load_balancer.get("Scheme", "internet-facing"),
        "alb.ingress.kubernetes.io/listen-ports": f'[{{"{listener.get("Protocol", "HTTP")}": {int(listener["Port"])}}}]',
    }
    backend = _rule_backend(listener.get("DefaultActions"), target_groups, annotations, "fixed-response")
    spec = {"ingressClassName": "alb"}
    if backend:
        spec["defaultBackend"] = backend
    if rules:
        spec["rules"] = _ingress_rules(rules, target_groups, annotations)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(f"{lb_name}-{int(listener['Port'])}", namespace, listener.get("ListenerArn"),
                             annotations={ANNOTATION_ARN + "-load-balancer": load_balancer.get("LoadBalancerArn"),
                                          **annotations}),
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"hostname": load_balancer.get("DNSName", "")}]}},
    }


def _fixed_response(action):
    """A fixed-response action in the AWS Load Balancer Controller's annotation form."""
    config = action.get("FixedResponseConfig") or {}
    return json.dumps({"type": "fixed-response", "fixedResponseConfig": compact({
        "statusCode": str(config.get("StatusCode", "200")), "contentType": config.get("ContentType"),
        "messageBody": config.get("MessageBody")})})


def discovery_for(name, namespace, port, instances, pods=None):
    """A Cloud Map service (ECS serviceRegistries or Service Connect) as the Service whose DNS
    name tasks resolve and the EndpointSlice of its registered instances (Cloud Map's
    ListInstances: ``{"Id", "Attributes", "HealthStatus"}``); an endpoint is ready when its
    instance is HEALTHY. ``pods``: instance id -> Pod name."""
    service_name = dns_label(name)
    ports = [{"name": "tcp", "port": int(port), "targetPort": int(port), "protocol": "TCP"}] if port else []
    endpoints = [compact({
        "addresses": [instance["Attributes"].get("AWS_INSTANCE_IPV4", "")],
        "conditions": {"ready": instance.get("HealthStatus") == "HEALTHY"},
        "targetRef": {"kind": "Pod", "name": pods[instance["Id"]], "namespace": namespace}
        if instance["Id"] in (pods or {}) else None,
        "zone": instance["Attributes"].get("AVAILABILITY_ZONE"),
    }) for instance in instances]
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata(service_name, namespace),
         "spec": compact({"clusterIP": None if ports else "None", "ports": ports or None})},
        {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": metadata(f"{service_name}-1", namespace, labels={"kubernetes.io/service-name": service_name},
                                 annotations={"endpointslice.kubernetes.io/managed-by": "fargate-lab"}),
            "addressType": "IPv4", "endpoints": endpoints,
            **({"ports": [{"name": "tcp", "port": int(port), "protocol": "TCP"}]} if port else {}),
        },
    ]
