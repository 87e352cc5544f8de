"""What each page's Kubernetes twin is built from: the ECS API's shapes of the object (the very
ones DescribeTasks, DescribeServices… return), handed to the pure mappings of
``orchestrator.kubernetes``. Each function returns the manifest(s) and their YAML."""
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from orchestrator import cluster_manager, kubernetes
from orchestrator.capacity_manager import availability_zone
from orchestrator.elbv2.operations import lb_shape, listener_shape, target_health_shape, tg_shape
from orchestrator.frontend import shapes
from orchestrator.models import Target, TargetGroup, Task, TaskDefinition


def _twin(manifests, kinds):
    """The context a manifest fragment renders: the kinds it holds and the YAML."""
    return {"kinds": kinds, "yaml": kubernetes.to_yaml(manifests), "manifests": manifests}


def task_twin(task):
    """The Pod of a task (Ready as its service judges health, CrashLoopBackOff while throttled)."""
    ready = None
    if task.service_id and task.last_status == Task.RUNNING:
        ready = task.service.tasks.filter(
            cluster_manager.healthy_filter(task.service, timezone.now()), pk=task.pk).exists()
    pod = kubernetes.pod_for(
        shapes.task_shape(task), shapes.task_definition_shape(task.task_definition),
        node_name=kubernetes.dns_label(task.container_instance.name, 253) if task.container_instance else None,
        backoff=task.in_restart_backoff, ready=ready,
    )
    return _twin([pod], "Pod")


def service_twin(service):
    """A service's Deployment, a ReplicaSet per ECS deployment and its Service; then, for each
    of its load balancers, the target group's Service and EndpointSlice and the Ingresses."""
    shape = shapes.service_shape(service)
    rows = shape["deployments"] + shape.get("taskSets", [])
    arns = {shape["taskDefinition"], *(d["taskDefinition"] for d in rows)}
    definitions = {td.arn: shapes.task_definition_shape(td) for td in _task_definitions(service.account, arns)}
    ready = dict(service.tasks.filter(cluster_manager.healthy_filter(service, timezone.now()))
                 .values_list("deployment__deployment_id").annotate(n=Count("pk")).order_by())
    if "taskSets" in shape:  # EXTERNAL: blue/green as Argo Rollouts says it
        manifests = kubernetes.task_set_deployments_for(shape, definitions, ready)
        kinds = "a Deployment per task set, the Service of the primary one"
    else:
        manifests = kubernetes.deployment_for(shape, definitions, ready,
                                              min_ready_seconds=settings.FARGATE_LAB["HEALTH_GRACE_SECONDS"])
        kinds = "Deployment, ReplicaSet, Service"
    balancing = _load_balancing(service)
    if balancing:
        kinds += ", Service + EndpointSlice (target group), Ingress (listener)"
    discovery = _discovery(service)
    if discovery:
        kinds += ", Service + EndpointSlice (Cloud Map service)"
    return _twin(manifests + balancing + discovery, kinds)


def _discovery(service):
    """The Cloud Map services a service's tasks register in, each a Service whose name resolves
    and the EndpointSlice of its instances (their Pods named)."""
    from orchestrator import service_discovery

    namespace = kubernetes.namespace_of(service.cluster.name)
    manifests = []
    for registry, _, port, _, _ in service_discovery.registrations(service):
        instances = list(registry.instances.select_related(
            "task__service", "task__deployment", "task__task_definition"))
        shaped = [{"Id": i.instance_id, "Attributes": i.attributes, "HealthStatus": i.health_status}
                  for i in instances]
        pods = {i.instance_id: i.task.pod_name for i in instances if i.task_id}
        manifests += kubernetes.discovery_for(registry.name, namespace, port, shaped, pods)
    return manifests


def _task_definitions(account, arns):
    """The account's task definitions with these ARNs."""
    wanted = {kubernetes.last_part(arn) for arn in arns}
    rows = TaskDefinition.objects.filter(account=account, family__in={w.split(":")[0] for w in wanted})
    # A full ARN names its region: another region's revision of the same name is another's.
    return [td for td in rows if f"{td.family}:{td.revision}" in wanted
            and (td.arn in arns or not any(str(arn).startswith("arn:") for arn in arns))]


def _group_manifests(group, namespace, listeners):
    """A target group's Service and EndpointSlice (its targets' health, their Pods named)."""
    targets = list(Target.objects.filter(target_group=group).select_related(
        "target_group", "task__service", "task__deployment", "task__task_definition"))
    health = [target_health_shape(t, bool(listeners)) for t in targets]
    pods = {t.target_id: t.task.pod_name for t in targets if t.task_id}
    return kubernetes.target_group_for(tg_shape(group), health, namespace, pods)


def _listener_ingress(listener, namespace):
    """The Ingress of one listener, its backends named by the target groups it forwards to."""
    from orchestrator.elbv2.rules import rule_shape

    groups = {g.arn: tg_shape(g) for g in listener.target_groups.select_related("account")}
    rules = [rule_shape(rule) for rule in listener.rules.select_related("listener__load_balancer__account")]
    return kubernetes.ingress_for(lb_shape(listener.load_balancer), listener_shape(listener), groups, namespace, rules)


def _namespace_of_group(group):
    """The namespace a target group's manifests go in: its tasks' cluster ("default" when none)."""
    task = Task.objects.filter(targets__target_group=group).select_related("cluster").first()
    return kubernetes.namespace_of(task.cluster.name if task else "default")


def target_group_twin(group):
    """A target group as the map's load balancer card shows it: a Service with an EndpointSlice."""
    listeners = list(group.listeners.all())
    twin = _twin(_group_manifests(group, _namespace_of_group(group), listeners), "Service + EndpointSlice")
    return {**twin, "dom_id": f"target-group-twin-{group.pk}"}


def load_balancer_twin(load_balancer):
    """A load balancer as the Ingresses of its listeners (one ALB: one Ingress group)."""
    listeners = list(load_balancer.listeners.select_related("load_balancer__account"))
    groups = [g for listener in listeners for g in listener.target_groups.all()]
    namespace = _namespace_of_group(groups[0]) if groups else "default"
    twin = _twin([_listener_ingress(listener, namespace) for listener in listeners], "Ingress")
    return {**twin, "dom_id": f"load-balancer-twin-{load_balancer.pk}"}


def _load_balancing(service):
    """The target groups a service registers in (Service + EndpointSlice) and the listeners that
    forward to them (an Ingress each)."""
    namespace = kubernetes.namespace_of(service.cluster.name)
    manifests, ingresses = [], {}
    for entry in service.load_balancers or []:
        tg_id = str(entry.get("targetGroupArn", "")).rsplit("/", 1)[-1]
        group = TargetGroup.objects.filter(account=service.account, tg_id=tg_id).first()
        if group is None:
            continue
        listeners = list(group.listeners.select_related("load_balancer__account"))
        manifests += _group_manifests(group, namespace, listeners)
        for listener in listeners:
            ingresses[listener.pk] = _listener_ingress(listener, namespace)
    return manifests + list(ingresses.values())


def cluster_twin(cluster):
    """The Namespace of a cluster."""
    return _twin([kubernetes.namespace_for(shapes.cluster_shape(cluster))], "Namespace")


def instance_twin(usage):
    """The Node of an instance (``state.InstanceUsage``: the instance and what its tasks hold)."""
    instance = usage.instance
    node = kubernetes.node_for({
        "name": instance.name, "instance_id": instance.instance_id, "status": instance.status,
        "cpu": instance.cpu_registered, "memory": instance.memory_registered,
        "cpu_used": usage.cpu_used, "memory_used": usage.memory_used,
        "agent_connected": instance.agent_connected, "last_heartbeat": instance.last_heartbeat,
        "registered_at": instance.registered_at, "availability_zone": availability_zone(instance.engine_url),
    })
    return _twin([node], "Node")


def task_definition_twin(task_definition):
    """The PodTemplate of a task definition revision."""
    return _twin([kubernetes.pod_template_for(shapes.task_definition_shape(task_definition))], "PodTemplate")
